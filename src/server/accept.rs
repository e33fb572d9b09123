//! A connection's way in: accepting it (or refusing it at once: the admission caps),
//! reading its request head, and answering it — a WebSocket (the handler agreeing,
//! then a 101), a plain HTTP response, a stream (e.g. Server-Sent Events), or a
//! rejection with the right status. A second `impl Loop` beside `event_loop.rs`,
//! which has the open connections' reads and writes: HTTP and admission are a
//! concept of their own, off the path of messages.

use super::config::Balance;
use super::conn::Conn;
use super::event_loop::Loop;
use super::handler::{CloseInfo, Handler, Reply};
use super::http::{HttpRequest, HttpResponse};
use super::id::ConnId;
use super::socket::Socket;
use crate::handshake::server::{reject, Request};
use crate::handshake::HeadTooLarge;
use crate::{CloseCode, Connection, Role};
use mio::net::TcpStream;
use mio::{Interest, Token};
use std::io;
use std::time::Instant;

impl<H: Handler> Loop<H> {
    pub(super) fn accept(&mut self) -> io::Result<()> {
        let hand_over = self.config.balance == Balance::LeastConnections && self.loops.count() > 1;
        loop {
            let Some(listener) = &self.listener else {
                return Ok(());
            };
            let (stream, peer) = match listener.accept() {
                Ok(pair) => pair,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // Out of file descriptors and the like: log (once a second at
                // most: every attempt fails alike), keep serving the others.
                Err(e) => {
                    if let Some(suppressed) = self.accept_errors.allow(Instant::now()) {
                        log::warn!("accept failed: {e} ({suppressed} more since the last line)");
                    }
                    return Ok(());
                }
            };
            log::debug!("accepted {peer}");
            let stream = if hand_over {
                match self.loops.hand_over(self.worker, stream) {
                    Some(mine) => mine,
                    None => continue,
                }
            } else {
                stream
            };
            self.loops.loaded(self.worker);
            self.register(stream);
        }
    }

    /// Registers the sockets another loop accepted for this one.
    pub(super) fn adopt_handed_over(&mut self) {
        for stream in self.loops.take_adopted(self.worker) {
            if self.shutdown_deadline.is_some() {
                // Shutting down: no new connections.
                self.loops.unloaded(self.worker);
                continue;
            }
            self.register(stream);
        }
    }

    /// A new TCP connection (already counted in this loop's load): admitted (see
    /// [`Admission`](super::admission::Admission)), it waits for its request head;
    /// refused, or if it cannot be registered, it is closed and the loop serves on.
    fn register(&mut self, stream: TcpStream) {
        let Ok(peer) = stream.peer_addr() else {
            // Reset before we got to it.
            self.loops.unloaded(self.worker);
            return;
        };
        let peer = peer.ip();
        if let Err(refusal) = self.loops.admission.enter(peer, &self.config) {
            self.stats.refused_at_accept += 1;
            if let Some(suppressed) = self.refusals.allow(Instant::now()) {
                log::warn!("connection from {peer} closed at once: {refusal} ({suppressed} more since the last line)");
            }
            self.loops.unloaded(self.worker);
            return;
        }
        let _ = stream.set_nodelay(true);
        if let Some(size) = self.config.socket_send_buffer {
            let _ = socket2::SockRef::from(&stream).set_send_buffer_size(size);
        }
        let mut socket = match Socket::new(stream, &self.config) {
            Ok(socket) => socket,
            // rustls refused to start a session with this configuration: this
            // connection goes, the loop serves on.
            Err(e) => {
                log::warn!("TLS session not started: {e}");
                self.stats.tls_failures += 1;
                self.loops.admission.handshake_over();
                self.loops.admission.leave(peer, &self.config);
                self.loops.unloaded(self.worker);
                return;
            }
        };
        let entry = self.conns.vacant_entry();
        let slot = entry.key();
        if let Err(e) = self
            .poll
            .registry()
            .register(socket.tcp(), Token(slot), Interest::READABLE)
        {
            log::warn!("connection from {peer} not registered, closed: {e}");
            self.loops.admission.handshake_over();
            self.loops.admission.leave(peer, &self.config);
            self.loops.unloaded(self.worker);
            return;
        }
        self.next_generation += 1;
        let id = ConnId {
            worker: self.worker,
            slot,
            generation: self.next_generation,
        };
        let deadline = Instant::now() + self.config.handshake_timeout;
        let tokens = f64::from(self.config.max_messages_per_second.unwrap_or(0));
        let max_head = self.config.max_head;
        entry.insert(Conn::new(socket, id, peer, max_head, deadline, tokens));
        self.timers.schedule(deadline, slot);
        log::debug!("slot {slot} on loop {}", self.worker);
    }

    /// The connection finished its request (an upgrade, a stream or a response is
    /// under way) or went: it no longer counts in `max_handshaking`.
    pub(super) fn handshake_over(&mut self, slot: usize) {
        if let Some(conn) = self.conns.get_mut(slot) {
            if conn.end_handshake() {
                self.loops.admission.handshake_over();
            }
        }
    }

    /// Handles a complete request head (its length, or too large): an upgrade, a
    /// plain HTTP request, or an error.
    pub(super) fn after_head(&mut self, slot: usize, head: Result<usize, HeadTooLarge>) {
        let Ok(head_len) = head else {
            let response = crate::handshake::server::RequestError::HeadTooLarge.response();
            self.stats.count_rejection(431);
            return self.respond_and_close(slot, response);
        };
        let Some((head_bytes, rest)) = self.conns[slot].take_head(head_len) else {
            return;
        };
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
        request.peer = Some(self.conns[slot].peer());
        if request.body.len() >= want {
            // Bytes beyond the body (a pipelined request) are not served.
            request.body.truncate(want);
            return self.answer_http(slot, request);
        }
        // Nothing reserved for the announced length: memory follows the bytes that
        // actually come (a client may announce 64 KiB and send nothing).
        self.conns[slot].wait_for_body(request, want);
    }

    /// A complete plain request: `/healthz`, then the handler's `request` (a response
    /// or a stream, or `None` for a WebSocket endpoint).
    pub(super) fn answer_http(&mut self, slot: usize, request: HttpRequest) {
        if request.method == "GET" && request.path() == "/healthz" {
            let draining = self.loops.draining().is_some();
            let response = match self.handler.health() {
                Ok(()) if draining => HttpResponse::text(503, "unavailable: draining\n"),
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
        let draining = self.loops.draining().is_some();
        let admitted = match draining {
            true => Err(0),
            false => self.loops.admission.open_stream(self.config.stream_limit()),
        };
        let refused = match admitted {
            Err(_) if draining => Some("draining".to_string()),
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
            let (code, text) = match draining {
                true => (CloseCode::SERVICE_RESTART, "draining: try another node"),
                false => (CloseCode::TRY_AGAIN_LATER, "too many connections"),
            };
            let info = CloseInfo {
                code,
                reason: text.into(),
                clean: false,
            };
            self.with_ctx(|handler, ctx| handler.close(ctx, id, data, info));
            let response = HttpResponse::text(503, &format!("{text}\n"));
            return self.respond_and_close(slot, response.to_bytes());
        }
        self.handshake_over(slot);
        let conn = &mut self.conns[slot];
        conn.open_stream(head.to_stream_bytes(), data);
        conn.handshake_deadline = None;
        self.stats.streams += 1;
        log::info!("{id}: stream open");
        self.flush(slot);
    }

    pub(super) fn upgrade(&mut self, slot: usize, request: Request, rest: Vec<u8>) {
        if self.loops.draining().is_some() {
            self.stats.count_rejection(503);
            let retry = [("Retry-After", "1")];
            return self.respond_and_close(slot, reject(503, &retry, "draining: try another node"));
        }
        if let Err(open) = self.loops.try_open(self.config.max_connections) {
            log::warn!("slot {slot}: refused, {open} connections open (503)");
            self.stats.count_rejection(503);
            return self.respond_and_close(slot, reject(503, &[], "too many connections"));
        }
        let accepted = match self.handler.upgrade(&request) {
            Ok(accepted) => accepted,
            Err(refusal) => {
                self.loops.closed();
                let status = refusal.status;
                log::info!(
                    "slot {slot}: upgrade of {} refused with {status}",
                    redacted_target(request.target())
                );
                self.stats.count_rejection(status);
                // The framing is the server's: an application's header cannot change it.
                let framing = [
                    "content-length",
                    "content-type",
                    "connection",
                    "transfer-encoding",
                ];
                let headers: Vec<(&str, &str)> = (refusal.headers.iter())
                    .filter(|(name, _)| !framing.iter().any(|f| name.eq_ignore_ascii_case(f)))
                    .map(|(name, value)| (name.as_str(), value.as_str()))
                    .collect();
                return self.respond_and_close(slot, reject(status, &headers, &refusal.reason));
            }
        };
        let (response, deflate) = request.accept_negotiating(
            accepted.protocol.as_deref(),
            self.config.connection.deflate.as_ref(),
        );
        if self.config.connection.trace {
            for line in String::from_utf8_lossy(&response).lines() {
                log::info!(target: "rfc6455::trace", "slot {slot} -> {line}");
            }
        }
        let config = self.connection_config.clone();
        let mut ws = Connection::with_deflate(Role::Server, config, deflate);
        ws.receive(&rest);
        let conn = &mut self.conns[slot];
        conn.open(response, ws, accepted.data);
        conn.handshake_deadline = None;
        if let Some(at) = conn.next_deadline(Instant::now()) {
            self.timers.schedule(at, slot);
        }
        self.handshake_over(slot);
        let conn = &mut self.conns[slot];
        self.stats.open += 1;
        let id = conn.id(slot);
        log::info!("{id}: open, {}", redacted_target(request.target()));
        self.flush(slot);
        // A write that failed at once dropped the connection and told the handler it
        // closed: it is not told after that that it opened.
        if self.conns.get(slot).is_none_or(|conn| conn.id(slot) != id) {
            return;
        }
        self.with_ctx(|handler, ctx| handler.open(ctx, id));
        // Frames that came with the head.
        self.messages(slot);
    }

    pub(super) fn respond_and_close(&mut self, slot: usize, response: Vec<u8>) {
        self.handshake_over(slot);
        let conn = &mut self.conns[slot];
        conn.respond(response);
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
        // Origin-form (`/path?q`) and absolute-form (`http://host/path?q`) alike.
        (Some(method), Some(target), Some(version)) if target.contains('?') => {
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
            redacted_line("GET http://h/chat?token=s3cret HTTP/1.1"),
            "GET http://h/chat?token=<redacted> HTTP/1.1"
        );
        assert_eq!(
            redacted_line("authorization: Bearer s3cret"),
            "authorization: <redacted>"
        );
        assert_eq!(redacted_line("Cookie: token=s3cret"), "Cookie: <redacted>");
        assert_eq!(redacted_line("Host: a:1"), "Host: a:1");
    }
}
