//! Rooms over plain HTTP, on the same port as the WebSocket endpoint: a room as a
//! Server-Sent Events stream (the WHATWG HTML "Server-sent events" format), and
//! messages posted into a room by a backend.
//!
//! ```text
//! GET  /rooms/ROOM/events     Accept: text/event-stream   [Last-Event-ID: N | ?since=N]
//!   <- 200 text/event-stream: retry, the history after N, presence, then live:
//!      id: 42 / event: message / data: {"type":"message",...,"seq":42}
//!      event: presence / data: {"type":"joined"|"left"|"presence",...}
//!      : keep-alive                                   (every --sse-keepalive)
//!      event: more / data: {"room":...,"before":N}     (first, when the replay was cut
//!                                                    to the newest --max-replay bytes:
//!                                                    messages before seq N left out)
//! POST /rooms/ROOM/messages   Content-Type: application/json   {"from":"ci","text":"..."}
//!   <- 202 {"seq":43}; 400 bad JSON or fields, 401 token, 403 origin, 409 `from` is a
//!      member's name, 413 too big (the server's body limit), 415 not JSON, 405 other
//!      methods, 429 over --http-rate (with Retry-After), 503 unavailable
//! ```
//!
//! A posted message carries `"via":"http"`: members can tell it from one a member
//! said. Browsers may read these answers (CORS) only from the `--origin`s listed;
//! without `--origin`, no page of another site can.
//!
//! A stream is a listener, not a member: no name, not in presence. Its messages carry
//! the room's seq as the event id, so a reconnecting `EventSource` sends
//! `Last-Event-ID` and gets exactly what it missed (the same catch-up as a WebSocket
//! member's `since`, with the same no-gap, no-duplicate cursor).

use super::hub::{Joined, Outgoing, RoomEvent};
use super::identity::Claims;
use super::limits::{self, MAX_ROOM};
use super::{Chat, ChatState, Cursor, Member};
use rfc6455::server::{ConnId, Ctx, HttpRequest, HttpResponse, Reply};
use serde_json::{json, Value};
use std::sync::Arc;

/// What an `EventSource` waits before reconnecting, in ms (the stream's `retry:`).
const RETRY_MS: u32 = 2000;

/// The SSE bytes of a room event: messages with `EPOCH:SEQ` as the id (the room's
/// epoch, `epoch` when the event does not say), joins and leaves as `presence`;
/// `None` for what a listener does not get (typing).
pub(super) fn sse_event(event: &RoomEvent, epoch: &str) -> Option<Arc<[u8]>> {
    let epoch = event.epoch.as_deref().unwrap_or(epoch);
    let text = match event.seq {
        Some(seq) => format!(
            "id: {epoch}:{seq}\nevent: message\ndata: {}\n\n",
            event.body
        ),
        None if event.body.contains(r#""type":"typing""#) => return None,
        None => format!("event: presence\ndata: {}\n\n", event.body),
    };
    Some(text.into_bytes().into())
}

/// `/rooms/ROOM/WHAT` → (room, what), the room percent-decoded.
fn room_route(path: &str) -> Option<(String, &str)> {
    let rest = path.strip_prefix("/rooms/")?;
    let (room, what) = rest.split_once('/')?;
    let room = percent_decode(room)?;
    let ok = !room.is_empty() && room.chars().count() <= MAX_ROOM;
    let ok = ok && limits::room("room", &room).is_ok();
    ok.then_some((room, what))
}

/// `%XX` escapes decoded; `None` for a bad escape or bytes that are not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(text.len());
    let mut rest = text.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        if b == b'%' {
            let hex = std::str::from_utf8(tail.get(..2)?).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            rest = &tail[2..];
        } else {
            bytes.push(b);
            rest = tail;
        }
    }
    String::from_utf8(bytes).ok()
}

fn json_error(status: u16, code: &str, message: &str) -> HttpResponse {
    let body = json!({"error": code, "message": message}).to_string();
    HttpResponse::with_type(status, "application/json", body.into_bytes())
}

impl Chat {
    /// Whether the request may come: its Origin (when the browser sends one) is
    /// allowed, and it carries the token when one is required (the WebSocket
    /// endpoint's rules), and its address is within `--http-rate`. With signed
    /// identity, the token's claims.
    fn admit(&self, request: &HttpRequest) -> Result<Option<Claims>, HttpResponse> {
        // A request without an Origin comes from no browser (curl, a backend).
        let origin = request.header("origin");
        if origin.is_some() && !self.config.allows_origin(origin) {
            self.state().rejected_origin += 1;
            return Err(json_error(403, "origin", "this Origin is not allowed"));
        }
        let claims = match &self.config.auth {
            Some(auth) => {
                let from = super::Credentials {
                    query: request.query(),
                    authorization: request.header("authorization"),
                    cookies: request.header("cookie"),
                    origin: request.header("origin"),
                    host: request.header("host"),
                };
                Some(self.verified(auth, &from).map_err(|refusal| {
                    let code = if refusal.status == 403 {
                        "origin"
                    } else {
                        "token"
                    };
                    let mut response = json_error(refusal.status, code, &refusal.reason);
                    response.headers.extend(refusal.headers);
                    response
                })?)
            }
            None if !self
                .config
                .has_token(request.query(), request.header("authorization")) =>
            {
                self.state().rejected_token += 1;
                return Err(json_error(401, "token", "a token is required"));
            }
            None => None,
        };
        if let Some(peer) = request.peer {
            let mut state = self.state();
            if let Err(wait) = state.http_rates.take(peer, std::time::Instant::now()) {
                state.rejected_rate += 1;
                let mut response = json_error(429, "rate", "too many requests from this address");
                let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
                response
                    .headers
                    .push(("Retry-After".into(), seconds.to_string()));
                return Err(response);
            }
        }
        Ok(claims)
    }

    /// The room API, or `None` for other paths.
    pub(super) fn feeds(
        &mut self,
        ctx: &mut Ctx<'_, Member>,
        id: ConnId,
        request: &HttpRequest,
    ) -> Option<Reply<Member>> {
        let (room, what) = room_route(request.path())?;
        let method = request.method.as_str();
        let reply = match (what, method) {
            ("events", "GET") => self.subscribe(id, &room, request),
            ("messages", "POST") => self.publish(ctx, id, &room, request).map(Reply::Response),
            ("messages", "OPTIONS") => self.preflight(request).map(Reply::Response),
            ("events", _) => Ok(Reply::Response(not_allowed("GET"))),
            ("messages", _) => Ok(Reply::Response(not_allowed("POST, OPTIONS"))),
            _ => Ok(Reply::Response(json_error(
                404,
                "not_found",
                "no such path",
            ))),
        };
        let mut reply = reply.unwrap_or_else(Reply::Response);
        // A browser may read the answer when its Origin is listed (CORS); with no
        // `--origin`, no other site's page may.
        let listed = request
            .header("origin")
            .filter(|o| !self.config.origins.is_empty() && self.config.allows_origin(Some(o)));
        if let Some(origin) = listed {
            let head = match &mut reply {
                Reply::Response(response) => response,
                Reply::Stream { head, .. } => head,
            };
            if head.status < 400 {
                head.headers
                    .push(("Access-Control-Allow-Origin".into(), origin.into()));
                head.headers.push(("Vary".into(), "Origin".into()));
            }
        }
        Some(reply)
    }

    /// `GET /rooms/ROOM/events`: the history after `Last-Event-ID` (or `?since=`),
    /// the members, then the room live, with no gap and no duplicate between them.
    fn subscribe(
        &mut self,
        id: ConnId,
        room: &str,
        request: &HttpRequest,
    ) -> Result<Reply<Member>, HttpResponse> {
        let claims = self.admit(request)?;
        if claims.as_ref().is_some_and(|c| !c.may_read(room)) {
            return Err(forbidden(room, "follow"));
        }
        let accept = request.header("accept").unwrap_or("*/*");
        if !accept.contains("text/event-stream") && !accept.contains("*/*") {
            return Err(json_error(
                406,
                "not_acceptable",
                "this is a text/event-stream",
            ));
        }
        let (since, epoch) = match request.header("last-event-id") {
            Some(last) => last_event_id(last)?,
            None => query_since(request)?,
        };
        let mut state = self.state();
        let mut joined = state
            .hub
            .listen(room, since)
            .map_err(|reason| json_error(503, "unavailable", &reason))?;
        // A seq of another epoch says nothing of this one: all that is kept.
        if epoch.as_ref().is_some_and(|e| *e != joined.epoch) {
            joined.history = state
                .reread(room, joined.seq)
                .map_err(|reason| json_error(503, "unavailable", &reason))?;
        }
        state.drop_stale(&mut joined.history);
        let mut body = format!("retry: {RETRY_MS}\n\n");
        // The newest messages that fit in `max_replay` bytes, running on into the
        // live ones; `event: more` first when older ones were left out.
        let page = super::replay_tail(&joined.history, state.limits.max_replay);
        let seqs: Vec<u64> = page
            .iter()
            .map(|m| super::hub::seq_of(m).unwrap_or_default())
            .collect();
        // A resume is told whether it lost anything, before anything else: a stream
        // cannot page back, so a replay cut short is a loss too.
        if let Some(since) = since {
            let whole = page.len() == joined.history.len();
            let recovery = json!({
                "recovered": whole && super::recovered(&joined, since, epoch.as_deref()),
                "epoch": joined.epoch,
                "oldest": seqs.first(),
            });
            body.push_str(&format!("event: recovery\ndata: {recovery}\n\n"));
        }
        if page.len() < joined.history.len() {
            let more = json!({"room": room, "before": seqs.first()});
            body.push_str(&format!("event: more\ndata: {more}\n\n"));
        }
        let epoch = &joined.epoch;
        for (message, seq) in page.iter().zip(seqs) {
            body.push_str(&format!(
                "id: {epoch}:{seq}\nevent: message\ndata: {message}\n\n"
            ));
        }
        let presence = json!({"type": "presence", "room": room, "members": joined.members});
        body.push_str(&format!("event: presence\ndata: {presence}\n\n"));
        state.listen(room, id, &joined);
        let mut head =
            HttpResponse::with_type(200, "text/event-stream; charset=utf-8", body.into_bytes());
        head.headers
            .push(("Cache-Control".into(), "no-cache".into()));
        // nginx buffers responses unless told not to.
        head.headers.push(("X-Accel-Buffering".into(), "no".into()));
        drop(state);
        // A signed stream ends at its token's `exp` (the `EventSource` comes back
        // with the page's fresh token).
        let data = match claims {
            Some(claims) => {
                self.expiries.insert((claims.exp, id));
                Member {
                    claims: Some(Arc::new(claims)),
                    warned: true,
                }
            }
            None => Member::default(),
        };
        Ok(Reply::Stream { head, data })
    }

    /// `POST /rooms/ROOM/messages`: a message from a backend, numbered and delivered
    /// like any other.
    fn publish(
        &mut self,
        ctx: &mut Ctx<'_, Member>,
        id: ConnId,
        room: &str,
        request: &HttpRequest,
    ) -> Result<HttpResponse, HttpResponse> {
        let claims = self.admit(request)?;
        if claims.as_ref().is_some_and(|c| !c.may_publish(room)) {
            return Err(forbidden(room, "publish to"));
        }
        let json = request.header("content-type").is_some_and(|t| {
            t.trim()
                .to_ascii_lowercase()
                .starts_with("application/json")
        });
        if !json {
            return Err(json_error(415, "content_type", "send application/json"));
        }
        let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&request.body) else {
            return Err(json_error(400, "bad_json", "the body is not a JSON object"));
        };
        let field = |name: &str, check: fn(&str, &str) -> Result<String, limits::Refused>| {
            let value = body.get(name).and_then(Value::as_str).ok_or_else(|| {
                json_error(400, "bad_field", &format!("\"{name}\" must be a string"))
            })?;
            check(name, value).map_err(|(code, message)| json_error(400, code, &message))
        };
        let text = field("text", limits::text)?;
        // Signed: the sender is the token's user (a `from` in the body is ignored).
        let from = match &claims {
            Some(claims) => claims.user().to_string(),
            None => field("from", limits::name)?,
        };
        let mut state = self.state();
        // A backend may not speak as a member who is here.
        if claims.is_none() && state.names.contains_key(&from) {
            return Err(json_error(
                409,
                "name_taken",
                "\"from\" is the name of a member; pick a name of your own",
            ));
        }
        let key = match request.header("idempotency-key") {
            Some(key) => Some(
                limits::idempotency_key(key.trim())
                    .map_err(|why| json_error(400, "bad_field", &why))?,
            ),
            None => None,
        };
        let outgoing = Outgoing {
            key,
            dedup_window: state.limits.dedup_window(),
            ..Outgoing::new(room, &from, &text, true)
        };
        let published = state
            .hub
            .message(outgoing)
            .map_err(|reason| json_error(503, "unavailable", &reason))?;
        if published.duplicate {
            // A retry: the first answer again, and nothing sent.
            let body = json!({"seq": published.seq}).to_string();
            let mut response = HttpResponse::with_type(202, "application/json", body.into_bytes());
            response
                .headers
                .push(("Idempotent-Replayed".into(), "true".into()));
            return Ok(response);
        }
        // The user's own connections get it: it was not said by any of them.
        state.sent(ctx, (room, published.seq, id, false), None);
        if let Some(event) = &published.local {
            state.deliver(ctx, event);
        }
        let body = json!({"seq": published.seq}).to_string();
        Ok(HttpResponse::with_type(
            202,
            "application/json",
            body.into_bytes(),
        ))
    }

    /// A CORS preflight for a browser's POST: answered for allowed Origins only.
    fn preflight(&self, request: &HttpRequest) -> Result<HttpResponse, HttpResponse> {
        let Some(origin) = request.header("origin") else {
            return Err(not_allowed("POST, OPTIONS"));
        };
        if self.config.origins.is_empty() || !self.config.allows_origin(Some(origin)) {
            return Err(json_error(403, "origin", "this Origin is not allowed"));
        }
        let mut response = HttpResponse::with_type(204, "text/plain", Vec::new());
        response.headers.extend([
            ("Access-Control-Allow-Methods".into(), "POST".into()),
            (
                "Access-Control-Allow-Headers".into(),
                "Content-Type, Authorization".into(),
            ),
            ("Access-Control-Max-Age".into(), "600".into()),
        ]);
        Ok(response)
    }
}

/// 403 for a room the token does not give.
fn forbidden(room: &str, what: &str) -> HttpResponse {
    let message = format!("your token does not let you {what} {room:?}");
    json_error(403, "forbidden", &message)
}

fn not_allowed(allow: &str) -> HttpResponse {
    let mut response = json_error(405, "method", &format!("use {allow}"));
    response.headers.push(("Allow".into(), allow.into()));
    response
}

/// `Last-Event-ID`: `EPOCH:SEQ` as the stream's ids are, or a bare seq (no epoch:
/// the resume is then told it cannot be sure it lost nothing).
fn last_event_id(value: &str) -> Result<(Option<u64>, Option<String>), HttpResponse> {
    let bad = || json_error(400, "bad_field", "Last-Event-ID is a message's EPOCH:SEQ");
    let (epoch, seq) = match value.trim().split_once(':') {
        Some((epoch, seq)) => (Some(epoch.to_string()), seq),
        None => (None, value.trim()),
    };
    Ok((Some(seq.parse().map_err(|_| bad())?), epoch))
}

/// `?since=N` (and `&epoch=E`), if given.
fn query_since(request: &HttpRequest) -> Result<(Option<u64>, Option<String>), HttpResponse> {
    let field = |name: &str| {
        request.query().and_then(|q| {
            q.split('&')
                .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
        })
    };
    let since = field("since")
        .map(|s| {
            s.parse()
                .map_err(|_| json_error(400, "bad_field", "since is a message's seq"))
        })
        .transpose()?;
    Ok((since, field("epoch").map(str::to_string)))
}

impl ChatState {
    /// Connection `id` follows `room` from what `joined` read on.
    fn listen(&mut self, room: &str, id: ConnId, joined: &Joined) {
        let view = self.view(room, joined);
        let at = Cursor {
            pos: joined.pos.unwrap_or(0),
            seq: joined.seq,
        };
        view.cursors.insert(id, at);
        view.max_cursor = view.max_cursor.max(at);
        self.listeners
            .entry(room.to_string())
            .or_default()
            .insert(id);
        self.streams.insert(id, room.to_string());
    }

    /// A stream ended: `true` if `id` was one.
    pub(super) fn unlisten(&mut self, id: ConnId) -> bool {
        let Some(room) = self.streams.remove(&id) else {
            return false;
        };
        if let Some(ids) = self.listeners.get_mut(&room) {
            ids.remove(&id);
            if ids.is_empty() {
                self.listeners.remove(&room);
            }
        }
        self.forget_member(&room, id);
        self.hub.unlisten(&room);
        true
    }

    /// A comment line to every stream, so that idle ones look alive to proxies.
    pub(super) fn keep_streams_alive(&mut self, out: &mut impl rfc6455::server::Outbox) {
        let comment: Arc<[u8]> = b": keep-alive\n\n"[..].into();
        for id in self.streams.keys() {
            out.send_stream(*id, &comment);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_decode_the_room() {
        assert_eq!(
            room_route("/rooms/caf%C3%A9/events"),
            Some(("café".to_string(), "events"))
        );
        assert_eq!(room_route("/rooms//events"), None);
        assert_eq!(room_route("/rooms/a%zz/events"), None);
        assert_eq!(room_route("/rooms/a"), None);
        assert_eq!(room_route("/other/a/events"), None);
    }

    #[test]
    fn events_become_sse_lines() {
        let event = |seq, body: &str| RoomEvent {
            room: "r".into(),
            seq,
            pos: None,
            origin: String::new(),
            except: None,
            body: body.into(),
            epoch: None,
        };
        let message = event(Some(7), r#"{"type":"message","seq":7}"#);
        assert_eq!(
            &*sse_event(&message, "e1").unwrap(),
            b"id: e1:7\nevent: message\ndata: {\"type\":\"message\",\"seq\":7}\n\n"
        );
        let joined = event(None, r#"{"type":"joined","room":"r","user":"ann"}"#);
        assert!(sse_event(&joined, "e1")
            .unwrap()
            .starts_with(b"event: presence\ndata: {\"type\":\"joined\""));
        assert!(sse_event(&event(None, r#"{"type":"typing"}"#), "e1").is_none());
    }
}
