//! A drain: a loop's open connections closed one by one, spread evenly over a period,
//! so that the clients of a node going away for a restart come back on the other
//! nodes gradually instead of all in the same second (a reconnect storm).

use super::id::ConnId;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// One loop's schedule of closes.
#[derive(Debug)]
pub(super) struct Drain {
    start: Instant,
    over: Duration,
    /// The connections still to close, in the order they are closed.
    queue: VecDeque<ConnId>,
    total: usize,
}

impl Drain {
    /// Closes `connections` over `over`, from `start` on.
    pub(super) fn new(connections: Vec<ConnId>, start: Instant, over: Duration) -> Self {
        Drain {
            start,
            over,
            total: connections.len(),
            queue: connections.into(),
        }
    }

    /// The connections whose turn has come by `now`: the i-th of n at `start + over
    /// × i / n`, so that the first goes at once and the last just before the end.
    pub(super) fn due(&mut self, now: Instant) -> Vec<ConnId> {
        let elapsed = now.saturating_duration_since(self.start);
        let closed = self.total - self.queue.len();
        let should = if elapsed >= self.over || self.over.is_zero() {
            self.total
        } else {
            let share = elapsed.as_secs_f64() / self.over.as_secs_f64();
            ((share * self.total as f64).floor() as usize + 1).min(self.total)
        };
        let n = should.saturating_sub(closed).min(self.queue.len());
        self.queue.drain(..n).collect()
    }

    /// When the loop must look again: the next connection's turn, or once none is
    /// left the end of the period (then nothing).
    pub(super) fn next_at(&self) -> Option<Instant> {
        let end = self.start + self.over;
        if self.queue.is_empty() {
            return (Instant::now() < end).then_some(end);
        }
        let next = self.total - self.queue.len();
        Some(self.start + self.over.mul_f64(next as f64 / self.total as f64))
    }

    /// Whether every connection's turn has come and the period is over.
    pub(super) fn is_over(&self, now: Instant) -> bool {
        self.queue.is_empty() && now >= self.start + self.over
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<ConnId> {
        (0..n)
            .map(|slot| ConnId {
                worker: 0,
                slot,
                generation: 0,
            })
            .collect()
    }

    #[test]
    fn closes_are_spread_evenly_and_all_come() {
        let start = Instant::now();
        let over = Duration::from_secs(10);
        let mut drain = Drain::new(ids(100), start, over);
        assert_eq!(drain.due(start).len(), 1, "the first at once");
        assert_eq!(drain.next_at(), Some(start + Duration::from_millis(100)));
        // Halfway: half of them.
        assert_eq!(drain.due(start + Duration::from_secs(5)).len(), 50);
        assert!(!drain.is_over(start + Duration::from_secs(5)));
        // Asked again at the same time: nothing more.
        assert!(drain.due(start + Duration::from_secs(5)).is_empty());
        assert_eq!(drain.due(start + Duration::from_millis(9_950)).len(), 49);
        assert_eq!(drain.due(start + over).len(), 0);
        assert!(drain.is_over(start + over));
        // Empty before the end: the end wakes the loop, once.
        let mut early = Drain::new(ids(1), Instant::now(), Duration::from_secs(60));
        early.due(Instant::now());
        let end = early.next_at().expect("the end of the period");
        assert!(end > Instant::now() + Duration::from_secs(59));
    }

    #[test]
    fn a_late_turn_closes_all_that_are_due() {
        let start = Instant::now();
        let mut drain = Drain::new(ids(7), start, Duration::from_secs(1));
        assert_eq!(drain.due(start + Duration::from_secs(3)).len(), 7);
        let mut none = Drain::new(Vec::new(), start, Duration::ZERO);
        assert!(none.due(start).is_empty() && none.is_over(start));
    }
}
