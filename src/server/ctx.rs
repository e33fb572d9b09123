//! What a handler callback can do ([`Ctx`]) and the server's counters ([`Stats`]).

use super::conn::{Conn, Phase};
use super::loops::{Loops, Mail};
use super::shared::{shared_len, BroadcastCompressor, Variant};
use super::{ConnId, Message, ServerConfig, SharedFrame, SlowConsumer};
use crate::{CloseCode, MessageKind};
use slab::Slab;
use std::sync::Arc;
use std::time::Instant;

/// Counters kept by the server, readable from the handler via [`Ctx::stats`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// WebSocket connections open now.
    pub open: usize,
    /// Streams open now ([`Reply::Stream`](super::Reply::Stream), e.g. Server-Sent
    /// Events).
    pub streams: usize,
    /// Messages received and sent.
    pub messages_in: u64,
    /// Messages queued for sending.
    pub messages_out: u64,
    /// Payload bytes received.
    pub bytes_in: u64,
    /// Payload bytes queued for sending.
    pub bytes_out: u64,
    /// Upgrades refused, by status.
    pub rejected: Vec<(u16, u64)>,
    /// Messages dropped, or connections closed, for being slow consumers.
    pub slow_consumer_events: u64,
    /// Connections closed as soon as they were accepted, over
    /// [`max_handshaking`](super::ServerConfig::max_handshaking) or
    /// [`max_connections_per_ip`](super::ServerConfig::max_connections_per_ip).
    pub refused_at_accept: u64,
    /// Connections ended because their queued output did not shrink for
    /// [`write_timeout`](super::ServerConfig::write_timeout).
    pub write_timeouts: u64,
    /// Times a connection stopped being read because its unsent output was over
    /// [`pause_reading_above`](super::ServerConfig::pause_reading_above).
    pub read_pauses: u64,
    /// Connections dropped because their TLS failed: a bad record, a handshake that
    /// went wrong, plain HTTP sent to the TLS port.
    pub tls_failures: u64,
    /// Connections still in their handshake, all loops (in the totals given to
    /// [`Handler::http`](super::Handler::http); 0 in a loop's own counters).
    pub handshaking: usize,
    /// WebSocket connections open on each event loop, in the totals given to
    /// [`Handler::http`](super::Handler::http) (empty in a loop's own counters).
    pub open_per_loop: Vec<usize>,
}

impl Stats {
    pub(super) fn count_rejection(&mut self, status: u16) {
        self.count_rejections(status, 1);
    }

    fn count_rejections(&mut self, status: u16, count: u64) {
        match self.rejected.iter_mut().find(|(s, _)| *s == status) {
            Some((_, n)) => *n += count,
            None => self.rejected.push((status, count)),
        }
    }

    /// Adds another loop's counters to these (the process's totals).
    pub(super) fn add(&mut self, other: &Stats) {
        self.open += other.open;
        self.streams += other.streams;
        self.messages_in += other.messages_in;
        self.messages_out += other.messages_out;
        self.bytes_in += other.bytes_in;
        self.bytes_out += other.bytes_out;
        self.slow_consumer_events += other.slow_consumer_events;
        self.tls_failures += other.tls_failures;
        self.refused_at_accept += other.refused_at_accept;
        self.write_timeouts += other.write_timeouts;
        self.read_pauses += other.read_pauses;
        for &(status, count) in &other.rejected {
            self.count_rejections(status, count);
        }
    }
}

/// The connection `id` names, if it is still the one in its slot of this loop. A free
/// function, so that callers can hold it and another field of `Ctx` (the compressor)
/// at once.
fn conn_of<D>(conns: &mut Slab<Conn<D>>, id: ConnId) -> Option<&mut Conn<D>> {
    conns
        .get_mut(id.slot)
        .filter(|c| c.generation == id.generation && c.worker == id.worker)
}

/// What a handler callback can do: send to and close any connection, reach its data.
///
/// With several loops ([`ServerConfig::threads`]), a send or close for a connection of
/// another loop is handed to that loop, which applies it in the order it was made; the
/// call then returns true if that loop took it, and the output limit and the
/// slow-consumer policy apply when it arrives. A loop applies what others sent it
/// before each send of its own, so sends made in an order that the handlers agree on
/// (under one lock) reach every connection in that order.
pub struct Ctx<'a, D> {
    /// The loop this callback runs on.
    pub(super) worker: usize,
    pub(super) loops: &'a Loops,
    pub(super) conns: &'a mut Slab<Conn<D>>,
    pub(super) config: &'a ServerConfig,
    pub(super) stats: &'a mut Stats,
    /// Connections whose output changed, to flush after the callback.
    pub(super) touched: &'a mut Vec<usize>,
    /// Compresses broadcasts once for the connections that share parameters.
    pub(super) compressor: &'a mut BroadcastCompressor,
    /// This loop's queued output, all connections (for `max_total_queued_output`).
    pub(super) queued: &'a mut usize,
}

impl<D> Ctx<'_, D> {
    fn open_conn(&mut self, id: ConnId) -> Option<&mut Conn<D>> {
        conn_of(self.conns, id)
    }

    /// Applies what the other loops sent to this loop's connections.
    pub(super) fn deliver_mail(&mut self) {
        for mail in self.loops.take_mail(self.worker) {
            match mail {
                Mail::Shared(id, frame) => {
                    self.local_send_shared(id, &frame);
                }
                Mail::Data(id, kind, payload) => {
                    self.local_send_data(id, kind, &payload);
                }
                Mail::Close(id, code, reason) => self.local_close(id, code, &reason),
                Mail::Stream(id, bytes) => {
                    self.local_send_stream(id, bytes);
                }
            }
        }
    }

    /// Sends a message to a connection. Returns false when the connection is gone or
    /// closing, or the message was dropped because the connection is a slow consumer.
    pub fn send(&mut self, id: ConnId, message: &Message) -> bool {
        match message {
            Message::Text(text) => self.send_data(id, MessageKind::Text, text.as_bytes()),
            Message::Binary(data) => self.send_data(id, MessageKind::Binary, data),
        }
    }

    /// Sends a text message (see [`send`](Self::send)).
    pub fn send_text(&mut self, id: ConnId, text: &str) -> bool {
        self.send_data(id, MessageKind::Text, text.as_bytes())
    }

    /// Sends a binary message (see [`send`](Self::send)).
    pub fn send_binary(&mut self, id: ConnId, data: &[u8]) -> bool {
        self.send_data(id, MessageKind::Binary, data)
    }

    /// Whether `bytes` more may be queued for a connection that can take data now;
    /// over the output limit, the slow-consumer policy applies.
    fn admit(&mut self, id: ConnId, bytes: usize) -> bool {
        let limit = self.config.max_queued_output;
        let Some(conn) = self.open_conn(id) else {
            return false;
        };
        let Phase::Open { ws, .. } = &conn.phase else {
            return false;
        };
        if !ws.can_send_data() {
            return false;
        }
        let queued = ws.pending_output().len() + shared_len(&conn.shared);
        if queued + bytes <= limit {
            return self.within_total(id, bytes);
        }
        self.refuse(id, "slow consumer", &format!("{queued} bytes queued"))
    }

    /// A send refused for a budget: the slow-consumer policy applies to `id` (the
    /// message is dropped, or the connection closed with 1008 and `reason`). False.
    fn refuse(&mut self, id: ConnId, reason: &str, detail: &str) -> bool {
        self.stats.slow_consumer_events += 1;
        match self.config.slow_consumer {
            SlowConsumer::DropMessages => {
                log::debug!("{id}: {reason}, message dropped ({detail})");
            }
            SlowConsumer::Close => {
                log::info!("{id}: {reason}, closing ({detail})");
                self.local_close(id, CloseCode::POLICY_VIOLATION, reason);
            }
        }
        false
    }

    /// Whether `bytes` more fit in the process's output budget (this loop's queued
    /// output now, the others' as of their last turn); they are counted if so. If
    /// not, the slow-consumer policy applies to `id`, the connection it was for.
    fn within_total(&mut self, id: ConnId, bytes: usize) -> bool {
        let total = *self.queued + self.loops.queued_elsewhere(self.worker);
        if total + bytes <= self.config.max_total_queued_output {
            *self.queued += bytes;
            return true;
        }
        let detail = format!("{total} bytes queued in all, max_total_queued_output");
        self.refuse(id, "server output budget", &detail)
    }

    fn send_data(&mut self, id: ConnId, kind: MessageKind, payload: &[u8]) -> bool {
        if id.worker != self.worker {
            return self
                .loops
                .post(id.worker, Mail::Data(id, kind, payload.to_vec()));
        }
        self.deliver_mail();
        self.local_send_data(id, kind, payload)
    }

    fn local_send_data(&mut self, id: ConnId, kind: MessageKind, payload: &[u8]) -> bool {
        if !self.admit(id, payload.len()) {
            return false;
        }
        let Some(Conn {
            phase: Phase::Open { ws, .. },
            ..
        }) = conn_of(self.conns, id)
        else {
            return false;
        };
        // One whole message. Without context takeover it is compressed by the loop's
        // compressor (the connection keeps none); with it, by the connection's own.
        // Text came in as a `&str` (see `send_text`), so it is not validated again.
        let sent = match ws.deflate().copied() {
            Some(deflate) if deflate.local_no_context_takeover => {
                if self.compressor.compress_for(&deflate, payload) {
                    ws.send_prepared(kind, &self.compressor.scratch, true)
                } else {
                    ws.send_prepared(kind, payload, false)
                }
            }
            _ => ws.send_message(kind, payload),
        };
        if sent.is_err() {
            return false;
        }
        self.stats.messages_out += 1;
        self.stats.bytes_out += payload.len() as u64;
        self.touched.push(id.slot);
        true
    }

    /// Queues a frame encoded once for many connections (see [`SharedFrame`]): the
    /// bytes are shared, not copied per recipient. Returns false when the connection
    /// is gone, closing, or over its output limit (then the slow-consumer policy
    /// applies).
    pub fn send_shared(&mut self, id: ConnId, frame: &SharedFrame) -> bool {
        if id.worker != self.worker {
            return self.loops.post(id.worker, Mail::Shared(id, frame.clone()));
        }
        self.deliver_mail();
        self.local_send_shared(id, frame)
    }

    fn local_send_shared(&mut self, id: ConnId, frame: &SharedFrame) -> bool {
        if !self.admit(id, frame.bytes().len()) {
            return false;
        }
        let Some(conn) = conn_of(self.conns, id) else {
            return false;
        };
        let Phase::Open { ws, .. } = &mut conn.phase else {
            return false;
        };
        let bytes = match ws.deflate() {
            None => frame.bytes.clone(),
            Some(deflate) => match frame.variant(deflate, self.compressor) {
                Variant::Shared(bytes) => bytes,
                // Compressed by the connection itself, after what it queued before.
                Variant::Own(kind, bytes, header_len) => {
                    if ws.send_message(kind, &bytes[header_len..]).is_err() {
                        return false;
                    }
                    self.stats.messages_out += 1;
                    self.stats.bytes_out += frame.payload_len() as u64;
                    self.touched.push(id.slot);
                    return true;
                }
            },
        };
        // Keep the order: what the connection queued before goes out before this.
        let own = ws.pending_output();
        if !own.is_empty() {
            let earlier: Arc<[u8]> = Arc::from(own);
            ws.consume_output(earlier.len());
            conn.shared.push_back((earlier, 0));
        }
        conn.shared.push_back((bytes, 0));
        self.stats.messages_out += 1;
        self.stats.bytes_out += frame.payload_len() as u64;
        self.touched.push(id.slot);
        true
    }

    /// Queues bytes for a stream ([`Reply::Stream`](super::Reply::Stream)), after
    /// what it was sent before; shared by reference, so that one event costs one
    /// buffer for any number of streams. Returns false when `id` is not an open
    /// stream, or it is over its output limit (then the slow-consumer policy applies:
    /// [`SlowConsumer::Close`] ends the stream at once, dropping what it had queued).
    pub fn send_stream(&mut self, id: ConnId, bytes: &Arc<[u8]>) -> bool {
        if id.worker != self.worker {
            return self.loops.post(id.worker, Mail::Stream(id, bytes.clone()));
        }
        self.deliver_mail();
        self.local_send_stream(id, bytes.clone())
    }

    fn local_send_stream(&mut self, id: ConnId, bytes: Arc<[u8]>) -> bool {
        let limit = self.config.max_queued_output;
        let policy = self.config.slow_consumer;
        let Some(conn) = conn_of(self.conns, id) else {
            return false;
        };
        if !matches!(conn.phase, Phase::Stream { .. }) || conn.our_close.is_some() {
            return false;
        }
        let queued = conn.raw_output.len() + shared_len(&conn.shared);
        if queued + bytes.len() <= limit && !self.within_total(id, bytes.len()) {
            return false;
        }
        let Some(conn) = conn_of(self.conns, id) else {
            return false;
        };
        if queued + bytes.len() > limit {
            self.stats.slow_consumer_events += 1;
            match policy {
                SlowConsumer::DropMessages => {
                    log::debug!("{id}: slow stream reader, bytes dropped ({queued} queued)");
                }
                SlowConsumer::Close => {
                    log::info!("{id}: slow stream reader, ending it ({queued} bytes queued)");
                    conn.raw_output = Vec::new();
                    conn.shared.clear();
                    self.local_close(id, CloseCode::POLICY_VIOLATION, "slow consumer");
                }
            }
            return false;
        }
        self.stats.messages_out += 1;
        self.stats.bytes_out += bytes.len() as u64;
        conn.shared.push_back((bytes, 0));
        self.touched.push(id.slot);
        true
    }

    /// Starts the closing handshake with a connection (RFC 6455 §7.1.2); a stream
    /// ends once what it was sent is written.
    pub fn close(&mut self, id: ConnId, code: CloseCode, reason: &str) {
        if id.worker != self.worker {
            self.loops
                .post(id.worker, Mail::Close(id, code, reason.to_string()));
            return;
        }
        self.deliver_mail();
        self.local_close(id, code, reason);
    }

    fn local_close(&mut self, id: ConnId, code: CloseCode, reason: &str) {
        let close_timeout = self.config.close_timeout;
        let Some(conn) = self.open_conn(id) else {
            return;
        };
        match &mut conn.phase {
            Phase::Open { ws, .. } => {
                let reason = crate::close::truncate_utf8(reason, crate::close::MAX_CLOSE_REASON);
                if ws.close(code, reason).is_ok() {
                    conn.our_close = Some((code, reason.to_string()));
                    conn.close_deadline = Some(Instant::now() + close_timeout);
                    self.touched.push(id.slot);
                }
            }
            Phase::Stream { .. } if conn.our_close.is_none() => {
                conn.our_close = Some((code, reason.to_string()));
                conn.close_deadline = Some(Instant::now() + close_timeout);
                self.touched.push(id.slot);
            }
            _ => {}
        }
    }

    /// The data attached to a connection at accept time (connections of this loop).
    pub fn data(&mut self, id: ConnId) -> Option<&mut D> {
        match &mut self.open_conn(id)?.phase {
            Phase::Open { data, .. } | Phase::Stream { data } => Some(data),
            _ => None,
        }
    }

    /// Every open connection of this loop.
    pub fn connections(&self) -> Vec<ConnId> {
        self.conns
            .iter()
            .filter(|(_, c)| matches!(c.phase, Phase::Open { .. }))
            .map(|(slot, c)| c.id(slot))
            .collect()
    }

    /// This loop's counters.
    pub fn stats(&self) -> &Stats {
        self.stats
    }
}
