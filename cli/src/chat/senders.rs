//! Which connection sent each recent message of a room, and the acks that wait for
//! the room's earlier messages.
//!
//! **Who does not get a message back.** The connection that sent it (its ack has the
//! seq); the user's other connections get it like everyone.
//!
//! **An ack never overtakes.** A message's ack carries its seq, and a client resumes
//! from the last seq it has (`join` with `since`). With Redis, a message reaches the
//! node through the room's channel, while the ack of a later one comes straight from
//! the script: answered at once, the ack of seq 8 could reach its sender before
//! message 7 from another node does, and a client that took 8 as its cursor and
//! reconnected right then would never get 7. So an ack waits until the node has
//! delivered every earlier message of the room: at once when it has, else until its
//! own message comes back through the channel (the channel keeps seq order), or for
//! [`ACK_HOLD`] at most (the channel broke: the node catches up from the room's log
//! meanwhile).

use rfc6455::server::ConnId;
use serde_json::Value;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Senders remembered per room: more messages than this in flight in one room before
/// they come back from the hub is not expected; past it, the oldest one's sender
/// gets its own message back (harmless, it has the seq) and its ack if it waited.
pub const SENDERS_KEPT: usize = 256;

/// The longest an ack waits for the messages before it. Long: an overloaded node may
/// be seconds behind its channels (then an ack sent early could overtake, and a
/// client that resumed from it would lose what it overtook), and a broken channel
/// releases its acks sooner anyway (the node catches up from the logs, and the
/// messages that come back free them).
pub const ACK_HOLD: Duration = Duration::from_secs(30);

/// An ack to send now: for message `seq` of the room, to connection `to`.
#[derive(Debug)]
pub struct DueAck<Id = ConnId> {
    pub seq: u64,
    pub to: Id,
    /// The request's `id`.
    pub rid: Option<Value>,
    /// A retry's answer (`"duplicate": true`): the first one's seq.
    pub duplicate: bool,
}

#[derive(Debug)]
struct Sent<Id> {
    seq: u64,
    id: Id,
    /// A retry answered with the first one's seq: not the message's sender.
    duplicate: bool,
    /// Its ack, if it is waiting: the request's `id`, and since when.
    waiting: Option<(Option<Value>, Instant)>,
}

impl<Id> Sent<Id> {
    fn due(self) -> Option<DueAck<Id>> {
        let (rid, _) = self.waiting?;
        Some(DueAck {
            seq: self.seq,
            to: self.id,
            rid,
            duplicate: self.duplicate,
        })
    }
}

/// A room's recent messages from this node's members, oldest first; `Id` names a
/// connection.
#[derive(Debug)]
pub struct Senders<Id = ConnId> {
    sent: VecDeque<Sent<Id>>,
}

impl<Id> Default for Senders<Id> {
    fn default() -> Self {
        Senders {
            sent: VecDeque::new(),
        }
    }
}

impl<Id: Copy + PartialEq> Senders<Id> {
    /// Connection `id` sent message `seq` (or, `duplicate`, a retry of it); `ack`:
    /// its ack waits (with the request's `id`). Past [`SENDERS_KEPT`], the oldest
    /// whose ack does not wait is forgotten; past four times that, the oldest, whose
    /// ack is returned to be sent.
    pub fn push(
        &mut self,
        (seq, id, duplicate): (u64, Id, bool),
        ack: Option<Option<Value>>,
    ) -> Option<DueAck<Id>> {
        let mut evicted = None;
        if self.sent.len() >= SENDERS_KEPT {
            let idle = self.sent.iter().position(|s| s.waiting.is_none());
            match (idle, self.sent.len() < 4 * SENDERS_KEPT) {
                (Some(at), true) => {
                    self.sent.remove(at);
                }
                (None, true) => {}
                (_, false) => evicted = self.sent.pop_front().and_then(Sent::due),
            }
        }
        let waiting = ack.map(|rid| (rid, Instant::now()));
        self.sent.push_back(Sent {
            seq,
            id,
            duplicate,
            waiting,
        });
        evicted
    }

    /// Message `seq` came back: the connection that sent it (if it was one of this
    /// node's), and the acks now due: its own and those of any older one (what was
    /// sent before it has come back or never will).
    pub fn came_back(&mut self, seq: u64) -> (Option<Id>, Vec<DueAck<Id>>) {
        // Usually the first; after a renumbering, older seqs of the old epoch may come
        // before it.
        let at = self.sent.iter().position(|s| s.seq == seq && !s.duplicate);
        let sender = at.map(|at| self.sent[at].id);
        let mut due: Vec<DueAck<Id>> = match at {
            Some(at) => self.sent.drain(..=at).filter_map(Sent::due).collect(),
            None => Vec::new(),
        };
        // Retries answered with this seq or an older one, queued after it.
        due.extend(self.take_waiting(|s| s.seq <= seq));
        (sender, due)
    }

    /// The waiting acks of connection `id` (it left the room), or of everyone
    /// (`None`: the room's numbering started again).
    pub fn release(&mut self, id: Option<Id>) -> Vec<DueAck<Id>> {
        self.take_waiting(|s| id.is_none_or(|id| s.id == id))
    }

    /// The acks that waited [`ACK_HOLD`] by `now`.
    pub fn overdue(&mut self, now: Instant) -> Vec<DueAck<Id>> {
        self.take_waiting(|s| {
            s.waiting
                .as_ref()
                .is_some_and(|(_, at)| now.duration_since(*at) >= ACK_HOLD)
        })
    }

    /// Whether an ack waits.
    pub fn waiting(&self) -> bool {
        self.sent.iter().any(|s| s.waiting.is_some())
    }

    fn take_waiting(&mut self, pick: impl Fn(&Sent<Id>) -> bool) -> Vec<DueAck<Id>> {
        let mut due = Vec::new();
        for sent in &mut self.sent {
            if sent.waiting.is_some() && pick(sent) {
                let (rid, _) = sent.waiting.take().expect("checked");
                due.push(DueAck {
                    seq: sent.seq,
                    to: sent.id,
                    rid,
                    duplicate: sent.duplicate,
                });
            }
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(n: u64) -> u64 {
        n
    }

    #[test]
    fn a_message_that_comes_back_names_its_sender_and_frees_the_acks_up_to_it() {
        let mut senders = Senders::<u64>::default();
        assert!(senders.push((7, conn(1), false), None).is_none());
        senders.push((8, conn(2), false), Some(Some(Value::from(80))));
        senders.push((9, conn(3), false), Some(None));
        assert!(senders.waiting());
        let (sender, due) = senders.came_back(8);
        assert_eq!(sender, Some(conn(2)));
        assert_eq!(due.len(), 1);
        assert_eq!((due[0].seq, due[0].to), (8, conn(2)));
        assert_eq!(due[0].rid, Some(Value::from(80)));
        assert!(senders.waiting(), "9 still waits");
        let (unknown, due) = senders.came_back(5);
        assert!(
            unknown.is_none() && due.is_empty(),
            "not one of this node's"
        );
        let (sender, due) = senders.came_back(9);
        assert_eq!((sender, due.len()), (Some(conn(3)), 1));
        assert!(!senders.waiting());
    }

    #[test]
    fn an_ack_does_not_wait_forever() {
        let mut senders = Senders::<u64>::default();
        senders.push((3, conn(1), false), Some(None));
        senders.push((4, conn(2), false), Some(None));
        let now = Instant::now();
        assert!(senders.overdue(now).is_empty());
        let due = senders.overdue(now + ACK_HOLD);
        assert_eq!(due.iter().map(|d| d.seq).collect::<Vec<_>>(), [3, 4]);
        assert!(!senders.waiting());
        // Its sender is still known when the message comes back.
        assert_eq!(senders.came_back(4).0, Some(conn(2)));
    }

    #[test]
    fn a_member_who_leaves_gets_its_acks_and_an_evicted_one_is_sent() {
        let mut senders = Senders::<u64>::default();
        senders.push((1, conn(1), false), Some(None));
        senders.push((2, conn(2), false), Some(None));
        let due = senders.release(Some(conn(2)));
        assert_eq!(due.iter().map(|d| d.seq).collect::<Vec<_>>(), [2]);
        assert_eq!(senders.release(None).len(), 1);
        // Full: one that does not wait goes first, a waiting ack stays.
        let mut full = Senders::<u64>::default();
        full.push((1, conn(1), false), Some(None));
        for seq in 2..=SENDERS_KEPT as u64 {
            assert!(full.push((seq, conn(1), false), None).is_none());
        }
        assert!(full
            .push((SENDERS_KEPT as u64 + 1, conn(1), false), None)
            .is_none());
        assert_eq!(full.sent.len(), SENDERS_KEPT);
        assert_eq!(full.sent[0].seq, 1, "the waiting ack is kept");
        assert_eq!(full.sent[1].seq, 3, "2 was forgotten");
        // All waiting: it grows to four times as many, then the oldest goes and its
        // ack is sent.
        let mut waiting = Senders::<u64>::default();
        for seq in 1..=4 * SENDERS_KEPT as u64 {
            assert!(waiting.push((seq, conn(1), false), Some(None)).is_none());
        }
        let evicted = waiting.push((4 * SENDERS_KEPT as u64 + 1, conn(1), false), Some(None));
        assert_eq!(evicted.map(|d| d.seq), Some(1));
    }

    #[test]
    fn a_retry_s_ack_waits_for_the_first_message_to_come_back() {
        let mut senders = Senders::<u64>::default();
        senders.push((5, conn(1), false), Some(None));
        senders.push((6, conn(2), false), Some(None));
        senders.push((5, conn(1), true), Some(Some(Value::from("retry"))));
        let (sender, due) = senders.came_back(5);
        assert_eq!(
            sender,
            Some(conn(1)),
            "the first one's sender, not the retry"
        );
        let seqs: Vec<(u64, bool)> = due.iter().map(|d| (d.seq, d.duplicate)).collect();
        assert_eq!(seqs, [(5, false), (5, true)]);
        assert!(senders.waiting(), "6 still waits");
    }
}
