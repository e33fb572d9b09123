//! Several event loops in one process ([`ServerConfig::threads`]): how connections are
//! spread over them ([`Balance`]), and what the loops share — the stop flag, the count
//! of open connections, each loop's counters, and a mailbox per loop through which any
//! loop sends to a connection that lives on another.
//!
//! A connection never moves: its socket, its `Connection` and its data belong to the
//! loop that registered it, and only that thread touches them. A send to a connection
//! of another loop is posted to that loop's mailbox and applied there. A loop applies
//! its mail before any send of its own, so that a handler which orders its sends (the
//! rooms server posts a room's messages while it holds the room's lock) has that order
//! kept on every connection, whichever loops the senders run on.
//!
//! [`ServerConfig::threads`]: super::ServerConfig::threads

use super::id::ConnId;
use super::shared::SharedFrame;
use super::stats::Stats;
use crate::{CloseCode, MessageKind};
use mio::net::TcpStream;
use mio::Waker;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Something one loop asks another to do with one of its connections.
pub(super) enum Mail {
    Shared(ConnId, SharedFrame),
    Data(ConnId, MessageKind, Vec<u8>),
    Close(ConnId, CloseCode, String),
    /// Bytes for a stream (see `Ctx::send_stream`), shared like a frame.
    Stream(ConnId, std::sync::Arc<[u8]>),
}

impl Mail {
    /// The connection it is for.
    fn conn(&self) -> ConnId {
        match self {
            Mail::Shared(id, _)
            | Mail::Data(id, ..)
            | Mail::Close(id, ..)
            | Mail::Stream(id, _) => *id,
        }
    }

    /// What it holds in memory, for the mailbox's bound: a shared frame's bytes are
    /// counted once where they live, not per recipient.
    fn cost(&self) -> usize {
        std::mem::size_of::<Mail>()
            + match self {
                Mail::Shared(..) | Mail::Stream(..) => 0,
                Mail::Data(_, _, payload) => payload.len(),
                Mail::Close(_, _, reason) => reason.len(),
            }
    }
}

#[derive(Default)]
struct Queue {
    mail: Vec<Mail>,
    bytes: usize,
    /// Accepted sockets handed to this loop (`Balance::LeastConnections`).
    adopt: Vec<TcpStream>,
    /// Connections a refused mail was for (the mailbox was full): the loop closes
    /// them, so that none silently misses a message. Each once; at most
    /// [`OVERFLOWS_KEPT`]. Later mail for one of them is refused too, so that it
    /// gets what was taken before the refusal, then the close: never a gap.
    overflowed: HashSet<ConnId>,
    /// Mail refused since the loop last looked (for `Stats::mailbox_overflows`).
    refused: u64,
}

/// The most connections remembered per mailbox as owed a refused mail between two
/// turns of its loop (more than a loop holds in practice); past it the refusals are
/// only counted.
const OVERFLOWS_KEPT: usize = 65_536;

/// What a loop takes from its mailbox in one turn.
pub(super) struct Delivery {
    pub(super) mail: Vec<Mail>,
    /// Connections owed a mail that the full mailbox refused.
    pub(super) overflowed: HashSet<ConnId>,
    /// How many mails were refused.
    pub(super) refused: u64,
}

/// One loop's inbox.
#[derive(Default)]
pub(super) struct Mailbox {
    /// Set while `queue.mail` or `queue.overflowed` is not empty: lets a loop check for
    /// mail without a lock.
    has_mail: AtomicBool,
    queue: Mutex<Queue>,
}

/// What the loops of one server share (one `Arc` of it in each loop and handle).
pub(super) struct Loops {
    pub(super) stop: AtomicBool,
    /// A drain asked for ([`Handle::drain`](super::Handle::drain)): over how many
    /// microseconds, plus one (0: none). An atomic: every loop reads it every turn.
    drain: AtomicU64,
    /// When the drain was asked for: every loop's schedule starts there, so that they
    /// all end together.
    drain_start: Mutex<Option<std::time::Instant>>,
    wakers: Vec<Waker>,
    mailboxes: Vec<Mailbox>,
    /// WebSocket connections open in the whole process (for `max_connections`).
    open: AtomicUsize,
    /// Connections in their handshake, per address, streams (process-wide caps).
    pub(super) admission: super::admission::Admission,
    /// Connections registered on each loop, handshakes included (for balancing).
    loads: Vec<AtomicUsize>,
    /// Each loop's counters as of the end of its last turn.
    stats: Vec<Mutex<Stats>>,
    /// Each loop's queued output (bytes not yet written), as of its last turn: for
    /// `max_total_queued_output`.
    queued: Vec<AtomicUsize>,
    /// The most bytes (see `Mail::cost`) a mailbox holds: only a loop that stopped
    /// turning lets it fill, and then sends to it fail instead of piling up.
    mailbox_limit: usize,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A loop that panicked while holding a lock left consistent data (every critical
    // section here is a push or a swap): keep going with it.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Loops {
    pub(super) fn new(wakers: Vec<Waker>, mailbox_limit: usize) -> Self {
        let n = wakers.len();
        Loops {
            stop: AtomicBool::new(false),
            drain: AtomicU64::new(0),
            drain_start: Mutex::new(None),
            wakers,
            mailboxes: (0..n).map(|_| Mailbox::default()).collect(),
            open: AtomicUsize::new(0),
            admission: super::admission::Admission::default(),
            loads: (0..n).map(|_| AtomicUsize::new(0)).collect(),
            stats: (0..n).map(|_| Mutex::new(Stats::default())).collect(),
            queued: (0..n).map(|_| AtomicUsize::new(0)).collect(),
            mailbox_limit,
        }
    }

    /// How many loops there are.
    pub(super) fn count(&self) -> usize {
        self.wakers.len()
    }

    /// Asks every loop to drain: connections closed with 1012 spread over `over`,
    /// then a shutdown.
    pub(super) fn drain(&self, over: std::time::Duration) {
        lock(&self.drain_start).get_or_insert_with(std::time::Instant::now);
        let micros = u64::try_from(over.as_micros()).unwrap_or(u64::MAX - 1);
        self.drain.store(micros + 1, Ordering::Release);
        for waker in &self.wakers {
            let _ = waker.wake();
        }
    }

    /// When the drain was asked for (read once by each loop as it starts its own).
    pub(super) fn drain_start(&self) -> Option<std::time::Instant> {
        *lock(&self.drain_start)
    }

    /// Over how long a drain was asked for, if one was.
    pub(super) fn draining(&self) -> Option<std::time::Duration> {
        match self.drain.load(Ordering::Acquire) {
            0 => None,
            n => Some(std::time::Duration::from_micros(n - 1)),
        }
    }

    /// Asks every loop to shut down gracefully.
    pub(super) fn shutdown(&self) {
        self.stop.store(true, Ordering::SeqCst);
        for waker in &self.wakers {
            let _ = waker.wake();
        }
    }

    /// Posts `mail` to loop `to`; false when its mailbox is full.
    pub(super) fn post(&self, to: usize, mail: Mail) -> bool {
        let mailbox = &self.mailboxes[to];
        let was_empty = {
            let mut queue = lock(&mailbox.queue);
            let cost = mail.cost();
            let id = mail.conn();
            if queue.bytes + cost > self.mailbox_limit || queue.overflowed.contains(&id) {
                // The loop is behind: the connection will miss this (or, for a
                // close, stay open), so its loop closes it when it gets to its mail.
                queue.refused += 1;
                let first = queue.mail.is_empty() && queue.overflowed.is_empty();
                if queue.overflowed.len() < OVERFLOWS_KEPT {
                    queue.overflowed.insert(id);
                    mailbox.has_mail.store(true, Ordering::Release);
                }
                drop(queue);
                if first {
                    let _ = self.wakers[to].wake();
                }
                return false;
            }
            queue.bytes += cost;
            queue.mail.push(mail);
            mailbox.has_mail.store(true, Ordering::Release);
            queue.mail.len() == 1
        };
        // One wake-up per batch: a loop that has mail waiting was woken already.
        if was_empty {
            let _ = self.wakers[to].wake();
        }
        true
    }

    /// Whether loop `at` has mail waiting (no lock taken).
    pub(super) fn has_mail(&self, at: usize) -> bool {
        self.mailboxes[at].has_mail.load(Ordering::Acquire)
    }

    /// The mail waiting for loop `at`, oldest first, and the connections owed a
    /// refused one (none: no lock taken).
    pub(super) fn take_mail(&self, at: usize) -> Delivery {
        let mailbox = &self.mailboxes[at];
        if !mailbox.has_mail.load(Ordering::Acquire) {
            return Delivery {
                mail: Vec::new(),
                overflowed: HashSet::new(),
                refused: 0,
            };
        }
        let mut queue = lock(&mailbox.queue);
        mailbox.has_mail.store(false, Ordering::Relaxed);
        queue.bytes = 0;
        Delivery {
            mail: std::mem::take(&mut queue.mail),
            overflowed: std::mem::take(&mut queue.overflowed),
            refused: std::mem::take(&mut queue.refused),
        }
    }

    /// Hands an accepted socket to the loop with the fewest connections; returns the
    /// socket when that is loop `me` itself (it registers it directly).
    pub(super) fn hand_over(&self, me: usize, stream: TcpStream) -> Option<TcpStream> {
        let target = (0..self.count())
            .min_by_key(|&i| self.loads[i].load(Ordering::Relaxed))
            .unwrap_or(me);
        if target == me {
            return Some(stream);
        }
        // Counted now, so the next accept already sees it.
        self.loads[target].fetch_add(1, Ordering::Relaxed);
        lock(&self.mailboxes[target].queue).adopt.push(stream);
        let _ = self.wakers[target].wake();
        None
    }

    /// The sockets handed to loop `at` (already counted in its load).
    pub(super) fn take_adopted(&self, at: usize) -> Vec<TcpStream> {
        std::mem::take(&mut lock(&self.mailboxes[at].queue).adopt)
    }

    pub(super) fn loaded(&self, at: usize) {
        self.loads[at].fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn unloaded(&self, at: usize) {
        self.loads[at].fetch_sub(1, Ordering::Relaxed);
    }

    /// Counts one more open connection unless `max` are open already.
    pub(super) fn try_open(&self, max: usize) -> Result<(), usize> {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open < max).then_some(open + 1)
            })
            .map(|_| ())
    }

    /// WebSocket connections and streams open in the whole process now.
    pub(super) fn open_now(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    pub(super) fn closed(&self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
    }

    /// Records how much output loop `at` has queued.
    pub(super) fn set_queued(&self, at: usize, bytes: usize) {
        self.queued[at].store(bytes, Ordering::Relaxed);
    }

    /// The output the other loops have queued, as of their last turns.
    pub(super) fn queued_elsewhere(&self, at: usize) -> usize {
        let mut sum = 0;
        for (i, queued) in self.queued.iter().enumerate() {
            if i != at {
                sum += queued.load(Ordering::Relaxed);
            }
        }
        sum
    }

    /// Records loop `at`'s counters (end of each of its turns).
    pub(super) fn publish(&self, at: usize, stats: &Stats) {
        lock(&self.stats[at]).clone_from(stats);
    }

    /// The whole process's counters: loop `at`'s live ones plus the others' last.
    pub(super) fn totals(&self, at: usize, live: &Stats) -> Stats {
        let mut total = live.clone();
        total.open_per_loop = vec![0; self.count()];
        total.open_per_loop[at] = live.open;
        total.handshaking = self.admission.handshaking();
        for (i, stats) in self.stats.iter().enumerate() {
            if i != at {
                let stats = lock(stats);
                total.add(&stats);
                total.open_per_loop[i] = stats.open;
            }
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(slot: usize) -> ConnId {
        ConnId::for_test(slot)
    }

    /// A loop that fell behind has a full mailbox: what it refuses is remembered by
    /// connection, so that the loop closes those connections instead of letting them
    /// miss a message without knowing (or, for a refused close, stay open).
    #[test]
    fn a_full_mailbox_remembers_whom_a_refused_mail_was_for() {
        let poll = mio::Poll::new().unwrap();
        let waker = Waker::new(poll.registry(), mio::Token(0)).unwrap();
        let loops = Loops::new(vec![waker], 2 * std::mem::size_of::<Mail>());
        let data = |slot| Mail::Data(id(slot), MessageKind::Text, Vec::new());
        assert!(loops.post(0, data(1)));
        assert!(loops.post(0, data(2)));
        assert!(!loops.post(0, data(3)), "over the limit");
        assert!(!loops.post(0, data(3)), "again");
        assert!(!loops.post(0, Mail::Close(id(4), CloseCode::NORMAL, String::new())));
        let delivery = loops.take_mail(0);
        assert_eq!(delivery.mail.len(), 2);
        assert_eq!(delivery.overflowed, HashSet::from([id(3), id(4)]));
        assert_eq!(delivery.refused, 3);
        // Taken: the next turn starts empty.
        let next = loops.take_mail(0);
        assert!(next.mail.is_empty() && next.overflowed.is_empty());
        assert_eq!(next.refused, 0);
    }

    /// After a refusal, later mail for that connection is refused too, even small
    /// mail that would fit: it gets what was taken before, then the close, never a
    /// message after a gap. Other connections' mail still goes in.
    #[test]
    fn no_mail_for_a_connection_gets_in_after_one_was_refused() {
        let poll = mio::Poll::new().unwrap();
        let waker = Waker::new(poll.registry(), mio::Token(0)).unwrap();
        let size = std::mem::size_of::<Mail>();
        let loops = Loops::new(vec![waker], 2 * size + 100);
        let data = |slot, len| Mail::Data(id(slot), MessageKind::Text, vec![b'x'; len]);
        assert!(loops.post(0, data(1, 0)));
        assert!(!loops.post(0, data(2, 200)), "too big for what is left");
        assert!(
            !loops.post(0, data(2, 0)),
            "would fit, but 2 already missed one"
        );
        assert!(loops.post(0, data(3, 0)), "another connection's fits");
        let delivery = loops.take_mail(0);
        assert_eq!(delivery.mail.len(), 2);
        assert_eq!(delivery.overflowed, HashSet::from([id(2)]));
    }
}
