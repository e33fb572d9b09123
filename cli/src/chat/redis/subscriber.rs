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
//! The reader threads never take the chat lock (a loop may hold it while it waits
//! for a confirmation): they pass what they read to the node thread through a bounded
//! queue. When the queue is full a reader waits; Redis then buffers, and past its
//! `client-output-buffer-limit pubsub` it drops the connection: the node reconnects
//! and catches its members up from the room logs.

use redis::{Cmd, Value};
use std::collections::HashMap;
use std::io::{BufReader, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long a room's channel stays subscribed after the node's last member or stream
/// in it went.
pub const LINGER: Duration = Duration::from_secs(10);

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

/// The node's subscriber connections and channels; shared by the loops (which
/// subscribe), the readers (which confirm) and the node thread (which unsubscribes).
pub struct Subscriptions {
    sharded: bool,
    table: Mutex<Table>,
    confirmed: Condvar,
    /// Messages read from Redis (`rfc6455_redis_messages_received_total`).
    pub received: AtomicU64,
}

impl Subscriptions {
    /// `sharded`: `SSUBSCRIBE` (Redis Cluster), else `SUBSCRIBE`.
    pub fn new(sharded: bool) -> Self {
        Subscriptions {
            sharded,
            table: Mutex::new(Table::default()),
            confirmed: Condvar::new(),
            received: AtomicU64::new(0),
        }
    }

    /// Whether channels are sharded (Redis Cluster).
    pub fn sharded(&self) -> bool {
        self.sharded
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
        inbound: SyncSender<Inbound>,
    ) -> Result<u64, String> {
        self.close();
        let generation = self.table().generation;
        let mut opened = Vec::new();
        for shard in shards {
            let stream = connect(&shard, auth, timeout)?;
            let reader = stream.try_clone().map_err(|e| format!("redis: {e}"))?;
            let subs = self.clone();
            let inbound = inbound.clone();
            std::thread::Builder::new()
                .name("rfc6455-redis-sub".into())
                .spawn(move || subs.read(generation, reader, inbound))
                .map_err(|e| e.to_string())?;
            opened.push((shard, stream));
        }
        self.table().shards = opened;
        Ok(generation)
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
    /// confirm it. `Ok(true)` if this call subscribed it, `Ok(false)` if it was.
    pub fn subscribe(
        &self,
        channel: &str,
        room: Option<&str>,
        timeout: Duration,
    ) -> Result<bool, String> {
        let mut table = self.table();
        let generation = table.generation;
        let newly = match table.channels.get_mut(channel) {
            Some(c) => {
                c.wanted_at = Instant::now();
                false
            }
            None => {
                let slot = super::scripts::slot_of(channel);
                let shard = table
                    .shards
                    .iter()
                    .position(|(addr, _)| addr.slots.iter().any(|(a, b)| (*a..=*b).contains(&slot)))
                    .ok_or_else(|| format!("redis: no shard serves slot {slot}"))?;
                let command = if self.sharded {
                    "SSUBSCRIBE"
                } else {
                    "SUBSCRIBE"
                };
                let packed = Cmd::new().arg(command).arg(channel).get_packed_command();
                (&table.shards[shard].1)
                    .write_all(&packed)
                    .map_err(|e| format!("redis: subscribing: {e}"))?;
                table.channels.insert(
                    channel.to_string(),
                    Channel {
                        state: State::Pending,
                        shard,
                        room: room.map(str::to_string),
                        wanted_at: Instant::now(),
                    },
                );
                true
            }
        };
        let deadline = Instant::now() + timeout;
        loop {
            if table.generation != generation {
                return Err("redis: reconnecting".into());
            }
            match table.channels.get(channel).map(|c| c.state) {
                Some(State::Active) => return Ok(newly),
                Some(State::Pending) => {}
                None => return Err("redis: unsubscribed meanwhile".into()),
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err("redis: no answer to a subscribe".into());
            }
            table = self
                .confirmed
                .wait_timeout(table, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
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

    /// The rooms whose channels are subscribed.
    pub fn rooms(&self) -> Vec<String> {
        self.table()
            .channels
            .values()
            .filter_map(|c| c.room.clone())
            .collect()
    }

    /// A reader thread: until its connection breaks, passes the messages on and
    /// records the confirmations.
    fn read(&self, generation: u64, stream: TcpStream, inbound: SyncSender<Inbound>) {
        let mut reader = BufReader::new(stream);
        let mut parser = redis::Parser::new();
        let reason = loop {
            let value = match parser.parse_value(&mut reader) {
                Ok(v) => v,
                Err(e) => break format!("redis: subscriber: {e}"),
            };
            let Value::Array(items) = value else { continue };
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
fn connect(shard: &ShardAddr, auth: &Auth, timeout: Duration) -> Result<TcpStream, String> {
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
