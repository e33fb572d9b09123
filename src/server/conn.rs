//! One connection's state in the event loop: its phase (request head and body,
//! WebSocket, stream, final HTTP response), output queues, timers and how it closed.

use super::socket::Socket;
use super::ConnId;
use crate::handshake::HeadReader;
use crate::{CloseCode, Connection};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

// Nearly every connection is Open: boxing the large variant would cost an allocation
// and an indirection on the hot path to save memory only on the rare others.
#[allow(clippy::large_enum_variant)]
pub(super) enum Phase<D> {
    /// Reading the request head.
    Handshake(HeadReader),
    /// Reading the body of a plain HTTP request (its head parsed): `want` bytes.
    Body {
        request: super::HttpRequest,
        want: usize,
    },
    /// A WebSocket connection.
    Open { ws: Connection, data: D },
    /// A plain HTTP response that stays open (e.g. Server-Sent Events): its head is
    /// sent, and what the handler sends follows, until either side closes.
    Stream { data: D },
    /// Writing a final HTTP response, then closing.
    Closing,
}

pub(super) struct Conn<D> {
    /// TCP, or TLS over TCP.
    pub(super) socket: Socket,
    /// The loop it lives on (its index).
    pub(super) worker: usize,
    pub(super) generation: u64,
    pub(super) phase: Phase<D>,
    /// For HTTP responses and the 101; WebSocket output is in the `Connection`.
    pub(super) raw_output: Vec<u8>,
    /// Frames shared with other connections (broadcasts), each with how much of it is
    /// written; they go out after `raw_output` and before the `Connection`'s output.
    pub(super) shared: VecDeque<(Arc<[u8]>, usize)>,
    pub(super) writable_registered: bool,
    /// When the next timer for this connection is due (see `on_timer`).
    pub(super) handshake_deadline: Option<Instant>,
    pub(super) next_ping: Option<Instant>,
    pub(super) pong_deadline: Option<Instant>,
    pub(super) close_deadline: Option<Instant>,
    /// Token bucket for the message rate limit.
    pub(super) tokens: f64,
    pub(super) refilled: Instant,
    /// Why we closed, if we did: reported when the connection ends.
    pub(super) our_close: Option<(CloseCode, String)>,
    pub(super) peer_close: Option<(CloseCode, String)>,
    /// The TCP write side is shut: waiting for the peer's EOF, then drop.
    pub(super) shut: bool,
    /// Frames received since the last tick: such a connection keeps its buffers and
    /// reads straight into them (see `read` and `release_idle_buffers`).
    pub(super) active: bool,
}

impl<D> Conn<D> {
    /// The id of the connection in `slot` (this one).
    pub(super) fn id(&self, slot: usize) -> ConnId {
        ConnId {
            worker: self.worker,
            slot,
            generation: self.generation,
        }
    }
}
