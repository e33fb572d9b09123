//! The node's subscriptions: which channels it listens to, on which Redis, and the
//! threads that read them.
//!
//! A node listens to its own channel, and to a room's channel while it has a member
//! or a stream in the room (and [`LINGER`] after the last one went, so that a page
//! reloading does not unsubscribe and subscribe again). A node with no one in a room
//! receives none of its traffic.
//!
//! **One connection per shard.** A single Redis is one shard; a Redis Cluster has one
//! per primary, and a room's channel is subscribed (`SSUBSCRIBE`) on the primary that
//! holds its slot. Each connection has a reader thread. The redis crate's blocking
//! pub/sub cannot subscribe while another thread reads, so the connection is a
//! `TcpStream` of ours: the loops write `SUBSCRIBE` on it and wait for the reader to
//! see the confirmation, and the crate's [`redis::Parser`] reads the replies.
//!
//! **Subscribed before read.** A loop joining a room this node does not follow yet
//! subscribes first and waits for the confirmation, then runs the join script: every
//! event after the state the join reads reaches the node. (Events before it that
//! arrive after are skipped by their position, as for any join.)
//!
//! The reader threads never take the chat lock, and never wait for the node thread (a
//! loop may hold the lock while it waits for a confirmation that follows messages on
//! the same connection): they pass what they read on through a queue bounded in bytes
//! ([`MAX_QUEUED`]). A node that falls that far behind drops its connections and
//! reconnects: its members catch up from the room logs.

use redis::{Cmd, Value};
use std::collections::HashMap;
use std::io::{BufReader, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long a room's channel stays subscribed after the node's last member or stream
/// in it went.
pub const LINGER: Duration = Duration::from_secs(10);

/// Bytes read from Redis and not yet delivered, at most.
pub const MAX_QUEUED: usize = 64 << 20;

/// What the reader threads pass to the node thread.
pub enum Inbound {
    /// A message on a channel, read by the connection of `generation`.
    Message {
        generation: u64,
        channel: String,
        payload: Vec<u8>,
    },
    /// A shard's connection broke, or Redis moved a subscribed channel's slot
    /// elsewhere: the node must reconnect and resubscribe.
    Lost { generation: u64, reason: String },
}

/// Where a shard's primary listens, and the slots it serves (all of them for a
/// single Redis).
#[derive(Debug, Clone)]
pub struct ShardAddr {
    pub host: String,
    pub port: u16,
    pub slots: Vec<(u16, u16)>,
}

/// Credentials sent on each subscriber connection (`AUTH`).
#[derive(Debug, Clone, Default)]
pub struct Auth {
    pub username: Option<String>,
    pub password: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    /// `SUBSCRIBE` written, its confirmation not read yet.
    Pending,
    Active,
}

struct Channel {
    state: State,
    /// When its `SUBSCRIBE` went out.
    asked_at: Instant,
    /// Recorded in Redis as this node's room (for the reaper).
    registered: bool,
    shard: usize,
    /// The room it carries (`None`: the node's channel), and when the node last had
    /// someone in it.
    room: Option<String>,
    wanted_at: Instant,
}

#[derive(Default)]
struct Table {
    /// Counts the connections opened: a reader's report names its own.
    generation: u64,
    shards: Vec<(ShardAddr, TcpStream)>,
    channels: HashMap<String, Channel>,
}

impl Table {
    /// The index of the shard that serves `key`'s slot, or the slot that none serves.
    fn shard_of(&self, key: &str) -> Result<usize, u16> {
        let slot = super::scripts::slot_of(key);
        self.shards
            .iter()
            .position(|(addr, _)| addr.slots.iter().any(|(a, b)| (*a..=*b).contains(&slot)))
            .ok_or(slot)
    }
}

/// The node's subscriber connections and channels; shared by the loops (which
/// subscribe), the readers (which confirm) and the node thread (which unsubscribes).
pub struct Subscriptions {
    sharded: bool,
    table: Mutex<Table>,
    confirmed: Condvar,
    /// Messages read from Redis (`rfc6455_redis_messages_received_total`).
    pub received: AtomicU64,
    /// Bytes read and not yet taken by the node thread.
    queued: AtomicUsize,
}

impl Subscriptions {
    /// `sharded`: `SSUBSCRIBE` (Redis Cluster), else `SUBSCRIBE`.
    pub fn new(sharded: bool) -> Self {
        Subscriptions {
            sharded,
            table: Mutex::new(Table::default()),
            confirmed: Condvar::new(),
            received: AtomicU64::new(0),
            queued: AtomicUsize::new(0),
        }
    }

    /// Whether channels are sharded (Redis Cluster).
    pub fn sharded(&self) -> bool {
        self.sharded
    }

    /// The address of the shard (as last read) that serves `key`'s slot: commands
    /// for keys of one shard can share a pipeline.
    pub fn shard_of(&self, key: &str) -> Option<(String, u16)> {
        let table = self.table();
        let shard = table.shard_of(key).ok()?;
        let (addr, _) = &table.shards[shard];
        Some((addr.host.clone(), addr.port))
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Connects to every shard and starts a reader for each; returns the generation
    /// the readers report with. Subscribes nothing yet.
    pub fn open(
        self: &Arc<Self>,
        shards: Vec<ShardAddr>,
        auth: &Auth,
        timeout: Duration,
        inbound: Sender<Inbound>,
    ) -> Result<u64, String> {
        self.close();
        self.queued.store(0, Ordering::Relaxed);
        let generation = self.table().generation;
        let mut opened: Vec<(ShardAddr, TcpStream)> = Vec::new();
        for shard in shards {
            let started = connect(&shard, auth, timeout).and_then(|stream| {
                let reader = stream.try_clone().map_err(|e| format!("redis: {e}"))?;
                let subs = self.clone();
                let inbound = inbound.clone();
                std::thread::Builder::new()
                    .name("rfc6455-redis-sub".into())
                    .spawn(move || subs.read(generation, reader, inbound))
                    .map_err(|e| e.to_string())?;
                Ok(stream)
            });
            match started {
                Ok(stream) => opened.push((shard, stream)),
                Err(e) => {
                    // The readers started so far end with their connections.
                    for (_, stream) in opened {
                        let _ = stream.shutdown(Shutdown::Both);
                    }
                    return Err(e);
                }
            }
        }
        self.table().shards = opened;
        Ok(generation)
    }

    /// The node thread took a message of `len` bytes off the queue.
    pub fn took(&self, len: usize) {
        self.queued.fetch_sub(len, Ordering::Relaxed);
    }

    /// Closes every connection (their readers end) and forgets every channel.
    pub fn close(&self) {
        let mut table = self.table();
        for (_, stream) in table.shards.drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
        table.channels.clear();
        table.generation += 1;
        self.confirmed.notify_all();
    }

    /// Subscribes to `channel` (of `room`, if it is a room's) and waits for Redis to
    /// confirm it. `Ok(true)` if the node has yet to record the room as its own in
    /// Redis (then [`Subscriptions::registered`]).
    pub fn subscribe(
        &self,
        channel: &str,
        room: Option<&str>,
        timeout: Duration,
    ) -> Result<bool, String> {
        self.ask(channel, room)?;
        self.wait(channel, timeout)
    }

    /// Subscribes to every channel of `rooms` at once, then waits for them all.
    pub fn subscribe_all(&self, rooms: &[String], timeout: Duration) -> Result<(), String> {
        for room in rooms {
            self.ask(&super::scripts::room_channel(room), Some(room))?;
        }
        for room in rooms {
            self.wait(&super::scripts::room_channel(room), timeout)?;
        }
        Ok(())
    }

    /// Writes the `SUBSCRIBE` of `channel` unless it is asked or confirmed.
    fn ask(&self, channel: &str, room: Option<&str>) -> Result<(), String> {
        let mut table = self.table();
        if let Some(c) = table.channels.get_mut(channel) {
            c.wanted_at = Instant::now();
            return Ok(());
        }
        let shard = table
            .shard_of(channel)
            .map_err(|slot| format!("redis: no shard serves slot {slot}"))?;
        let command = if self.sharded {
            "SSUBSCRIBE"
        } else {
            "SUBSCRIBE"
        };
        let packed = Cmd::new().arg(command).arg(channel).get_packed_command();
        (&table.shards[shard].1)
            .write_all(&packed)
            .map_err(|e| format!("redis: subscribing: {e}"))?;
        let now = Instant::now();
        table.channels.insert(
            channel.to_string(),
            Channel {
                state: State::Pending,
                asked_at: now,
                registered: room.is_none(),
                shard,
                room: room.map(str::to_string),
                wanted_at: now,
            },
        );
        Ok(())
    }

    /// Waits until `channel`'s subscription is confirmed; `Ok(true)` if its room is
    /// not recorded in Redis yet. A subscription unconfirmed after `timeout` is
    /// forgotten (the next join asks again).
    fn wait(&self, channel: &str, timeout: Duration) -> Result<bool, String> {
        let mut table = self.table();
        let generation = table.generation;
        loop {
            if table.generation != generation {
                return Err("redis: reconnecting".into());
            }
            let Some(c) = table.channels.get(channel) else {
                return Err("redis: unsubscribed meanwhile".into());
            };
            if c.state == State::Active {
                return Ok(!c.registered);
            }
            let left = (c.asked_at + timeout).saturating_duration_since(Instant::now());
            if left.is_zero() {
                table.channels.remove(channel);
                return Err("redis: no answer to a subscribe".into());
            }
            table = self
                .confirmed
                .wait_timeout(table, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Records that `channel`'s room is in Redis as this node's.
    pub fn registered(&self, channel: &str) {
        if let Some(c) = self.table().channels.get_mut(channel) {
            c.registered = true;
        }
    }

    /// Unsubscribes from the channels of the rooms not in `wanted` for [`LINGER`];
    /// returns those rooms. The caller holds the chat lock, so that no loop joins one
    /// of them meanwhile.
    pub fn drop_unwanted(&self, wanted: &dyn Fn(&str) -> bool) -> Vec<String> {
        let mut table = self.table();
        let now = Instant::now();
        let mut dropped = Vec::new();
        let mut commands = Vec::new();
        table.channels.retain(|channel, c| {
            let Some(room) = &c.room else { return true };
            if wanted(room) {
                c.wanted_at = now;
                return true;
            }
            if now.duration_since(c.wanted_at) < LINGER || c.state != State::Active {
                return true;
            }
            dropped.push(room.clone());
            commands.push((c.shard, channel.clone()));
            false
        });
        let command = if self.sharded {
            "SUNSUBSCRIBE"
        } else {
            "UNSUBSCRIBE"
        };
        for (shard, channel) in commands {
            if let Some((_, stream)) = table.shards.get(shard) {
                let packed = Cmd::new().arg(command).arg(&channel).get_packed_command();
                let _ = (&*stream).write_all(&packed);
            }
        }
        dropped
    }

    /// The rooms whose channels are subscribed (confirmed).
    pub fn rooms(&self) -> Vec<String> {
        self.table()
            .channels
            .values()
            .filter(|c| c.state == State::Active)
            .filter_map(|c| c.room.clone())
            .collect()
    }

    /// A reader thread: until its connection breaks, passes the messages on and
    /// records the confirmations.
    fn read(&self, generation: u64, stream: TcpStream, inbound: Sender<Inbound>) {
        let mut reader = BufReader::new(stream);
        let mut parser = redis::Parser::new();
        let reason = loop {
            let value = match parser.parse_value(&mut reader) {
                Ok(v) => v,
                Err(e) => break format!("redis: subscriber: {e}"),
            };
            let items = match value {
                Value::Array(items) => items,
                // An error answers a subscribe: `MOVED` (the slot is on another shard
                // now), `CLUSTERDOWN`, ... The node reads the slots again.
                Value::ServerError(e) => break format!("redis: subscribing: {e:?}"),
                _ => continue,
            };
            let text = |i: usize| match items.get(i) {
                Some(Value::BulkString(b)) => Some(String::from_utf8_lossy(b).into_owned()),
                _ => None,
            };
            let (Some(kind), Some(channel)) = (text(0), text(1)) else {
                continue;
            };
            match kind.as_str() {
                "message" | "smessage" => {
                    self.received.fetch_add(1, Ordering::Relaxed);
                    let Some(Value::BulkString(payload)) = items.into_iter().nth(2) else {
                        continue;
                    };
                    let queued = self.queued.fetch_add(payload.len(), Ordering::Relaxed);
                    if queued > MAX_QUEUED {
                        break format!(
                            "redis: {} MiB read and not delivered yet: catching up from the logs",
                            queued >> 20
                        );
                    }
                    let message = Inbound::Message {
                        generation,
                        channel,
                        payload,
                    };
                    if inbound.send(message).is_err() {
                        return;
                    }
                }
                "subscribe" | "ssubscribe" => self.confirm(generation, &channel),
                "unsubscribe" | "sunsubscribe" => {
                    if let Some(reason) = self.unsubscribed(generation, &channel) {
                        break reason;
                    }
                }
                _ => {}
            }
        };
        let _ = inbound.send(Inbound::Lost { generation, reason });
    }

    fn confirm(&self, generation: u64, channel: &str) {
        let mut table = self.table();
        if table.generation != generation {
            return;
        }
        if let Some(c) = table.channels.get_mut(channel) {
            c.state = State::Active;
        }
        self.confirmed.notify_all();
    }

    /// An unsubscribe the node did not ask for (Redis Cluster moved the channel's
    /// slot to another shard) is a reason to resubscribe everything.
    fn unsubscribed(&self, generation: u64, channel: &str) -> Option<String> {
        let table = self.table();
        let ours = table.generation == generation;
        let active = table
            .channels
            .get(channel)
            .is_some_and(|c| c.state == State::Active);
        (ours && active).then(|| format!("redis: {channel} moved to another shard"))
    }
}

/// A subscriber connection to `shard`, authenticated.
pub fn connect(shard: &ShardAddr, auth: &Auth, timeout: Duration) -> Result<TcpStream, String> {
    let fail = |e: std::io::Error| format!("redis {}:{}: {e}", shard.host, shard.port);
    let addr = (shard.host.as_str(), shard.port)
        .to_socket_addrs()
        .map_err(fail)?
        .next()
        .ok_or_else(|| format!("redis {}: no address", shard.host))?;
    let stream = TcpStream::connect_timeout(&addr, timeout).map_err(fail)?;
    stream.set_nodelay(true).map_err(fail)?;
    if let Some(password) = &auth.password {
        let mut command = Cmd::new();
        command.arg("AUTH");
        if let Some(user) = &auth.username {
            command.arg(user);
        }
        command.arg(password);
        stream.set_read_timeout(Some(timeout)).map_err(fail)?;
        (&stream)
            .write_all(&command.get_packed_command())
            .map_err(fail)?;
        match redis::Parser::new().parse_value(&stream) {
            Ok(Value::Okay) | Ok(Value::SimpleString(_)) => {}
            Ok(other) => return Err(format!("redis: AUTH answered {other:?}")),
            Err(e) => return Err(format!("redis: AUTH: {e}")),
        }
        stream.set_read_timeout(None).map_err(fail)?;
    }
    Ok(stream)
}
