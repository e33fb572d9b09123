//! What the nodes of a chat share, behind one interface ([`Hub`]): which names are
//! taken, who is in which room (for presence), each room's numbered history, and how
//! a room event reaches the members on every node.
//!
//! Two implementations: [`MemoryHub`] (one process; `rfc6455 serve` without `--redis`)
//! and [`RedisHub`](super::redis::RedisHub) (several processes sharing one Redis).
//! A hub knows users by name, never by connection: connections are the node's own
//! business (see [`ChatState`](super::ChatState)).

use serde_json::json;
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::time::{SystemTime, UNIX_EPOCH};

/// Why a request that needs the shared state cannot be served now (e.g. "redis:
/// connection refused"). The client gets an `unavailable` error; nothing is queued.
pub type Unavailable = String;

/// Rooms whose history is kept once empty (the oldest empty ones are forgotten).
const MAX_HISTORIES: usize = 1000;

/// Something for the members of a room: a message, `joined`, `left`, `typing`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomEvent {
    pub room: String,
    /// A message's number in its room; `None` for events that are not kept.
    pub seq: Option<u64>,
    /// Its place among all of the room's events, where they reach nodes at different
    /// times (Redis): a member who joined at or after it skips it.
    pub pos: Option<u64>,
    /// The node whose user caused it.
    pub origin: String,
    /// That user, who does not get it back (names are unique in the cluster).
    pub except: Option<String>,
    /// The JSON text sent to the members, as is.
    pub body: String,
}

/// What joining a room gives back.
#[derive(Debug, Default)]
pub struct Joined {
    /// The room's last seq when the history was read: later messages come live.
    pub seq: u64,
    /// The room's last event position then (Redis), if events are numbered.
    pub pos: Option<u64>,
    /// The messages after `since` (all that are kept without it), oldest first.
    pub history: Vec<String>,
    /// Every member's name, on every node, sorted.
    pub members: Vec<String>,
    /// Events for this node's members now (the memory hub; a Redis hub's arrive
    /// through its subscription).
    pub events: Vec<RoomEvent>,
}

/// A numbered message.
#[derive(Debug)]
pub struct Published {
    pub seq: u64,
    /// The message for this node's members now (memory hub), if delivered that way.
    pub local: Option<RoomEvent>,
}

/// The state the nodes of a chat share. Each call is one atomic step of the shared
/// state (with Redis: one script, so one round trip).
pub trait Hub: Send {
    /// This node's id, as in [`RoomEvent::origin`].
    fn node(&self) -> &str;
    /// Takes `name` for a user of this node, giving up `old` (and renaming the user in
    /// `rooms`); false if somebody holds it.
    fn claim(
        &mut self,
        name: &str,
        old: Option<&str>,
        rooms: &[String],
    ) -> Result<bool, Unavailable>;
    /// A user of this node went away: frees the name, leaves `rooms`.
    fn release(&mut self, name: &str, rooms: &[String]) -> Result<Vec<RoomEvent>, Unavailable>;
    /// `name` joins `room`; its history after `since`; `joined` to the others if new.
    fn join(&mut self, room: &str, name: &str, since: Option<u64>) -> Result<Joined, Unavailable>;
    /// A listener that is no member (a Server-Sent Events stream) starts following
    /// `room`: its history after `since` and its members, as a join gives, but nobody
    /// joins and nobody is told.
    fn listen(&mut self, room: &str, since: Option<u64>) -> Result<Joined, Unavailable>;
    /// `name` leaves `room`; `left` to the members.
    fn leave(&mut self, room: &str, name: &str) -> Result<Vec<RoomEvent>, Unavailable>;
    /// Numbers a message, keeps it in the history and sends it to every node, in one
    /// step: every member everywhere sees a room's messages in seq order.
    fn message(&mut self, room: &str, from: &str, text: &str) -> Result<Published, Unavailable>;
    /// `typing` to the room's other members.
    fn typing(&mut self, room: &str, name: &str) -> Result<Vec<RoomEvent>, Unavailable>;
    /// Sends a direct message to `to` on another node, whose answer comes back under
    /// `token`; false if no node has that user.
    fn direct(&mut self, to: &str, from: &str, body: &str, token: u64)
        -> Result<bool, Unavailable>;
    /// Whether it can serve now, for `/healthz`.
    fn health(&self) -> Result<(), String>;
    /// Extra Prometheus series: (name, help, type, value).
    fn metrics(&self) -> Vec<(&'static str, &'static str, &'static str, String)>;
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A message's JSON up to its seq: `{..."seq":` — the seq and `}` are appended where
/// the seq is assigned (in Redis, inside the script).
pub fn message_prefix(room: &str, from: &str, text: &str) -> String {
    let body = json!({"type": "message", "room": room, "from": from, "text": text, "ts": now_ms()})
        .to_string();
    format!("{},\"seq\":", &body[..body.len() - 1])
}

pub fn joined_body(room: &str, name: &str) -> String {
    json!({"type": "joined", "room": room, "user": name}).to_string()
}

pub fn left_body(room: &str, name: &str) -> String {
    json!({"type": "left", "room": room, "user": name}).to_string()
}

pub fn typing_body(room: &str, name: &str) -> String {
    json!({"type": "typing", "room": room, "user": name}).to_string()
}

#[derive(Debug, Default)]
struct RoomLog {
    seq: u64,
    messages: VecDeque<String>,
}

/// The hub of one process: plain maps (the event loops share it under the chat lock).
#[derive(Debug)]
pub struct MemoryHub {
    history: usize,
    names: HashSet<String>,
    members: HashMap<String, BTreeSet<String>>,
    logs: HashMap<String, RoomLog>,
}

impl MemoryHub {
    /// A hub keeping `history` messages per room.
    pub fn new(history: usize) -> Self {
        MemoryHub {
            history,
            names: HashSet::new(),
            members: HashMap::new(),
            logs: HashMap::new(),
        }
    }

    fn event(room: &str, seq: Option<u64>, except: Option<&str>, body: String) -> RoomEvent {
        RoomEvent {
            room: room.to_string(),
            seq,
            // One process: events are delivered as they happen, in order.
            pos: None,
            origin: String::new(),
            except: except.map(str::to_string),
            body,
        }
    }

    fn remove_member(&mut self, room: &str, name: &str) -> bool {
        let Some(members) = self.members.get_mut(room) else {
            return false;
        };
        let removed = members.remove(name);
        if members.is_empty() {
            self.members.remove(room);
        }
        removed
    }

    /// Keeps the histories of at most `MAX_HISTORIES` rooms: empty rooms go first.
    fn forget_old_logs(&mut self) {
        if self.logs.len() <= MAX_HISTORIES {
            return;
        }
        let empty: Vec<String> = self
            .logs
            .keys()
            .filter(|room| !self.members.contains_key(*room))
            .take(self.logs.len() - MAX_HISTORIES)
            .cloned()
            .collect();
        for room in empty {
            self.logs.remove(&room);
        }
    }
}

impl Hub for MemoryHub {
    fn node(&self) -> &str {
        ""
    }

    fn claim(
        &mut self,
        name: &str,
        old: Option<&str>,
        rooms: &[String],
    ) -> Result<bool, Unavailable> {
        if !self.names.insert(name.to_string()) {
            return Ok(false);
        }
        if let Some(old) = old {
            self.names.remove(old);
            for room in rooms {
                if self.remove_member(room, old) {
                    self.members
                        .entry(room.clone())
                        .or_default()
                        .insert(name.to_string());
                }
            }
        }
        Ok(true)
    }

    fn release(&mut self, name: &str, rooms: &[String]) -> Result<Vec<RoomEvent>, Unavailable> {
        self.names.remove(name);
        let mut events = Vec::new();
        for room in rooms {
            if self.remove_member(room, name) {
                events.push(Self::event(room, None, None, left_body(room, name)));
            }
        }
        Ok(events)
    }

    fn join(&mut self, room: &str, name: &str, since: Option<u64>) -> Result<Joined, Unavailable> {
        let newly = self
            .members
            .entry(room.to_string())
            .or_default()
            .insert(name.to_string());
        let mut joined = self.listen(room, since)?;
        if newly {
            let event = Self::event(room, None, Some(name), joined_body(room, name));
            joined.events.push(event);
        }
        Ok(joined)
    }

    fn listen(&mut self, room: &str, since: Option<u64>) -> Result<Joined, Unavailable> {
        let log = self.logs.entry(room.to_string()).or_default();
        // The first kept message is seq - len + 1: skip those at or before `since`.
        let first = log.seq + 1 - log.messages.len() as u64;
        let skip = since.map_or(0, |s| s.saturating_add(1).saturating_sub(first) as usize);
        let history = log.messages.iter().skip(skip).cloned().collect();
        let members = self.members.get(room).into_iter().flatten().cloned();
        Ok(Joined {
            seq: log.seq,
            pos: None,
            history,
            members: members.collect(),
            events: Vec::new(),
        })
    }

    fn leave(&mut self, room: &str, name: &str) -> Result<Vec<RoomEvent>, Unavailable> {
        if !self.remove_member(room, name) {
            return Ok(Vec::new());
        }
        Ok(vec![Self::event(room, None, None, left_body(room, name))])
    }

    fn message(&mut self, room: &str, from: &str, text: &str) -> Result<Published, Unavailable> {
        let log = self.logs.entry(room.to_string()).or_default();
        log.seq += 1;
        let seq = log.seq;
        let body = format!("{}{seq}}}", message_prefix(room, from, text));
        log.messages.push_back(body.clone());
        while log.messages.len() > self.history {
            log.messages.pop_front();
        }
        self.forget_old_logs();
        Ok(Published {
            seq,
            local: Some(Self::event(room, Some(seq), Some(from), body)),
        })
    }

    fn typing(&mut self, room: &str, name: &str) -> Result<Vec<RoomEvent>, Unavailable> {
        Ok(vec![Self::event(
            room,
            None,
            Some(name),
            typing_body(room, name),
        )])
    }

    fn direct(
        &mut self,
        _to: &str,
        _from: &str,
        _body: &str,
        _token: u64,
    ) -> Result<bool, Unavailable> {
        // One process: a user who is online is in the node's own name table.
        Ok(false)
    }

    fn health(&self) -> Result<(), String> {
        Ok(())
    }

    fn metrics(&self) -> Vec<(&'static str, &'static str, &'static str, String)> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_after_since_is_exactly_the_missed_messages() {
        let mut hub = MemoryHub::new(3);
        hub.join("r", "ann", None).unwrap();
        for text in ["a", "b", "c", "d", "e"] {
            hub.message("r", "ann", text).unwrap();
        }
        let seqs = |joined: Joined| -> Vec<u64> {
            joined
                .history
                .iter()
                .map(|m| {
                    serde_json::from_str::<serde_json::Value>(m).unwrap()["seq"]
                        .as_u64()
                        .unwrap()
                })
                .collect()
        };
        assert_eq!(
            seqs(hub.join("r", "bob", None).unwrap()),
            [3, 4, 5],
            "bounded to 3"
        );
        assert_eq!(seqs(hub.join("r", "bob", Some(3)).unwrap()), [4, 5]);
        assert_eq!(
            seqs(hub.join("r", "bob", Some(5)).unwrap()),
            Vec::<u64>::new()
        );
        assert_eq!(
            seqs(hub.join("r", "bob", Some(0)).unwrap()),
            [3, 4, 5],
            "older: all kept"
        );
        assert_eq!(hub.join("r", "cat", Some(9)).unwrap().seq, 5);
    }

    #[test]
    fn a_rename_keeps_the_rooms() {
        let mut hub = MemoryHub::new(10);
        assert!(hub.claim("ann", None, &[]).unwrap());
        assert!(!hub.claim("ann", None, &[]).unwrap(), "taken");
        hub.join("r", "ann", None).unwrap();
        assert!(hub.claim("anna", Some("ann"), &["r".into()]).unwrap());
        assert_eq!(hub.join("r", "bob", None).unwrap().members, ["anna", "bob"]);
        assert!(hub.claim("ann", None, &[]).unwrap(), "the old name is free");
    }
}
