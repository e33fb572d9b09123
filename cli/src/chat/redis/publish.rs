//! How a node numbers and sends its members' messages: the message script, one call
//! per message or one pipelined round trip per shard for a loop's messages of a turn.
//!
//! **Why a batch.** A loop that waits for Redis waits for every connection on it: at
//! one round trip per message, a node's throughput is one over the round trip, and on
//! a busy machine a round trip is a scheduling delay, not Redis's work. A loop's
//! messages of one turn (see [`Handler::end_turn`](rfc6455::server::Handler::end_turn))
//! go in one pipeline instead: Redis runs them in order on one connection, so a
//! room's messages keep the order they came in.
//!
//! **On the node's own connection.** One pipeline goes to each shard that holds some
//! of the batch's rooms (one Redis is one shard; a cluster's are read by the
//! subscriber), on a connection of the node's own to that shard, whose replies are
//! read one by one, each within the timeout: the redis crate's cluster connection
//! answers a pipeline with its first error and sends it all again (which would
//! publish the commands that had run twice), and its single connection reads every
//! reply of a pipeline with a timeout each, after a stall too (256 × 2 s under the
//! chat lock).
//!
//! **Errors.** A message that Redis refuses in the pipeline (`NOSCRIPT`: a restarted
//! server or a promoted replica; `MOVED`/`ASK`: its slot moved) is sent again alone,
//! after the pipeline, through the connection that routes it and loads the script —
//! unless a later message of its room went through, which it must not follow: then
//! it is answered `unavailable`, as is every message whose answer could not be read
//! when the connection failed (it may have run: sending it again could publish it
//! twice; a client that retries with an idempotency key is safe either way). A
//! shard's connection that the server closed between pipelines is opened again
//! before anything is written to it; all of them are dropped when the node
//! reconnects (the shards may be others then).

use super::scripts::{room_channel, room_key, room_keys};
use super::subscriber::{self, ShardAddr};
use super::{Link, Unavailable, SLOW, TIMEOUT};
use crate::chat::hub::{self, Outgoing, Published};
use redis::{Cmd, ConnectionLike, RedisResult, Script, Value};
use serde_json::json;
use std::collections::HashMap;
use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// A node renews a room's keys with a message at most this often: a room's keys
/// expire at least [`scripts::ROOM_TTL`](super::scripts::ROOM_TTL) less this after its
/// last message, and a message costs four Redis commands fewer.
const RENEWAL: Duration = Duration::from_secs(3600);
/// The fewest rooms in [`Renewals`] that trigger a pruning.
const RENEWALS_KEPT: usize = 4096;

/// When this node last renewed each room's expiry with a message, and in which
/// session (after a reconnection, Redis may have lost the keys: renewed again).
/// Pruned of what is older than [`RENEWAL`] once it holds `prune_at` rooms (then twice
/// what is left, so that pruning stays rare).
#[derive(Debug)]
pub struct Renewals {
    at: HashMap<String, (Instant, u64)>,
    prune_at: usize,
}

impl Default for Renewals {
    fn default() -> Self {
        Renewals {
            at: HashMap::new(),
            prune_at: RENEWALS_KEPT,
        }
    }
}

impl Renewals {
    /// Whether a message to `room` now, in reconnection `session`, renews its keys.
    fn due(&self, room: &str, now: Instant, session: u64) -> bool {
        self.at
            .get(room)
            .is_none_or(|(at, s)| *s != session || now.duration_since(*at) >= RENEWAL)
    }

    fn renewed(&mut self, room: &str, now: Instant, session: u64) {
        if self.at.len() >= self.prune_at {
            self.at
                .retain(|_, (at, _)| now.duration_since(*at) < RENEWAL);
            self.prune_at = (self.at.len() * 2).max(RENEWALS_KEPT);
        }
        self.at.insert(room.to_string(), (now, session));
    }
}

/// The message script's `EVALSHA` for `m` (its keys renewed if `renew`).
fn message_call(link: &Link, m: &Outgoing<'_>, renew: bool) -> Cmd {
    let mut keys: Vec<String> = room_keys(m.room).into();
    if let Some(idempotency) = m.key {
        // JSON: no user and key can run into one another's.
        let idem = json!([m.from, idempotency]).to_string();
        keys.push(room_key(m.room, &format!("idem:{idem}")));
    }
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(link.scripts.message.get_hash())
        .arg(keys.len())
        .arg(keys)
        .arg(hub::message_prefix(m.room, m.from, m.text, m.via_http))
        .arg(&link.node)
        .arg(m.room)
        .arg(m.from)
        .arg(link.history)
        .arg(hub::new_epoch())
        .arg(m.dedup_window.as_secs().max(1))
        .arg(if renew { "1" } else { "0" });
    cmd
}

/// `cmd`, an `EVALSHA` of `script`, loading the script first if this Redis does not
/// have it (a restarted or promoted server).
fn evalsha(script: &Script, cmd: &Cmd, c: &mut dyn ConnectionLike) -> RedisResult<Value> {
    match cmd.query(c) {
        Err(e) if e.kind() == redis::ServerErrorKind::NoScript.into() => {
            script.load(c)?;
            cmd.query(c)
        }
        result => result,
    }
}

/// The script's answer: the seq, and whether it was a duplicate.
fn published(value: Value) -> Result<Published, Unavailable> {
    let (seq, duplicate) = redis::from_redis_value::<(u64, u8)>(value)
        .map_err(|e| format!("redis: the message script answered {e}"))?;
    Ok(Published {
        seq,
        duplicate: duplicate == 1,
        local: None,
    })
}

/// Numbers and sends `batch`, in its order: one answer per message.
pub fn messages(
    link: &Link,
    renewals: &mut Renewals,
    batch: &[Outgoing<'_>],
) -> Vec<Result<Published, Unavailable>> {
    let now = Instant::now();
    let session = link.reconnects.load(Ordering::Relaxed);
    let calls: Vec<(Cmd, bool)> = batch
        .iter()
        .map(|m| {
            let renew = renewals.due(m.room, now, session);
            (message_call(link, m, renew), renew)
        })
        .collect();
    // `None`: send it alone (below).
    let mut answers: Vec<Option<Result<Value, Unavailable>>> = vec![None; batch.len()];
    if batch.len() > 1 {
        for (shard, group) in by_shard(link, batch) {
            let mut packed = Vec::new();
            for &i in &group {
                calls[i].0.write_packed_command(&mut packed);
            }
            let Replies {
                values: replies,
                failed,
            } = match &shard {
                Some(addr) => on_shard(link, addr, &packed, group.len()),
                // A slot no shard is known to serve: each goes alone, routed (one
                // Redis whose address is not known yet: the same).
                None => continue,
            };
            // Those whose answers were not read may have run: none is sent again,
            // or it would be published twice.
            let unread = &group[replies.len()..];
            if let Some(why) = &failed {
                for &i in unread {
                    answers[i] = Some(Err(why.clone()));
                }
            }
            for (k, value) in replies.iter().enumerate() {
                let i = group[k];
                let Value::ServerError(error) = value else {
                    answers[i] = Some(Ok(value.clone()));
                    continue;
                };
                // Refused (`NOSCRIPT`, `MOVED`, ...): sent again alone below, unless a
                // later message of its room went through, which it must not follow.
                let overtaken = group[k + 1..replies.len()]
                    .iter()
                    .zip(&replies[k + 1..])
                    .any(|(&j, v)| batch[j].room == batch[i].room && !is_error(v))
                    || unread.iter().any(|&j| batch[j].room == batch[i].room);
                if overtaken {
                    answers[i] = Some(Err(format!("redis: {error:?}")));
                }
            }
        }
    }
    let script = &link.scripts.message;
    let mut results = Vec::with_capacity(batch.len());
    for (i, answer) in answers.into_iter().enumerate() {
        let answer = answer.unwrap_or_else(|| link.call(|c| evalsha(script, &calls[i].0, c)));
        let result = answer.and_then(published);
        // A duplicate answers before the script renews anything.
        if calls[i].1 && result.as_ref().is_ok_and(|p| !p.duplicate) {
            renewals.renewed(batch[i].room, now, session);
        }
        results.push(result);
    }
    results
}

fn is_error(value: &Value) -> bool {
    matches!(value, Value::ServerError(_))
}

/// What a shard's pipeline gave: the replies read, in order, and why the rest were
/// not (they may have run).
struct Replies {
    values: Vec<Value>,
    failed: Option<Unavailable>,
}

/// `packed` (`n` commands) on this node's own connection to the shard at `addr`:
/// each command's reply, as far as they could be read. Not through the cluster
/// connection, which answers a pipeline with its first error and sends the whole
/// pipeline again (to follow a `MOVED`, after a `TRYAGAIN`): the commands that had
/// run would run twice.
fn on_shard(link: &Link, (host, port): &(String, u16), packed: &[u8], n: usize) -> Replies {
    let failed = |why: Unavailable| Replies {
        values: Vec::new(),
        failed: Some(why),
    };
    if let Some(reason) = link.unavailable() {
        return failed(reason);
    }
    let mut pipes = link.pipes.lock().unwrap_or_else(|p| p.into_inner());
    let key = (host.clone(), *port);
    // A connection the server closed meanwhile (a restart, an idle timeout) is
    // opened again before anything is written to it.
    if pipes.get(&key).is_some_and(|pipe| !is_open(pipe.get_ref())) {
        pipes.remove(&key);
    }
    if !pipes.contains_key(&key) {
        let start = Instant::now();
        match open_pipe(link, host, *port) {
            Ok(pipe) => {
                pipes.insert(key.clone(), pipe);
            }
            Err(why) => {
                link.errors.fetch_add(1, Ordering::Relaxed);
                link.trip(start.elapsed());
                return failed(why);
            }
        }
    }
    let pipe = pipes.get_mut(&key).expect("inserted");
    link.round_trips.fetch_add(1, Ordering::Relaxed);
    let start = Instant::now();
    let mut values = Vec::with_capacity(n);
    let mut error = pipe
        .get_mut()
        .write_all(packed)
        .err()
        .map(|e| e.to_string());
    if error.is_none() {
        let mut parser = redis::Parser::new();
        while values.len() < n {
            match parser.parse_value(&mut *pipe) {
                Ok(value) => values.push(value),
                Err(e) => {
                    error = Some(e.to_string());
                    break;
                }
            }
        }
    }
    let took = start.elapsed();
    // A pipeline may take longer than one call; slow for its size trips the breaker.
    if took > SLOW * (1 + n as u32 / 32) {
        link.trip(took);
    }
    let failed = error.map(|e| {
        pipes.remove(&key);
        link.errors.fetch_add(1, Ordering::Relaxed);
        format!("redis {host}:{port}: {e}")
    });
    Replies { values, failed }
}

/// A connection of the node's own to the shard at `host:port`, authenticated.
fn open_pipe(link: &Link, host: &str, port: u16) -> Result<BufReader<TcpStream>, Unavailable> {
    let shard = ShardAddr {
        host: host.to_string(),
        port,
        slots: Vec::new(),
    };
    let stream = subscriber::connect(&shard, &link.auth, TIMEOUT)?;
    stream
        .set_read_timeout(Some(TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(TIMEOUT)))
        .map_err(|e| format!("redis {host}:{port}: {e}"))?;
    let mut pipe = BufReader::new(stream);
    if link.db != 0 {
        let select = redis::cmd("SELECT").arg(link.db).get_packed_command();
        pipe.get_mut()
            .write_all(&select)
            .map_err(|e| format!("redis {host}:{port}: {e}"))?;
        match redis::Parser::new().parse_value(&mut pipe) {
            Ok(Value::Okay) | Ok(Value::SimpleString(_)) => {}
            other => return Err(format!("redis {host}:{port}: SELECT answered {other:?}")),
        }
    }
    Ok(pipe)
}

/// Whether the server has not closed `stream`: nothing is due on it between
/// pipelines, so a read that would block says open, and an end or an error closed.
fn is_open(stream: &TcpStream) -> bool {
    if stream.set_nonblocking(true).is_err() {
        return false;
    }
    let open =
        matches!(stream.peek(&mut [0]), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
    stream.set_nonblocking(false).is_ok() && open
}

/// A shard's address, if known, and the indexes of the batch's messages for it.
type Group = (Option<(String, u16)>, Vec<usize>);

/// The indexes of `batch` grouped by the address of the shard that holds their room
/// (in a cluster; else one group, `None`), each group in the batch's order. Rooms
/// whose slot no shard is known to serve are grouped under `None`.
fn by_shard(link: &Link, batch: &[Outgoing<'_>]) -> Vec<Group> {
    if !link.cluster() {
        // One Redis: its address, if the subscriber has it.
        let shard = link.subscriptions.shard_of(&room_channel(batch[0].room));
        return vec![(shard, (0..batch.len()).collect())];
    }
    let mut groups: Vec<Group> = Vec::new();
    for (i, m) in batch.iter().enumerate() {
        let shard = link.subscriptions.shard_of(&room_channel(m.room));
        match groups.iter_mut().find(|(s, _)| *s == shard) {
            Some((_, group)) => group.push(i),
            None => groups.push((shard, vec![i])),
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_room_is_renewed_once_an_hour_and_again_after_a_reconnection() {
        let mut renewals = Renewals::default();
        let t0 = Instant::now();
        assert!(renewals.due("lobby", t0, 0));
        renewals.renewed("lobby", t0, 0);
        assert!(!renewals.due("lobby", t0 + Duration::from_secs(60), 0));
        assert!(renewals.due("lobby", t0 + Duration::from_secs(60), 1));
        assert!(renewals.due("lobby", t0 + RENEWAL, 0));
    }

    #[test]
    fn pruning_keeps_what_is_recent() {
        let mut renewals = Renewals::default();
        let t0 = Instant::now();
        for i in 0..RENEWALS_KEPT {
            renewals.renewed(&format!("old{i}"), t0, 0);
        }
        let later = t0 + RENEWAL;
        renewals.renewed("new", later, 0);
        assert_eq!(renewals.at.len(), 1, "the hour-old ones went");
        assert!(!renewals.due("new", later, 0));
        assert_eq!(renewals.prune_at, RENEWALS_KEPT);
    }
}
