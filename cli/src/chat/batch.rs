//! A loop's members' messages of one turn, numbered and sent together.
//!
//! A `message` request that passes its checks is queued here instead of going to the
//! hub at once; at the end of the loop's turn ([`Handler::end_turn`]) the whole queue
//! goes to [`Hub::messages`](super::hub::Hub::messages) in one call (with Redis: one
//! pipelined round trip per shard, where it was one round trip per message, each
//! holding up every connection on the loop).
//!
//! **Order.** A connection's requests take effect in the order it sent them: before
//! anything else of a connection that has messages queued is served (another request,
//! a refused message, its close), the queue is sent. The queue is sent too once it
//! holds [`MAX_QUEUED`] messages, so a turn that reads a lot does not wait long. (An
//! ack may then wait for the room's earlier messages, see
//! [`senders`](super::senders): within a room the acks keep the order of the
//! messages; across rooms, or after another request, match answers by their `id`.)
//!
//! [`Handler::end_turn`]: rfc6455::server::Handler::end_turn

use super::hub::Outgoing;
use super::identity::Claims;
use super::limits;
use super::{ack, error, ChatState};
use rfc6455::server::rooms::RoomRegistry;
use rfc6455::server::{ConnId, Outbox};
use serde_json::{json, Value};

/// Messages queued at most before the queue is sent within the turn.
pub const MAX_QUEUED: usize = 256;

/// A `message` request that passed its checks.
#[derive(Debug)]
struct Queued {
    id: ConnId,
    /// The request's `id`, for its ack.
    rid: Option<Value>,
    room: String,
    from: String,
    text: String,
    key: Option<String>,
}

/// One loop's queue (each loop has its own: what a loop queued, it sends).
#[derive(Debug, Default)]
pub struct Batch {
    queued: Vec<Queued>,
}

/// The queue of a new loop (a clone of the chat, see [`Chat`](super::Chat)) starts
/// empty: what a loop queued, that loop sends.
impl Clone for Batch {
    fn clone(&self) -> Self {
        Batch::default()
    }
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.queued.is_empty()
    }

    /// Whether connection `id` has a message queued.
    pub fn has(&self, id: ConnId) -> bool {
        self.queued.iter().any(|q| q.id == id)
    }
}

impl ChatState {
    /// Checks `message` request `req` of connection `id` (user `me`, whose token
    /// said `claims`) and queues it, or answers why not.
    pub(super) fn queue_message(
        &mut self,
        out: &mut impl Outbox,
        batch: &mut Batch,
        (id, me, claims): (ConnId, &str, Option<&Claims>),
        req: &Value,
    ) {
        let rid = req.get("id");
        match self.checked_message(id, claims, req) {
            Ok((room, text, key)) => {
                batch.queued.push(Queued {
                    id,
                    rid: rid.cloned(),
                    room,
                    from: me.to_string(),
                    text,
                    key,
                });
                if batch.queued.len() >= MAX_QUEUED {
                    self.send_queued(out, batch);
                }
            }
            Err((code, why)) => {
                if batch.has(id) {
                    self.send_queued(out, batch);
                }
                error(out, id, code, &why, rid);
            }
        }
    }

    /// The room, text and idempotency key of a `message` request that may be sent.
    fn checked_message(
        &self,
        id: ConnId,
        claims: Option<&Claims>,
        req: &Value,
    ) -> Result<(String, String, Option<String>), (&'static str, String)> {
        let field = |name: &str| match req.get(name).and_then(Value::as_str) {
            Some(value) => Ok(value),
            None => Err(("bad_field", format!("missing string \"{name}\""))),
        };
        let room = limits::room("room", field("room")?)?;
        let text = limits::text("text", field("text")?)?;
        if !self.rooms.is_member(&room, id) {
            return Err(("not_in_room", format!("join {room:?} first")));
        }
        if claims.is_some_and(|c| !c.may_publish(&room)) {
            let why = format!("your token does not let you publish to {room:?}");
            return Err(("forbidden", why));
        }
        let key = match req.get("idempotency_key") {
            None => None,
            Some(key) => match key.as_str().map(limits::idempotency_key) {
                Some(Ok(key)) => Some(key.to_string()),
                Some(Err(why)) => return Err(("bad_field", why)),
                None => {
                    let why = "\"idempotency_key\" must be a string".to_string();
                    return Err(("bad_field", why));
                }
            },
        };
        Ok((room, text, key))
    }

    /// Numbers and sends every queued message (one call of the hub), and answers
    /// each sender: its seq, `duplicate` for a retry, or `unavailable`.
    pub(super) fn send_queued(&mut self, out: &mut impl Outbox, batch: &mut Batch) {
        let queued = std::mem::take(&mut batch.queued);
        let dedup_window = self.limits.dedup_window();
        let outgoing: Vec<Outgoing<'_>> = queued
            .iter()
            .map(|q| Outgoing {
                key: q.key.as_deref(),
                dedup_window,
                ..Outgoing::new(&q.room, &q.from, &q.text, false)
            })
            .collect();
        let answers = self.hub.messages(&outgoing);
        for (q, answer) in queued.iter().zip(answers) {
            let rid = q.rid.as_ref();
            let published = match answer {
                Ok(published) => published,
                Err(reason) => {
                    error(out, q.id, "unavailable", &reason, rid);
                    continue;
                }
            };
            let room = &q.room;
            if published.duplicate {
                // A retry: the first answer again (when it may come), and nothing sent.
                self.sent(out, (room, published.seq, q.id, true), Some(rid));
                continue;
            }
            let sent = (room.as_str(), published.seq, q.id, false);
            match &published.local {
                // Delivered here and now: every earlier message is out already.
                Some(event) => {
                    self.sent(out, sent, None);
                    let delivered_to = self.deliver(out, event);
                    let extra =
                        json!({"room": room, "seq": published.seq, "delivered_to": delivered_to});
                    ack(out, q.id, rid, extra);
                }
                // It comes back through Redis: its ack must not overtake earlier ones.
                None => self.sent(out, sent, Some(rid)),
            }
        }
    }
}
