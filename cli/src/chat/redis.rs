//! The Redis hub: several `rfc6455 serve` processes ("nodes") share rooms through one
//! Redis (`serve --redis redis://HOST:PORT/`).
//!
//! **Who owns what.** The event loops own the connections. The chat lock guards this
//! node's view (who is in which room here, each member's cursor). Redis holds what the
//! nodes share, all under `rfc6455:`:
//!
//! | key | what |
//! |---|---|
//! | `seq:ROOM` | the room's last seq (expires a week after the last message) |
//! | `log:ROOM` | sorted set: the last `--history` messages, scored by seq (the same) |
//! | `pos:ROOM` | the room's last event position (expires a week after the last event) |
//! | `epoch:ROOM` | the room's epoch: made when the room has none (expires with its seq) |
//! | `idem:[ROOM,USER,KEY]` | an idempotency key's first seq (expires after `--dedup-window`) |
//! | `members:ROOM` | hash: member name → the nodes it is a member through (space-separated ids) |
//! | `names` | hash: every user's name → its nodes (a name from `hello` has one: unique in the cluster; a signed-in user may be on several) |
//! | `node:ID:names`, `node:ID:members` | what node ID registered, for reaping it |
//! | `alive:ID` | the node's heartbeat, expiring after `--node-timeout` |
//! | `nodes` | the nodes that registered |
//!
//! **How a message travels** from a sender on node A to a member on node B: A's loop
//! runs one Lua script (`INCR seq`, `ZADD` + trim the log, `PUBLISH rfc6455:rooms`),
//! atomically, so the channel carries a room's messages in seq order; B's node thread
//! (this module) reads the channel and, under B's chat lock, posts the frame to the
//! member's loop through the server [`Handle`]. A's own members get it the same way,
//! so that every member everywhere sees one order. A member who joins gets the log up
//! to the seq it read (its cursor) and, live, only what comes after.
//!
//! **Failures.** Redis unreachable: every request that needs it gets an `unavailable`
//! error at once (nothing is queued), `/healthz` answers 503 with the reason, and the
//! node thread reconnects with backoff (0.1 s doubling to 2 s). Once back, it
//! subscribes, re-registers this node's users and rooms (restoring each room's seq if
//! Redis lost it), delivers what the log holds beyond what its members got, and only
//! then reports healthy. A node that dies stops refreshing `alive:ID`; within
//! `--node-timeout` plus a third of it another node reaps it: its users' names are
//! freed and each of its members is announced `left`.
//!
//! A single Redis (or a primary with replicas): the scripts touch keys of several
//! rooms, which Redis Cluster would refuse.

use super::hub::{self, HealthCheck, Hub, Joined, Outgoing, Published, RoomEvent, Unavailable};
use super::{lock, ChatState};
use redis::{Connection, RedisResult, Script};
use rfc6455::server::Handle;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PREFIX: &str = "rfc6455:";
/// Room events, for every node.
const ROOMS: &str = "rfc6455:rooms";
/// How long a command or a connection attempt may take before Redis counts as down.
const TIMEOUT: Duration = Duration::from_secs(2);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// Redis answers slower than this open the breaker: the loops stop calling it (their
/// requests get `unavailable` at once) until the node thread's probes see it fast
/// again. A loop that waits on Redis holds up every connection on it.
const SLOW: Duration = Duration::from_millis(100);
/// How often the node thread measures Redis (a PING on its own connection), and
/// how long a slow answer of a loop's keeps the breaker open.
const PROBE_INTERVAL: Duration = Duration::from_millis(250);
const TRIP_HOLD: Duration = Duration::from_secs(1);
/// A room's keys expire this long after its last event (the scripts' `ROOM_TTL`)...
const ROOM_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// ...and a node renews them this often for the rooms it has members or streams in,
/// so that a quiet room with people in it keeps its seq.
const ROOM_RENEWAL: Duration = Duration::from_secs(600);

/// Shared by the scripts: one room event on the channel is a JSON header line (node,
/// room, its position among the room's events, a message's seq, the sender), then the
/// JSON sent to the members. `pos:ROOM` numbers every event of the room, so that a
/// member who joined at position P skips the events at or before P that reach its
/// node after its join (it was given the state after them).
const PRELUDE: &str = r#"
local function publish(channel, header, body)
  local pos_key = 'rfc6455:pos:' .. header.room
  header.pos = redis.call('INCR', pos_key)
  redis.call('EXPIRE', pos_key, ROOM_TTL)
  redis.call('PUBLISH', channel, cjson.encode(header) .. '\n' .. body)
end
local function announce(channel, node, room, body)
  publish(channel, {node = node, room = room}, body)
end
local function left(room, name)
  return cjson.encode({type = 'left', room = room, user = name})
end
-- A field of `names` or `members:ROOM` lists the nodes that hold it, by id, space
-- separated: a signed-in user connected to several nodes is one name and one member,
-- held by each of them. (A name from `hello` is held by one node.)
local function holders(hash, field)
  local list = {}
  local value = redis.call('HGET', hash, field)
  if value then
    for n in string.gmatch(value, '%S+') do table.insert(list, n) end
  end
  return list
end
local function held_by(list, node)
  for _, n in ipairs(list) do
    if n == node then return true end
  end
  return false
end
-- Adds `node` to the field's holders; true if nobody held it before.
local function hold(hash, field, node)
  local list = holders(hash, field)
  if held_by(list, node) then return false end
  table.insert(list, node)
  redis.call('HSET', hash, field, table.concat(list, ' '))
  return #list == 1
end
-- Takes `node` out of the field's holders; true if nobody holds it now.
local function unhold(hash, field, node)
  local list = holders(hash, field)
  if not held_by(list, node) then return false end
  local rest = {}
  for _, n in ipairs(list) do
    if n ~= node then table.insert(rest, n) end
  end
  if #rest == 0 then
    redis.call('HDEL', hash, field)
    return true
  end
  redis.call('HSET', hash, field, table.concat(rest, ' '))
  return false
end
-- The room's epoch, made from the node's candidate when the room has none: when
-- its numbering starts (first use, or a Redis that lost the room).
local function epoch_of(epoch_key, candidate)
  redis.call('SET', epoch_key, candidate, 'NX', 'EX', ROOM_TTL)
  return redis.call('GET', epoch_key)
end
-- What a join or a listener reads: seq, history after `since` (or all kept), the
-- members sorted, the event position, the epoch.
local function room_state(seq_key, log_key, members_key, pos_key, since, epoch_key, candidate)
  local seq = tonumber(redis.call('GET', seq_key) or '0')
  local min = '-inf'
  if since ~= '' then min = '(' .. since end
  local history = redis.call('ZRANGEBYSCORE', log_key, min, '+inf')
  local members = redis.call('HKEYS', members_key)
  table.sort(members)
  return {seq, history, members, tonumber(redis.call('GET', pos_key) or '0'),
    epoch_of(epoch_key, candidate)}
end
"#;

/// KEYS: names, node names, node members, members:ROOM...; ARGV: name, node, old
/// name or '', then a room per members key (from the 4th on).
const CLAIM: &str = r#"
local name, node, old = ARGV[1], ARGV[2], ARGV[3]
local list = holders(KEYS[1], name)
if #list > 0 and not held_by(list, node) then return 0 end
hold(KEYS[1], name, node)
redis.call('SADD', KEYS[2], name)
if old ~= '' and held_by(holders(KEYS[1], old), node) then
  unhold(KEYS[1], old, node)
  redis.call('SREM', KEYS[2], old)
  for i = 4, #KEYS do
    if held_by(holders(KEYS[i], old), node) then
      unhold(KEYS[i], old, node)
      hold(KEYS[i], name, node)
    end
    redis.call('SREM', KEYS[3], cjson.encode({old, ARGV[i]}))
    redis.call('SADD', KEYS[3], cjson.encode({name, ARGV[i]}))
  end
end
return 1
"#;

/// KEYS: names, node names; ARGV: user, node. A signed-in user's first connection on
/// this node: the node holds the name too, whoever else does.
const SIGN_IN: &str = r#"
hold(KEYS[1], ARGV[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[1])
return 1
"#;

/// KEYS: names, node names, node members, channel, members:ROOM...; ARGV: name,
/// node, -, -, then a room per members key (from the 5th on).
const RELEASE: &str = r#"
local name, node = ARGV[1], ARGV[2]
unhold(KEYS[1], name, node)
redis.call('SREM', KEYS[2], name)
for i = 5, #KEYS do
  local room = ARGV[i]
  redis.call('SREM', KEYS[3], cjson.encode({name, room}))
  if unhold(KEYS[i], name, node) then
    announce(KEYS[4], node, room, left(room, name))
  end
end
return 1
"#;

/// KEYS: members:ROOM, node members, seq:ROOM, log:ROOM, channel, pos:ROOM,
/// epoch:ROOM; ARGV: name, node, room, since or '', a candidate epoch. Returns {seq,
/// history, sorted members, pos, epoch}.
const JOIN: &str = r#"
local name, node, room = ARGV[1], ARGV[2], ARGV[3]
if hold(KEYS[1], name, node) then
  publish(KEYS[5], {node = node, room = room, except = name},
    cjson.encode({type = 'joined', room = room, user = name}))
end
redis.call('SADD', KEYS[2], cjson.encode({name, room}))
return room_state(KEYS[3], KEYS[4], KEYS[1], KEYS[6], ARGV[4], KEYS[7], ARGV[5])
"#;

/// KEYS: seq:ROOM, log:ROOM, members:ROOM, pos:ROOM, epoch:ROOM; ARGV: since (or
/// ''), a candidate epoch. A join's reads, for a listener that is no member.
const LISTEN: &str = r#"
return room_state(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], KEYS[5], ARGV[2])
"#;

/// KEYS: members:ROOM, node members, channel; ARGV: name, node, room.
const LEAVE: &str = r#"
local name, node, room = ARGV[1], ARGV[2], ARGV[3]
redis.call('SREM', KEYS[2], cjson.encode({name, room}))
if unhold(KEYS[1], name, node) then
  announce(KEYS[3], node, room, left(room, name))
end
return 1
"#;

/// KEYS: seq:ROOM, log:ROOM, channel, epoch:ROOM, and the idempotency key's
/// key if there is one; ARGV: the message up to its seq, node, room, sender, history
/// length, a candidate epoch, the dedup window in seconds. The seq, the log and the
/// publish in one step; a key seen within the window answers its first seq and sends
/// nothing. Returns {seq, 1 if a duplicate}.
const MESSAGE: &str = r#"
if KEYS[5] then
  local first = redis.call('GET', KEYS[5])
  if first then return {tonumber(first), 1} end
end
local epoch = epoch_of(KEYS[4], ARGV[6])
local seq = redis.call('INCR', KEYS[1])
local body = ARGV[1] .. string.format('%d', seq) .. '}'
redis.call('ZADD', KEYS[2], seq, body)
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -(tonumber(ARGV[5]) + 1))
-- A room nobody writes to for a week is forgotten: its seq, log and epoch expire.
redis.call('EXPIRE', KEYS[1], ROOM_TTL)
redis.call('EXPIRE', KEYS[2], ROOM_TTL)
redis.call('EXPIRE', KEYS[4], ROOM_TTL)
if KEYS[5] then redis.call('SET', KEYS[5], seq, 'EX', ARGV[7]) end
publish(KEYS[3], {node = ARGV[2], room = ARGV[3], except = ARGV[4], seq = seq, epoch = epoch}, body)
return {seq, 0}
"#;

/// KEYS: channel; ARGV: node, room, sender, body.
const TYPING: &str = r#"
publish(KEYS[1], {node = ARGV[1], room = ARGV[2], except = ARGV[3]}, ARGV[4])
return 1
"#;

/// KEYS: names; ARGV: to, this node, the node channels' prefix, the payload.
/// Returns how many other nodes took it (0: nobody online by that name elsewhere).
const DIRECT: &str = r#"
local sent = 0
for _, node in ipairs(holders(KEYS[1], ARGV[1])) do
  if node ~= ARGV[2] then sent = sent + redis.call('PUBLISH', ARGV[3] .. node, ARGV[4]) end
end
return sent
"#;

/// KEYS: alive:ID, nodes; ARGV: ttl ms, ID. 1 if the node was not registered (first
/// beat, or reaped meanwhile: then it must register its users again).
const HEARTBEAT: &str = r#"
redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
return redis.call('SADD', KEYS[2], ARGV[2])
"#;

/// KEYS: nodes, alive:DEAD, node names, node members, names, channel; ARGV: DEAD,
/// the members keys' prefix. Reaps a node whose heartbeat expired, once.
const REAP: &str = r#"
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
if redis.call('SREM', KEYS[1], ARGV[1]) == 0 then return 0 end
for _, entry in ipairs(redis.call('SMEMBERS', KEYS[4])) do
  local pair = cjson.decode(entry)
  local members = ARGV[2] .. pair[2]
  if unhold(members, pair[1], ARGV[1]) then
    announce(KEYS[6], ARGV[1], pair[2], left(pair[2], pair[1]))
  end
end
for _, name in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  unhold(KEYS[5], name, ARGV[1])
end
redis.call('DEL', KEYS[3], KEYS[4])
return 1
"#;

/// KEYS: names, node names, node members, channel, nodes; ARGV: node, members
/// prefix, seq prefix, [[name, [room...]]...], [[room, seq, pos]...], '1' if users are
/// signed in (held by several nodes, never a conflict). Makes Redis say what
/// this node has (after an outage, or after being reaped): what it registered that
/// is gone is removed (`left` announced), what it has is registered, and a room's seq
/// and event position are raised to what the node has seen (Redis may have lost them). Returns the names
/// another node took meanwhile.
const RESYNC: &str = r#"
local node = ARGV[1]
local want_names, want_members = {}, {}
for _, user in ipairs(cjson.decode(ARGV[4])) do
  want_names[user[1]] = true
  for _, room in ipairs(user[2]) do want_members[cjson.encode({user[1], room})] = {user[1], room} end
end
for _, entry in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  if not want_members[entry] then
    local pair = cjson.decode(entry)
    local members = ARGV[2] .. pair[2]
    if unhold(members, pair[1], node) then
      announce(KEYS[4], node, pair[2], left(pair[2], pair[1]))
    end
    redis.call('SREM', KEYS[3], entry)
  end
end
for _, name in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  if not want_names[name] then
    unhold(KEYS[1], name, node)
    redis.call('SREM', KEYS[2], name)
  end
end
local conflicts = {}
for name, _ in pairs(want_names) do
  local list = holders(KEYS[1], name)
  if ARGV[6] ~= '1' and #list > 0 and not held_by(list, node) then
    table.insert(conflicts, name)
  else
    hold(KEYS[1], name, node)
    redis.call('SADD', KEYS[2], name)
  end
end
for entry, pair in pairs(want_members) do
  hold(ARGV[2] .. pair[2], pair[1], node)
  redis.call('SADD', KEYS[3], entry)
end
local function raise(key, value)
  if tonumber(redis.call('GET', key) or '0') < value then
    redis.call('SET', key, string.format('%d', value))
  end
end
for _, room in ipairs(cjson.decode(ARGV[5])) do
  raise(ARGV[3] .. room[1], room[2])
  raise('rfc6455:pos:' .. room[1], room[3])
end
redis.call('SADD', KEYS[5], node)
return conflicts
"#;

/// A key of the whole cluster.
fn global(name: &str) -> String {
    format!("{PREFIX}{name}")
}

/// A key of one room (or node): `rfc6455:KIND:NAME`; with an empty name, the prefix
/// that the scripts complete.
fn key(kind: &str, name: &str) -> String {
    format!("{PREFIX}{kind}:{name}")
}

/// This node's channel: direct messages for its users, answers to its own.
fn node_channel(node: &str) -> String {
    key("to", node)
}

/// The scripts, each loaded once per Redis (`EVALSHA`, `EVAL` again after a restart).
struct Scripts {
    claim: Script,
    sign_in: Script,
    release: Script,
    join: Script,
    listen: Script,
    leave: Script,
    message: Script,
    typing: Script,
    direct: Script,
    heartbeat: Script,
    reap: Script,
    resync: Script,
}

impl Scripts {
    fn new() -> Self {
        let ttl = ROOM_TTL.as_secs();
        let with_prelude =
            |body: &str| Script::new(&format!("local ROOM_TTL = {ttl}\n{PRELUDE}{body}"));
        Scripts {
            claim: with_prelude(CLAIM),
            sign_in: with_prelude(SIGN_IN),
            release: with_prelude(RELEASE),
            join: with_prelude(JOIN),
            listen: with_prelude(LISTEN),
            leave: with_prelude(LEAVE),
            message: with_prelude(MESSAGE),
            typing: with_prelude(TYPING),
            direct: with_prelude(DIRECT),
            heartbeat: Script::new(HEARTBEAT),
            reap: with_prelude(REAP),
            resync: with_prelude(RESYNC),
        }
    }
}

/// What the hub (on the loops, under the chat lock) and the node thread share.
struct Link {
    node: String,
    history: usize,
    signed_users: bool,
    scripts: Scripts,
    /// The command connection; `None` while Redis is unreachable.
    conn: Mutex<Option<Connection>>,
    /// Why Redis counts as down (`None`: up).
    down: Mutex<Option<String>>,
    round_trips: AtomicU64,
    errors: AtomicU64,
    reconnects: AtomicU64,
    nodes_reaped: AtomicU64,
    /// The breaker: open while Redis is slow (see `SLOW`).
    breaker: Mutex<Breaker>,
    /// Requests refused at once because the breaker was open.
    shed: AtomicU64,
}

/// Whether the loops may call Redis: the last probe's round trip, and when a loop's
/// call last took longer than `SLOW`.
#[derive(Debug, Default)]
struct Breaker {
    probe: Option<Duration>,
    tripped: Option<(Instant, Duration)>,
}

impl Breaker {
    /// Why the loops must not call Redis now, if they must not.
    fn open(&self, now: Instant) -> Option<String> {
        if let Some(probe) = self.probe.filter(|p| *p > SLOW) {
            return Some(format!(
                "redis: slow, a round trip takes {} ms",
                probe.as_millis()
            ));
        }
        let (at, took) = self.tripped?;
        (now.duration_since(at) < TRIP_HOLD)
            .then(|| format!("redis: slow, a call took {} ms", took.as_millis()))
    }
}

impl Link {
    fn down_reason(&self) -> Option<String> {
        self.down.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set_down(&self, reason: Option<String>) {
        *self.down.lock().unwrap_or_else(|p| p.into_inner()) = reason;
    }

    fn breaker(&self) -> std::sync::MutexGuard<'_, Breaker> {
        self.breaker.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Why Redis cannot serve the loops now: down, or slow (the breaker is open).
    fn unavailable(&self) -> Option<String> {
        self.down_reason()
            .or_else(|| self.breaker().open(Instant::now()))
    }

    /// One round trip on the command connection. A failure of the connection (not of
    /// a script) marks Redis down and drops the connection: the node thread reconnects.
    /// While the breaker is open, nothing is sent: the caller is answered at once.
    fn call<T>(&self, f: impl FnOnce(&mut Connection) -> RedisResult<T>) -> Result<T, Unavailable> {
        if let Some(reason) = self.down_reason() {
            return Err(reason);
        }
        if let Some(reason) = self.breaker().open(Instant::now()) {
            self.shed.fetch_add(1, Ordering::Relaxed);
            return Err(reason);
        }
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let Some(c) = conn.as_mut() else {
            return Err("redis: not connected".into());
        };
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        let start = Instant::now();
        let result = f(c);
        let took = start.elapsed();
        if took > SLOW {
            log::warn!(
                "redis: a call took {} ms; loops stop calling until it is fast",
                took.as_millis()
            );
            self.breaker().tripped = Some((Instant::now(), took));
        }
        result.map_err(|e| {
            self.errors.fetch_add(1, Ordering::Relaxed);
            let reason = format!("redis: {e}");
            if e.is_io_error()
                || e.is_timeout()
                || e.is_connection_dropped()
                || e.is_unrecoverable_error()
            {
                log::warn!("{reason}: reconnecting");
                *conn = None;
                self.set_down(Some(reason.clone()));
            }
            reason
        })
    }
}

/// The [`Hub`] of a node sharing rooms through Redis; made by [`start`].
pub struct RedisHub {
    link: Arc<Link>,
}

/// Options of `serve --redis`.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// `redis://[:PASSWORD@]HOST:PORT[/DB]`.
    pub url: String,
    /// How long a silent node counts as alive.
    pub node_timeout: Duration,
    /// Messages kept per room.
    pub history: usize,
    /// Users come from signed tokens: one user may be connected to several nodes.
    pub signed_users: bool,
}

/// What `room_state` (Lua) returns: seq, history, members, event position, epoch.
type RoomState = (u64, Vec<String>, Vec<String>, u64, String);

fn joined((seq, history, members, pos, epoch): RoomState) -> Joined {
    Joined {
        seq,
        pos: Some(pos),
        history,
        members,
        events: Vec::new(),
        epoch,
    }
}

/// A random node id: a restarted process is a new node (the old one is reaped).
fn new_node_id() -> String {
    let mut bytes = [0u8; 6];
    let _ = getrandom::fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The hub for a chat whose members this process reaches through `handle`, and the
/// thread that keeps it connected: subscribed, heart-beating, reaping dead nodes.
/// Waits up to [`TIMEOUT`] for the first sync; Redis need not be up by then: the node
/// starts unhealthy (503 on `/healthz`) and syncs when it can.
pub fn start(
    options: &RedisOptions,
    handle: Handle,
    state_for: impl FnOnce(Box<dyn Hub>) -> Arc<Mutex<ChatState>>,
) -> Result<(), String> {
    let client = redis::Client::open(options.url.as_str())
        .map_err(|e| format!("--redis {}: {e}", options.url))?;
    let link = Arc::new(Link {
        node: new_node_id(),
        history: options.history,
        signed_users: options.signed_users,
        scripts: Scripts::new(),
        conn: Mutex::new(None),
        down: Mutex::new(Some("redis: connecting".into())),
        round_trips: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        reconnects: AtomicU64::new(0),
        nodes_reaped: AtomicU64::new(0),
        breaker: Mutex::new(Breaker::default()),
        shed: AtomicU64::new(0),
    });
    let state = state_for(Box::new(RedisHub { link: link.clone() }));
    let node = NodeThread {
        client,
        link,
        state,
        handle,
        node_timeout: options.node_timeout,
    };
    let link = node.link.clone();
    std::thread::Builder::new()
        .name("rfc6455-redis".into())
        .spawn(move || node.run())
        .map_err(|e| e.to_string())?;
    let deadline = Instant::now() + TIMEOUT;
    while let Some(reason) = link.down_reason() {
        if Instant::now() >= deadline {
            log::warn!("{reason}: starting without Redis; requests that need it are refused until it is reachable");
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

impl Hub for RedisHub {
    fn node(&self) -> &str {
        &self.link.node
    }

    fn claim(
        &mut self,
        name: &str,
        old: Option<&str>,
        rooms: &[String],
    ) -> Result<bool, Unavailable> {
        let link = &self.link;
        link.call(|c| {
            let mut call = link.scripts.claim.prepare_invoke();
            call.key(global("names"))
                .key(key("node", &format!("{}:names", link.node)))
                .key(key("node", &format!("{}:members", link.node)));
            call.arg(name).arg(&link.node).arg(old.unwrap_or(""));
            for room in rooms {
                call.key(key("members", room)).arg(room);
            }
            call.invoke::<i64>(c).map(|claimed| claimed == 1)
        })
    }

    fn sign_in(&mut self, user: &str) -> Result<(), Unavailable> {
        let link = &self.link;
        link.call(|c| {
            link.scripts
                .sign_in
                .key(global("names"))
                .key(key("node", &format!("{}:names", link.node)))
                .arg(user)
                .arg(&link.node)
                .invoke::<i64>(c)
        })?;
        Ok(())
    }

    fn release(&mut self, name: &str, rooms: &[String]) -> Result<Vec<RoomEvent>, Unavailable> {
        let link = &self.link;
        link.call(|c| {
            let mut call = link.scripts.release.prepare_invoke();
            call.key(global("names"))
                .key(key("node", &format!("{}:names", link.node)))
                .key(key("node", &format!("{}:members", link.node)))
                .key(ROOMS);
            call.arg(name).arg(&link.node).arg("").arg("");
            for room in rooms {
                call.key(key("members", room)).arg(room);
            }
            call.invoke::<i64>(c)
        })?;
        Ok(Vec::new())
    }

    fn join(&mut self, room: &str, name: &str, since: Option<u64>) -> Result<Joined, Unavailable> {
        let link = &self.link;
        let since = since.map(|s| s.to_string()).unwrap_or_default();
        let state: RoomState = link.call(|c| {
            link.scripts
                .join
                .key(key("members", room))
                .key(key("node", &format!("{}:members", link.node)))
                .key(key("seq", room))
                .key(key("log", room))
                .key(ROOMS)
                .key(key("pos", room))
                .key(key("epoch", room))
                .arg(name)
                .arg(&link.node)
                .arg(room)
                .arg(&since)
                .arg(hub::new_epoch())
                .invoke(c)
        })?;
        Ok(joined(state))
    }

    fn listen(&mut self, room: &str, since: Option<u64>) -> Result<Joined, Unavailable> {
        let link = &self.link;
        let since = since.map(|s| s.to_string()).unwrap_or_default();
        let state: RoomState = link.call(|c| {
            link.scripts
                .listen
                .key(key("seq", room))
                .key(key("log", room))
                .key(key("members", room))
                .key(key("pos", room))
                .key(key("epoch", room))
                .arg(&since)
                .arg(hub::new_epoch())
                .invoke(c)
        })?;
        Ok(joined(state))
    }

    fn unlisten(&mut self, _room: &str) {
        // Redis keeps a room's seq while its keys live (see `ROOM_TTL`).
    }

    fn read(&mut self, room: &str, since: Option<u64>) -> Result<Joined, Unavailable> {
        self.listen(room, since)
    }

    fn leave(&mut self, room: &str, name: &str) -> Result<Vec<RoomEvent>, Unavailable> {
        let link = &self.link;
        link.call(|c| {
            link.scripts
                .leave
                .key(key("members", room))
                .key(key("node", &format!("{}:members", link.node)))
                .key(ROOMS)
                .arg(name)
                .arg(&link.node)
                .arg(room)
                .invoke::<i64>(c)
        })?;
        Ok(Vec::new())
    }

    fn message(&mut self, m: Outgoing<'_>) -> Result<Published, Unavailable> {
        let link = &self.link;
        let (seq, duplicate) = link.call(|c| {
            let mut call = link.scripts.message.prepare_invoke();
            call.key(key("seq", m.room))
                .key(key("log", m.room))
                .key(ROOMS)
                .key(key("epoch", m.room));
            if let Some(idempotency) = m.key {
                // JSON: no room, user and key can run into one another's.
                call.key(key(
                    "idem",
                    &json!([m.room, m.from, idempotency]).to_string(),
                ));
            }
            call.arg(hub::message_prefix(m.room, m.from, m.text, m.via_http))
                .arg(&link.node)
                .arg(m.room)
                .arg(m.from)
                .arg(link.history)
                .arg(hub::new_epoch())
                .arg(m.dedup_window.as_secs().max(1));
            call.invoke::<(u64, u8)>(c)
        })?;
        Ok(Published {
            seq,
            duplicate: duplicate == 1,
            local: None,
        })
    }

    fn typing(&mut self, room: &str, name: &str) -> Result<Vec<RoomEvent>, Unavailable> {
        let link = &self.link;
        link.call(|c| {
            link.scripts
                .typing
                .key(ROOMS)
                .arg(&link.node)
                .arg(room)
                .arg(name)
                .arg(hub::typing_body(room, name))
                .invoke::<i64>(c)
        })?;
        Ok(Vec::new())
    }

    fn direct(
        &mut self,
        to: &str,
        _from: &str,
        body: &str,
        token: u64,
    ) -> Result<bool, Unavailable> {
        let link = &self.link;
        let header = json!({"direct": to, "from": link.node, "token": token});
        let payload = format!("{header}\n{body}");
        let nodes = link.call(|c| {
            link.scripts
                .direct
                .key(global("names"))
                .arg(to)
                .arg(&link.node)
                .arg(node_channel(""))
                .arg(payload)
                .invoke::<i64>(c)
        })?;
        Ok(nodes > 0)
    }

    fn health_check(&self) -> HealthCheck {
        let link = self.link.clone();
        Arc::new(move || link.unavailable().map_or(Ok(()), Err))
    }

    fn metrics(&self) -> Vec<(&'static str, &'static str, &'static str, String)> {
        let link = &self.link;
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed).to_string();
        vec![
            (
                "rfc6455_redis_up",
                "1 if Redis is reachable and this node is in sync.",
                "gauge",
                u8::from(link.down_reason().is_none()).to_string(),
            ),
            (
                "rfc6455_redis_round_trips_total",
                "Commands and scripts sent to Redis by the loops.",
                "counter",
                n(&link.round_trips),
            ),
            (
                "rfc6455_redis_errors_total",
                "Redis commands or connections that failed.",
                "counter",
                n(&link.errors),
            ),
            (
                "rfc6455_redis_reconnects_total",
                "Times this node connected to Redis again after losing it.",
                "counter",
                n(&link.reconnects),
            ),
            (
                "rfc6455_redis_shed_total",
                "Requests answered `unavailable` at once because Redis was slow (breaker open).",
                "counter",
                n(&link.shed),
            ),
            (
                "rfc6455_redis_probe_seconds",
                "The node thread's last PING round trip to Redis.",
                "gauge",
                link.breaker()
                    .probe
                    .map_or(0.0, |p| p.as_secs_f64())
                    .to_string(),
            ),
            (
                "rfc6455_redis_nodes_reaped_total",
                "Dead nodes whose members this node announced as left.",
                "counter",
                n(&link.nodes_reaped),
            ),
        ]
    }
}

/// The node's thread: owns the subscription and the heartbeat, reconnects.
struct NodeThread {
    client: redis::Client,
    link: Arc<Link>,
    state: Arc<Mutex<ChatState>>,
    handle: Handle,
    node_timeout: Duration,
}

impl NodeThread {
    fn run(mut self) {
        let mut backoff = Duration::from_millis(100);
        let mut sessions = 0u64;
        loop {
            let reason = match self.session(&mut sessions, &mut backoff) {
                Ok(never) => match never {},
                Err(e) => e,
            };
            self.link.errors.fetch_add(1, Ordering::Relaxed);
            if self.link.down_reason().is_none() {
                log::warn!("{reason}: reconnecting");
            }
            *self.link.conn.lock().unwrap_or_else(|p| p.into_inner()) = None;
            self.link.set_down(Some(reason));
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    fn connect(&self) -> Result<Connection, String> {
        let conn = self
            .client
            .get_connection_with_timeout(TIMEOUT)
            .map_err(|e| format!("redis: {e}"))?;
        conn.set_read_timeout(Some(TIMEOUT))
            .map_err(|e| format!("redis: {e}"))?;
        conn.set_write_timeout(Some(TIMEOUT))
            .map_err(|e| format!("redis: {e}"))?;
        Ok(conn)
    }

    /// Connects, subscribes, syncs, then relays the channels until something fails.
    fn session(
        &mut self,
        sessions: &mut u64,
        backoff: &mut Duration,
    ) -> Result<std::convert::Infallible, String> {
        let fail = |e: redis::RedisError| format!("redis: {e}");
        let mut subscriber = self.connect()?;
        let mut beat = self.connect()?;
        let commands = self.connect()?;
        let mut pubsub = subscriber.as_pubsub();
        let interval = self.node_timeout / 3;
        pubsub
            .set_read_timeout(Some(interval.min(PROBE_INTERVAL)))
            .map_err(fail)?;
        // Subscribed before anything is read, so that nothing falls in between.
        pubsub.subscribe(ROOMS).map_err(fail)?;
        pubsub
            .subscribe(node_channel(&self.link.node))
            .map_err(fail)?;
        self.heartbeat(&mut beat)?;
        *self.link.conn.lock().unwrap_or_else(|p| p.into_inner()) = Some(commands);
        self.resync()?;
        if *sessions > 0 {
            self.link.reconnects.fetch_add(1, Ordering::Relaxed);
            log::warn!("redis: connected again, node {} in sync", self.link.node);
        } else {
            log::info!("redis: connected, node {}", self.link.node);
        }
        *sessions += 1;
        *backoff = Duration::from_millis(100);
        let mut next_beat = Instant::now() + interval;
        let mut next_probe = Instant::now();
        let mut next_renewal = Instant::now();
        loop {
            if Instant::now() >= next_renewal {
                next_renewal = Instant::now() + ROOM_RENEWAL;
                self.renew_rooms(&mut beat)?;
            }
            if Instant::now() >= next_probe {
                next_probe = Instant::now() + PROBE_INTERVAL;
                self.probe(&mut beat)?;
            }
            match pubsub.get_message() {
                Ok(msg) => self.dispatch(msg.get_channel_name(), msg.get_payload_bytes()),
                Err(e) if e.is_timeout() => {}
                Err(e) => return Err(fail(e)),
            }
            if let Some(reason) = self.link.down_reason() {
                return Err(reason);
            }
            if Instant::now() >= next_beat {
                next_beat = Instant::now() + interval;
                if self.heartbeat(&mut beat)? {
                    log::warn!(
                        "redis: node {} was reaped while silent; registering again",
                        self.link.node
                    );
                    self.resync()?;
                }
                self.reap_dead(&mut beat)?;
            }
        }
    }

    /// Measures one round trip to Redis (PING), for the breaker: the loops call Redis
    /// only while it answers within `SLOW`.
    fn probe(&self, beat: &mut Connection) -> Result<(), String> {
        let start = Instant::now();
        redis::cmd("PING")
            .query::<String>(beat)
            .map_err(|e| format!("redis: {e}"))?;
        let took = start.elapsed();
        let mut breaker = self.link.breaker();
        let was = breaker.open(Instant::now()).is_some();
        breaker.probe = Some(took);
        let is = breaker.open(Instant::now());
        drop(breaker);
        match (was, is) {
            (false, Some(reason)) => log::warn!("{reason}: requests that need it are refused"),
            (true, None) => log::warn!("redis: fast again ({} ms), serving", took.as_millis()),
            _ => {}
        }
        Ok(())
    }

    /// Renews the expiry of the keys of every room this node follows (one pipeline).
    fn renew_rooms(&self, beat: &mut Connection) -> Result<(), String> {
        let rooms: Vec<String> = lock(&self.state)
            .local_rooms()
            .into_iter()
            .map(|(room, _, _)| room)
            .collect();
        if rooms.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for room in &rooms {
            for kind in ["seq", "log", "pos", "epoch"] {
                pipe.cmd("EXPIRE")
                    .arg(key(kind, room))
                    .arg(ROOM_TTL.as_secs())
                    .ignore();
            }
        }
        pipe.query::<()>(beat).map_err(|e| format!("redis: {e}"))
    }

    /// Refreshes this node's heartbeat; true if it was not registered.
    fn heartbeat(&self, beat: &mut Connection) -> Result<bool, String> {
        let node = &self.link.node;
        let ttl = self.node_timeout.as_millis().max(1) as u64;
        self.link
            .scripts
            .heartbeat
            .key(key("alive", node))
            .key(global("nodes"))
            .arg(ttl)
            .arg(node)
            .invoke::<i64>(beat)
            .map(|added| added == 1)
            .map_err(|e| format!("redis: {e}"))
    }

    /// Reaps every registered node whose heartbeat expired (the script makes sure one
    /// node does it, once).
    fn reap_dead(&self, beat: &mut Connection) -> Result<(), String> {
        let fail = |e: redis::RedisError| format!("redis: {e}");
        let nodes: Vec<String> = redis::cmd("SMEMBERS")
            .arg(global("nodes"))
            .query(beat)
            .map_err(fail)?;
        for dead in nodes.iter().filter(|n| **n != self.link.node) {
            let reaped: i64 = self
                .link
                .scripts
                .reap
                .key(global("nodes"))
                .key(key("alive", dead))
                .key(key("node", &format!("{dead}:names")))
                .key(key("node", &format!("{dead}:members")))
                .key(global("names"))
                .key(ROOMS)
                .arg(dead)
                .arg(key("members", ""))
                .invoke(beat)
                .map_err(fail)?;
            if reaped == 1 {
                log::warn!("redis: node {dead} stopped beating; its members left");
                self.link.nodes_reaped.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    /// Makes Redis agree with this node, then delivers what its members missed while
    /// it was not subscribed, and reports healthy.
    fn resync(&mut self) -> Result<(), String> {
        let link = self.link.clone();
        let mut state = lock(&self.state);
        let users = state.local_users();
        let rooms = state.local_rooms();
        let mut conn = link.conn.lock().unwrap_or_else(|p| p.into_inner());
        let c = conn.as_mut().ok_or("redis: not connected")?;
        let fail = |e: redis::RedisError| format!("redis: {e}");
        let node = &link.node;
        let conflicts: Vec<String> = link
            .scripts
            .resync
            .key(global("names"))
            .key(key("node", &format!("{node}:names")))
            .key(key("node", &format!("{node}:members")))
            .key(ROOMS)
            .key(global("nodes"))
            .arg(node)
            .arg(key("members", ""))
            .arg(key("seq", ""))
            .arg(json!(users).to_string())
            .arg(json!(rooms).to_string())
            .arg(if link.signed_users { "1" } else { "0" })
            .invoke(c)
            .map_err(fail)?;
        for name in conflicts {
            log::warn!("redis: {name:?} was taken on another node while Redis was away");
        }
        // Catch-up: what the log holds beyond what was delivered here.
        for (room, _, _) in rooms {
            let after = state.delivered_seq(&room).unwrap_or(0);
            let missed: Vec<(String, u64)> = redis::cmd("ZRANGEBYSCORE")
                .arg(key("log", &room))
                .arg(format!("({after}"))
                .arg("+inf")
                .arg("WITHSCORES")
                .query(c)
                .map_err(fail)?;
            for (body, seq) in missed {
                let from = serde_json::from_str::<Value>(&body)
                    .ok()
                    .and_then(|m| m["from"].as_str().map(str::to_string));
                let event = RoomEvent {
                    room: room.clone(),
                    seq: Some(seq),
                    pos: None,
                    origin: node.clone(),
                    // A name from `hello` is on this node only: its sender had the
                    // ack. A signed user may have said it on another node: its
                    // connections here get it.
                    except: from.filter(|_| !link.signed_users),
                    body,
                    epoch: None,
                };
                state.deliver(&mut self.handle, &event);
            }
        }
        link.set_down(None);
        Ok(())
    }

    /// One message from a channel: a room event, a direct message for a user of this
    /// node, or another node's answer to one of ours.
    fn dispatch(&mut self, channel: &str, payload: &[u8]) {
        let Some((head, body)) = std::str::from_utf8(payload)
            .ok()
            .and_then(|p| p.split_once('\n'))
        else {
            return log::warn!("redis: a malformed message on {channel}");
        };
        let Ok(head) = serde_json::from_str::<Value>(head) else {
            return log::warn!("redis: a malformed header on {channel}");
        };
        let text = |field: &str| head[field].as_str().map(str::to_string);
        if channel == ROOMS {
            let (Some(room), Some(origin)) = (text("room"), text("node")) else {
                return;
            };
            let event = RoomEvent {
                room,
                seq: head["seq"].as_u64(),
                pos: head["pos"].as_u64(),
                origin,
                except: text("except"),
                body: body.to_string(),
                epoch: text("epoch"),
            };
            lock(&self.state).deliver(&mut self.handle, &event);
        } else if let (Some(to), Some(from), Some(token)) =
            (text("direct"), text("from"), head["token"].as_u64())
        {
            let delivered = lock(&self.state).direct_in(&mut self.handle, &to, body);
            let answer = format!("{}\n", json!({"answer": token, "delivered": delivered}));
            let _ = self.link.call(|c| {
                redis::cmd("PUBLISH")
                    .arg(node_channel(&from))
                    .arg(answer)
                    .query::<i64>(c)
            });
        } else if let Some(token) = head["answer"].as_u64() {
            let delivered = head["delivered"].as_bool().unwrap_or(false);
            lock(&self.state).answered(&mut self.handle, token, delivered);
        }
    }
}
