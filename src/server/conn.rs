//! One connection's state in the event loop: its phase (request head and body,
//! WebSocket, stream, final HTTP response), output queues, timers and how it closed.

use super::socket::Socket;
use super::ConnId;
use crate::handshake::HeadReader;
use crate::{CloseCode, Connection};
use std::collections::VecDeque;
use std::net::IpAddr;
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
    /// The interest registered with the poll: (READABLE, WRITABLE).
    pub(super) registered: (bool, bool),
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
    /// Bytes read since the last tick: a connection that read a chunk's worth keeps
    /// its buffers and reads straight into them; a trickle goes through the loop's
    /// scratch buffer (see `read` and `release_idle_buffers`).
    pub(super) read_since_tick: usize,
    /// The peer's address (for `max_connections_per_ip`, and `HttpRequest::peer`).
    pub(super) peer: IpAddr,
    /// Counted among the connections in their handshake (`max_handshaking`).
    pub(super) handshaking: bool,
    /// Not read while its unsent output is over `pause_reading_above`.
    pub(super) read_paused: bool,
    /// When its output last shrank (or was first queued): with output left after
    /// `write_timeout` from then, it ends.
    pub(super) write_progress: Instant,
    /// A timer for the write timeout is in the heap.
    pub(super) write_timer: bool,
}

impl<D> Conn<D> {
    /// Bytes queued and not yet written: HTTP head or stream bytes, shared frames,
    /// its own frames.
    pub(super) fn unsent(&self) -> usize {
        let own = match &self.phase {
            Phase::Open { ws, .. } => ws.pending_output().len(),
            _ => 0,
        };
        self.raw_output.len() + super::shared::shared_len(&self.shared) + own
    }

    /// The id of the connection in `slot` (this one).
    pub(super) fn id(&self, slot: usize) -> ConnId {
        ConnId {
            worker: self.worker,
            slot,
            generation: self.generation,
        }
    }
}
