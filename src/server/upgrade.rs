//! The HTTP side of a connection: its request head becomes a WebSocket (the handler
//! agreeing), a plain HTTP response, or a rejection with the right status.

use super::conn::Phase;
use super::event_loop::Loop;
use super::{CloseInfo, Handler, HttpRequest, HttpResponse, Reply};
use crate::handshake::server::{reject, Request};
use crate::CloseCode;
use crate::{Connection, Role};
use std::time::Instant;

impl<H: Handler> Loop<H> {
    /// Handles a pushed request head: an upgrade, a plain HTTP request, or an error.
    pub(super) fn after_head(
        &mut self,
        slot: usize,
        pushed: Result<Option<usize>, crate::handshake::HeadTooLarge>,
    ) {
        let head_len = match pushed {
            Ok(None) => return,
            Ok(Some(len)) => len,
            Err(_) => {
                let response = crate::handshake::server::RequestError::HeadTooLarge.response();
                self.stats.count_rejection(431);
                return self.respond_and_close(slot, response);
            }
        };
        let conn = &mut self.conns[slot];
        let Phase::Handshake(head) = &mut conn.phase else {
            return;
        };
        let head_bytes = head.buffer()[..head_len].to_vec();
        let rest = head.take_rest();
        if self.config.connection.trace {
            for line in String::from_utf8_lossy(&head_bytes).lines() {
                let line = redacted_line(line);
                log::info!(target: "rfc6455::trace", "slot {slot} <- {line}");
            }
        }
        match Request::parse(&head_bytes) {
            Ok(request) => self.upgrade(slot, request, rest),
            Err(err) => {
                if let Some(http) = HttpRequest::parse(&head_bytes) {
                    if !http.is_upgrade() {
                        return self.begin_body(slot, http, rest);
                    }
                }
                log::info!("slot {slot}: handshake refused ({}): {err}", err.status());
                self.stats.count_rejection(err.status());
                self.respond_and_close(slot, err.response());
            }
        }
    }

    /// A plain HTTP request's head is in: read its body (`Content-Length` bytes, some
    /// of which may have come with the head), then answer it. The handshake timeout
    /// covers the body too.
    fn begin_body(&mut self, slot: usize, mut request: HttpRequest, rest: Vec<u8>) {
        let refuse = |status: u16, why: &str| HttpResponse::text(status, why).to_bytes();
        let want = match request.body_length() {
            Ok(want) => want,
            Err(status) => {
                let why = "a body needs one Content-Length (no Transfer-Encoding)\n";
                return self.respond_and_close(slot, refuse(status, why));
            }
        };
        if want > self.config.max_body {
            let why = format!("the body is over {} bytes\n", self.config.max_body);
            return self.respond_and_close(slot, refuse(413, &why));
        }
        request.body = rest;
        request.peer = Some(self.conns[slot].peer);
        if request.body.len() >= want {
            // Bytes beyond the body (a pipelined request) are not served.
            request.body.truncate(want);
            return self.answer_http(slot, request);
        }
        // Nothing reserved for the announced length: memory follows the bytes that
        // actually come (a client may announce 64 KiB and send nothing).
        self.conns[slot].phase = Phase::Body { request, want };
    }

    /// Body bytes read for a connection in `Phase::Body`; answers once all are in.
    pub(super) fn push_body(&mut self, slot: usize, bytes: &[u8]) {
        let conn = &mut self.conns[slot];
        let Phase::Body { request, want } = &mut conn.phase else {
            return;
        };
        let take = (*want - request.body.len()).min(bytes.len());
        request.body.extend_from_slice(&bytes[..take]);
        if request.body.len() < *want {
            return;
        }
        let Phase::Body { request, .. } = std::mem::replace(&mut conn.phase, Phase::Closing) else {
            unreachable!("matched above");
        };
        self.answer_http(slot, request);
    }

    /// A complete plain request: `/healthz`, then the handler's `request` (a response
    /// or a stream, or `None` for a WebSocket endpoint).
    fn answer_http(&mut self, slot: usize, request: HttpRequest) {
        if request.method == "GET" && request.path() == "/healthz" {
            let response = match self.handler.health() {
                Ok(()) => HttpResponse::text(200, "ok\n"),
                Err(reason) => HttpResponse::text(503, &format!("unavailable: {reason}\n")),
            };
            return self.respond_and_close(slot, response.to_bytes());
        }
        let id = self.conns[slot].id(slot);
        let mut reply = None;
        self.with_ctx(|handler, ctx| reply = handler.request(ctx, id, &request));
        match reply {
            Some(Reply::Response(response)) => self.respond_and_close(slot, response.to_bytes()),
            Some(Reply::Stream { head, data }) => self.open_stream(slot, head, data),
            None => self.respond_and_close(slot, websocket_endpoint(&request).to_bytes()),
        }
    }

    /// Starts a response that stays open (see [`Reply::Stream`]).
    fn open_stream(&mut self, slot: usize, head: HttpResponse, data: H::Data) {
        let id = self.conns[slot].id(slot);
        let refused = match self.loops.admission.open_stream(self.config.stream_limit()) {
            Err(streams) => Some(format!("{streams} streams open")),
            Ok(()) => match self.loops.try_open(self.config.max_connections) {
                Ok(()) => None,
                Err(open) => {
                    self.loops.admission.stream_closed();
                    Some(format!("{open} connections open"))
                }
            },
        };
        if let Some(why) = refused {
            log::warn!("{id}: stream refused, {why} (503)");
            self.stats.count_rejection(503);
            let info = CloseInfo {
                code: CloseCode::TRY_AGAIN_LATER,
                reason: "too many connections".into(),
                clean: false,
            };
            self.with_ctx(|handler, ctx| handler.close(ctx, id, data, info));
            let response = HttpResponse::text(503, "too many connections\n");
            return self.respond_and_close(slot, response.to_bytes());
        }
        self.handshake_over(slot);
        let conn = &mut self.conns[slot];
        conn.raw_output = head.to_stream_bytes();
        conn.phase = Phase::Stream { data };
        conn.handshake_deadline = None;
        self.stats.streams += 1;
        log::info!("{id}: stream open");
        self.flush(slot);
    }

    pub(super) fn upgrade(&mut self, slot: usize, request: Request, rest: Vec<u8>) {
        if let Err(open) = self.loops.try_open(self.config.max_connections) {
            log::warn!("slot {slot}: refused, {open} connections open (503)");
            self.stats.count_rejection(503);
            return self.respond_and_close(slot, reject(503, &[], "too many connections"));
        }
        let accepted = match self.handler.upgrade(&request) {
            Ok(accepted) => accepted,
            Err(status) => {
                self.loops.closed();
                log::info!(
                    "slot {slot}: upgrade of {} refused with {status}",
                    redacted_target(request.target())
                );
                self.stats.count_rejection(status);
                return self.respond_and_close(slot, reject(status, &[], "upgrade refused"));
            }
        };
        let now = Instant::now();
        let ping_at = self.config.ping_interval.map(|i| now + i);
        let conn = &mut self.conns[slot];
        let (response, deflate) = request.accept_negotiating(
            accepted.protocol.as_deref(),
            self.config.connection.deflate.as_ref(),
        );
        conn.raw_output = response;
        if self.config.connection.trace {
            for line in String::from_utf8_lossy(&conn.raw_output).lines() {
                log::info!(target: "rfc6455::trace", "slot {slot} -> {line}");
            }
        }
        let mut ws =
            Connection::with_deflate(Role::Server, self.config.connection.clone(), deflate);
        ws.receive(&rest);
        conn.phase = Phase::Open {
            ws,
            data: accepted.data,
        };
        conn.handshake_deadline = None;
        conn.next_ping = ping_at;
        self.handshake_over(slot);
        let conn = &mut self.conns[slot];
        if let Some(at) = ping_at {
            self.timers.schedule(at, slot);
        }
        self.stats.open += 1;
        let id = conn.id(slot);
        log::info!("{id}: open, {}", redacted_target(request.target()));
        self.flush(slot);
        self.with_ctx(|handler, ctx| handler.open(ctx, id));
        // Frames that came with the head.
        self.process(slot);
    }

    pub(super) fn respond_and_close(&mut self, slot: usize, response: Vec<u8>) {
        self.handshake_over(slot);
        let conn = &mut self.conns[slot];
        conn.raw_output = response;
        conn.phase = Phase::Closing;
        conn.handshake_deadline = None;
        let deadline = Instant::now() + self.config.close_timeout;
        conn.close_deadline = Some(deadline);
        self.timers.schedule(deadline, slot);
        self.flush(slot);
    }
}

/// The answer to a plain request that the handler left unanswered: the path is a
/// WebSocket endpoint, so a `GET` is told to upgrade, other methods are not allowed.
fn websocket_endpoint(request: &HttpRequest) -> HttpResponse {
    if request.method == "GET" || request.method == "HEAD" {
        return HttpResponse::upgrade_required();
    }
    let mut response = HttpResponse::text(405, "a WebSocket endpoint takes GET\n");
    response.headers.push(("Allow".into(), "GET".into()));
    response
}

/// A request target fit for a log: the path, and the query's names without their
/// values (a token often travels as `?token=…`, and logs are read by more people
/// than the secret is for).
fn redacted_target(target: &str) -> String {
    let Some((path, query)) = target.split_once('?') else {
        return target.to_string();
    };
    let names: Vec<String> = query
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((name, _)) => format!("{name}=<redacted>"),
            None => kv.to_string(),
        })
        .collect();
    format!("{path}?{}", names.join("&"))
}

/// A line of a request head fit for a log: the request line's query values and the
/// credentials in headers (`Authorization`, `Proxy-Authorization`, `Cookie`) hidden.
fn redacted_line(line: &str) -> String {
    if let Some((name, _)) = line.split_once(':') {
        let secret = ["authorization", "proxy-authorization", "cookie"]
            .iter()
            .any(|h| name.trim().eq_ignore_ascii_case(h));
        if secret {
            return format!("{name}: <redacted>");
        }
    }
    let mut parts = line.splitn(3, ' ');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(method), Some(target), Some(version)) if target.starts_with('/') => {
            format!("{method} {} {version}", redacted_target(target))
        }
        _ => line.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_stay_out_of_log_lines() {
        assert_eq!(
            redacted_target("/chat?token=s3cret&room=a"),
            "/chat?token=<redacted>&room=<redacted>"
        );
        assert_eq!(redacted_target("/plain"), "/plain");
        assert_eq!(
            redacted_line("GET /?token=s3cret HTTP/1.1"),
            "GET /?token=<redacted> HTTP/1.1"
        );
        assert_eq!(
            redacted_line("authorization: Bearer s3cret"),
            "authorization: <redacted>"
        );
        assert_eq!(redacted_line("Cookie: token=s3cret"), "Cookie: <redacted>");
        assert_eq!(redacted_line("Host: a:1"), "Host: a:1");
    }
}
