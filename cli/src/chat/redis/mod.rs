//! The Redis hub: several `rfc6455 serve` processes ("nodes") share rooms through one
//! Redis (`serve --redis redis://HOST:PORT/`), the primary that Redis Sentinel names
//! (`serve --redis-sentinel redis://S1:P1,...`), or a Redis Cluster (`serve
//! --redis-cluster redis://H1:P1,redis://H2:P2,...`).
//!
//! **Who owns what.** The event loops own the connections. The chat lock guards this
//! node's view (who is in which room here, each member's cursor). Redis holds what the
//! nodes share: the keys and scripts are in [`scripts`], one room per slot.
//!
//! **How a message travels** from a sender on node A to a member on node B: A's loop
//! runs one Lua script on the room's slot (`INCR seq`, `ZADD` + trim the log,
//! `PUBLISH` on the room's channel; `SPUBLISH` in a cluster, so that it goes through
//! the room's shard only), atomically, so the channel carries a room's messages in seq
//! order (a loop's messages of one turn share one pipelined round trip per shard:
//! [`publish`]). Every node with a member or a stream in the room is subscribed to its
//! channel ([`subscriber`]); B's reader thread passes the message to B's node thread
//! (this module), which, under B's chat lock, posts the frame to the member's loop
//! through the server [`Handle`]. A's own members get it the same way, so that every
//! member everywhere sees one order. A member who joins gets the log up to the seq it
//! read (its cursor) and, live, only what comes after. Direct messages go to the
//! channel of each node that holds the user's name (`{g}:names`), and the node answers
//! on the sender's node channel.
//!
//! **Failures.** Redis unreachable (or one cluster shard's primary): every request
//! that needs it gets an `unavailable` error at once (nothing is queued), `/healthz`
//! answers 503 with the reason, and the node thread reconnects with backoff (0.1 s
//! doubling to 2 s), reading the cluster's shards again or asking the sentinels for
//! the primary again (a promoted replica is the new primary). Once back, it subscribes, re-registers this node's users and rooms
//! (restoring each room's seq if Redis lost it), delivers what the logs hold beyond
//! what its members got, and only then reports healthy. A node that dies stops
//! refreshing its heartbeat; within `--node-timeout` plus a third of it another node
//! reaps it: its users' names are freed and each of its members is announced `left`.

mod flags;
mod publish;
mod scripts;
mod subscriber;

pub use flags::RedisArgs;

use super::hub::{self, HealthCheck, Hub, Joined, Outgoing, Published, RoomEvent, Unavailable};
use super::{lock, ChatState};
use redis::{ConnectionLike, RedisResult, Value};
use rfc6455::server::Handle;
use scripts::{global, node_channel, node_key, room_channel, room_key, Scripts};
use serde_json::{json, Value as Json};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use subscriber::{Inbound, ShardAddr, Subscriptions};

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
/// A node renews the keys of the rooms it follows this often, so that a quiet room
/// with people in it keeps its seq (they expire after [`scripts::ROOM_TTL`]).
const ROOM_RENEWAL: Duration = Duration::from_secs(600);
/// How often the node thread looks for channels nobody here needs any more.
const UNSUBSCRIBE_CHECK: Duration = Duration::from_secs(1);

/// Which Redis the nodes share.
#[derive(Debug, Clone)]
pub enum Target {
    /// One Redis (or a primary with replicas): `redis://[:PASSWORD@]HOST:PORT[/DB]`.
    Single(String),
    /// A Redis Cluster, by some of its nodes (the rest are read from them).
    Cluster(Vec<String>),
    /// The primary that these Redis Sentinels monitor under `service`, whichever
    /// server that is now: asked again at every reconnection, so a failover is
    /// followed. Each sentinel's URL carries that sentinel's credentials; the
    /// primary's are `primary_auth`.
    Sentinel {
        sentinels: Vec<String>,
        service: String,
        primary_auth: subscriber::Auth,
    },
}

/// A command connection: to one Redis, or to a cluster (which routes each command to
/// the shard of its first key and follows `MOVED`/`ASK`).
type Commands = Box<dyn ConnectionLike + Send>;
/// What the hub (on the loops, under the chat lock) and the node thread share.
struct Link {
    node: String,
    history: usize,
    signed_users: bool,
    scripts: Scripts,
    /// The command connection; `None` while Redis is unreachable.
    conn: Mutex<Option<Commands>>,
    subscriptions: Arc<Subscriptions>,
    /// The primaries' credentials and database, for the pipelines' own connections.
    auth: subscriber::Auth,
    db: i64,
    /// In a cluster, a connection of this node's own to each shard, by address, for
    /// the pipelines of [`publish`] (opened on first use, dropped when one fails).
    pipes: Mutex<HashMap<(String, u16), std::io::BufReader<std::net::TcpStream>>>,
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
    /// A change that spans slots (a rename, a release) failed halfway: the node
    /// thread makes Redis agree with this node again (a resync).
    repair: AtomicBool,
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

    /// A loop's call took `took`, too long: the breaker opens (see `SLOW`).
    fn trip(&self, took: Duration) {
        log::warn!(
            "redis: a call took {} ms; loops stop calling until it is fast",
            took.as_millis()
        );
        self.breaker().tripped = Some((Instant::now(), took));
    }

    /// Why Redis cannot serve the loops now: down, or slow (the breaker is open).
    fn unavailable(&self) -> Option<String> {
        self.down_reason()
            .or_else(|| self.breaker().open(Instant::now()))
    }

    /// One round trip on the command connection. A failure of the connection (not of
    /// a script) marks Redis down and drops the connection: the node thread reconnects.
    /// While the breaker is open, nothing is sent: the caller is answered at once.
    fn call<T>(
        &self,
        f: impl FnOnce(&mut dyn ConnectionLike) -> RedisResult<T>,
    ) -> Result<T, Unavailable> {
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
        let result = f(c.as_mut());
        let took = start.elapsed();
        if took > SLOW {
            self.trip(took);
        }
        result.map_err(|e| {
            self.errors.fetch_add(1, Ordering::Relaxed);
            let reason = format!("redis: {e}");
            // READONLY: the server was a primary and is a replica now (a failover
            // under Sentinel): the node must find the new primary.
            if e.is_io_error()
                || e.is_timeout()
                || e.is_connection_dropped()
                || e.is_unrecoverable_error()
                || e.kind() == redis::ServerErrorKind::ReadOnly.into()
            {
                log::warn!("{reason}: reconnecting");
                *conn = None;
                self.set_down(Some(reason.clone()));
            }
            reason
        })
    }
}

impl Link {
    /// Makes sure this node is subscribed to `room`'s channel before a join or a
    /// stream reads the room; the first time, records the room as this node's (for
    /// the reaper).
    fn follow(&self, room: &str) -> Result<(), Unavailable> {
        if let Some(reason) = self.unavailable() {
            return Err(reason);
        }
        let channel = room_channel(room);
        let unregistered = self
            .subscriptions
            .subscribe(&channel, Some(room), TIMEOUT)?;
        if unregistered {
            self.call(|c| {
                redis::cmd("SADD")
                    .arg(node_key(&self.node, "rooms"))
                    .arg(room)
                    .query::<i64>(c)
            })?;
            self.subscriptions.registered(&channel);
        }
        Ok(())
    }

    /// `PUBLISH` (or `SPUBLISH` in a cluster) on a node's channel.
    fn publish(&self, channel: &str, payload: &str) -> Result<i64, Unavailable> {
        let command = if self.cluster() {
            "SPUBLISH"
        } else {
            "PUBLISH"
        };
        self.call(|c| redis::cmd(command).arg(channel).arg(payload).query(c))
    }

    fn cluster(&self) -> bool {
        self.subscriptions.sharded()
    }

    /// The nodes that hold `name` in `{g}:names`.
    fn holders(&self, name: &str) -> Result<Vec<String>, Unavailable> {
        let value: Option<String> =
            self.call(|c| redis::cmd("HGET").arg(global("names")).arg(name).query(c))?;
        Ok(value
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect())
    }
}

/// The [`Hub`] of a node sharing rooms through Redis; made by [`start`].
pub struct RedisHub {
    link: Arc<Link>,
    renewals: publish::Renewals,
}

/// Options of `serve --redis` and `serve --redis-cluster`.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    pub target: Target,
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

/// How the node thread reaches Redis: the command connections and the shards to
/// subscribe on.
enum Connector {
    Single(redis::Client),
    Cluster(redis::cluster::ClusterClient),
    Sentinel {
        /// The sentinels, the one that answered last first.
        sentinels: Vec<redis::Client>,
        service: String,
        /// The credentials to reach the primary with.
        primary_settings: redis::RedisConnectionInfo,
        /// The primary the sentinels named for this session ([`Connector::prepare`]).
        primary: Option<redis::Client>,
    },
}

impl Connector {
    fn new(target: &Target) -> Result<Self, String> {
        match target {
            // The URL is not repeated in the error: it may hold a password.
            Target::Single(url) => redis::Client::open(url.as_str())
                .map(Connector::Single)
                .map_err(|e| format!("--redis: {e}")),
            Target::Sentinel {
                sentinels,
                service,
                primary_auth,
            } => {
                let clients = sentinels
                    .iter()
                    .map(|url| redis::Client::open(url.as_str()))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| format!("--redis-sentinel: {e}"))?;
                let mut settings = redis::RedisConnectionInfo::default();
                if let Some(user) = &primary_auth.username {
                    settings = settings.set_username(user);
                }
                if let Some(password) = &primary_auth.password {
                    settings = settings.set_password(password);
                }
                Ok(Connector::Sentinel {
                    sentinels: clients,
                    service: service.clone(),
                    primary_settings: settings,
                    primary: None,
                })
            }
            Target::Cluster(seeds) => redis::cluster::ClusterClient::builder(seeds.clone())
                .connection_timeout(TIMEOUT)
                .response_timeout(TIMEOUT)
                .retries(2)
                .build()
                .map(Connector::Cluster)
                .map_err(|e| format!("--redis-cluster: {e}")),
        }
    }

    /// Called at the start of each session: with Sentinel, asks the sentinels in turn
    /// which server is the primary now, and checks that the server says so itself
    /// (`ROLE`): a sentinel may not have seen a failover yet. Every step is bounded
    /// by [`TIMEOUT`] (the redis crate's own Sentinel client waits without a
    /// bound), so a silent sentinel or a vanished host costs seconds, not minutes.
    fn prepare(&mut self) -> Result<(), String> {
        let Connector::Sentinel {
            sentinels,
            service,
            primary_settings,
            primary,
        } = self
        else {
            return Ok(());
        };
        let mut why = String::from("no sentinel given");
        for i in 0..sentinels.len() {
            match named_primary(&sentinels[i], service, primary_settings) {
                Ok(client) => {
                    if let redis::ConnectionAddr::Tcp(host, port) =
                        client.get_connection_info().addr()
                    {
                        log::info!(
                            "redis: the sentinels name {host}:{port} as {service:?}'s primary"
                        );
                    }
                    // The one that answered is asked first next time.
                    sentinels[..=i].rotate_right(1);
                    *primary = Some(client);
                    return Ok(());
                }
                Err(e) => why = e,
            }
        }
        Err(format!("redis: sentinel: primary {service:?}: {why}"))
    }

    /// The one Redis's client: `--redis`'s, or the primary Sentinel named.
    fn single(&self) -> Option<&redis::Client> {
        match self {
            Connector::Single(client) => Some(client),
            Connector::Sentinel { primary, .. } => primary.as_ref(),
            Connector::Cluster(_) => None,
        }
    }

    fn commands(&self) -> Result<Commands, String> {
        let fail = |e: redis::RedisError| format!("redis: {e}");
        match self {
            Connector::Single(_) | Connector::Sentinel { .. } => {
                let client = self.single().ok_or("redis: no primary named yet")?;
                let conn = client.get_connection_with_timeout(TIMEOUT).map_err(fail)?;
                conn.set_read_timeout(Some(TIMEOUT)).map_err(fail)?;
                conn.set_write_timeout(Some(TIMEOUT)).map_err(fail)?;
                Ok(Box::new(conn))
            }
            Connector::Cluster(client) => {
                let conn = client.get_connection().map_err(fail)?;
                conn.set_read_timeout(Some(TIMEOUT)).map_err(fail)?;
                conn.set_write_timeout(Some(TIMEOUT)).map_err(fail)?;
                Ok(Box::new(conn))
            }
        }
    }

    /// The credentials for the subscriber connections: from the (first) URL, or
    /// the primary's under Sentinel.
    fn auth(target: &Target) -> subscriber::Auth {
        let url = match target {
            Target::Single(url) => url.as_str(),
            Target::Cluster(urls) => urls.first().map_or("", String::as_str),
            Target::Sentinel { primary_auth, .. } => return primary_auth.clone(),
        };
        redis::IntoConnectionInfo::into_connection_info(url)
            .map(|info| subscriber::Auth {
                username: info.redis_settings().username().map(str::to_string),
                password: info.redis_settings().password().map(str::to_string),
            })
            .unwrap_or_default()
    }

    /// The primaries to subscribe on and their slots: the one Redis, or what
    /// `CLUSTER SLOTS` says now.
    fn shards(&self, commands: &mut Commands) -> Result<Vec<ShardAddr>, String> {
        match self {
            Connector::Single(_) | Connector::Sentinel { .. } => {
                let client = self.single().ok_or("redis: no primary named yet")?;
                match client.get_connection_info().addr() {
                    redis::ConnectionAddr::Tcp(host, port) => Ok(vec![ShardAddr {
                        host: host.clone(),
                        port: *port,
                        slots: vec![(0, 16383)],
                    }]),
                    other => Err(format!("redis: {other:?}: only TCP is supported")),
                }
            }
            Connector::Cluster(_) => {
                let slots: Value = redis::cmd("CLUSTER")
                    .arg("SLOTS")
                    .query(commands.as_mut())
                    .map_err(|e| format!("redis: CLUSTER SLOTS: {e}"))?;
                cluster_shards(slots)
            }
        }
    }
}

/// The primary that `sentinel` names for `service`, if it says `role:master` itself:
/// a client for it with `settings` (its credentials).
fn named_primary(
    sentinel: &redis::Client,
    service: &str,
    settings: &redis::RedisConnectionInfo,
) -> Result<redis::Client, String> {
    let fail = |e: redis::RedisError| e.to_string();
    let mut conn = sentinel
        .get_connection_with_timeout(TIMEOUT)
        .map_err(fail)?;
    conn.set_read_timeout(Some(TIMEOUT)).map_err(fail)?;
    conn.set_write_timeout(Some(TIMEOUT)).map_err(fail)?;
    let named: Option<(String, u16)> = redis::cmd("SENTINEL")
        .arg("GET-MASTER-ADDR-BY-NAME")
        .arg(service)
        .query(&mut conn)
        .map_err(fail)?;
    let (host, port) = named.ok_or("the sentinel monitors no such name")?;
    let info = redis::IntoConnectionInfo::into_connection_info(redis::ConnectionAddr::Tcp(
        host.clone(),
        port,
    ))
    .map_err(fail)?
    .set_redis_settings(settings.clone());
    let client = redis::Client::open(info).map_err(fail)?;
    let mut conn = client.get_connection_with_timeout(TIMEOUT).map_err(fail)?;
    conn.set_read_timeout(Some(TIMEOUT)).map_err(fail)?;
    let role: Vec<Value> = redis::cmd("ROLE").query(&mut conn).map_err(fail)?;
    match role.first() {
        Some(Value::BulkString(r)) if r == b"master" => Ok(client),
        _ => Err(format!("{host}:{port} is not a primary (yet)")),
    }
}

/// The primaries in a `CLUSTER SLOTS` answer: `[[first, last, [host, port, id],
/// replicas...]...]`, grouped by primary.
fn cluster_shards(answer: Value) -> Result<Vec<ShardAddr>, String> {
    let bad = || "redis: CLUSTER SLOTS: an answer not understood".to_string();
    let Value::Array(ranges) = answer else {
        return Err(bad());
    };
    let mut shards: Vec<ShardAddr> = Vec::new();
    for range in ranges {
        let Value::Array(fields) = range else {
            return Err(bad());
        };
        let (Some(Value::Int(first)), Some(Value::Int(last)), Some(Value::Array(primary))) =
            (fields.first(), fields.get(1), fields.get(2))
        else {
            return Err(bad());
        };
        let (Some(Value::BulkString(host)), Some(Value::Int(port))) =
            (primary.first(), primary.get(1))
        else {
            return Err(bad());
        };
        let host = String::from_utf8_lossy(host).into_owned();
        let port = u16::try_from(*port).map_err(|_| bad())?;
        let slots = (
            u16::try_from(*first).map_err(|_| bad())?,
            u16::try_from(*last).map_err(|_| bad())?,
        );
        match shards.iter_mut().find(|s| s.host == host && s.port == port) {
            Some(shard) => shard.slots.push(slots),
            None => shards.push(ShardAddr {
                host,
                port,
                slots: vec![slots],
            }),
        }
    }
    let covered: u32 = shards
        .iter()
        .flat_map(|s| &s.slots)
        .map(|(a, b)| u32::from(*b) - u32::from(*a) + 1)
        .sum();
    if covered < 16384 {
        return Err(format!(
            "redis: the cluster serves {covered} of 16384 slots (a shard is failing over?)"
        ));
    }
    Ok(shards)
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
    let connector = Connector::new(&options.target)?;
    let sharded = matches!(options.target, Target::Cluster(_));
    let link = Arc::new(Link {
        node: new_node_id(),
        history: options.history,
        signed_users: options.signed_users,
        scripts: Scripts::new(sharded),
        conn: Mutex::new(None),
        subscriptions: Arc::new(Subscriptions::new(sharded)),
        auth: Connector::auth(&options.target),
        db: match &options.target {
            Target::Single(url) => redis::IntoConnectionInfo::into_connection_info(url.as_str())
                .map_or(0, |info| info.redis_settings().db()),
            _ => 0,
        },
        pipes: Mutex::new(HashMap::new()),
        down: Mutex::new(Some("redis: connecting".into())),
        round_trips: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        reconnects: AtomicU64::new(0),
        nodes_reaped: AtomicU64::new(0),
        breaker: Mutex::new(Breaker::default()),
        shed: AtomicU64::new(0),
        repair: AtomicBool::new(false),
    });
    let state = state_for(Box::new(RedisHub {
        link: link.clone(),
        renewals: publish::Renewals::default(),
    }));
    let node = NodeThread {
        auth: Connector::auth(&options.target),
        connector,
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
        let claimed = link.call(|c| {
            link.scripts
                .claim
                .key(global("names"))
                .key(node_key(&link.node, "names"))
                .arg(name)
                .arg(&link.node)
                .arg(old.unwrap_or(""))
                .invoke::<i64>(c)
        })? == 1;
        if let (true, Some(old)) = (claimed, old) {
            for room in rooms {
                link.call(|c| {
                    Scripts::on_room(&link.scripts.rename, room)
                        .arg(old)
                        .arg(name)
                        .arg(&link.node)
                        .invoke::<i64>(c)
                })
                .inspect_err(|_| link.repair.store(true, Ordering::Relaxed))?;
            }
        }
        Ok(claimed)
    }

    fn sign_in(&mut self, user: &str) -> Result<(), Unavailable> {
        let link = &self.link;
        link.call(|c| {
            link.scripts
                .sign_in
                .key(global("names"))
                .key(node_key(&link.node, "names"))
                .arg(user)
                .arg(&link.node)
                .invoke::<i64>(c)
        })?;
        Ok(())
    }

    fn release(&mut self, name: &str, rooms: &[String]) -> Result<Vec<RoomEvent>, Unavailable> {
        let link = &self.link;
        link.call(|c| {
            link.scripts
                .release
                .key(global("names"))
                .key(node_key(&link.node, "names"))
                .arg(name)
                .arg(&link.node)
                .invoke::<i64>(c)
        })?;
        for room in rooms {
            self.leave(room, name)
                .inspect_err(|_| self.link.repair.store(true, Ordering::Relaxed))?;
        }
        Ok(Vec::new())
    }

    fn join(&mut self, room: &str, name: &str, since: Option<u64>) -> Result<Joined, Unavailable> {
        let link = &self.link;
        link.follow(room)?;
        let since = since.map(|s| s.to_string()).unwrap_or_default();
        let state: RoomState = link.call(|c| {
            Scripts::on_room(&link.scripts.join, room)
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
        self.link.follow(room)?;
        self.read(room, since)
    }

    fn unlisten(&mut self, _room: &str) {
        // The node thread unsubscribes once nobody here follows the room (see
        // `subscriber::LINGER`); Redis keeps its seq while its keys live.
    }

    fn read(&mut self, room: &str, since: Option<u64>) -> Result<Joined, Unavailable> {
        let link = &self.link;
        let since = since.map(|s| s.to_string()).unwrap_or_default();
        let state: RoomState = link.call(|c| {
            Scripts::on_room(&link.scripts.listen, room)
                .arg(&since)
                .arg(hub::new_epoch())
                .invoke(c)
        })?;
        Ok(joined(state))
    }

    fn leave(&mut self, room: &str, name: &str) -> Result<Vec<RoomEvent>, Unavailable> {
        let link = &self.link;
        link.call(|c| {
            Scripts::on_room(&link.scripts.leave, room)
                .arg(name)
                .arg(&link.node)
                .arg(room)
                .invoke::<i64>(c)
        })?;
        Ok(Vec::new())
    }

    fn message(&mut self, m: Outgoing<'_>) -> Result<Published, Unavailable> {
        let mut answers = publish::messages(&self.link, &mut self.renewals, &[m]);
        answers.pop().expect("one answer per message")
    }

    fn messages(&mut self, batch: &[Outgoing<'_>]) -> Vec<Result<Published, Unavailable>> {
        publish::messages(&self.link, &mut self.renewals, batch)
    }

    fn typing(&mut self, room: &str, name: &str) -> Result<Vec<RoomEvent>, Unavailable> {
        let link = &self.link;
        link.call(|c| {
            Scripts::on_room(&link.scripts.typing, room)
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
        let mut sent = 0;
        for node in link.holders(to)?.iter().filter(|n| **n != link.node) {
            sent += link.publish(&node_channel(node), &payload)?;
        }
        Ok(sent > 0)
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
                "rfc6455_redis_messages_received_total",
                "Messages this node read from Redis (room events, direct messages, answers): only of the rooms it has someone in (or had, up to 10 s ago).",
                "counter",
                n(&link.subscriptions.received),
            ),
            (
                "rfc6455_redis_subscribed_rooms",
                "Rooms whose channel this node is subscribed to (confirmed).",
                "gauge",
                link.subscriptions.rooms().len().to_string(),
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

/// The node's thread: owns the subscriptions and the heartbeat, delivers what the
/// readers pass on, reconnects.
struct NodeThread {
    connector: Connector,
    auth: subscriber::Auth,
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
            self.link.set_down(Some(reason));
            self.link.subscriptions.close();
            *self.link.conn.lock().unwrap_or_else(|p| p.into_inner()) = None;
            // The shards may be others when it is back (a failover, a reshard).
            self.link
                .pipes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clear();
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Connects, subscribes, syncs, then delivers what the channels carry until
    /// something fails.
    fn session(
        &mut self,
        sessions: &mut u64,
        backoff: &mut Duration,
    ) -> Result<std::convert::Infallible, String> {
        self.connector.prepare()?;
        let mut beat = self.connector.commands()?;
        let commands = self.connector.commands()?;
        let shards = self.connector.shards(&mut beat)?;
        let (sender, inbound) = mpsc::channel();
        let subscriptions = self.link.subscriptions.clone();
        let generation = subscriptions.open(shards, &self.auth, TIMEOUT, sender)?;
        // Subscribed before anything is read, so that nothing falls in between.
        subscriptions.subscribe(&node_channel(&self.link.node), None, TIMEOUT)?;
        let rooms: Vec<String> = lock(&self.state)
            .local_rooms()
            .into_iter()
            .map(|(room, _, _)| room)
            .collect();
        subscriptions.subscribe_all(&rooms, TIMEOUT)?;
        self.heartbeat(&mut beat)?;
        if self.being_reaped(&mut beat)? {
            // Registering now would race the reaper settling this node's rooms.
            return Err(format!(
                "redis: node {} is being reaped; registering again after",
                self.link.node
            ));
        }
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
        self.relay(generation, &inbound, &mut beat)
    }

    /// Delivers what the readers pass on, and keeps the node's timers, until a
    /// reader or a call fails.
    fn relay(
        &mut self,
        generation: u64,
        inbound: &Receiver<Inbound>,
        beat: &mut Commands,
    ) -> Result<std::convert::Infallible, String> {
        let interval = self.node_timeout / 3;
        let mut next_beat = Instant::now() + interval;
        let mut next_probe = Instant::now();
        let mut next_renewal = Instant::now();
        let mut next_unsubscribe = Instant::now() + UNSUBSCRIBE_CHECK;
        let mut reaped = false;
        loop {
            let now = Instant::now();
            if now >= next_renewal {
                next_renewal = now + ROOM_RENEWAL;
                self.renew_rooms(beat)?;
            }
            if now >= next_probe {
                next_probe = now + PROBE_INTERVAL;
                self.probe(beat)?;
            }
            if now >= next_unsubscribe {
                next_unsubscribe = now + UNSUBSCRIBE_CHECK;
                self.drop_unwanted(beat)?;
            }
            if now >= next_beat {
                next_beat = now + interval;
                if self.heartbeat(beat)? {
                    log::warn!(
                        "redis: node {} was reaped while silent; registering again",
                        self.link.node
                    );
                    reaped = true;
                }
                self.reap_dead(beat)?;
                // Once the reaping of this node is over (or a reaper that is still
                // settling its rooms would undo the registration).
                if reaped && !self.being_reaped(beat)? {
                    reaped = false;
                    self.resync()?;
                }
            }
            if self.link.repair.swap(false, Ordering::Relaxed) {
                log::warn!("redis: a change across slots failed halfway; registering again");
                self.resync()?;
            }
            let wait = [next_beat, next_probe, next_unsubscribe, next_renewal]
                .into_iter()
                .min()
                .unwrap_or(now)
                .saturating_duration_since(Instant::now());
            match inbound.recv_timeout(wait) {
                Ok(Inbound::Message {
                    generation: g,
                    channel,
                    payload,
                }) => {
                    self.link.subscriptions.took(payload.len());
                    if g == generation {
                        self.dispatch(&channel, &payload);
                    }
                }
                Ok(Inbound::Lost {
                    generation: g,
                    reason,
                }) if g == generation => return Err(reason),
                Ok(_) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    return Err("redis: every subscriber is gone".into())
                }
            }
            if let Some(reason) = self.link.down_reason() {
                return Err(reason);
            }
        }
    }

    /// Measures one round trip to Redis (PING), for the breaker: the loops call Redis
    /// only while it answers within `SLOW`.
    fn probe(&self, beat: &mut Commands) -> Result<(), String> {
        let start = Instant::now();
        redis::cmd("PING")
            .query::<String>(beat.as_mut())
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

    /// Unsubscribes from the rooms nobody here has followed for `LINGER`, and tells
    /// the reaper they are not this node's any more.
    fn drop_unwanted(&self, beat: &mut Commands) -> Result<(), String> {
        // Under the chat lock until the rooms are out of Redis too: a join meanwhile
        // would record its room before this takes it out.
        let state = lock(&self.state);
        let wanted: HashSet<String> = state
            .local_rooms()
            .into_iter()
            .map(|(room, _, _)| room)
            .collect();
        let dropped = self
            .link
            .subscriptions
            .drop_unwanted(&|room| wanted.contains(room));
        for room in dropped {
            redis::cmd("SREM")
                .arg(node_key(&self.link.node, "rooms"))
                .arg(&room)
                .query::<i64>(beat.as_mut())
                .map_err(|e| format!("redis: {e}"))?;
        }
        Ok(())
    }

    /// Renews the expiry of the keys of every room this node follows.
    fn renew_rooms(&self, beat: &mut Commands) -> Result<(), String> {
        for room in self.link.subscriptions.rooms() {
            Scripts::on_room(&self.link.scripts.renew, &room)
                .invoke::<i64>(beat.as_mut())
                .map_err(|e| format!("redis: {e}"))?;
        }
        Ok(())
    }

    /// Refreshes this node's heartbeat; true if it was not registered.
    fn heartbeat(&self, beat: &mut Commands) -> Result<bool, String> {
        let node = &self.link.node;
        let ttl = self.node_timeout.as_millis().max(1) as u64;
        self.link
            .scripts
            .heartbeat
            .key(global(&format!("alive:{node}")))
            .key(global("nodes"))
            .arg(ttl)
            .arg(node)
            .invoke::<i64>(beat.as_mut())
            .map(|added| added == 1)
            .map_err(|e| format!("redis: {e}"))
    }

    /// Makes the members `node` holds in `room` exactly `names` (see `SETTLE`).
    fn settle(
        &self,
        c: &mut dyn ConnectionLike,
        node: &str,
        room: &str,
        names: &[&str],
        (seq, pos): (u64, u64),
    ) -> RedisResult<()> {
        Scripts::on_room(&self.link.scripts.settle, room)
            .arg(node)
            .arg(room)
            .arg(json!(names).to_string())
            .arg(seq)
            .arg(pos)
            .invoke::<i64>(c)
            .map(drop)
    }

    /// Reaps every registered node whose heartbeat expired (the script makes sure one
    /// node does it, once): its names are freed, then its members in each of its
    /// rooms (`left` announced). The rooms of a reaping that failed halfway, here or
    /// on another node, are settled on the next pass.
    fn reap_dead(&self, beat: &mut Commands) -> Result<(), String> {
        let fail = |e: redis::RedisError| format!("redis: {e}");
        let nodes: Vec<String> = redis::cmd("SMEMBERS")
            .arg(global("nodes"))
            .query(beat.as_mut())
            .map_err(fail)?;
        for dead in nodes.iter().filter(|n| **n != self.link.node) {
            let reaped: i64 = self
                .link
                .scripts
                .reap
                .key(global("nodes"))
                .key(global(&format!("alive:{dead}")))
                .key(node_key(dead, "names"))
                .key(node_key(dead, "rooms"))
                .key(global("names"))
                .key(global("reaping"))
                .key(node_key(dead, "unsettled"))
                .arg(dead)
                .invoke(beat.as_mut())
                .map_err(fail)?;
            if reaped == 1 {
                log::warn!("redis: node {dead} stopped beating; its members left");
                self.link.nodes_reaped.fetch_add(1, Ordering::Relaxed);
            }
        }
        let reaping: Vec<String> = redis::cmd("SMEMBERS")
            .arg(global("reaping"))
            .query(beat.as_mut())
            .map_err(fail)?;
        for dead in reaping {
            let unsettled = node_key(&dead, "unsettled");
            let rooms: Vec<String> = redis::cmd("SMEMBERS")
                .arg(&unsettled)
                .query(beat.as_mut())
                .map_err(fail)?;
            for room in rooms {
                self.settle(beat.as_mut(), &dead, &room, &[], (0, 0))
                    .map_err(fail)?;
                redis::cmd("SREM")
                    .arg(&unsettled)
                    .arg(&room)
                    .query::<i64>(beat.as_mut())
                    .map_err(fail)?;
            }
            redis::cmd("SREM")
                .arg(global("reaping"))
                .arg(&dead)
                .query::<i64>(beat.as_mut())
                .map_err(fail)?;
        }
        Ok(())
    }

    /// Whether a reaping of this node is still settling its rooms.
    fn being_reaped(&self, beat: &mut Commands) -> Result<bool, String> {
        redis::cmd("SISMEMBER")
            .arg(global("reaping"))
            .arg(&self.link.node)
            .query(beat.as_mut())
            .map_err(|e| format!("redis: {e}"))
    }

    /// Makes Redis agree with this node, then delivers what its members missed while
    /// it was not subscribed, and reports healthy.
    fn resync(&mut self) -> Result<(), String> {
        let link = self.link.clone();
        let mut state = lock(&self.state);
        let users = state.local_users();
        let rooms = state.local_rooms();
        let mut conn = link.conn.lock().unwrap_or_else(|p| p.into_inner());
        let c = conn.as_mut().ok_or("redis: not connected")?.as_mut();
        let fail = |e: redis::RedisError| format!("redis: {e}");
        let node = &link.node;
        let room_names: Vec<&str> = rooms.iter().map(|(room, _, _)| room.as_str()).collect();
        let (conflicts, gone): (Vec<String>, Vec<String>) = link
            .scripts
            .resync
            .key(global("names"))
            .key(node_key(node, "names"))
            .key(node_key(node, "rooms"))
            .key(global("nodes"))
            .arg(node)
            .arg(json!(users).to_string())
            .arg(json!(room_names).to_string())
            .arg(if link.signed_users { "1" } else { "0" })
            .invoke(c)
            .map_err(fail)?;
        for name in conflicts {
            log::warn!("redis: {name:?} was taken on another node while Redis was away");
        }
        let mut members: HashMap<&str, Vec<&str>> = HashMap::new();
        for (name, their_rooms) in &users {
            for room in their_rooms {
                members.entry(room).or_default().push(name);
            }
        }
        for room in &gone {
            self.settle(c, node, room, &[], (0, 0)).map_err(fail)?;
            redis::cmd("SREM")
                .arg(node_key(node, "rooms"))
                .arg(room)
                .query::<i64>(&mut *c)
                .map_err(fail)?;
        }
        for (room, seq, pos) in &rooms {
            let names = members.get(room.as_str()).map_or(&[][..], Vec::as_slice);
            self.settle(c, node, room, names, (*seq, *pos))
                .map_err(fail)?;
        }
        // Catch-up: what the log holds beyond what was delivered here.
        for (room, _, _) in &rooms {
            let after = state.delivered_seq(room).unwrap_or(0);
            let missed: Vec<(String, u64)> = redis::cmd("ZRANGEBYSCORE")
                .arg(room_key(room, "log"))
                .arg(format!("({after}"))
                .arg("+inf")
                .arg("WITHSCORES")
                .query(c)
                .map_err(fail)?;
            for (body, seq) in missed {
                let from = serde_json::from_str::<Json>(&body)
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
        for (room, _, _) in &rooms {
            link.subscriptions.registered(&room_channel(room));
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
        let Ok(head) = serde_json::from_str::<Json>(head) else {
            return log::warn!("redis: a malformed header on {channel}");
        };
        let text = |field: &str| head[field].as_str().map(str::to_string);
        if channel != node_channel(&self.link.node) {
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
            let _ = self.link.publish(&node_channel(&from), &answer);
        } else if let Some(token) = head["answer"].as_u64() {
            let delivered = head["delivered"].as_bool().unwrap_or(false);
            lock(&self.state).answered(&mut self.handle, token, delivered);
        }
    }
}
