//! Time in the core, without a clock: the heartbeat (a Ping after a quiet interval,
//! a deadline for its Pong) and the close timeout are decided here, and the driver
//! only asks when to wake ([`Connection::poll_timeout`](super::Connection::poll_timeout))
//! and says when it woke ([`handle_timeout`](super::Connection::handle_timeout)).

use std::time::{Duration, Instant};

/// A deadline kept without a clock. A timer started by a call that knows no time
/// (`close`, a Ping going out) waits as `After` until the driver next tells the time;
/// from then on it is fixed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Deadline {
    Off,
    After(Duration),
    At(Instant),
}

impl Deadline {
    /// A deadline `after` from the next time the driver tells (`None`: off).
    pub(super) fn after(after: Option<Duration>) -> Self {
        after.map_or(Deadline::Off, Deadline::After)
    }

    /// Fixes a waiting deadline from `now`.
    pub(super) fn fix(&mut self, now: Instant) {
        if let Deadline::After(after) = *self {
            // A duration too large for the clock means never.
            *self = now.checked_add(after).map_or(Deadline::Off, Deadline::At);
        }
    }

    pub(super) fn at(self) -> Option<Instant> {
        match self {
            Deadline::At(at) => Some(at),
            _ => None,
        }
    }

    pub(super) fn passed(self, now: Instant) -> bool {
        self.at().is_some_and(|at| now >= at)
    }
}

/// The heartbeat (RFC 6455 §5.5.2 allows a Ping at any time): a Ping every
/// `interval`, and the Pong for one due within `pong_timeout`; none, and the peer is
/// taken to have vanished without a FIN.
#[derive(Debug, Clone, Copy)]
pub(super) struct Heartbeat {
    interval: Duration,
    pong_timeout: Duration,
    next_ping: Deadline,
    pong_due: Deadline,
}

/// What a heartbeat has come to at a given time.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Beat {
    Quiet,
    /// Time for a Ping.
    Ping,
    /// The Pong did not come in time.
    PongOverdue,
}

impl Heartbeat {
    pub(super) fn new(interval: Option<Duration>, pong_timeout: Duration) -> Option<Self> {
        interval.map(|interval| Heartbeat {
            interval,
            pong_timeout,
            next_ping: Deadline::After(interval),
            pong_due: Deadline::Off,
        })
    }

    pub(super) fn fix(&mut self, now: Instant) {
        self.next_ping.fix(now);
        self.pong_due.fix(now);
    }

    pub(super) fn next(&self) -> Option<Instant> {
        earliest(self.next_ping.at(), self.pong_due.at())
    }

    pub(super) fn check(&self, now: Instant) -> Beat {
        if self.pong_due.passed(now) {
            Beat::PongOverdue
        } else if self.next_ping.passed(now) {
            Beat::Ping
        } else {
            Beat::Quiet
        }
    }

    /// A Ping went out at `now`: the next one is due an interval later, and a Pong
    /// within the timeout (counted from the oldest Ping not yet answered).
    pub(super) fn pinged(&mut self, now: Instant) {
        self.next_ping = Deadline::At(now + self.interval);
        if self.pong_due == Deadline::Off {
            self.pong_due = Deadline::At(now + self.pong_timeout);
        }
    }

    /// A frame arrived — its Pong (solicited or not, RFC 6455 §5.5.3) or anything
    /// else: the peer is there.
    pub(super) fn heard_from_peer(&mut self) {
        self.pong_due = Deadline::Off;
    }
}

/// The earlier of two optional instants.
pub(super) fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn a_deadline_started_without_a_clock_counts_from_the_next_time_told() {
        let t0 = Instant::now();
        let mut deadline = Deadline::after(Some(5 * SECOND));
        assert_eq!(deadline.at(), None);
        assert!(
            !deadline.passed(t0 + 100 * SECOND),
            "not fixed: never passes"
        );
        deadline.fix(t0 + SECOND);
        assert_eq!(deadline.at(), Some(t0 + 6 * SECOND));
        deadline.fix(t0 + 2 * SECOND); // fixed once only
        assert_eq!(deadline.at(), Some(t0 + 6 * SECOND));
        assert!(deadline.passed(t0 + 6 * SECOND));
        assert_eq!(Deadline::after(None), Deadline::Off);
        let mut never = Deadline::after(Some(Duration::MAX));
        never.fix(t0);
        assert_eq!(never, Deadline::Off, "beyond the clock's range: off");
    }

    #[test]
    fn a_heartbeat_pings_each_interval_and_wants_a_pong_within_the_timeout() {
        let t0 = Instant::now();
        let mut beat = Heartbeat::new(Some(10 * SECOND), 3 * SECOND).unwrap();
        beat.fix(t0);
        assert_eq!(beat.next(), Some(t0 + 10 * SECOND));
        assert_eq!(beat.check(t0 + 9 * SECOND), Beat::Quiet);
        assert_eq!(beat.check(t0 + 10 * SECOND), Beat::Ping);
        beat.pinged(t0 + 10 * SECOND);
        assert_eq!(
            beat.next(),
            Some(t0 + 13 * SECOND),
            "the pong deadline first"
        );
        beat.heard_from_peer();
        assert_eq!(beat.next(), Some(t0 + 20 * SECOND));
        beat.pinged(t0 + 20 * SECOND);
        assert_eq!(beat.check(t0 + 23 * SECOND), Beat::PongOverdue);
    }

    #[test]
    fn an_unanswered_ping_keeps_its_deadline_when_the_next_goes_out() {
        let t0 = Instant::now();
        let mut beat = Heartbeat::new(Some(SECOND), 5 * SECOND).unwrap();
        beat.pinged(t0);
        beat.pinged(t0 + SECOND);
        beat.pinged(t0 + 2 * SECOND);
        assert_eq!(beat.check(t0 + 5 * SECOND), Beat::PongOverdue);
        assert!(Heartbeat::new(None, SECOND).is_none());
    }
}
