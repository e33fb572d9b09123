//! The rooms server behind `rfc6455 serve`: a JSON chat protocol on the event loop,
//! with presence, typing, direct messages, acknowledgements and catch-up.
//!
//! Protocol (every request may carry an `"id"`, answered by an `ack` with that id):
//!
//! ```text
//! -> {"type":"hello","name":"ann","id":1}             <- {"type":"ack","id":1,"name":"ann"}
//!                                                       (with --redis also "node":"3fa2c19e0b7d")
//! -> {"type":"join","room":"lobby","since":41,       <- an ack with the room's "epoch" and
//!     "epoch":"5c1e0f3a"}                               "recovered":true|false, the lobby's
//!                                                       messages after seq 41, then
//!                                                       {"type":"presence",...}
//! -> {"type":"message","room":"lobby","text":"hi"}    others <- {"type":"message","room":"lobby",
//!                                                       "from":"ann","text":"hi","seq":42,"ts":...}
//! -> {"type":"typing","room":"lobby"}                 others <- {"type":"typing",...}
//! -> {"type":"direct","to":"bob","text":"psst","id":7} <- {"type":"ack","id":7,"delivered":true}
//! -> {"type":"history","room":"lobby","before":7}    <- {"type":"history","room":"lobby",
//!                                                       "more":false,"messages":[...]}
//! -> {"type":"leave","room":"lobby"}                  others <- {"type":"left",...}
//! -> {"type":"message",...,"idempotency_key":"k"}     a retry <- the first ack's seq,
//!                                                       "duplicate":true; sent once
//! signed identity (--jwt-*): the user comes from the token;
//!                                                    <- {"type":"expiring","in":30}
//! -> {"type":"refresh","token":"...","id":9}         <- {"type":"ack","id":9,"exp":...}
//!                                                       (at exp without one: close 4001)
//! errors: {"type":"error","code":"name_taken"|"bad_json"|"unknown_type"|"no_hello"|
//!          "bad_field"|"too_long"|"not_in_room"|"too_many_rooms"|"unavailable"|
//!          "forbidden"|"room_full"|"unauthorized","message":"...","id":...}
//!
//! A join replays at most `--max-replay` bytes, the newest messages (no gap with what
//! comes live); its ack then says `"more":true,"before":SEQ`, and `history` pages back.
//! What a client may make the node hold is bounded by [`ChatLimits`] (`limits.rs`).
//! ```
//!
//! With several event loops (`--threads`), each loop has its own `Chat` and they all
//! share one [`ChatState`] behind a lock: a room's members may sit on any loop. What
//! the nodes of a cluster share (names, presence, seq numbers, history) is behind the
//! [`Hub`] trait: in memory for one process, in Redis (`--redis`) for several.
//!
//! A room event reaches this node's members through [`ChatState::deliver`], called
//! on the loop that caused it (memory hub) or by the Redis subscriber thread. Both run
//! with the lock held, and a room's events come in seq order, so every member sees the
//! same order. A joining member gets the history up to the room's seq as read then
//! (its *cursor*) and, live, only what comes after: no gap, no duplicate.
//!
//! With Redis, an `ack` for a message has no `delivered_to` (the members are on other
//! nodes too), and a request that needs Redis while it is unreachable gets an
//! `unavailable` error.

mod batch;
mod feeds;
mod hub;
mod identity;
mod identity_flags;
mod limits;
pub mod redis;
mod senders;

pub use identity_flags::IdentityArgs;
pub use limits::{ChatLimits, MAX_REQUEST};
use limits::{PeerRates, TYPING_INTERVAL};

use batch::Batch;
use hub::{Hub, MemoryHub, RoomEvent};
use identity::{Auth, Claims};
use rfc6455::handshake::server::Request;
use rfc6455::server::rooms::{RoomRegistry, Rooms};
use rfc6455::server::{
    Accept, CloseInfo, ConnId, Ctx, Handler, HttpRequest, HttpResponse, Outbox, Received, Refusal,
    Reply, SharedFrame, Stats,
};
use senders::{DueAck, Senders};
use serde_json::{json, Value};

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The chat page, served at `GET /`.
const PAGE: &str = include_str!("chat.html");

/// How long a direct message to another node waits for that node's answer.
const DIRECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Options of `rfc6455 serve`.
#[derive(Debug, Clone, Default)]
pub struct ChatConfig {
    /// Allowed Origin values; empty: any.
    pub origins: Vec<String>,
    /// Required `?token=` or `Authorization: Bearer` value (with `auth`, for
    /// `/metrics` only).
    pub token: Option<String>,
    /// Signed identity (`--jwt-*`): every upgrade, stream and POST needs a token.
    pub auth: Option<Arc<Auth>>,
    /// Messages kept per room for late joiners and catch-up.
    pub history: usize,
    /// How often a Server-Sent Events stream gets a keep-alive comment.
    pub keepalive: Duration,
    /// Served over TLS: the HTTP responses carry `Strict-Transport-Security`, so that
    /// a browser that saw the site once never tries it without TLS again (RFC 6797).
    pub hsts: bool,
    /// What one client, and all together, may make the node hold.
    pub limits: ChatLimits,
}

impl ChatConfig {
    /// Whether a request from `origin` may come (any, when no `--origin` is given).
    fn allows_origin(&self, origin: Option<&str>) -> bool {
        self.origins.is_empty() || origin.is_some_and(|o| self.origins.iter().any(|a| a == o))
    }

    /// Whether a request from `origin` (to `host`) may use a token from the cookie:
    /// one of `--origin`, or without them this server's own pages; a request with
    /// no Origin is no browser's.
    fn may_use_cookie(&self, origin: Option<&str>, host: Option<&str>) -> bool {
        let Some(origin) = origin else {
            return true;
        };
        if !self.origins.is_empty() {
            return self.allows_origin(Some(origin));
        }
        let origin_host = origin.split_once("://").map(|(_, rest)| rest);
        origin_host.is_some_and(|o| host.is_some_and(|h| o.eq_ignore_ascii_case(h)))
    }

    /// Whether a request carries the token, when one is required: `?token=` in its
    /// `query` or an `Authorization: Bearer` header (the scheme in any case, RFC 9110
    /// §11.1), compared in constant time.
    fn has_token(&self, query: Option<&str>, authorization: Option<&str>) -> bool {
        let Some(token) = &self.token else {
            return true;
        };
        let in_query = query.is_some_and(|q| {
            q.split('&')
                .filter_map(|kv| kv.strip_prefix("token="))
                .any(|given| limits::same_secret(given, token))
        });
        let in_header = authorization
            .and_then(|h| h.trim().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .is_some_and(|(_, given)| limits::same_secret(given.trim(), token));
        in_query || in_header
    }
}

/// Where a request's token may be, and who asks (for a cookie's token).
struct Credentials<'a> {
    query: Option<&'a str>,
    authorization: Option<&'a str>,
    cookies: Option<&'a str>,
    origin: Option<&'a str>,
    host: Option<&'a str>,
}

/// One user's connection. Its name lives in the shared [`ChatState`], where the other
/// loops can see it; what its token says stays here, with the loop that serves it.
#[derive(Debug, Default)]
pub struct Member {
    /// The verified claims (signed identity), replaced by a `refresh`.
    claims: Option<Arc<Claims>>,
    /// Whether it was told `expiring` for its current token.
    warned: bool,
}

impl Member {
    fn signed(claims: Claims) -> Self {
        Member {
            claims: Some(Arc::new(claims)),
            warned: false,
        }
    }

    /// When (seconds since the epoch) something is due for it: the `expiring`
    /// notice, then the close at `exp`.
    fn due(&self, notice: Duration) -> Option<u64> {
        let exp = self.claims.as_ref()?.exp;
        Some(if self.warned {
            exp
        } else {
            exp.saturating_sub(notice.as_secs())
        })
    }
}

/// The close code of a connection whose token expired without a refresh (the
/// private-use range, RFC 6455 §7.4.2).
pub const TOKEN_EXPIRED: rfc6455::CloseCode = rfc6455::CloseCode(4001);

/// The chat application: one per event loop, all sharing one [`ChatState`].
#[derive(Clone)]
pub struct Chat {
    config: Arc<ChatConfig>,
    state: Arc<Mutex<ChatState>>,
    /// The hub's health, and how long the loops waited for the lock: `/healthz`
    /// reads both without taking the lock.
    health: hub::HealthCheck,
    lock_wait: Arc<LockWait>,
    /// This loop's signed connections by when something is due for them (see
    /// [`Member::due`]); an entry made stale by a refresh is skipped when it comes.
    expiries: BTreeSet<(u64, ConnId)>,
    /// This loop's members' messages of the current turn (see [`batch`]).
    batch: Batch,
}

/// The last long wait of a loop for the chat lock (a loop that waits holds up every
/// connection on it): `/healthz` reports it for a while.
#[derive(Debug, Default)]
struct LockWait {
    /// When (ms since the Unix epoch) and how long (µs).
    at_ms: std::sync::atomic::AtomicU64,
    waited_us: std::sync::atomic::AtomicU64,
}

/// A wait for the lock longer than this is reported by `/healthz`, for `LOCK_REPORTED`.
const LOCK_SLOW: Duration = Duration::from_millis(100);
const LOCK_REPORTED: Duration = Duration::from_secs(5);

/// This node's view of a room with members here.
#[derive(Debug, Default)]
struct RoomView {
    /// Each member's join: the room's last event position and seq then (it was
    /// given the history and presence as of there).
    cursors: HashMap<ConnId, Cursor>,
    /// The highest cursor (above it, nobody needs checking).
    max_cursor: Cursor,
    /// The last seq given to the members live (or replayed after a Redis outage).
    delivered_seq: u64,
    /// The last event position seen live.
    delivered_pos: u64,
    /// Which connection sent each recent message, and the acks that wait for the
    /// room's earlier messages (see [`senders`]).
    senders: Senders,
    /// The room's epoch as this node last saw it.
    epoch: String,
}

impl RoomView {
    /// The room's numbering started again under `epoch` (a Redis that lost it): the
    /// seqs and positions seen so far mean nothing now.
    fn renumbered(&mut self, epoch: &str) {
        log::warn!("room numbering restarted (epoch {} -> {epoch})", self.epoch);
        self.epoch = epoch.to_string();
        self.delivered_seq = 0;
        self.delivered_pos = 0;
        self.max_cursor = Cursor::default();
        for cursor in self.cursors.values_mut() {
            *cursor = Cursor::default();
        }
    }
}

/// Whether a catch-up from `since` lost nothing: the client's `epoch` is the room's,
/// and every message after `since` is still held (`joined.history`, the kept ones
/// after it, begins right after it), or there was none. Held, not necessarily
/// replayed: a WebSocket member pages back what `--max-replay` left out.
fn recovered(joined: &hub::Joined, since: u64, epoch: Option<&str>) -> bool {
    let first = joined.history.first().and_then(|m| hub::seq_of(m));
    epoch == Some(joined.epoch.as_str())
        && since <= joined.seq
        && (since == joined.seq || first == Some(since + 1))
}

/// Where a member joined a room: events and messages at or before it are not given
/// to it live (it got their outcome at its join).
#[derive(Debug, Default, Clone, Copy)]
struct Cursor {
    pos: u64,
    seq: u64,
}

impl Cursor {
    fn max(self, other: Cursor) -> Cursor {
        Cursor {
            pos: self.pos.max(other.pos),
            seq: self.seq.max(other.seq),
        }
    }

    /// Whether `event` came before this cursor.
    fn covers(self, event: &RoomEvent) -> bool {
        event.pos.is_some_and(|p| p <= self.pos) || event.seq.is_some_and(|s| s <= self.seq)
    }
}

/// A direct message to another node, waiting for its answer.
struct Pending {
    to: ConnId,
    rid: Option<Value>,
    deadline: Instant,
}

/// What the loops of one process agree on: their connections (who is where, under
/// which name), and the hub the nodes share.
pub struct ChatState {
    hub: Box<dyn Hub>,
    /// Connections in rooms, on every loop of this process.
    rooms: Rooms,
    views: HashMap<String, RoomView>,
    /// Name (or signed user id) to its connections, and back (the other loops'
    /// connections' data is theirs). Without signed identity a name has one.
    names: HashMap<String, Vec<ConnId>>,
    users: HashMap<ConnId, String>,
    /// Connections of each signed user, counted from the upgrade (so that loops
    /// accepting at once cannot both pass `--max-user-connections`) to the close.
    user_connections: HashMap<String, usize>,
    /// Tokens refused, by [`identity::Refusal`] (its index in `Refusal::ALL`).
    auth_failures: [u64; identity::Refusal::ALL.len()],
    pending: HashMap<u64, Pending>,
    /// Server-Sent Events streams following each room, and each stream's room.
    listeners: HashMap<String, HashSet<ConnId>>,
    streams: HashMap<ConnId, String>,
    last_keepalive: Instant,
    /// When each member last had its `typing` passed on, per room (coalescing).
    typing: HashMap<ConnId, HashMap<String, Instant>>,
    /// HTTP publishes and stream opens per address.
    http_rates: PeerRates,
    limits: ChatLimits,
    next_token: u64,
    /// Messages delivered to members of this node, for /metrics.
    delivered: u64,
    /// Rooms where an ack waits for earlier messages (see [`senders`]).
    acks_waiting: HashSet<String>,
    /// Acks sent after waiting [`senders::ACK_HOLD`] for the messages before them.
    acks_overdue: u64,
    /// Waiting acks of rooms this node stopped following: sent on the next tick.
    orphaned_acks: Vec<(String, Vec<DueAck>)>,
    rejected_origin: u64,
    rejected_token: u64,
    /// HTTP requests answered 429, and requests refused for a budget (rooms).
    rejected_rate: u64,
    refused_budget: u64,
}

fn send(out: &mut impl Outbox, id: ConnId, value: &Value) {
    out.send_text(id, &value.to_string());
}

fn error(out: &mut impl Outbox, id: ConnId, code: &str, message: &str, req: Option<&Value>) {
    let mut e = json!({"type": "error", "code": code, "message": message});
    if let Some(rid) = req {
        e["id"] = rid.clone();
    }
    send(out, id, &e);
}

fn ack(out: &mut impl Outbox, id: ConnId, rid: Option<&Value>, extra: Value) {
    if let Some(rid) = rid {
        let mut a = json!({"type": "ack", "id": rid});
        if let (Value::Object(a), Value::Object(extra)) = (&mut a, extra) {
            a.extend(extra);
        }
        send(out, id, &a);
    }
}

impl Chat {
    /// A chat of one process; [`clone`](Clone::clone) it for the other loops.
    pub fn new(config: ChatConfig) -> Self {
        let limits = &config.limits;
        let hub = MemoryHub::new(config.history, limits.history_budget, limits.max_rooms);
        Self::with_hub(config, Box::new(hub))
    }

    /// A chat whose shared state is `hub`.
    pub fn with_hub(config: ChatConfig, hub: Box<dyn Hub>) -> Self {
        Chat {
            health: hub.health_check(),
            lock_wait: Arc::default(),
            expiries: BTreeSet::new(),
            batch: Batch::default(),
            state: Arc::new(Mutex::new(ChatState::new(hub, config.limits.clone()))),
            config: Arc::new(config),
        }
    }

    /// A chat of one node of a cluster sharing rooms through Redis; its members are
    /// reached through `handle` when messages come from other nodes.
    pub fn with_redis(
        config: ChatConfig,
        options: &redis::RedisOptions,
        handle: rfc6455::server::Handle,
    ) -> Result<Self, String> {
        let mut state = None;
        let limits = config.limits.clone();
        let mut health = None;
        redis::start(options, handle, |hub| {
            health = Some(hub.health_check());
            let shared = Arc::new(Mutex::new(ChatState::new(hub, limits)));
            state = Some(shared.clone());
            shared
        })?;
        Ok(Chat {
            config: Arc::new(config),
            state: state.expect("made by start"),
            health: health.expect("made by start"),
            lock_wait: Arc::default(),
            expiries: BTreeSet::new(),
            batch: Batch::default(),
        })
    }

    /// The shared state, locked; a long wait for it is remembered for `/healthz`.
    fn state(&self) -> MutexGuard<'_, ChatState> {
        let start = Instant::now();
        let guard = lock(&self.state);
        let waited = start.elapsed();
        if waited > LOCK_SLOW {
            use std::sync::atomic::Ordering::Relaxed;
            self.lock_wait.at_ms.store(hub::now_ms(), Relaxed);
            self.lock_wait
                .waited_us
                .store(waited.as_micros() as u64, Relaxed);
        }
        guard
    }

    /// The plain requests that are not feeds: the page at `/`, `/metrics` (with the
    /// token), 404 for the rest (the WebSocket endpoint is `/` with a query).
    fn page(&mut self, ctx: &Ctx<'_, Member>, request: &HttpRequest) -> HttpResponse {
        let mut response = match (request.method.as_str(), request.path()) {
            ("GET", "/") => HttpResponse::html(200, PAGE),
            ("GET", "/metrics")
                if !self
                    .config
                    .has_token(request.query(), request.header("authorization")) =>
            {
                self.state().rejected_token += 1;
                HttpResponse::text(401, "a token is required\n")
            }
            ("GET", "/metrics") => {
                let totals = ctx.totals();
                let page = self.state().metrics(&totals).into_bytes();
                HttpResponse::with_type(200, "text/plain; version=0.0.4", page)
            }
            // The WebSocket endpoint is `/` (with a query): a plain GET there is the page.
            _ => HttpResponse::text(404, "not found\n"),
        };
        if self.config.hsts {
            response.headers.push((
                "Strict-Transport-Security".into(),
                "max-age=31536000".into(),
            ));
        }
        response
    }
}

/// Whether a text message is a `refresh` (checked cheaply before a full parse: the
/// other requests go to the shared state as they are).
fn is_refresh(text: &str) -> bool {
    text.contains("\"refresh\"")
        && serde_json::from_str::<Value>(text)
            .is_ok_and(|v| v.get("type").and_then(Value::as_str) == Some("refresh"))
}

impl Chat {
    /// The claims of a request's token, or the 401 that says why not (counted).
    ///
    /// A token from the cookie counts only on a request from this site's own pages
    /// (or no browser's): a browser sends the cookie whichever page asks, so another
    /// site's page could otherwise open a connection as the user (cross-site
    /// WebSocket hijacking). With `--origin`, the listed Origins; without, the Origin
    /// must be this server (its host is the request's `Host`). 403 otherwise.
    fn verified(&self, auth: &Auth, from: &Credentials<'_>) -> Result<Claims, Refusal> {
        let (claims, from_cookie) = auth
            .claims(from.query, from.authorization, from.cookies)
            .map_err(|why| {
                self.state().count_auth_failure(why);
                Refusal::new(401, why.message())
                    .with_header("WWW-Authenticate", "Bearer error=\"invalid_token\"")
            })?;
        if from_cookie && !self.config.may_use_cookie(from.origin, from.host) {
            self.state().rejected_origin += 1;
            let why = "a token from the cookie is taken only from this site's own pages (Origin)";
            return Err(Refusal::new(403, why));
        }
        Ok(claims)
    }

    /// How long before `exp` a connection is told `expiring`.
    fn notice(&self) -> Duration {
        self.config
            .auth
            .as_ref()
            .map_or(Duration::ZERO, |a| a.notice)
    }

    /// Puts connection `id` (signed) in this loop's schedule of expiries.
    fn schedule(&mut self, ctx: &mut Ctx<'_, Member>, id: ConnId) {
        let notice = self.notice();
        if let Some(due) = ctx.data(id).and_then(|m| m.due(notice)) {
            self.expiries.insert((due, id));
        }
    }

    /// What is due for this loop's signed connections: `expiring` once, `notice`
    /// before `exp`; at `exp`, close 4001 (a stream just ends).
    fn expire(&mut self, ctx: &mut Ctx<'_, Member>) {
        let Some(notice) = self.config.auth.as_ref().map(|a| a.notice) else {
            return;
        };
        let now = hub::now_ms() / 1000;
        while let Some(&(due, id)) = self.expiries.first() {
            if due > now {
                break;
            }
            self.expiries.pop_first();
            let Some(member) = ctx.data(id) else {
                continue;
            };
            // Made stale by a refresh (or the notice): its new entry stands.
            if member.due(notice) != Some(due) {
                continue;
            }
            let exp = member.claims.as_ref().map_or(0, |c| c.exp);
            if now >= exp {
                ctx.close(id, TOKEN_EXPIRED, "token expired");
                continue;
            }
            member.warned = true;
            send(ctx, id, &json!({"type": "expiring", "in": exp - now}));
            self.schedule(ctx, id);
        }
    }

    /// `{"type":"refresh","token":"…"}`: a later token of the same user replaces the
    /// connection's (its rooms and permissions from now on); acked, or an error
    /// that leaves the old token in force.
    fn refresh(&mut self, ctx: &mut Ctx<'_, Member>, id: ConnId, text: &str) {
        let Some(auth) = self.config.auth.clone() else {
            return;
        };
        let Ok(req) = serde_json::from_str::<Value>(text) else {
            return;
        };
        let rid = req.get("id");
        let Some(token) = req.get("token").and_then(Value::as_str) else {
            return error(ctx, id, "bad_field", "missing string \"token\"", rid);
        };
        let new = match auth.verifier.verify(token) {
            Ok(claims) => claims,
            Err(why) => {
                self.state().count_auth_failure(why);
                return error(ctx, id, "unauthorized", why.message(), rid);
            }
        };
        let Some(member) = ctx.data(id) else {
            return;
        };
        let old = member.claims.as_ref().map(|c| c.sub.as_str());
        if old != Some(new.sub.as_str()) {
            self.state()
                .count_auth_failure(identity::Refusal::OtherUser);
            let why = identity::Refusal::OtherUser.message();
            return error(ctx, id, "unauthorized", why, rid);
        }
        let exp = new.exp;
        let old_due = member.due(self.notice());
        // Rooms the new token no longer gives are left at once.
        let mut state = self.state();
        let lost: Vec<String> = (state.rooms.rooms_of(id).into_iter())
            .filter(|room| !new.may_read(room))
            .collect();
        let user = new.sub.clone();
        for room in &lost {
            let events = state.leave_room(ctx, room, &user, id).unwrap_or_default();
            let why = format!("your new token does not let you follow {room:?}: left");
            error(ctx, id, "forbidden", &why, None);
            for event in &events {
                state.deliver(ctx, event);
            }
        }
        drop(state);
        if let Some(member) = ctx.data(id) {
            *member = Member::signed(new);
        }
        if let Some(due) = old_due {
            self.expiries.remove(&(due, id));
        }
        self.schedule(ctx, id);
        ack(ctx, id, rid, json!({"exp": exp}));
    }
}

/// Every change to the state is complete before it can panic (JSON is built before
/// the maps change): a poisoned lock still guards consistent data.
pub fn lock(state: &Mutex<ChatState>) -> MutexGuard<'_, ChatState> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

impl ChatState {
    fn new(hub: Box<dyn Hub>, limits: ChatLimits) -> Self {
        ChatState {
            typing: HashMap::new(),
            http_rates: PeerRates::new(limits.http_rate),
            limits,
            rejected_rate: 0,
            refused_budget: 0,
            hub,
            rooms: Rooms::default(),
            views: HashMap::new(),
            names: HashMap::new(),
            users: HashMap::new(),
            user_connections: HashMap::new(),
            auth_failures: [0; identity::Refusal::ALL.len()],
            pending: HashMap::new(),
            listeners: HashMap::new(),
            streams: HashMap::new(),
            last_keepalive: Instant::now(),
            next_token: 0,
            delivered: 0,
            acks_waiting: HashSet::new(),
            acks_overdue: 0,
            orphaned_acks: Vec::new(),
            rejected_origin: 0,
            rejected_token: 0,
        }
    }

    fn count_auth_failure(&mut self, why: identity::Refusal) {
        if let Some(i) = identity::Refusal::ALL.iter().position(|r| *r == why) {
            self.auth_failures[i] += 1;
        }
    }

    fn name_of(&self, id: ConnId) -> Option<String> {
        self.users.get(&id).cloned()
    }

    /// Gives a room event to this node's members of its room: not to the user who
    /// caused it, not twice (a message at or below what a member got at its join, or
    /// what was delivered already, is skipped). Returns how many it was queued for.
    pub fn deliver(&mut self, out: &mut impl Outbox, event: &RoomEvent) -> usize {
        let mut view = self.views.get_mut(&event.room);
        // Acks that may go once this event is out (see `senders`).
        let mut due = Vec::new();
        if let (Some(epoch), Some(view)) = (&event.epoch, view.as_deref_mut()) {
            if *epoch != view.epoch {
                view.renumbered(epoch);
                due = view.senders.release(None);
            }
        }
        if let (Some(seq), Some(view)) = (event.seq, &view) {
            if seq <= view.delivered_seq {
                send_acks(out, &event.room, due);
                return 0;
            }
        }
        // Who caused it does not get it back: of a message, only the connection that
        // sent it (the user's other connections show it too); of the rest, none of
        // the user's connections.
        let sender = match (event.seq, view.as_deref_mut()) {
            (Some(seq), Some(view)) => {
                let (sender, acks) = view.senders.came_back(seq);
                due.extend(acks);
                sender
            }
            _ => None,
        };
        // A message said on another node reaches the user's connections here (its
        // tabs); a `typing` or `joined` of the user reaches none of them, wherever
        // it came from.
        let mine = event.origin == self.hub.node();
        let except: &[ConnId] = match (sender, &event.except) {
            (None, Some(name)) if mine || event.seq.is_none() => {
                self.names.get(name).map_or(&[], Vec::as_slice)
            }
            _ => &[],
        };
        let frame = SharedFrame::text(&event.body);
        let mut count = 0;
        let check = view.as_ref().is_some_and(|v| v.max_cursor.covers(event));
        for id in self.rooms.members(&event.room) {
            if Some(id) == sender || except.contains(&id) {
                continue;
            }
            if check
                && view
                    .as_ref()
                    .and_then(|v| v.cursors.get(&id))
                    .is_some_and(|c| c.covers(event))
            {
                continue;
            }
            if out.send_shared(id, &frame) {
                count += 1;
            }
        }
        // Server-Sent Events streams get their own encoding, made once for them all.
        let streams = self.listeners.get(&event.room);
        let epoch = view.as_ref().map_or("", |v| v.epoch.as_str());
        if let Some(bytes) = streams.and_then(|_| feeds::sse_event(event, epoch)) {
            for &id in streams.into_iter().flatten() {
                let cursor = view.as_ref().and_then(|v| v.cursors.get(&id));
                if check && cursor.is_some_and(|c| c.covers(event)) {
                    continue;
                }
                if out.send_stream(id, &bytes) {
                    count += 1;
                }
            }
        }
        if let Some(view) = view {
            if let Some(seq) = event.seq {
                view.delivered_seq = seq;
                self.delivered += count as u64;
            }
            view.delivered_pos = view.delivered_pos.max(event.pos.unwrap_or(0));
        }
        send_acks(out, &event.room, due);
        count
    }

    /// `id` is no longer in `room` on this node.
    fn forget_member(&mut self, room: &str, id: ConnId) {
        if let Some(view) = self.views.get_mut(room) {
            view.cursors.remove(&id);
            if view.cursors.is_empty() {
                // Acks still waiting there go with the next tick, not nowhere.
                let due = view.senders.release(None);
                if !due.is_empty() {
                    self.orphaned_acks.push((room.to_string(), due));
                }
                self.views.remove(room);
            }
        }
    }

    /// Serves one request of connection `id`, whose token said `claims` (signed
    /// identity; `None` without).
    /// Messages go to this loop's `batch` (see [`batch`]); anything else of a
    /// connection with messages there is served after they are sent.
    fn request(
        &mut self,
        ctx: &mut Ctx<'_, Member>,
        id: ConnId,
        text: &str,
        claims: Option<&Claims>,
        batch: &mut Batch,
    ) {
        let req = serde_json::from_str::<Value>(text);
        let kind = req.as_ref().ok().and_then(|r| r.get("type")?.as_str());
        if kind != Some("message") && batch.has(id) {
            self.send_queued(ctx, batch);
        }
        let Ok(req) = req else {
            return error(ctx, id, "bad_json", "not a JSON object", None);
        };
        let rid = req.get("id").cloned();
        let rid = rid.as_ref();
        let Some(kind) = req.get("type").and_then(Value::as_str) else {
            return error(ctx, id, "bad_field", "missing \"type\"", rid);
        };
        /// A string field checked by one of `limits`' checks (`name`, `room`, `text`).
        macro_rules! get {
            ($name:expr, $check:path) => {
                match req.get($name).and_then(Value::as_str) {
                    None => {
                        let msg = format!("missing string \"{}\"", $name);
                        return error(ctx, id, "bad_field", &msg, rid);
                    }
                    Some(value) => match $check($name, value) {
                        Ok(v) => v,
                        Err((code, msg)) => return error(ctx, id, code, &msg, rid),
                    },
                }
            };
        }
        /// The shared state's answer, or an `unavailable` error to the client.
        macro_rules! shared {
            ($call:expr) => {
                match $call {
                    Ok(v) => v,
                    Err(reason) => return error(ctx, id, "unavailable", &reason, rid),
                }
            };
        }
        let me = self.name_of(id);
        if kind != "hello" && me.is_none() {
            return error(ctx, id, "no_hello", "say hello with a name first", rid);
        }
        let me_or_empty = me.clone().unwrap_or_default();
        let in_room = |state: &Self, room: &str| state.rooms.is_member(room, id);
        /// A room the token does not give: `forbidden`.
        macro_rules! allowed {
            ($room:expr, $may:ident, $what:expr) => {
                if claims.is_some_and(|c| !c.$may($room)) {
                    let msg = format!("your token does not let you {} {:?}", $what, $room);
                    return error(ctx, id, "forbidden", &msg, rid);
                }
            };
        }
        match kind {
            "hello" if claims.is_some() => {
                // The user is the token's: a name given here changes nothing.
                let claims = claims.expect("matched");
                let mut welcome = json!({"name": claims.display_name(), "user": claims.user()});
                if !self.hub.node().is_empty() {
                    welcome["node"] = json!(self.hub.node());
                }
                ack(ctx, id, rid, welcome);
            }
            "hello" => {
                let name = get!("name", limits::name);
                // In a cluster the ack names this node: the page shows it, so a
                // reconnect that lands elsewhere through a balancer is visible.
                let welcome = |name: &str, node: &str| match node {
                    "" => json!({"name": name}),
                    node => json!({"name": name, "node": node}),
                };
                if me.as_deref() == Some(name.as_str()) {
                    return ack(ctx, id, rid, welcome(&name, self.hub.node()));
                }
                let taken = self.names.contains_key(&name)
                    || !shared!(self
                        .hub
                        .claim(&name, me.as_deref(), &self.rooms.rooms_of(id)));
                if taken {
                    return error(ctx, id, "name_taken", &format!("{name:?} is taken"), rid);
                }
                if let Some(old) = me {
                    self.names.remove(&old);
                }
                self.names.insert(name.clone(), vec![id]);
                self.users.insert(id, name.clone());
                ack(ctx, id, rid, welcome(&name, self.hub.node()));
            }
            "join" => {
                let room = get!("room", limits::room);
                let since = req.get("since").and_then(Value::as_u64);
                let epoch = req.get("epoch").and_then(Value::as_str);
                let again = in_room(self, &room);
                if again && since.is_none() {
                    // Nothing to replay: the member has the room already.
                    let mut extra = json!({"room": room, "more": false});
                    if let Some(view) = self.views.get(&room) {
                        extra["epoch"] = json!(view.epoch);
                    }
                    return ack(ctx, id, rid, extra);
                }
                allowed!(&room, may_read, "join");
                if !again {
                    if let Err(why) = self.may_join(&room, id) {
                        self.refused_budget += 1;
                        return error(ctx, id, "too_many_rooms", &why, rid);
                    }
                }
                // The user is in the room already through another connection here:
                // this one reads what a join gives, and nobody is told.
                let present = self.user_in_room(&me_or_empty, &room, id);
                if !present {
                    if let Some(capacity) = self.limits.room_capacity {
                        let members = shared!(self.hub.read(&room, Some(u64::MAX))).members;
                        if members.len() >= capacity && !members.contains(&me_or_empty) {
                            let msg = format!("{room:?} has {capacity} users, its most");
                            return error(ctx, id, "room_full", &msg, rid);
                        }
                    }
                }
                let mut joined = if present {
                    shared!(self.hub.read(&room, since))
                } else {
                    shared!(self.hub.join(&room, &me_or_empty, since))
                };
                self.rooms.join(&room, id);
                // A seq of another epoch says nothing of this one: all that is kept.
                if since.is_some() && epoch.is_some_and(|e| e != joined.epoch) {
                    joined.history = shared!(self.reread(&room, joined.seq));
                }
                self.drop_stale(&mut joined.history);
                // History: everything kept, or only what came after `since`
                // (catch-up): the newest that fit in `max_replay` bytes, so that it
                // runs on into what comes live with no gap. `more` says older ones
                // were left out: a `history` request with `before` pages back.
                let page = replay_tail(&joined.history, self.limits.max_replay);
                let more = page.len() < joined.history.len();
                let mut extra = json!({"room": room, "more": more, "epoch": joined.epoch});
                if let Some(first) = page.first().and_then(|m| hub::seq_of(m)).filter(|_| more) {
                    extra["before"] = json!(first);
                }
                if let Some(since) = since {
                    extra["recovered"] = json!(recovered(&joined, since, epoch));
                }
                ack(ctx, id, rid, extra);
                for m in page {
                    ctx.send_text(id, m);
                }
                let view = self.view(&room, &joined);
                let joined_at = Cursor {
                    pos: joined.pos.unwrap_or(0),
                    seq: joined.seq,
                };
                let cursor = view.cursors.entry(id).or_default();
                *cursor = cursor.max(joined_at);
                view.max_cursor = view.max_cursor.max(joined_at);
                for event in &joined.events {
                    self.deliver(ctx, event);
                }
                let presence = json!({"type": "presence", "room": room, "members": joined.members});
                send(ctx, id, &presence);
            }
            "leave" => {
                let room = get!("room", limits::room);
                if !in_room(self, &room) {
                    return error(ctx, id, "not_in_room", &format!("not in {room:?}"), rid);
                }
                let events = shared!(self.leave_room(ctx, &room, &me_or_empty, id));
                ack(ctx, id, rid, json!({"room": room}));
                for event in &events {
                    self.deliver(ctx, event);
                }
            }
            "message" => {
                self.queue_message(ctx, batch, (id, &me_or_empty, claims), &req);
            }
            "typing" => {
                let room = get!("room", limits::room);
                if !in_room(self, &room) {
                    return error(ctx, id, "not_in_room", &format!("join {room:?} first"), rid);
                }
                allowed!(&room, may_publish, "type in");
                // Coalesced: at most one `typing` per member and room every
                // TYPING_INTERVAL reaches the others (a page sends one per keystroke).
                let now = Instant::now();
                let last = self.typing.entry(id).or_default().entry(room.clone());
                let due = match last {
                    std::collections::hash_map::Entry::Occupied(mut at) => {
                        let due = now.duration_since(*at.get()) >= TYPING_INTERVAL;
                        if due {
                            at.insert(now);
                        }
                        due
                    }
                    std::collections::hash_map::Entry::Vacant(slot) => {
                        slot.insert(now);
                        true
                    }
                };
                if due {
                    for event in &shared!(self.hub.typing(&room, &me_or_empty)) {
                        self.deliver(ctx, event);
                    }
                }
                ack(ctx, id, rid, json!({"passed_on": due}));
            }
            "history" => {
                let room = get!("room", limits::room);
                if !in_room(self, &room) {
                    return error(ctx, id, "not_in_room", &format!("join {room:?} first"), rid);
                }
                let Some(before) = req.get("before").and_then(Value::as_u64) else {
                    let msg = "\"before\": the seq to page back from";
                    return error(ctx, id, "bad_field", msg, rid);
                };
                let since = req.get("since").and_then(Value::as_u64);
                let mut kept = shared!(self.hub.read(&room, since)).history;
                self.drop_stale(&mut kept);
                let older: Vec<String> = kept
                    .into_iter()
                    .take_while(|m| hub::seq_of(m).is_some_and(|seq| seq < before))
                    .collect();
                let page = replay_tail(&older, self.limits.max_replay);
                // One message: the page cannot mix with what arrives live meanwhile.
                let mut head =
                    json!({"type": "history", "room": room, "more": page.len() < older.len()});
                if let Some(rid) = rid {
                    head["id"] = rid.clone();
                }
                let head = head.to_string();
                let text = format!(
                    "{},\"messages\":[{}]}}",
                    &head[..head.len() - 1],
                    page.join(",")
                );
                ctx.send_text(id, &text);
            }
            "direct" => {
                let to = match claims {
                    Some(_) => get!("to", limits::user_id),
                    None => get!("to", limits::name),
                };
                let text = get!("text", limits::text);
                let body = json!({"type": "direct", "from": me_or_empty, "text": text, "ts": hub::now_ms()})
                    .to_string();
                if let Some(targets) = self.names.get(&to) {
                    // Every connection of the user (its tabs and devices)...
                    let mut sent = 0;
                    for &target in targets {
                        sent += u64::from(ctx.send_text(target, &body));
                    }
                    // ...on other nodes too, if signed in there (their answers, under
                    // token 0, are for nobody: this node answers now).
                    if claims.is_some() {
                        let _ = self.hub.direct(&to, &me_or_empty, &body, 0);
                    }
                    if sent > 0 {
                        self.delivered += sent;
                        return ack(ctx, id, rid, json!({"delivered": true}));
                    }
                    let reason = "not deliverable now";
                    return ack(ctx, id, rid, json!({"delivered": false, "reason": reason}));
                }
                self.next_token += 1;
                let token = self.next_token;
                if shared!(self.hub.direct(&to, &me_or_empty, &body, token)) {
                    // The other node answers; `answered` acks then (or a timeout does).
                    let deadline = Instant::now() + DIRECT_TIMEOUT;
                    self.pending.insert(
                        token,
                        Pending {
                            to: id,
                            rid: rid.cloned(),
                            deadline,
                        },
                    );
                } else {
                    let reason = "no such user online";
                    ack(ctx, id, rid, json!({"delivered": false, "reason": reason}));
                }
            }
            other => error(
                ctx,
                id,
                "unknown_type",
                &format!("unknown type {other:?}"),
                rid,
            ),
        }
    }

    /// This node's view of `room`, made if new, as of a join or listen that read
    /// `joined`: a view of an older epoch starts again (the room's numbering did).
    fn view(&mut self, room: &str, joined: &hub::Joined) -> &mut RoomView {
        let view = self
            .views
            .entry(room.to_string())
            .or_insert_with(|| RoomView {
                delivered_seq: joined.seq,
                epoch: joined.epoch.clone(),
                ..RoomView::default()
            });
        if view.epoch != joined.epoch {
            view.renumbered(&joined.epoch);
            view.delivered_seq = joined.seq;
        }
        view
    }

    /// Connection `id` of `user` leaves `room`: the user leaves it (the events to
    /// deliver) if it is there through no other connection here. Left on this node
    /// even when the hub is unavailable (which the error says).
    fn leave_room(
        &mut self,
        out: &mut impl Outbox,
        room: &str,
        user: &str,
        id: ConnId,
    ) -> Result<Vec<RoomEvent>, hub::Unavailable> {
        // Its acks that wait for earlier messages go now: it will not get those.
        if let Some(view) = self.views.get_mut(room) {
            let due = view.senders.release(Some(id));
            send_acks(out, room, due);
        }
        let events = if self.user_in_room(user, room, id) {
            Ok(Vec::new())
        } else {
            self.hub.leave(room, user)
        };
        // Left here in any case: with Redis away, the node tells it what it has
        // when it is back.
        self.rooms.leave(room, id);
        self.forget_member(room, id);
        if let Some(rooms) = self.typing.get_mut(&id) {
            rooms.remove(room);
        }
        events
    }

    /// Every message of `room` kept up to `seq` (what a join read: later ones come
    /// live).
    fn reread(&mut self, room: &str, seq: u64) -> Result<Vec<String>, hub::Unavailable> {
        let mut all = self.hub.read(room, None)?.history;
        all.retain(|m| hub::seq_of(m).is_some_and(|s| s <= seq));
        Ok(all)
    }

    /// Drops from `history` (oldest first) the messages older than `--history-ttl`.
    fn drop_stale(&self, history: &mut Vec<String>) {
        let Some(ttl) = self.limits.history_ttl() else {
            return;
        };
        let oldest_kept = hub::now_ms().saturating_sub(ttl.as_millis() as u64);
        let stale = history
            .iter()
            .take_while(|m| hub::ts_of(m).is_some_and(|ts| ts < oldest_kept))
            .count();
        history.drain(..stale);
    }

    /// Whether `user` is in `room` on this node through a connection other than `id`.
    fn user_in_room(&self, user: &str, room: &str, id: ConnId) -> bool {
        self.names.get(user).is_some_and(|ids| {
            ids.iter()
                .any(|&c| c != id && self.rooms.is_member(room, c))
        })
    }

    /// Connection `id` sent message `seq` of `room`: it alone of its user's
    /// connections does not get it back. With `ack` (the request's `id`), its ack goes
    /// once this node has delivered every earlier message of the room: now if it
    /// has, else when the message comes back (see [`senders`]). Without, the caller
    /// acks (the memory hub delivers in order, at once).
    ///
    /// A retry (`duplicate`: its idempotency key was seen) is answered with the first
    /// message's `seq`, under the same rule.
    fn sent(
        &mut self,
        out: &mut impl Outbox,
        (room, seq, id, duplicate): (&str, u64, ConnId, bool),
        ack: Option<Option<&Value>>,
    ) {
        let mut answer = json!({"room": room, "seq": seq});
        if duplicate {
            answer["duplicate"] = json!(true);
        }
        let Some(view) = self.views.get_mut(room) else {
            if let Some(rid) = ack {
                self::ack(out, id, rid, answer);
            }
            return;
        };
        let has = view.cursors.get(&id).map_or(0, |c| c.seq);
        // A request without an `id` gets no ack: nothing to wait for.
        let waits = ack.is_some_and(|rid| rid.is_some()) && has.max(view.delivered_seq) + 1 < seq;
        let waiting = ack.filter(|_| waits).map(|rid| rid.cloned());
        if waits {
            self.acks_waiting.insert(room.to_string());
        }
        // A retry is not the message's sender: it is remembered only to wait.
        if !duplicate || waits {
            if let Some(evicted) = view.senders.push((seq, id, duplicate), waiting) {
                send_acks(out, room, vec![evicted]);
            }
        }
        if let (Some(rid), false) = (ack, waits) {
            self::ack(out, id, rid, answer);
        }
    }

    /// Sends the acks that waited [`senders::ACK_HOLD`] (see [`senders`]).
    fn send_overdue_acks(&mut self, out: &mut impl Outbox) {
        let now = Instant::now();
        for (room, due) in std::mem::take(&mut self.orphaned_acks) {
            send_acks(out, &room, due);
        }
        let rooms = std::mem::take(&mut self.acks_waiting);
        for room in rooms {
            let Some(view) = self.views.get_mut(&room) else {
                continue;
            };
            let due = view.senders.overdue(now);
            self.acks_overdue += due.len() as u64;
            let still = view.senders.waiting();
            send_acks(out, &room, due);
            if still {
                self.acks_waiting.insert(room);
            }
        }
    }

    /// Whether `id` may join `room`, new to it: within its rooms and the node's.
    fn may_join(&self, room: &str, id: ConnId) -> Result<(), String> {
        let mine = self.rooms.room_count_of(id);
        if mine >= self.limits.max_rooms_per_member {
            return Err(format!(
                "in {mine} rooms, the most one connection may be in"
            ));
        }
        if !self.views.contains_key(room) && self.views.len() >= self.limits.max_rooms {
            return Err(format!(
                "this node holds {} rooms, its most",
                self.views.len()
            ));
        }
        Ok(())
    }

    /// Another node's answer to the direct message sent under `token`.
    pub fn answered(&mut self, out: &mut impl Outbox, token: u64, delivered: bool) {
        if let Some(p) = self.pending.remove(&token) {
            let extra = if delivered {
                json!({"delivered": true})
            } else {
                json!({"delivered": false, "reason": "not deliverable now"})
            };
            ack(out, p.to, p.rid.as_ref(), extra);
        }
    }

    /// A direct message from another node for `to`, a user of this node: true if it
    /// was queued for them.
    pub fn direct_in(&mut self, out: &mut impl Outbox, to: &str, body: &str) -> bool {
        let mut sent = 0;
        for &id in self.names.get(to).into_iter().flatten() {
            sent += u64::from(out.send_text(id, body));
        }
        self.delivered += sent;
        sent > 0
    }

    /// Direct messages whose node never answered: `delivered: false`.
    fn expire_pending(&mut self, out: &mut impl Outbox) {
        let now = Instant::now();
        let expired: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(token, _)| *token)
            .collect();
        for token in expired {
            if let Some(p) = self.pending.remove(&token) {
                let extra = json!({"delivered": false, "reason": "no answer from the user's node"});
                ack(out, p.to, p.rid.as_ref(), extra);
            }
        }
    }

    /// This node's users and their rooms, for re-registering them in Redis.
    pub fn local_users(&self) -> Vec<(String, Vec<String>)> {
        self.users
            .iter()
            .map(|(id, name)| (name.clone(), self.rooms.rooms_of(*id)))
            .collect()
    }

    /// Each room with members here, and the highest seq and event position this node
    /// has seen in it.
    pub fn local_rooms(&self) -> Vec<(String, u64, u64)> {
        self.views
            .iter()
            .map(|(room, v)| {
                let seq = v.delivered_seq.max(v.max_cursor.seq);
                (room.clone(), seq, v.delivered_pos.max(v.max_cursor.pos))
            })
            .collect()
    }

    /// The last seq delivered live in `room` here (what a catch-up starts after).
    pub fn delivered_seq(&self, room: &str) -> Option<u64> {
        self.views.get(room).map(|v| v.delivered_seq)
    }

    fn metrics(&self, m: &Stats) -> String {
        let series: [(&str, &str, &str, String); 18] = [
            (
                "rfc6455_handshaking_connections",
                "Connections that have not finished their request yet (all loops).",
                "gauge",
                m.handshaking.to_string(),
            ),
            (
                "rfc6455_refused_at_accept_total",
                "Connections closed at accept: over --max-handshaking or --max-connections-per-ip.",
                "counter",
                m.refused_at_accept.to_string(),
            ),
            (
                "rfc6455_write_timeouts_total",
                "Connections dropped because their output did not shrink for --write-timeout.",
                "counter",
                m.write_timeouts.to_string(),
            ),
            (
                "rfc6455_read_pauses_total",
                "Times a connection was not read while its unsent output was over the mark.",
                "counter",
                m.read_pauses.to_string(),
            ),
            (
                "rfc6455_budget_refusals_total",
                "Requests refused for a budget: HTTP 429s, joins over a rooms limit.",
                "counter",
                (self.rejected_rate + self.refused_budget).to_string(),
            ),
            (
                "rfc6455_open_connections",
                "WebSocket connections open.",
                "gauge",
                m.open.to_string(),
            ),
            (
                "rfc6455_sse_streams",
                "Server-Sent Events streams open (room listeners).",
                "gauge",
                m.streams.to_string(),
            ),
            (
                "rfc6455_rooms",
                "Rooms with members on this node.",
                "gauge",
                self.rooms.room_count().to_string(),
            ),
            (
                "rfc6455_users",
                "Users of this node who said hello.",
                "gauge",
                self.names.len().to_string(),
            ),
            (
                "rfc6455_messages_in_total",
                "Messages received.",
                "counter",
                m.messages_in.to_string(),
            ),
            (
                "rfc6455_messages_out_total",
                "Messages queued for sending.",
                "counter",
                m.messages_out.to_string(),
            ),
            (
                "rfc6455_bytes_in_total",
                "Payload bytes received.",
                "counter",
                m.bytes_in.to_string(),
            ),
            (
                "rfc6455_bytes_out_total",
                "Payload bytes queued for sending.",
                "counter",
                m.bytes_out.to_string(),
            ),
            (
                "rfc6455_chat_deliveries_total",
                "Chat messages delivered to members.",
                "counter",
                self.delivered.to_string(),
            ),
            (
                "rfc6455_chat_acks_overdue_total",
                "Message acks sent after waiting 30 s for the room's earlier messages to reach the sender (they had not come back from Redis).",
                "counter",
                self.acks_overdue.to_string(),
            ),
            (
                "rfc6455_slow_consumer_events_total",
                "Messages dropped or connections closed for slow consumers.",
                "counter",
                m.slow_consumer_events.to_string(),
            ),
            (
                "rfc6455_mailbox_overflows_total",
                "Messages for a connection that its loop's full mailbox refused (the loop fell behind); the connection was closed with 1013.",
                "counter",
                m.mailbox_overflows.to_string(),
            ),
            (
                "rfc6455_tls_failures_total",
                "Connections dropped because their TLS failed (handshake, bad record, plain HTTP).",
                "counter",
                m.tls_failures.to_string(),
            ),
        ];
        let mut out = String::new();
        for (name, help, kind, value) in series.into_iter().chain(self.hub.metrics()) {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
            ));
        }
        out.push_str("# HELP rfc6455_loop_open_connections WebSocket connections open on each event loop.\n# TYPE rfc6455_loop_open_connections gauge\n");
        for (i, open) in m.open_per_loop.iter().enumerate() {
            out.push_str(&format!(
                "rfc6455_loop_open_connections{{loop=\"{i}\"}} {open}\n"
            ));
        }
        out.push_str("# HELP rfc6455_handshake_rejections_total Upgrades refused, by status.\n# TYPE rfc6455_handshake_rejections_total counter\n");
        for (status, n) in &m.rejected {
            out.push_str(&format!(
                "rfc6455_handshake_rejections_total{{status=\"{status}\"}} {n}\n"
            ));
        }
        out.push_str(&format!(
            "rfc6455_handshake_rejections_total{{status=\"403\",reason=\"origin\"}} {}\n",
            self.rejected_origin
        ));
        out.push_str(&format!(
            "rfc6455_handshake_rejections_total{{status=\"401\",reason=\"token\"}} {}\n",
            self.rejected_token
        ));
        out.push_str("# HELP rfc6455_auth_failures_total Signed tokens refused (upgrade, stream, POST, refresh), by reason.\n# TYPE rfc6455_auth_failures_total counter\n");
        for (why, n) in identity::Refusal::ALL.iter().zip(self.auth_failures) {
            out.push_str(&format!(
                "rfc6455_auth_failures_total{{reason=\"{}\"}} {n}\n",
                why.reason()
            ));
        }
        out
    }
}

impl Handler for Chat {
    type Data = Member;

    fn upgrade(&mut self, request: &Request) -> Result<Accept<Member>, Refusal> {
        // A browser always sends its Origin with an upgrade: none is no browser's.
        if !self.config.origins.is_empty() && !self.config.allows_origin(request.origin()) {
            self.state().rejected_origin += 1;
            return Err(Refusal::new(403, "this Origin is not allowed"));
        }
        if self.config.auth.is_none()
            && !self
                .config
                .has_token(request.query(), request.header("Authorization"))
        {
            self.state().rejected_token += 1;
            return Err(Refusal::new(401, "a token is required"));
        }
        let Some(auth) = &self.config.auth else {
            return Ok(Accept::new(Member::default()));
        };
        let claims = self.verified(
            auth,
            &Credentials {
                query: request.query(),
                authorization: request.header("authorization"),
                cookies: request.header("cookie"),
                origin: request.origin(),
                host: request.header("host"),
            },
        )?;
        let mut state = self.state();
        let most = state.limits.max_user_connections;
        let open = state
            .user_connections
            .get(&claims.sub)
            .copied()
            .unwrap_or(0);
        if open >= most {
            state.rejected_rate += 1;
            return Err(Refusal::new(
                429,
                &format!("this user has {most} connections open, the most"),
            ));
        }
        state.user_connections.insert(claims.sub.clone(), open + 1);
        Ok(Accept::new(Member::signed(claims)))
    }

    fn open(&mut self, ctx: &mut Ctx<'_, Member>, id: ConnId) {
        let Some(claims) = ctx.data(id).and_then(|m| m.claims.clone()) else {
            return;
        };
        self.schedule(ctx, id);
        let mut state = self.state();
        let user = claims.user().to_string();
        let ids = state.names.entry(user.clone()).or_default();
        ids.push(id);
        let first = ids.len() == 1;
        state.users.insert(id, user.clone());
        if first {
            // Redis unreachable: the node registers its users when it is back.
            let _ = state.hub.sign_in(&user);
        }
    }

    fn message(&mut self, ctx: &mut Ctx<'_, Member>, id: ConnId, message: Received<'_>) {
        let refresh = matches!(message, Received::Text(text) if is_refresh(text));
        if (refresh || matches!(message, Received::Binary(_))) && self.batch.has(id) {
            // Served after its messages before it (`request` sees to the rest).
            let mut batch = std::mem::take(&mut self.batch);
            self.state().send_queued(ctx, &mut batch);
        }
        match message {
            Received::Text(text) => {
                let claims = ctx.data(id).and_then(|m| m.claims.clone());
                if claims.is_some() && refresh {
                    return self.refresh(ctx, id, text);
                }
                let mut batch = std::mem::take(&mut self.batch);
                self.state()
                    .request(ctx, id, text, claims.as_deref(), &mut batch);
                self.batch = batch;
            }
            Received::Binary(_) => error(ctx, id, "bad_json", "send JSON text messages", None),
        }
    }

    fn close(&mut self, ctx: &mut Ctx<'_, Member>, id: ConnId, member: Member, _info: CloseInfo) {
        if let Some(due) = member.due(self.notice()) {
            self.expiries.remove(&(due, id));
        }
        if self.batch.has(id) {
            // Its messages go before it leaves anything (the whole queue: sent
            // empties it).
            let mut batch = std::mem::take(&mut self.batch);
            self.state().send_queued(ctx, &mut batch);
        }
        let mut state = self.state();
        if state.unlisten(id) {
            return;
        }
        // A WebSocket connection, counted at its upgrade (streams are not).
        if let Some(claims) = &member.claims {
            if let Some(open) = state.user_connections.get_mut(claims.user()) {
                *open = open.saturating_sub(1);
                if *open == 0 {
                    state.user_connections.remove(claims.user());
                }
            }
        }
        let rooms = state.rooms.leave_all(id);
        for room in &rooms {
            state.forget_member(room, id);
        }
        state.typing.remove(&id);
        let Some(name) = state.users.remove(&id) else {
            return;
        };
        let others = match state.names.get_mut(&name) {
            Some(ids) => {
                ids.retain(|&c| c != id);
                ids.len()
            }
            None => 0,
        };
        // The rooms the user leaves with this connection: those it is in through
        // no other connection here.
        let gone: Vec<String> = rooms
            .into_iter()
            .filter(|room| !state.user_in_room(&name, room, id))
            .collect();
        // Redis unreachable: the node re-registers its users when it is back, and
        // then this one is gone.
        let events = if others == 0 {
            state.names.remove(&name);
            state.hub.release(&name, &gone).unwrap_or_default()
        } else {
            let mut events = Vec::new();
            for room in &gone {
                events.extend(state.hub.leave(room, &name).unwrap_or_default());
            }
            events
        };
        for event in &events {
            state.deliver(ctx, event);
        }
    }

    fn end_turn(&mut self, ctx: &mut Ctx<'_, Member>) {
        if !self.batch.is_empty() {
            let mut batch = std::mem::take(&mut self.batch);
            self.state().send_queued(ctx, &mut batch);
            self.batch = batch;
        }
    }

    fn tick(&mut self, ctx: &mut Ctx<'_, Member>) {
        self.expire(ctx);
        let mut state = self.state();
        if !state.pending.is_empty() {
            state.expire_pending(ctx);
        }
        if !state.acks_waiting.is_empty() || !state.orphaned_acks.is_empty() {
            state.send_overdue_acks(ctx);
        }
        if state.last_keepalive.elapsed() >= self.config.keepalive {
            state.last_keepalive = Instant::now();
            state.keep_streams_alive(ctx);
        }
    }

    fn request(
        &mut self,
        ctx: &mut Ctx<'_, Member>,
        id: ConnId,
        request: &HttpRequest,
    ) -> Option<Reply<Member>> {
        if !self.batch.is_empty() {
            // Messages said before this request (an HTTP publish, say) go first: a
            // loop numbers what it is given in the order it came.
            let mut batch = std::mem::take(&mut self.batch);
            self.state().send_queued(ctx, &mut batch);
        }
        let reply = self.feeds(ctx, id, request);
        Some(reply.unwrap_or_else(|| Reply::Response(self.page(ctx, request))))
    }

    /// Without the chat lock: the hub's own check, and whether a loop waited long
    /// for the lock lately.
    fn health(&mut self) -> Result<(), String> {
        (self.health)()?;
        use std::sync::atomic::Ordering::Relaxed;
        let at = self.lock_wait.at_ms.load(Relaxed);
        if at > 0 && hub::now_ms().saturating_sub(at) < LOCK_REPORTED.as_millis() as u64 {
            let waited = self.lock_wait.waited_us.load(Relaxed) / 1000;
            return Err(format!("a loop waited {waited} ms for the chat lock"));
        }
        Ok(())
    }
}

/// Acks for messages of `room` (see [`senders`]).
fn send_acks(out: &mut impl Outbox, room: &str, due: Vec<DueAck>) {
    for d in due {
        let mut answer = json!({"room": room, "seq": d.seq});
        if d.duplicate {
            answer["duplicate"] = json!(true);
        }
        ack(out, d.to, d.rid.as_ref(), answer);
    }
}

/// The newest messages of `history` that fit in `max_bytes` (at least one, so that
/// paging back always moves on), oldest first.
fn replay_tail(history: &[String], max_bytes: usize) -> &[String] {
    let mut bytes = 0;
    let fits = history
        .iter()
        .rev()
        .take_while(|m| {
            bytes += m.len();
            bytes <= max_bytes
        })
        .count();
    &history[history.len() - fits.max(1).min(history.len())..]
}
