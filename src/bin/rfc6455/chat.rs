//! The rooms server behind `rfc6455 serve`: a JSON chat protocol on the event loop,
//! with presence, typing, direct messages, acknowledgements and catch-up.
//!
//! Protocol (every request may carry an `"id"`, answered by an `ack` with that id):
//!
//! ```text
//! -> {"type":"hello","name":"ann","id":1}             <- {"type":"ack","id":1,"name":"ann"}
//! -> {"type":"join","room":"lobby","since":41}        <- the lobby's messages after seq 41,
//!                                                       then {"type":"presence",...}
//! -> {"type":"message","room":"lobby","text":"hi"}    others <- {"type":"message","room":"lobby",
//!                                                       "from":"ann","text":"hi","seq":42,"ts":...}
//! -> {"type":"typing","room":"lobby"}                 others <- {"type":"typing",...}
//! -> {"type":"direct","to":"bob","text":"psst","id":7} <- {"type":"ack","id":7,"delivered":true}
//! -> {"type":"leave","room":"lobby"}                  others <- {"type":"left",...}
//! errors: {"type":"error","code":"name_taken"|"bad_json"|"unknown_type"|"no_hello"|
//!          "bad_field"|"too_long"|"not_in_room","message":"...","id":...}
//! ```
//!
//! With several event loops (`--threads`), each loop has its own `Chat` and they all
//! share one [`ChatState`] behind a lock: a room's members may sit on any loop, and
//! names, presence, seq numbers and history are the process's. A request is handled
//! with the lock held, and the messages it sends to other loops' members are posted
//! while it is held, so every member sees a room's messages in seq order.

use rfc6455::handshake::server::Request;
use rfc6455::server::rooms::{broadcast, RoomRegistry, Rooms};
use rfc6455::server::{
    Accept, CloseInfo, ConnId, Ctx, Handler, HttpRequest, HttpResponse, Message, SharedFrame, Stats,
};
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

/// The chat page, served at `GET /`.
const PAGE: &str = include_str!("chat.html");

pub const MAX_NAME: usize = 32;
pub const MAX_ROOM: usize = 64;
pub const MAX_TEXT: usize = 4096;
/// Rooms whose history is kept once empty (the oldest empty ones are forgotten).
const MAX_HISTORIES: usize = 1000;

/// Options of `rfc6455 serve`.
#[derive(Debug, Clone, Default)]
pub struct ChatConfig {
    /// Allowed Origin values; empty: any.
    pub origins: Vec<String>,
    /// Required `?token=` or `Authorization: Bearer` value.
    pub token: Option<String>,
    /// Messages kept per room for late joiners and catch-up.
    pub history: usize,
}

/// One user's connection. Its name lives in the shared [`ChatState`], where the other
/// loops can see it.
#[derive(Debug, Default)]
pub struct Member;

#[derive(Debug, Default)]
struct RoomLog {
    seq: u64,
    messages: VecDeque<Value>,
}

/// The chat application: one per event loop, all sharing one [`ChatState`].
#[derive(Clone)]
pub struct Chat {
    config: Arc<ChatConfig>,
    state: Arc<Mutex<ChatState>>,
}

/// What the loops of one process agree on: who is where, under which name, and each
/// room's numbered history.
pub struct ChatState {
    rooms: Box<dyn RoomRegistry + Send>,
    logs: HashMap<String, RoomLog>,
    /// Name to connection, and back (the other loops' connections' data is theirs).
    names: HashMap<String, ConnId>,
    users: HashMap<ConnId, String>,
    /// Messages received and delivered, for /metrics.
    delivered: u64,
    rejected_origin: u64,
    rejected_token: u64,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn send(ctx: &mut Ctx<'_, Member>, id: ConnId, value: &Value) {
    ctx.send_text(id, &value.to_string());
}

fn error(ctx: &mut Ctx<'_, Member>, id: ConnId, code: &str, message: &str, req: Option<&Value>) {
    let mut e = json!({"type": "error", "code": code, "message": message});
    if let Some(rid) = req {
        e["id"] = rid.clone();
    }
    send(ctx, id, &e);
}

impl Chat {
    /// A chat for one loop; [`clone`](Clone::clone) it for the others.
    pub fn new(config: ChatConfig) -> Self {
        Chat {
            config: Arc::new(config),
            state: Arc::new(Mutex::new(ChatState {
                rooms: Box::new(Rooms::default()),
                logs: HashMap::new(),
                names: HashMap::new(),
                users: HashMap::new(),
                delivered: 0,
                rejected_origin: 0,
                rejected_token: 0,
            })),
        }
    }

    fn state(&self) -> MutexGuard<'_, ChatState> {
        // Every change to the state is complete before it can panic (JSON is built
        // before the maps change): a poisoned lock still guards consistent data.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl ChatState {
    fn name_of(&self, id: ConnId) -> Option<String> {
        self.users.get(&id).cloned()
    }

    fn presence(&self, room: &str) -> Value {
        let mut members: Vec<String> = self
            .rooms
            .members(room)
            .into_iter()
            .filter_map(|id| self.name_of(id))
            .collect();
        members.sort();
        json!({"type": "presence", "room": room, "members": members})
    }

    fn request(&mut self, config: &ChatConfig, ctx: &mut Ctx<'_, Member>, id: ConnId, text: &str) {
        let Ok(req) = serde_json::from_str::<Value>(text) else {
            return error(ctx, id, "bad_json", "not a JSON object", None);
        };
        let rid = req.get("id").cloned();
        let rid = rid.as_ref();
        let Some(kind) = req.get("type").and_then(Value::as_str) else {
            return error(ctx, id, "bad_field", "missing \"type\"", rid);
        };
        let field = |name: &str, max: usize| -> Result<String, (&'static str, String)> {
            match req.get(name).and_then(Value::as_str) {
                None => Err(("bad_field", format!("missing string \"{name}\""))),
                Some("") => Err(("bad_field", format!("empty \"{name}\""))),
                Some(s) if s.chars().count() > max => {
                    Err(("too_long", format!("\"{name}\" is over {max} characters")))
                }
                Some(s) => Ok(s.to_string()),
            }
        };
        macro_rules! get {
            ($name:expr, $max:expr) => {
                match field($name, $max) {
                    Ok(v) => v,
                    Err((code, msg)) => return error(ctx, id, code, &msg, rid),
                }
            };
        }
        let me = self.name_of(id);
        if kind != "hello" && me.is_none() {
            return error(ctx, id, "no_hello", "say hello with a name first", rid);
        }
        let ack = |ctx: &mut Ctx<'_, Member>, extra: Value| {
            if let Some(rid) = rid {
                let mut a = json!({"type": "ack", "id": rid});
                if let (Value::Object(a), Value::Object(extra)) = (&mut a, extra) {
                    a.extend(extra);
                }
                send(ctx, id, &a);
            }
        };
        match kind {
            "hello" => {
                let name = get!("name", MAX_NAME);
                if me.as_deref() == Some(name.as_str()) {
                    return ack(ctx, json!({"name": name}));
                }
                if self.names.contains_key(&name) {
                    return error(ctx, id, "name_taken", &format!("{name:?} is taken"), rid);
                }
                if let Some(old) = me {
                    self.names.remove(&old);
                }
                self.names.insert(name.clone(), id);
                self.users.insert(id, name.clone());
                ack(ctx, json!({"name": name}));
            }
            "join" => {
                let room = get!("room", MAX_ROOM);
                let since = req.get("since").and_then(Value::as_u64);
                let me = me.unwrap_or_default();
                let newly = self.rooms.join(&room, id);
                ack(ctx, json!({"room": room}));
                // History: everything kept, or only what came after `since` (catch-up).
                let log = self.logs.entry(room.clone()).or_default();
                let missed: Vec<Value> = log
                    .messages
                    .iter()
                    .filter(|m| since.is_none_or(|s| m["seq"].as_u64().unwrap_or(0) > s))
                    .cloned()
                    .collect();
                for m in missed {
                    send(ctx, id, &m);
                }
                if newly {
                    let joined = json!({"type": "joined", "room": room, "user": me});
                    let frame = SharedFrame::text(&joined.to_string());
                    broadcast(self.rooms.as_ref(), ctx, &room, &frame, Some(id));
                }
                let presence = self.presence(&room);
                send(ctx, id, &presence);
            }
            "leave" => {
                let room = get!("room", MAX_ROOM);
                if !self.rooms.leave(&room, id) {
                    return error(ctx, id, "not_in_room", &format!("not in {room:?}"), rid);
                }
                ack(ctx, json!({"room": room}));
                let left = json!({"type": "left", "room": room, "user": me});
                broadcast(
                    self.rooms.as_ref(),
                    ctx,
                    &room,
                    &SharedFrame::text(&left.to_string()),
                    None,
                );
            }
            "message" => {
                let room = get!("room", MAX_ROOM);
                let text = get!("text", MAX_TEXT);
                if !self.rooms.rooms_of(id).contains(&room) {
                    return error(ctx, id, "not_in_room", &format!("join {room:?} first"), rid);
                }
                let log = self.logs.entry(room.clone()).or_default();
                log.seq += 1;
                let message = json!({"type": "message", "room": room, "from": me,
                                     "text": text, "seq": log.seq, "ts": now_ms()});
                log.messages.push_back(message.clone());
                while log.messages.len() > config.history {
                    log.messages.pop_front();
                }
                let seq = log.seq;
                let frame = SharedFrame::text(&message.to_string());
                let n = broadcast(self.rooms.as_ref(), ctx, &room, &frame, Some(id));
                self.delivered += n as u64;
                ack(ctx, json!({"room": room, "seq": seq, "delivered_to": n}));
                self.forget_old_logs();
            }
            "typing" => {
                let room = get!("room", MAX_ROOM);
                if !self.rooms.rooms_of(id).contains(&room) {
                    return error(ctx, id, "not_in_room", &format!("join {room:?} first"), rid);
                }
                let typing = json!({"type": "typing", "room": room, "user": me});
                broadcast(
                    self.rooms.as_ref(),
                    ctx,
                    &room,
                    &SharedFrame::text(&typing.to_string()),
                    Some(id),
                );
                ack(ctx, json!({}));
            }
            "direct" => {
                let to = get!("to", MAX_NAME);
                let text = get!("text", MAX_TEXT);
                let delivered = match self.names.get(&to) {
                    Some(&target) => ctx.send_text(
                        target,
                        &json!({"type": "direct", "from": me, "text": text, "ts": now_ms()})
                            .to_string(),
                    ),
                    None => false,
                };
                if delivered {
                    self.delivered += 1;
                    ack(ctx, json!({"delivered": true}));
                } else {
                    let reason = if self.names.contains_key(&to) {
                        "not deliverable now"
                    } else {
                        "no such user online"
                    };
                    ack(ctx, json!({"delivered": false, "reason": reason}));
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

    /// Keeps the histories of at most `MAX_HISTORIES` rooms: empty rooms go first.
    fn forget_old_logs(&mut self) {
        if self.logs.len() <= MAX_HISTORIES {
            return;
        }
        let empty: Vec<String> = self
            .logs
            .keys()
            .filter(|room| self.rooms.members(room).is_empty())
            .take(self.logs.len() - MAX_HISTORIES)
            .cloned()
            .collect();
        for room in empty {
            self.logs.remove(&room);
        }
    }

    fn metrics(&self, m: &Stats) -> String {
        let series: [(&str, &str, &str, String); 9] = [
            (
                "rfc6455_open_connections",
                "WebSocket connections open.",
                "gauge",
                m.open.to_string(),
            ),
            (
                "rfc6455_rooms",
                "Rooms with members.",
                "gauge",
                self.rooms.room_count().to_string(),
            ),
            (
                "rfc6455_users",
                "Users who said hello.",
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
                "rfc6455_slow_consumer_events_total",
                "Messages dropped or connections closed for slow consumers.",
                "counter",
                m.slow_consumer_events.to_string(),
            ),
        ];
        let mut out = String::new();
        for (name, help, kind, value) in series {
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
        out
    }
}

impl Handler for Chat {
    type Data = Member;

    fn upgrade(&mut self, request: &Request) -> Result<Accept<Member>, u16> {
        if !self.config.origins.is_empty() {
            let allowed = request
                .origin()
                .is_some_and(|o| self.config.origins.iter().any(|a| a == o));
            if !allowed {
                self.state().rejected_origin += 1;
                return Err(403);
            }
        }
        if let Some(token) = &self.config.token {
            let in_query = request.query().is_some_and(|q| {
                q.split('&')
                    .any(|kv| kv.strip_prefix("token=") == Some(token.as_str()))
            });
            let in_header = request
                .header("Authorization")
                .and_then(|h| h.strip_prefix("Bearer "))
                .is_some_and(|t| t.trim() == token);
            if !in_query && !in_header {
                self.state().rejected_token += 1;
                return Err(401);
            }
        }
        Ok(Accept::new(Member))
    }

    fn message(&mut self, ctx: &mut Ctx<'_, Member>, id: ConnId, message: Message) {
        match message {
            Message::Text(text) => {
                let config = self.config.clone();
                self.state().request(&config, ctx, id, &text);
            }
            Message::Binary(_) => error(ctx, id, "bad_json", "send JSON text messages", None),
        }
    }

    fn close(&mut self, ctx: &mut Ctx<'_, Member>, id: ConnId, _member: Member, _info: CloseInfo) {
        let mut state = self.state();
        let rooms = state.rooms.leave_all(id);
        if let Some(name) = state.users.remove(&id) {
            if state.names.get(&name) == Some(&id) {
                state.names.remove(&name);
            }
            for room in rooms {
                let left = json!({"type": "left", "room": room, "user": name});
                broadcast(
                    state.rooms.as_ref(),
                    ctx,
                    &room,
                    &SharedFrame::text(&left.to_string()),
                    None,
                );
            }
        }
    }

    fn http(&mut self, request: &HttpRequest, stats: &Stats) -> Option<HttpResponse> {
        match (request.method.as_str(), request.path()) {
            ("GET", "/") => Some(HttpResponse::html(200, PAGE)),
            ("GET", "/metrics") => Some(HttpResponse::with_type(
                200,
                "text/plain; version=0.0.4",
                self.state().metrics(stats).into_bytes(),
            )),
            // The WebSocket endpoint is `/` (with a query): a plain GET there is the page.
            _ => Some(HttpResponse::text(404, "not found\n")),
        }
    }
}
