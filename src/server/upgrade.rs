//! The HTTP side of a connection: its request head becomes a WebSocket (the handler
//! agreeing), a plain HTTP response, or a rejection with the right status.

use super::conn::Phase;
use super::event_loop::Loop;
use super::{Handler, HttpRequest, HttpResponse};
use crate::handshake::server::{reject, Request};
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
                log::info!(target: "rfc6455::trace", "slot {slot} <- {line}");
            }
        }
        match Request::parse(&head_bytes) {
            Ok(request) => self.upgrade(slot, request, rest),
            Err(err) => {
                if let Some(http) = HttpRequest::parse(&head_bytes) {
                    if !http.is_upgrade() {
                        let response = self.plain_http(&http);
                        return self.respond_and_close(slot, response.to_bytes());
                    }
                }
                log::info!("slot {slot}: handshake refused ({}): {err}", err.status());
                self.stats.count_rejection(err.status());
                self.respond_and_close(slot, err.response());
            }
        }
    }

    /// A request that is not an upgrade: `/healthz`, then the handler; what the handler
    /// does not serve is a WebSocket endpoint, so a `GET` there is told to upgrade.
    pub(super) fn plain_http(&mut self, request: &HttpRequest) -> HttpResponse {
        if request.method == "GET" && request.path() == "/healthz" {
            return match self.handler.health() {
                Ok(()) => HttpResponse::text(200, "ok\n"),
                Err(reason) => HttpResponse::text(503, &format!("unavailable: {reason}\n")),
            };
        }
        let stats = self.loops.totals(self.worker, &self.stats);
        if let Some(response) = self.handler.http(request, &stats) {
            return response;
        }
        if request.method == "GET" || request.method == "HEAD" {
            return HttpResponse::upgrade_required();
        }
        let mut response = HttpResponse::text(405, "a WebSocket endpoint takes GET\n");
        response.headers.push(("Allow".into(), "GET".into()));
        response
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
                    request.target()
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
        if let Some(at) = ping_at {
            self.timers.schedule(at, slot);
        }
        self.stats.open += 1;
        let id = conn.id(slot);
        log::info!("{id}: open, {}", request.target());
        self.flush(slot);
        self.with_ctx(|handler, ctx| handler.open(ctx, id));
        // Frames that came with the head.
        self.process(slot);
    }

    pub(super) fn respond_and_close(&mut self, slot: usize, response: Vec<u8>) {
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
