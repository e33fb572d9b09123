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

/// A hub's health, callable from any thread without the chat lock.
pub type HealthCheck = std::sync::Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

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
    /// A message's room epoch (see [`Joined::epoch`]): one that differs from what a
    /// node saw says the room's numbering started again.
    pub epoch: Option<String>,
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
    /// The room's epoch: a short random string, new whenever the room's numbered
    /// history was lost (its log forgotten, a node without Redis restarted, a Redis
    /// that came back empty). A seq means something only with its epoch.
    pub epoch: String,
}

/// A numbered message.
#[derive(Debug)]
pub struct Published {
    pub seq: u64,
    /// The same user sent the same idempotency key to the room within the window:
    /// `seq` is the first one's, and nothing was sent again.
    pub duplicate: bool,
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
    /// A signed-in user's first connection on this node: the user is online here
    /// (it may be on other nodes too; names from tokens are never refused).
    fn sign_in(&mut self, user: &str) -> Result<(), Unavailable>;
    /// A user of this node went away: frees the name, leaves `rooms`.
    fn release(&mut self, name: &str, rooms: &[String]) -> Result<Vec<RoomEvent>, Unavailable>;
    /// `name` joins `room`; its history after `since`; `joined` to the others if new.
    fn join(&mut self, room: &str, name: &str, since: Option<u64>) -> Result<Joined, Unavailable>;
    /// A listener that is no member (a Server-Sent Events stream) starts following
    /// `room`: its history after `since` and its members, as a join gives, but nobody
    /// joins and nobody is told.
    fn listen(&mut self, room: &str, since: Option<u64>) -> Result<Joined, Unavailable>;
    /// A listener of `room` went away.
    fn unlisten(&mut self, room: &str);
    /// What `listen` reads, for a member paging back through the history: nobody
    /// starts following anything.
    fn read(&mut self, room: &str, since: Option<u64>) -> Result<Joined, Unavailable>;
    /// `name` leaves `room`; `left` to the members.
    fn leave(&mut self, room: &str, name: &str) -> Result<Vec<RoomEvent>, Unavailable>;
    /// Numbers a message, keeps it in the history and sends it to every node, in one
    /// step: every member everywhere sees a room's messages in seq order. `via_http`:
    /// posted over HTTP by a backend, not said by a member (the message says so).
    /// With an idempotency key that `from` gave in `room` within the last
    /// `dedup_window`, nothing is sent: the first message's seq comes back.
    fn message(&mut self, message: Outgoing<'_>) -> Result<Published, Unavailable>;
    /// [`message`](Hub::message) for each of `batch`, in its order, with one answer
    /// each: a hub that can do them in fewer round trips than one each does (a
    /// loop's messages of one turn cost Redis one pipelined round trip per shard).
    fn messages(&mut self, batch: &[Outgoing<'_>]) -> Vec<Result<Published, Unavailable>> {
        batch.iter().map(|m| self.message(*m)).collect()
    }
    /// `typing` to the room's other members.
    fn typing(&mut self, room: &str, name: &str) -> Result<Vec<RoomEvent>, Unavailable>;
    /// Sends a direct message to `to` on another node, whose answer comes back under
    /// `token`; false if no node has that user.
    fn direct(&mut self, to: &str, from: &str, body: &str, token: u64)
        -> Result<bool, Unavailable>;
    /// Whether it can serve now, for `/healthz`: callable without the chat lock
    /// (which a loop may be waiting for), as `/healthz` must answer when the node is
    /// stuck, to say so.
    fn health_check(&self) -> HealthCheck;
    /// Extra Prometheus series: (name, help, type, value).
    fn metrics(&self) -> Vec<(&'static str, &'static str, &'static str, String)>;
}

/// A message for [`Hub::message`].
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'a> {
    pub room: &'a str,
    pub from: &'a str,
    pub text: &'a str,
    pub via_http: bool,
    /// The sender's idempotency key, if it gave one.
    pub key: Option<&'a str>,
    /// How long a key is remembered.
    pub dedup_window: std::time::Duration,
}

impl<'a> Outgoing<'a> {
    /// A message without an idempotency key.
    pub fn new(room: &'a str, from: &'a str, text: &'a str, via_http: bool) -> Self {
        Outgoing {
            room,
            from,
            text,
            via_http,
            key: None,
            dedup_window: std::time::Duration::ZERO,
        }
    }
}

/// A new random epoch: 8 hex digits.
pub fn new_epoch() -> String {
    let mut bytes = [0u8; 4];
    let _ = getrandom::fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// When a stored message was said (ms), read from its `"ts":` field: a quote in a
/// text is escaped, so the field's name appears in no value.
pub fn ts_of(message: &str) -> Option<u64> {
    let (_, tail) = message.rsplit_once("\"ts\":")?;
    let digits = tail
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(tail.len());
    tail[..digits].parse().ok()
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A message's JSON up to its seq: `{..."seq":` — the seq and `}` are appended where
/// the seq is assigned (in Redis, inside the script). One posted over HTTP carries
/// `"via":"http"`: no member said it.
pub fn message_prefix(room: &str, from: &str, text: &str, via_http: bool) -> String {
    let mut body =
        json!({"type": "message", "room": room, "from": from, "text": text, "ts": now_ms()});
    if via_http {
        body["via"] = json!("http");
    }
    let body = body.to_string();
    format!("{},\"seq\":", &body[..body.len() - 1])
}

/// The seq of a stored message, read from its end (`message_prefix` puts it last):
/// no JSON parse per replayed message.
pub fn seq_of(message: &str) -> Option<u64> {
    let (_, tail) = message.rsplit_once("\"seq\":")?;
    tail.strip_suffix('}')?.parse().ok()
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

#[derive(Debug)]
struct RoomLog {
    /// Made with the log: a forgotten room that comes back numbers anew.
    epoch: String,
    seq: u64,
    messages: VecDeque<String>,
    /// The bytes of `messages`.
    bytes: usize,
    /// When it was last read or written (the hub's clock): eviction goes by it.
    used: u64,
}

impl RoomLog {
    fn new() -> Self {
        RoomLog {
            epoch: new_epoch(),
            seq: 0,
            messages: VecDeque::new(),
            bytes: 0,
            used: 0,
        }
    }
}

/// Idempotency keys remembered by a [`MemoryHub`] at most, all rooms together, and
/// the bytes they may take (each counted as its room, user and key plus
/// `DEDUP_OVERHEAD` for the maps): beyond either, the oldest are forgotten first (a
/// retry after that many other keyed messages is delivered again).
pub const MAX_DEDUP_KEYS: usize = 100_000;
pub const MAX_DEDUP_BYTES: usize = 16 << 20;
const DEDUP_OVERHEAD: usize = 96;

/// The idempotency keys of the last `dedup_window`: "room\0user\0key" → seq, the
/// text held once for both maps.
#[derive(Debug, Default)]
struct Dedup {
    seqs: HashMap<std::sync::Arc<str>, u64>,
    /// The same keys by when they were given (ms), oldest first.
    order: VecDeque<(u64, std::sync::Arc<str>)>,
    /// What `seqs` takes, as counted for `MAX_DEDUP_BYTES`.
    bytes: usize,
}

impl Dedup {
    /// The seq first given to `key` if it is still remembered; else `None`, and
    /// `seq` is remembered for it.
    fn seq_for(
        &mut self,
        (room, user, key): (&str, &str, &str),
        window: std::time::Duration,
        seq: u64,
    ) -> Option<u64> {
        let now = now_ms();
        let horizon = now.saturating_sub(window.as_millis() as u64);
        let id: std::sync::Arc<str> = format!("{room}\0{user}\0{key}").into();
        let size = id.len() + DEDUP_OVERHEAD;
        while let Some((at, _)) = self.order.front() {
            let full = self.order.len() >= MAX_DEDUP_KEYS || self.bytes + size > MAX_DEDUP_BYTES;
            if *at > horizon && !full {
                break;
            }
            if let Some((_, old)) = self.order.pop_front() {
                self.seqs.remove(&old);
                self.bytes -= old.len() + DEDUP_OVERHEAD;
            }
        }
        if let Some(&first) = self.seqs.get(&id) {
            return Some(first);
        }
        self.seqs.insert(id.clone(), seq);
        self.order.push_back((now, id));
        self.bytes += size;
        None
    }
}

/// The hub of one process: plain maps (the event loops share it under the chat lock).
#[derive(Debug)]
pub struct MemoryHub {
    history: usize,
    names: HashSet<String>,
    members: HashMap<String, BTreeSet<String>>,
    /// Streams following each room (they keep its seq, as members do).
    listeners: HashMap<String, usize>,
    logs: HashMap<String, RoomLog>,
    /// Bytes of every room's messages, and their budget.
    bytes: usize,
    budget: usize,
    /// The most room logs kept.
    max_logs: usize,
    /// Counts uses of logs (the LRU order).
    clock: u64,
    /// Room histories dropped for the budget.
    evicted: u64,
    dedup: Dedup,
}

impl MemoryHub {
    /// A hub keeping `history` messages per room, at most `budget` bytes of them for
    /// all rooms and the logs of at most `max_logs` rooms.
    pub fn new(history: usize, budget: usize, max_logs: usize) -> Self {
        MemoryHub {
            history,
            names: HashSet::new(),
            members: HashMap::new(),
            listeners: HashMap::new(),
            logs: HashMap::new(),
            bytes: 0,
            budget,
            max_logs: max_logs.max(1),
            clock: 0,
            evicted: 0,
            dedup: Dedup::default(),
        }
    }

    /// The log of `room`, made if new, marked as just used.
    fn log(&mut self, room: &str) -> &mut RoomLog {
        self.clock += 1;
        let log = self
            .logs
            .entry(room.to_string())
            .or_insert_with(RoomLog::new);
        log.used = self.clock;
        log
    }

    fn event(room: &str, seq: Option<u64>, except: Option<&str>, body: String) -> RoomEvent {
        RoomEvent {
            epoch: None,
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

    /// Whether `room` is followed (members or streams): its log then keeps its seq,
    /// which their `since` and the live order count on.
    fn followed(&self, room: &str) -> bool {
        self.members.contains_key(room) || self.listeners.contains_key(room)
    }

    /// Back within the budgets once over one, least recently used rooms first (down
    /// to 90 %, so that this runs once per many messages, not on each): over the
    /// bytes, a room loses its history whole; over the count, a room nobody follows
    /// is forgotten. A followed room is never forgotten (it keeps its seq), and loses
    /// its history only for the bytes.
    fn enforce_budget(&mut self) {
        if self.bytes <= self.budget && self.logs.len() <= self.max_logs {
            return;
        }
        let mut by_use: Vec<(u64, String)> = self
            .logs
            .iter()
            .map(|(room, log)| (log.used, room.clone()))
            .collect();
        by_use.sort_unstable();
        let (bytes_goal, logs_goal) = (self.budget / 10 * 9, self.max_logs / 10 * 9);
        for (_, room) in by_use {
            let over_bytes = self.bytes > bytes_goal;
            if !over_bytes && self.logs.len() <= logs_goal {
                break;
            }
            let followed = self.followed(&room);
            let Some(log) = self.logs.get_mut(&room) else {
                continue;
            };
            if followed {
                if over_bytes && log.bytes > 0 {
                    self.bytes -= log.bytes;
                    self.evicted += 1;
                    log.messages.clear();
                    log.bytes = 0;
                }
                continue;
            }
            self.bytes -= log.bytes;
            self.evicted += 1;
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

    fn sign_in(&mut self, user: &str) -> Result<(), Unavailable> {
        self.names.insert(user.to_string());
        Ok(())
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
        let mut joined = self.read(room, since)?;
        if newly {
            let event = Self::event(room, None, Some(name), joined_body(room, name));
            joined.events.push(event);
        }
        Ok(joined)
    }

    fn listen(&mut self, room: &str, since: Option<u64>) -> Result<Joined, Unavailable> {
        *self.listeners.entry(room.to_string()).or_default() += 1;
        self.read(room, since)
    }

    fn unlisten(&mut self, room: &str) {
        if let Some(count) = self.listeners.get_mut(room) {
            *count -= 1;
            if *count == 0 {
                self.listeners.remove(room);
            }
        }
    }

    fn read(&mut self, room: &str, since: Option<u64>) -> Result<Joined, Unavailable> {
        let log = self.log(room);
        // The first kept message is seq - len + 1: skip those at or before `since`.
        let first = log.seq + 1 - log.messages.len() as u64;
        let skip = since.map_or(0, |s| s.saturating_add(1).saturating_sub(first) as usize);
        let history = log.messages.iter().skip(skip).cloned().collect();
        let (seq, epoch) = (log.seq, log.epoch.clone());
        let members = self
            .members
            .get(room)
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        self.enforce_budget();
        Ok(Joined {
            seq,
            pos: None,
            history,
            members,
            events: Vec::new(),
            epoch,
        })
    }

    fn leave(&mut self, room: &str, name: &str) -> Result<Vec<RoomEvent>, Unavailable> {
        if !self.remove_member(room, name) {
            return Ok(Vec::new());
        }
        Ok(vec![Self::event(room, None, None, left_body(room, name))])
    }

    fn message(&mut self, m: Outgoing<'_>) -> Result<Published, Unavailable> {
        let Outgoing { room, from, .. } = m;
        let history = self.history;
        let seq = self.log(room).seq + 1;
        if let Some(key) = m.key {
            if let Some(first) = self.dedup.seq_for((room, from, key), m.dedup_window, seq) {
                return Ok(Published {
                    seq: first,
                    duplicate: true,
                    local: None,
                });
            }
        }
        let log = self.log(room);
        log.seq = seq;
        let epoch = log.epoch.clone();
        let body = format!("{}{seq}}}", message_prefix(room, from, m.text, m.via_http));
        let (before, mut after) = (log.bytes, log.bytes + body.len());
        log.messages.push_back(body.clone());
        while log.messages.len() > history {
            after -= log.messages.pop_front().map_or(0, |m| m.len());
        }
        log.bytes = after;
        self.bytes = self.bytes + after - before;
        self.enforce_budget();
        let mut event = Self::event(room, Some(seq), Some(from), body);
        event.epoch = Some(epoch);
        Ok(Published {
            seq,
            duplicate: false,
            local: Some(event),
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

    fn health_check(&self) -> HealthCheck {
        std::sync::Arc::new(|| Ok(()))
    }

    fn metrics(&self) -> Vec<(&'static str, &'static str, &'static str, String)> {
        vec![
            (
                "rfc6455_history_bytes",
                "Bytes of room history held in memory (budget: --history-budget).",
                "gauge",
                self.bytes.to_string(),
            ),
            (
                "rfc6455_history_evictions_total",
                "Room histories dropped whole to stay within the budgets.",
                "counter",
                self.evicted.to_string(),
            ),
            (
                "rfc6455_dedup_keys",
                "Idempotency keys remembered (at most 100,000; see --dedup-window).",
                "gauge",
                self.dedup.seqs.len().to_string(),
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_after_since_is_exactly_the_missed_messages() {
        let mut hub = MemoryHub::new(3, 1 << 20, 100);
        hub.join("r", "ann", None).unwrap();
        for text in ["a", "b", "c", "d", "e"] {
            hub.message(Outgoing::new("r", "ann", text, false)).unwrap();
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
        let mut hub = MemoryHub::new(10, 1 << 20, 100);
        assert!(hub.claim("ann", None, &[]).unwrap());
        assert!(!hub.claim("ann", None, &[]).unwrap(), "taken");
        hub.join("r", "ann", None).unwrap();
        assert!(hub.claim("anna", Some("ann"), &["r".into()]).unwrap());
        assert_eq!(hub.join("r", "bob", None).unwrap().members, ["anna", "bob"]);
        assert!(hub.claim("ann", None, &[]).unwrap(), "the old name is free");
    }

    #[test]
    fn history_stays_within_its_byte_budget_least_recently_used_first() {
        let mut hub = MemoryHub::new(100, 20_000, 1000);
        hub.join("kept", "ann", None).unwrap();
        hub.message(Outgoing::new("kept", "ann", "first", false))
            .unwrap();
        for room in 0..200 {
            hub.message(Outgoing::new(
                &format!("flood-{room}"),
                "bot",
                &"x".repeat(900),
                true,
            ))
            .unwrap();
            assert!(hub.bytes <= 20_000, "{} bytes after room {room}", hub.bytes);
            // A member's room in use keeps its history while others are older.
            hub.read("kept", None).unwrap();
        }
        assert_eq!(hub.read("kept", None).unwrap().history.len(), 1);
        assert!(hub.evicted > 0);
        assert!(hub.logs.len() < 30, "{} logs", hub.logs.len());
        let total: usize = hub.logs.values().map(|l| l.bytes).sum();
        assert_eq!(total, hub.bytes, "the count matches the logs");
    }

    #[test]
    fn room_logs_are_capped_in_number() {
        let mut hub = MemoryHub::new(100, 1 << 30, 50);
        for room in 0..500 {
            hub.message(Outgoing::new(&format!("r{room}"), "bot", "x", true))
                .unwrap();
            assert!(hub.logs.len() <= 50);
        }
    }

    #[test]
    fn a_member_room_keeps_its_seq_when_its_history_is_dropped() {
        let mut hub = MemoryHub::new(100, 2_000, 1000);
        hub.join("r", "ann", None).unwrap();
        for _ in 0..3 {
            hub.message(Outgoing::new("r", "ann", &"y".repeat(900), false))
                .unwrap();
        }
        assert_eq!(hub.read("r", None).unwrap().seq, 3, "seq kept");
        let published = hub
            .message(Outgoing::new("r", "ann", "next", false))
            .unwrap();
        assert_eq!(published.seq, 4);
    }

    #[test]
    fn an_idempotency_key_answers_its_first_seq_within_the_window_and_the_keys_are_bounded() {
        let mut hub = MemoryHub::new(10, 1 << 20, 100);
        let window = std::time::Duration::from_secs(300);
        let keyed = |room, from, key| Outgoing {
            key: Some(key),
            dedup_window: window,
            ..Outgoing::new(room, from, "x", false)
        };
        let first = hub.message(keyed("r", "ann", "k")).unwrap();
        assert!(!first.duplicate && first.local.is_some());
        let again = hub.message(keyed("r", "ann", "k")).unwrap();
        assert_eq!((again.seq, again.duplicate), (first.seq, true));
        assert!(again.local.is_none(), "nothing sent again");
        // Another user, another room: not the same key.
        assert!(!hub.message(keyed("r", "bob", "k")).unwrap().duplicate);
        assert!(!hub.message(keyed("s", "ann", "k")).unwrap().duplicate);
        // Past the window: forgotten.
        let instant = Outgoing {
            dedup_window: std::time::Duration::ZERO,
            ..keyed("t", "ann", "once")
        };
        hub.message(instant).unwrap();
        assert!(!hub.message(instant).unwrap().duplicate);
        // The bound: the oldest go first.
        for i in 0..MAX_DEDUP_KEYS + 10 {
            hub.dedup.seq_for(("u", "v", &i.to_string()), window, 1);
        }
        assert_eq!(hub.dedup.seqs.len(), MAX_DEDUP_KEYS);
        assert_eq!(hub.dedup.order.len(), MAX_DEDUP_KEYS);
        assert!(
            hub.dedup.seq_for(("u", "v", "0"), window, 2).is_none(),
            "forgotten"
        );
        // And the bytes: the longest rooms, users and keys fill the budget first.
        let long = |i: usize| (format!("{i:0>64}"), "u".repeat(512), "k".repeat(64));
        for i in 0..MAX_DEDUP_KEYS {
            let (room, user, key) = long(i);
            hub.dedup.seq_for((&room, &user, &key), window, 1);
            assert!(hub.dedup.bytes <= MAX_DEDUP_BYTES);
        }
        assert!(hub.dedup.seqs.len() < MAX_DEDUP_KEYS);
        let counted: usize = hub
            .dedup
            .seqs
            .keys()
            .map(|k| k.len() + DEDUP_OVERHEAD)
            .sum();
        assert_eq!(counted, hub.dedup.bytes);
    }

    #[test]
    fn ts_is_read_from_a_stored_message() {
        let body = format!("{}7}}", message_prefix("r", "ann", "\"ts\":1", false));
        let parsed: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(ts_of(&body), parsed["ts"].as_u64());
    }

    #[test]
    fn seq_is_read_from_the_end_of_a_stored_message() {
        let body = format!("{}42}}", message_prefix("r", "ann", "\"seq\":7}", true));
        assert_eq!(seq_of(&body), Some(42));
        let parsed: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(parsed["via"], "http");
        assert_eq!(parsed["seq"], 42);
    }

    #[test]
    fn followed_rooms_survive_the_room_count_and_keep_their_seq() {
        let mut hub = MemoryHub::new(100, 1 << 30, 10);
        for room in 0..20 {
            hub.join(&format!("m{room}"), "ann", None).unwrap();
            hub.message(Outgoing::new(&format!("m{room}"), "ann", "kept", false))
                .unwrap();
        }
        hub.listen("streamed", None).unwrap();
        hub.message(Outgoing::new("streamed", "ci", "one", true))
            .unwrap();
        for room in 0..100 {
            hub.message(Outgoing::new(&format!("empty{room}"), "ci", "x", true))
                .unwrap();
        }
        // Over the count, only rooms nobody follows are forgotten: histories stay.
        for room in 0..20 {
            assert_eq!(
                hub.read(&format!("m{room}"), None).unwrap().history.len(),
                1
            );
        }
        assert_eq!(
            hub.message(Outgoing::new("streamed", "ci", "two", true))
                .unwrap()
                .seq,
            2
        );
        hub.unlisten("streamed");
        assert!(!hub.followed("streamed"));
    }
}
