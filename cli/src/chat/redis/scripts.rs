//! What the nodes keep in Redis, and the Lua scripts that change it.
//!
//! **One room, one slot.** Every key of a room carries the hash tag `{r:ROOM}`, and its
//! channel too, so that Redis Cluster puts them in one slot: a room's script touches
//! one shard, and its events travel through that shard only (sharded pub/sub). What is
//! not a room's (the names, the nodes and their heartbeats) carries the tag `{g}`: one
//! slot. No script touches a room and `{g}`, or two rooms: what spans them (a
//! rename, a release, a reap, a resync) is one script per room after one on `{g}`.
//!
//! | key | what |
//! |---|---|
//! | `rfc6455:{r:ROOM}:seq` | the room's last seq (expires a week after the last message; renewed at most hourly by each node, so at least a week less an hour) |
//! | `rfc6455:{r:ROOM}:log` | sorted set: the last `--history` messages, scored by seq (the same) |
//! | `rfc6455:{r:ROOM}:pos` | the room's last event position (expires a week after the last event) |
//! | `rfc6455:{r:ROOM}:epoch` | the room's epoch: made when the room has none (expires with its seq) |
//! | `rfc6455:{r:ROOM}:members` | hash: member name → the nodes it is a member through (space-separated ids) |
//! | `rfc6455:{r:ROOM}:idem:[USER,KEY]` | an idempotency key's first seq (expires after `--dedup-window`) |
//! | `rfc6455:{r:ROOM}:events` | the room's channel (not a key) |
//! | `rfc6455:{g}:names` | hash: every user's name → its nodes (a name from `hello` has one: unique in the cluster; a signed-in user may be on several) |
//! | `rfc6455:{g}:node:ID:names`, `rfc6455:{g}:node:ID:rooms` | what node ID registered, for reaping it |
//! | `rfc6455:{g}:reaping`, `rfc6455:{g}:node:ID:unsettled` | dead nodes whose rooms are still to be settled, and those rooms |
//! | `rfc6455:{g}:alive:ID` | the node's heartbeat, expiring after `--node-timeout` |
//! | `rfc6455:{g}:nodes` | the nodes that registered |
//! | `rfc6455:{n:ID}:to` | node ID's channel: direct messages and answers (not a key) |

use redis::Script;
use std::time::Duration;

/// A room's keys expire this long after its last event (the scripts' `ROOM_TTL`).
pub const ROOM_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// A key of the cluster (the `{g}` slot).
pub fn global(name: &str) -> String {
    format!("rfc6455:{{g}}:{name}")
}

/// A key of node `node` (the `{g}` slot: the reaper reads it with the nodes).
pub fn node_key(node: &str, kind: &str) -> String {
    global(&format!("node:{node}:{kind}"))
}

/// A key (or the channel) of one room. The tag is the whole name, with `%` and `}`
/// escaped (`%25`, `%7D`): a `}` would end the tag early, and every room whose name
/// starts with one would share a slot. The tag's `r:` keeps it from being empty
/// (Redis hashes a whole key whose tag is `{}`).
pub fn room_key(room: &str, kind: &str) -> String {
    let tag = room.replace('%', "%25").replace('}', "%7D");
    format!("rfc6455:{{r:{tag}}}:{kind}")
}

/// The room's channel.
pub fn room_channel(room: &str) -> String {
    room_key(room, "events")
}

/// Node `node`'s channel: direct messages for its users, answers to its own.
pub fn node_channel(node: &str) -> String {
    format!("rfc6455:{{n:{node}}}:to")
}

/// The keys every room script gets first, in this order (the prelude names them).
pub fn room_keys(room: &str) -> [String; 6] {
    ["seq", "log", "pos", "epoch", "members", "events"].map(|kind| room_key(room, kind))
}

/// The slot Redis Cluster gives `key` (CRC16/XMODEM of its hash tag, or of the whole
/// key without one, modulo 16384): which shard a room's channel is subscribed on.
pub fn slot_of(key: &str) -> u16 {
    let bytes = key.as_bytes();
    let tagged = bytes.iter().position(|b| *b == b'{').and_then(|open| {
        let close = bytes[open + 1..].iter().position(|b| *b == b'}')?;
        let tag = &bytes[open + 1..open + 1 + close];
        (!tag.is_empty()).then_some(tag)
    });
    crc16::State::<crc16::XMODEM>::calculate(tagged.unwrap_or(bytes)) % 16384
}

/// For every script: a field of `names` or `members` lists the nodes that hold it,
/// by id, space separated: a signed-in user connected to several nodes is one name
/// and one member, held by each of them. (A name from `hello` is held by one node.)
const HOLDERS: &str = r#"
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
"#;

/// For a room's scripts: its keys (see [`room_keys`]), and how an event goes out. One
/// event on the channel is a JSON header line (node, room, its position among the
/// room's events, a message's seq, the sender), then the JSON sent to the members.
/// `pos` numbers every event of the room, so that a member who joined at position P
/// skips the events at or before P that reach its node after its join (it was given
/// the state after them).
const ROOM: &str = r#"
local SEQ, LOG, POS, EPOCH, MEMBERS, EVENTS = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
-- `renew`: false to leave the position's expiry as it is (a message renews it at
-- most once an hour: see MESSAGE).
local function publish(header, body, renew)
  header.pos = redis.call('INCR', POS)
  if renew ~= false then redis.call('EXPIRE', POS, ROOM_TTL) end
  redis.call(PUBLISH, EVENTS, cjson.encode(header) .. '\n' .. body)
end
local function left(room, name)
  return cjson.encode({type = 'left', room = room, user = name})
end
-- The room's epoch, made from the node's candidate when the room has none: when
-- its numbering starts (first use, or a Redis that lost the room).
local function epoch_of(candidate)
  local epoch = redis.call('GET', EPOCH)
  if epoch then return epoch end
  redis.call('SET', EPOCH, candidate, 'EX', ROOM_TTL)
  return candidate
end
-- What a join or a listener reads: seq, history after `since` (or all kept), the
-- members sorted, the event position, the epoch.
local function room_state(since, candidate)
  local seq = tonumber(redis.call('GET', SEQ) or '0')
  local min = '-inf'
  if since ~= '' then min = '(' .. since end
  local history = redis.call('ZRANGEBYSCORE', LOG, min, '+inf')
  local members = redis.call('HKEYS', MEMBERS)
  table.sort(members)
  return {seq, history, members, tonumber(redis.call('GET', POS) or '0'), epoch_of(candidate)}
end
"#;

/// ARGV: name, node, room, since or '', a candidate epoch. Returns {seq, history,
/// sorted members, pos, epoch}.
const JOIN: &str = r#"
local name, node, room = ARGV[1], ARGV[2], ARGV[3]
if hold(MEMBERS, name, node) then
  publish({node = node, room = room, except = name},
    cjson.encode({type = 'joined', room = room, user = name}))
end
return room_state(ARGV[4], ARGV[5])
"#;

/// ARGV: since (or ''), a candidate epoch. A join's reads, for a listener that is no
/// member or a page of history.
const LISTEN: &str = r#"
return room_state(ARGV[1], ARGV[2])
"#;

/// ARGV: name, node, room.
const LEAVE: &str = r#"
local name, node, room = ARGV[1], ARGV[2], ARGV[3]
if unhold(MEMBERS, name, node) then
  publish({node = node, room = room}, left(room, name))
end
return 1
"#;

/// KEYS[7]: the idempotency key's key if there is one; ARGV: the message up to its
/// seq, node, room, sender, history length, a candidate epoch, the dedup window in
/// seconds, '1' to renew the room's expiry. The seq, the log and the publish in one
/// step; a key seen within the window answers its first seq and sends nothing.
/// Returns {seq, 1 if a duplicate}. The hot path: 6 commands (8 with a key), 10
/// when it renews.
const MESSAGE: &str = r#"
local IDEM = KEYS[7]
if IDEM then
  local first = redis.call('GET', IDEM)
  if first then return {tonumber(first), 1} end
end
local epoch = epoch_of(ARGV[6])
local seq = redis.call('INCR', SEQ)
local body = ARGV[1] .. string.format('%d', seq) .. '}'
redis.call('ZADD', LOG, seq, body)
redis.call('ZREMRANGEBYRANK', LOG, 0, -(tonumber(ARGV[5]) + 1))
-- A room nobody writes to for a week is forgotten: its seq, log and epoch expire.
-- Each node renews them with a room's first message and then at most once an hour
-- (RENEWAL in publish.rs), not with every message: four commands of ten saved.
local renew = ARGV[8] == '1' or seq == 1
if renew then
  redis.call('EXPIRE', SEQ, ROOM_TTL)
  redis.call('EXPIRE', LOG, ROOM_TTL)
  redis.call('EXPIRE', EPOCH, ROOM_TTL)
end
if IDEM then redis.call('SET', IDEM, seq, 'EX', ARGV[7]) end
publish({node = ARGV[2], room = ARGV[3], except = ARGV[4], seq = seq, epoch = epoch}, body, renew)
return {seq, 0}
"#;

/// ARGV: node, room, sender, body.
const TYPING: &str = r#"
publish({node = ARGV[1], room = ARGV[2], except = ARGV[3]}, ARGV[4])
return 1
"#;

/// ARGV: old name, new name, node. A rename moves the node's hold on the member.
const RENAME: &str = r#"
if held_by(holders(MEMBERS, ARGV[1]), ARGV[3]) then
  unhold(MEMBERS, ARGV[1], ARGV[3])
  hold(MEMBERS, ARGV[2], ARGV[3])
end
return 1
"#;

/// ARGV: node, room, the names the node has in the room (JSON list), the seq and the
/// event position the node has seen. Makes the room's members held by the node
/// exactly those names (`left` announced for each that nobody holds now), and raises
/// the seq and position to what the node saw (Redis may have lost them). A reap is
/// this with no names, for the dead node.
const SETTLE: &str = r#"
local node, room = ARGV[1], ARGV[2]
local want = {}
for _, name in ipairs(cjson.decode(ARGV[3])) do want[name] = true end
for _, name in ipairs(redis.call('HKEYS', MEMBERS)) do
  if not want[name] and unhold(MEMBERS, name, node) then
    publish({node = node, room = room}, left(room, name))
  end
end
for name, _ in pairs(want) do hold(MEMBERS, name, node) end
local function raise(key, value)
  if tonumber(redis.call('GET', key) or '0') < value then
    redis.call('SET', key, string.format('%d', value), 'EX', ROOM_TTL)
  end
end
raise(SEQ, tonumber(ARGV[4]))
raise(POS, tonumber(ARGV[5]))
return 1
"#;

/// Renews the expiry of a followed room's keys, so that a quiet room with people in
/// it keeps its seq.
const RENEW: &str = r#"
for _, key in ipairs({SEQ, LOG, POS, EPOCH}) do redis.call('EXPIRE', key, ROOM_TTL) end
return 1
"#;

/// KEYS: names, node names; ARGV: name, node, old name or ''. Claims a name (0 if
/// another node holds it); a rename frees the old one. The rooms follow with RENAME.
const CLAIM: &str = r#"
local name, node, old = ARGV[1], ARGV[2], ARGV[3]
local list = holders(KEYS[1], name)
if #list > 0 and not held_by(list, node) then return 0 end
hold(KEYS[1], name, node)
redis.call('SADD', KEYS[2], name)
if old ~= '' and held_by(holders(KEYS[1], old), node) then
  unhold(KEYS[1], old, node)
  redis.call('SREM', KEYS[2], old)
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

/// KEYS: names, node names; ARGV: name, node. The rooms follow with LEAVE.
const RELEASE: &str = r#"
unhold(KEYS[1], ARGV[1], ARGV[2])
redis.call('SREM', KEYS[2], ARGV[1])
return 1
"#;

/// KEYS: alive:ID, nodes; ARGV: ttl ms, ID. 1 if the node was not registered (first
/// beat, or reaped meanwhile: then it must register its users again).
const HEARTBEAT: &str = r#"
redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
return redis.call('SADD', KEYS[2], ARGV[2])
"#;

/// KEYS: nodes, alive:DEAD, DEAD's names, DEAD's rooms, names, reaping, DEAD's
/// rooms to settle; ARGV: DEAD. Reaps a node whose heartbeat expired, once: frees its
/// names and moves its rooms to the set of rooms to settle (each then settled with no
/// names for it, and taken out of the set only once settled: a reaper that fails
/// halfway leaves the rest to the next one). 1 if it reaped.
const REAP: &str = r#"
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
if redis.call('SREM', KEYS[1], ARGV[1]) == 0 then return 0 end
for _, name in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  unhold(KEYS[5], name, ARGV[1])
end
redis.call('DEL', KEYS[3])
if redis.call('EXISTS', KEYS[4]) == 1 then
  redis.call('SUNIONSTORE', KEYS[7], KEYS[7], KEYS[4])
  redis.call('DEL', KEYS[4])
end
redis.call('SADD', KEYS[6], ARGV[1])
return 1
"#;

/// KEYS: names, node names, node rooms, nodes; ARGV: node, [[name, [room...]]...],
/// [room...], '1' if users are signed in (held by several nodes, never a conflict).
/// Makes `{g}` say what this node has (after an outage, or after being reaped): the
/// names it no longer has are freed, those it has are held, its rooms are added.
/// Returns {the names another node took meanwhile, the rooms it had and has no
/// more} (each then settled with no names, and only then taken out of its rooms).
const RESYNC: &str = r#"
local node = ARGV[1]
local want_names = {}
for _, user in ipairs(cjson.decode(ARGV[2])) do want_names[user[1]] = true end
for _, name in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  if not want_names[name] then
    unhold(KEYS[1], name, node)
    redis.call('SREM', KEYS[2], name)
  end
end
local conflicts = {}
for name, _ in pairs(want_names) do
  local list = holders(KEYS[1], name)
  if ARGV[4] ~= '1' and #list > 0 and not held_by(list, node) then
    table.insert(conflicts, name)
  else
    hold(KEYS[1], name, node)
    redis.call('SADD', KEYS[2], name)
  end
end
local want_rooms, gone = {}, {}
for _, room in ipairs(cjson.decode(ARGV[3])) do want_rooms[room] = true end
for _, room in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  if not want_rooms[room] then table.insert(gone, room) end
end
for room, _ in pairs(want_rooms) do redis.call('SADD', KEYS[3], room) end
redis.call('SADD', KEYS[4], node)
return {conflicts, gone}
"#;

/// The scripts, each loaded once per Redis (`EVALSHA`, `EVAL` again after a restart).
pub struct Scripts {
    pub join: Script,
    pub listen: Script,
    pub leave: Script,
    pub message: Script,
    pub typing: Script,
    pub rename: Script,
    pub settle: Script,
    pub renew: Script,
    pub claim: Script,
    pub sign_in: Script,
    pub release: Script,
    pub heartbeat: Script,
    pub reap: Script,
    pub resync: Script,
}

impl Scripts {
    /// `sharded`: events go out with `SPUBLISH` (Redis Cluster: through the room's
    /// shard only), else with `PUBLISH`.
    pub fn new(sharded: bool) -> Self {
        let ttl = ROOM_TTL.as_secs();
        let publish = if sharded { "SPUBLISH" } else { "PUBLISH" };
        let room = |body: &str| {
            Script::new(&format!(
                "local ROOM_TTL, PUBLISH = {ttl}, '{publish}'\n{HOLDERS}{ROOM}{body}"
            ))
        };
        let global = |body: &str| Script::new(&format!("{HOLDERS}{body}"));
        Scripts {
            join: room(JOIN),
            listen: room(LISTEN),
            leave: room(LEAVE),
            message: room(MESSAGE),
            typing: room(TYPING),
            rename: room(RENAME),
            settle: room(SETTLE),
            renew: room(RENEW),
            claim: global(CLAIM),
            sign_in: global(SIGN_IN),
            release: global(RELEASE),
            heartbeat: Script::new(HEARTBEAT),
            reap: global(REAP),
            resync: global(RESYNC),
        }
    }

    /// `script` on `room`'s keys (and its channel), ready for its ARGV.
    pub fn on_room<'a>(script: &'a Script, room: &str) -> redis::ScriptInvocation<'a> {
        let mut call = script.prepare_invoke();
        for key in room_keys(room) {
            call.key(key);
        }
        call
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_follow_the_cluster_spec() {
        // The CRC16/XMODEM check value, as in the Redis Cluster specification.
        assert_eq!(slot_of("123456789"), 0x31c3);
        assert_eq!(slot_of("{user1000}.following"), slot_of("user1000"));
        assert_eq!(slot_of("foo{}{bar}"), slot_of("foo{}{bar}"));
        assert_ne!(
            slot_of("foo{}{bar}"),
            slot_of("bar"),
            "an empty tag: the whole key"
        );
    }

    #[test]
    fn every_key_of_a_room_is_in_its_channel_s_slot() {
        for room in ["lobby", "a}b", "{x}", "}", "", "été", "%7D"] {
            let slot = slot_of(&room_channel(room));
            for key in room_keys(room) {
                assert_eq!(slot_of(&key), slot, "{room:?} {key}");
            }
            assert_eq!(slot_of(&room_key(room, "idem:[\"u\",\"k\"]")), slot);
        }
        // A `}` does not cut the tag: rooms that start alike are spread.
        assert_ne!(room_key("}a", "seq"), room_key("%7Da", "seq"));
        let spread: std::collections::HashSet<u16> = (0..50)
            .map(|i| slot_of(&room_channel(&format!("}}{i}"))))
            .collect();
        assert!(spread.len() > 40, "{spread:?}");
        let g = slot_of(&global("names"));
        assert_eq!(slot_of(&node_key("abc", "rooms")), g);
        assert_eq!(slot_of(&global("alive:abc")), g);
    }
}
