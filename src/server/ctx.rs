//! What a handler callback can do ([`Ctx`]) and the server's counters ([`Stats`]).

use super::conn::{Conn, Phase};
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
}

impl Stats {
    pub(super) fn count_rejection(&mut self, status: u16) {
        match self.rejected.iter_mut().find(|(s, _)| *s == status) {
            Some((_, n)) => *n += 1,
            None => self.rejected.push((status, 1)),
        }
    }
}

/// The connection `id` names, if it is still the one in its slot. A free function, so
/// that callers can hold it and another field of `Ctx` (the compressor) at once.
fn conn_of<D>(conns: &mut Slab<Conn<D>>, id: ConnId) -> Option<&mut Conn<D>> {
    conns
        .get_mut(id.slot)
        .filter(|c| c.generation == id.generation)
}

/// What a handler callback can do: send to and close any connection, reach its data.
pub struct Ctx<'a, D> {
    pub(super) conns: &'a mut Slab<Conn<D>>,
    pub(super) config: &'a ServerConfig,
    pub(super) stats: &'a mut Stats,
    /// Connections whose output changed, to flush after the callback.
    pub(super) touched: &'a mut Vec<usize>,
    /// Compresses broadcasts once for the connections that share parameters.
    pub(super) compressor: &'a mut BroadcastCompressor,
}

impl<D> Ctx<'_, D> {
    fn open_conn(&mut self, id: ConnId) -> Option<&mut Conn<D>> {
        conn_of(self.conns, id)
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
        let policy = self.config.slow_consumer;
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
            return true;
        }
        self.stats.slow_consumer_events += 1;
        match policy {
            SlowConsumer::DropMessages => {
                log::debug!("{id}: slow consumer, message dropped ({queued} bytes queued)");
            }
            SlowConsumer::Close => {
                log::info!("{id}: slow consumer, closing ({queued} bytes queued)");
                self.close(id, CloseCode::POLICY_VIOLATION, "slow consumer");
            }
        }
        false
    }

    fn send_data(&mut self, id: ConnId, kind: MessageKind, payload: &[u8]) -> bool {
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

    /// Starts the closing handshake with a connection (RFC 6455 §7.1.2).
    pub fn close(&mut self, id: ConnId, code: CloseCode, reason: &str) {
        let close_timeout = self.config.close_timeout;
        let Some(conn) = self.open_conn(id) else {
            return;
        };
        if let Phase::Open { ws, .. } = &mut conn.phase {
            let reason = crate::close::truncate_utf8(reason, crate::close::MAX_CLOSE_REASON);
            if ws.close(code, reason).is_ok() {
                conn.our_close = Some((code, reason.to_string()));
                conn.close_deadline = Some(Instant::now() + close_timeout);
                self.touched.push(id.slot);
            }
        }
    }

    /// The data attached to a connection at accept time.
    pub fn data(&mut self, id: ConnId) -> Option<&mut D> {
        match &mut self.open_conn(id)?.phase {
            Phase::Open { data, .. } => Some(data),
            _ => None,
        }
    }

    /// Every open connection.
    pub fn connections(&self) -> Vec<ConnId> {
        self.conns
            .iter()
            .filter(|(_, c)| matches!(c.phase, Phase::Open { .. }))
            .map(|(slot, c)| c.id(slot))
            .collect()
    }

    /// The server's counters.
    pub fn stats(&self) -> &Stats {
        self.stats
    }
}
