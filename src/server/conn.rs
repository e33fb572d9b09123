//! One connection in the event loop: its socket, its phase (request head and body,
//! WebSocket, stream, final HTTP response), what is queued for it, and how it closed.
//!
//! The loop reads and writes a connection only through [`Conn::read`] and
//! [`Conn::write`]: `read` takes what the socket has into the phase that wants it (the
//! request head, the body, or the WebSocket `Connection`), `write` sends what is queued
//! in order with one gathered write. The WebSocket's own timers (heartbeat, pong
//! deadline, close timeout) are the `Connection`'s (see [`Conn::next_deadline`]); the
//! transport's (`handshake_deadline`, `close_deadline`, `write_*`) are kept here for
//! `Loop::on_timer`.

use super::http::HttpRequest;
use super::id::ConnId;
use super::socket::Socket;
use crate::handshake::{HeadReader, HeadTooLarge};
use crate::{CloseCode, Connection, State};
use mio::{Interest, Registry, Token};
use std::collections::VecDeque;
use std::io::{self, IoSlice};
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
    Body { request: HttpRequest, want: usize },
    /// A WebSocket connection.
    Open { ws: Connection, data: D },
    /// A plain HTTP response that stays open (e.g. Server-Sent Events): its head is
    /// sent, and what the handler sends follows, until either side closes.
    Stream { data: D },
    /// Writing a final HTTP response, then closing.
    Closing,
}

/// What a read brought, besides its bytes (see [`Conn::read`]).
pub(super) enum Arrived {
    /// Bytes for the WebSocket connection: messages may be complete.
    Frames,
    /// The request head is complete (its length), or too large.
    Head(Result<usize, HeadTooLarge>),
    /// A plain request with its body complete (the connection is now `Closing`,
    /// waiting for the answer).
    Request(HttpRequest),
    /// Nothing to act on yet: a part of a head or a body, or bytes discarded (a
    /// stream's or a closing connection's peer has nothing to say).
    Nothing,
}

/// One read: how many bytes, whether the socket is drained, what they completed.
pub(super) struct Read {
    pub(super) n: usize,
    /// A plain socket returned less than was asked for: the kernel's buffer is empty,
    /// and bytes arriving later raise a new edge-triggered event.
    pub(super) drained: bool,
    pub(super) arrived: Arrived,
}

/// What [`Conn::write`] did: bytes written, and whether output is left.
pub(super) struct Written {
    pub(super) bytes: usize,
    pub(super) left: bool,
}

/// How much is read from a socket at a time.
pub(super) const READ_CHUNK: usize = 64 * 1024;

/// A message counted against the rate limit (see [`Conn::count_message`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Rate {
    /// Within the limit (or no limit): the message goes to the handler.
    Within,
    /// Over it: the connection is to be closed (1008), the message dropped.
    Over,
    /// The server closed the connection already: the message is dropped uncounted.
    Closing,
}

/// Whether a connection is read (see [`Conn::pause_reading_above`]).
pub(super) enum Reading {
    On,
    /// Not read until its output drains (see [`Conn::resume_reading`]).
    Paused,
    /// Paused by this call.
    PausedNow,
}

/// How much of a request head or body is read at a time.
const HEAD_CHUNK: usize = 4096;

/// How many buffers one `writev` gathers: a connection's HTTP head, its queued
/// shared frames (a burst of broadcasts), then its own output.
const GATHER: usize = 64;

pub(super) struct Conn<D> {
    /// TCP, or TLS over TCP.
    socket: Socket,
    /// The loop it lives on (its index) and the generation of its slot.
    worker: usize,
    generation: u64,
    pub(super) phase: Phase<D>,
    /// For HTTP responses and the 101; WebSocket output is in the `Connection`.
    head_out: Vec<u8>,
    /// Frames shared with other connections (broadcasts), each with how much of it is
    /// written; they go out after `head_out` and before the `Connection`'s output.
    shared: VecDeque<(Arc<[u8]>, usize)>,
    /// The bytes of `shared` not yet written.
    shared_len: usize,
    /// The interest registered with the poll: (READABLE, WRITABLE).
    registered: (bool, bool),
    /// The transport's timers (see `on_timer`): the request head must come by the
    /// first; the second bounds a stream's ending and the wait for the peer's FIN
    /// once the server has closed its side.
    pub(super) handshake_deadline: Option<Instant>,
    pub(super) close_deadline: Option<Instant>,
    /// Token bucket for the message rate limit.
    tokens: f64,
    refilled: Instant,
    /// Why we closed, if we did: reported when the connection ends. Boxed, as the
    /// peer's: a connection that is open (most of a loop's table) pays a pointer.
    pub(super) our_close: Option<Box<(CloseCode, String)>>,
    pub(super) peer_close: Option<Box<(CloseCode, String)>>,
    /// The TCP write side is shut: waiting for the peer's EOF, then drop.
    shut: bool,
    /// Bytes read since the last tick: a connection that read a chunk's worth keeps
    /// its buffers and reads straight into them; a trickle goes through the loop's
    /// scratch buffer (see `read` and `release_idle_buffers`).
    read_since_tick: usize,
    /// The peer's address (for `max_connections_per_ip`, and `HttpRequest::peer`).
    peer: IpAddr,
    /// Counted among the connections in their handshake (`max_handshaking`).
    handshaking: bool,
    /// Not read while its unsent output is over `pause_reading_above`.
    read_paused: bool,
    /// When its output last shrank (or was first queued): with output left after
    /// `write_timeout` from then, it ends.
    pub(super) write_progress: Instant,
    /// A timer for the write timeout is in the heap.
    pub(super) write_timer: bool,
}

impl<D> Conn<D> {
    /// A connection just accepted (and registered READABLE), waiting for its request
    /// head until `deadline`, with `tokens` of the message rate limit.
    pub(super) fn new(
        socket: Socket,
        id: ConnId,
        peer: IpAddr,
        max_head: usize,
        deadline: Instant,
        tokens: f64,
    ) -> Self {
        let now = Instant::now();
        Conn {
            socket,
            worker: id.worker,
            generation: id.generation,
            phase: Phase::Handshake(HeadReader::new(max_head)),
            head_out: Vec::new(),
            shared: VecDeque::new(),
            shared_len: 0,
            registered: (true, false),
            handshake_deadline: Some(deadline),
            close_deadline: None,
            tokens,
            refilled: now,
            our_close: None,
            peer_close: None,
            shut: false,
            read_since_tick: 0,
            peer,
            handshaking: true,
            read_paused: false,
            write_progress: now,
            write_timer: false,
        }
    }

    /// The id of the connection in `slot` (this one).
    pub(super) fn id(&self, slot: usize) -> ConnId {
        ConnId {
            worker: self.worker,
            slot,
            generation: self.generation,
        }
    }

    /// Whether `id` names this connection (and not an earlier tenant of its slot).
    pub(super) fn is(&self, id: ConnId) -> bool {
        self.generation == id.generation && self.worker == id.worker
    }

    pub(super) fn peer(&self) -> IpAddr {
        self.peer
    }

    /// The WebSocket connection, while open.
    pub(super) fn ws(&mut self) -> Option<&mut Connection> {
        match &mut self.phase {
            Phase::Open { ws, .. } => Some(ws),
            _ => None,
        }
    }

    /// The handler's data, for a WebSocket connection or a stream.
    pub(super) fn data(&mut self) -> Option<&mut D> {
        match &mut self.phase {
            Phase::Open { data, .. } | Phase::Stream { data } => Some(data),
            _ => None,
        }
    }

    /// The earliest of this connection's timers: the transport's close deadline and
    /// the WebSocket's own (which starts any timer a send began, from `now`).
    pub(super) fn next_deadline(&mut self, now: Instant) -> Option<Instant> {
        let ws = match &mut self.phase {
            Phase::Open { ws, .. } => ws.poll_timeout(now),
            _ => None,
        };
        match (ws, self.close_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub(super) fn is_open(&self) -> bool {
        matches!(self.phase, Phase::Open { .. })
    }

    pub(super) fn is_stream(&self) -> bool {
        matches!(self.phase, Phase::Stream { .. })
    }

    /// Still reading its request (head or body).
    pub(super) fn in_request(&self) -> bool {
        matches!(self.phase, Phase::Handshake(_) | Phase::Body { .. })
    }

    /// Becomes a WebSocket connection: the 101 (`response`) goes out first.
    pub(super) fn open(&mut self, response: Vec<u8>, ws: Connection, data: D) {
        self.head_out = response;
        self.phase = Phase::Open { ws, data };
    }

    /// Becomes a stream: its head (and first bytes) go out first.
    pub(super) fn open_stream(&mut self, head: Vec<u8>, data: D) {
        self.head_out = head;
        self.phase = Phase::Stream { data };
    }

    /// Waits for the rest of a plain request's body.
    pub(super) fn wait_for_body(&mut self, request: HttpRequest, want: usize) {
        self.phase = Phase::Body { request, want };
    }

    /// Sends a final HTTP response, then closes.
    pub(super) fn respond(&mut self, response: Vec<u8>) {
        self.head_out = response;
        self.phase = Phase::Closing;
    }

    /// The head, and what followed it, of a connection whose head is complete.
    pub(super) fn take_head(&mut self, head_len: usize) -> Option<(Vec<u8>, Vec<u8>)> {
        let Phase::Handshake(head) = &mut self.phase else {
            return None;
        };
        let head_bytes = head.buffer()[..head_len].to_vec();
        Some((head_bytes, head.take_rest()))
    }

    /// Ends the phase (the connection only drains from now on) and hands back what it
    /// held: for the handler's `close`.
    pub(super) fn end_phase(&mut self) -> Phase<D> {
        std::mem::replace(&mut self.phase, Phase::Closing)
    }

    /// It left the connections in their handshake (`max_handshaking`); false if it
    /// had already.
    pub(super) fn end_handshake(&mut self) -> bool {
        std::mem::take(&mut self.handshaking)
    }

    /// Reads once from the socket into the phase that wants the bytes. `Ok(n: 0)` is
    /// the end: the peer's FIN (or TLS close_notify).
    ///
    /// A busy WebSocket connection (a chunk's worth since the last tick, so its buffer
    /// is kept) reads straight into its input buffer: the payload is copied once, from
    /// there into the message. A quiet one reads into the loop's `scratch` buffer and
    /// keeps only what arrived, so that idle connections, and ones that send a frame's
    /// first bytes and stop, hold no read buffer of their own. With TLS, decrypted
    /// bytes are handed over from the session's buffer.
    pub(super) fn read(&mut self, scratch: &mut [u8]) -> io::Result<Read> {
        let busy = self.read_since_tick >= READ_CHUNK;
        // `drained`: a plain socket returned less than asked for (TLS may hold
        // decrypted bytes back).
        let (n, drained) = match (&mut self.phase, &mut self.socket) {
            #[cfg(feature = "tls")]
            (Phase::Open { ws, .. }, Socket::Tls(tls)) => (tls.receive_into(ws)?, false),
            (Phase::Open { ws, .. }, socket) if busy => {
                let space = ws.input_buffer(READ_CHUNK);
                let asked = space.len();
                let n = socket.read(space)?;
                ws.commit_input(n);
                (n, n < asked)
            }
            (Phase::Open { ws, .. }, socket) => {
                let n = socket.read(scratch)?;
                ws.receive(&scratch[..n]);
                (n, n < scratch.len())
            }
            (_, socket) => {
                let n = socket.read(&mut scratch[..HEAD_CHUNK])?;
                (n, socket.is_plain() && n < HEAD_CHUNK)
            }
        };
        self.read_since_tick = self.read_since_tick.saturating_add(n);
        let arrived = match &mut self.phase {
            _ if n == 0 => Arrived::Nothing,
            Phase::Open { .. } => Arrived::Frames,
            Phase::Handshake(head) => match head.push(&scratch[..n]) {
                Ok(None) => Arrived::Nothing,
                Ok(Some(len)) => Arrived::Head(Ok(len)),
                Err(too_large) => Arrived::Head(Err(too_large)),
            },
            Phase::Body { request, want } => {
                // Bytes beyond the body (a pipelined request) are not served.
                let take = (*want - request.body.len()).min(n);
                request.body.extend_from_slice(&scratch[..take]);
                if request.body.len() < *want {
                    Arrived::Nothing
                } else {
                    let Phase::Body { request, .. } = self.end_phase() else {
                        unreachable!("matched above");
                    };
                    Arrived::Request(request)
                }
            }
            // A stream's client has nothing to say (a second, pipelined request is
            // not served).
            Phase::Stream { .. } | Phase::Closing => Arrived::Nothing,
        };
        Ok(Read {
            n,
            drained,
            arrived,
        })
    }

    /// Writes what is queued, in order — the HTTP head (or a stream's replay), shared
    /// frames, then its own frames — with one gathered write at a time (a 64-byte
    /// broadcast queued 200 times during one turn goes out in 4 system calls instead
    /// of 200), until all is written or the socket is full. Returns how many bytes
    /// went out, and whether output is left.
    pub(super) fn write(&mut self) -> io::Result<Written> {
        let mut written = 0;
        loop {
            if self.shut {
                let left = self.unsent() > 0;
                return Ok(Written {
                    bytes: written,
                    left,
                });
            }
            let mut slices = [IoSlice::new(&[]); GATHER];
            let mut count = 0;
            let own: &[u8] = match &self.phase {
                Phase::Open { ws, .. } => ws.pending_output(),
                _ => &[],
            };
            let shared = self
                .shared
                .iter()
                .map(|(chunk, written)| &chunk[*written..]);
            for bytes in std::iter::once(&self.head_out[..])
                .chain(shared)
                .chain([own])
            {
                if count == GATHER {
                    break;
                }
                if !bytes.is_empty() {
                    slices[count] = IoSlice::new(bytes);
                    count += 1;
                }
            }
            if count == 0 {
                // Ours is all written; TLS may still hold records of it.
                let left = self.socket.flush_transport()?;
                return Ok(Written {
                    bytes: written,
                    left,
                });
            }
            match self.socket.write_vectored(&slices[..count]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.consume(n);
                    written += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Ok(Written {
                        bytes: written,
                        left: true,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Drops `n` written bytes from the front of the queues, in their order.
    fn consume(&mut self, mut n: usize) {
        if !self.head_out.is_empty() {
            let taken = n.min(self.head_out.len());
            if taken == self.head_out.len() {
                // Done with it: its memory too (a stream's replay may be big).
                self.head_out = Vec::new();
            } else {
                self.head_out.drain(..taken);
            }
            n -= taken;
        }
        while let Some((chunk, written)) = self.shared.front_mut() {
            let left = chunk.len() - *written;
            if n < left {
                *written += n;
                self.shared_len -= n;
                return;
            }
            n -= left;
            self.shared_len -= left;
            self.shared.pop_front();
        }
        if let Phase::Open { ws, .. } = &mut self.phase {
            ws.consume_output(n);
        }
    }

    /// Queues bytes shared with other connections (a broadcast's frame, a stream's
    /// event) after everything queued before, its own frames included.
    pub(super) fn queue_shared(&mut self, bytes: Arc<[u8]>) {
        if let Phase::Open { ws, .. } = &mut self.phase {
            let own = ws.pending_output();
            if !own.is_empty() {
                let earlier: Arc<[u8]> = Arc::from(own);
                ws.consume_output(earlier.len());
                self.shared_len += earlier.len();
                self.shared.push_back((earlier, 0));
            }
        }
        self.shared_len += bytes.len();
        self.shared.push_back((bytes, 0));
    }

    /// Drops what is queued and not yet written (a slow stream reader's).
    pub(super) fn discard_output(&mut self) {
        self.head_out = Vec::new();
        self.shared.clear();
        self.shared_len = 0;
    }

    /// Bytes queued and not yet written: HTTP head or stream bytes, shared frames,
    /// its own frames.
    pub(super) fn unsent(&self) -> usize {
        let own = match &self.phase {
            Phase::Open { ws, .. } => ws.pending_output().len(),
            _ => 0,
        };
        self.head_out.len() + self.shared_len + own
    }

    /// A stream's bytes queued and not yet written (its head, its events): what
    /// `max_queued_output` bounds.
    pub(super) fn stream_unsent(&self) -> usize {
        self.head_out.len() + self.shared_len
    }

    /// The WebSocket connection if it can take a message now (open, not closing),
    /// with the bytes of frames queued for it (shared and its own): what
    /// `max_queued_output` bounds.
    pub(super) fn sendable(&mut self) -> Option<(&mut Connection, usize)> {
        match &mut self.phase {
            Phase::Open { ws, .. } if ws.can_send_data() => {
                let queued = self.shared_len + ws.pending_output().len();
                Some((ws, queued))
            }
            _ => None,
        }
    }

    /// Everything said: a final HTTP response, a WebSocket connection whose closing
    /// handshake is over, a stream the handler (or a shutdown) ended. Once it is
    /// written, the server closes the TCP connection.
    pub(super) fn is_finished(&self) -> bool {
        match &self.phase {
            Phase::Closing => true,
            Phase::Open { ws, .. } => ws.state() == State::Closed,
            Phase::Stream { .. } => self.our_close.is_some(),
            Phase::Handshake(_) | Phase::Body { .. } => false,
        }
    }

    /// Backpressure: stops reading while the unsent output is over `limit`.
    pub(super) fn pause_reading_above(&mut self, limit: usize) -> Reading {
        if self.read_paused {
            return Reading::Paused;
        }
        if self.unsent() <= limit {
            return Reading::On;
        }
        self.read_paused = true;
        Reading::PausedNow
    }

    /// Reads again once `unsent` bytes are down to half of `limit`; true when it
    /// resumes now.
    pub(super) fn resume_reading(&mut self, unsent: usize, limit: usize) -> bool {
        if !self.read_paused || unsent > limit / 2 {
            return false;
        }
        self.read_paused = false;
        true
    }

    pub(super) fn is_read_paused(&self) -> bool {
        self.read_paused
    }

    /// Counts a message (or a control frame) against the rate limit, `limit` a
    /// second if any: a token bucket with a burst of one second's worth.
    pub(super) fn count_message(&mut self, limit: Option<u32>) -> Rate {
        let Some(rate) = limit else {
            return Rate::Within;
        };
        if self.our_close.is_some() {
            // Closed already (for this or another reason): nothing more to count.
            return Rate::Closing;
        }
        let now = Instant::now();
        let refill = now.duration_since(self.refilled).as_secs_f64() * f64::from(rate);
        self.tokens = (self.tokens + refill).min(f64::from(rate));
        self.refilled = now;
        if self.tokens < 1.0 {
            return Rate::Over;
        }
        self.tokens -= 1.0;
        Rate::Within
    }

    /// Registers the interest that `(readable, writable)` asks for, if it changed.
    pub(super) fn register(
        &mut self,
        registry: &Registry,
        slot: usize,
        wanted: (bool, bool),
    ) -> io::Result<()> {
        if wanted == self.registered {
            return Ok(());
        }
        let interest = match wanted {
            (true, true) => Interest::READABLE | Interest::WRITABLE,
            (false, _) => Interest::WRITABLE,
            (true, false) => Interest::READABLE,
        };
        registry.reregister(self.socket.tcp(), Token(slot), interest)?;
        self.registered = wanted;
        Ok(())
    }

    pub(super) fn deregister(&mut self, registry: &Registry) {
        let _ = registry.deregister(self.socket.tcp());
    }

    /// Ends our side of the TCP connection (TLS close_notify first): from now on it
    /// only waits for the peer's EOF.
    pub(super) fn shut_down(&mut self) {
        self.socket.shutdown_write();
        self.shut = true;
    }

    pub(super) fn is_shut(&self) -> bool {
        self.shut
    }

    /// Whether the transport holds output of its own (TLS handshake records).
    pub(super) fn has_transport_output(&self) -> bool {
        self.socket.has_transport_output()
    }

    /// What the TLS session agreed, once its handshake is over (for `--trace`).
    pub(super) fn take_tls_description(&mut self) -> Option<String> {
        self.socket.take_description()
    }

    /// Frees the buffers of a connection that read less than a chunk since the last
    /// tick; returns the bytes freed.
    pub(super) fn release_idle_buffers(&mut self) -> usize {
        let quiet = self.read_since_tick < READ_CHUNK;
        self.read_since_tick = 0;
        match self.ws() {
            Some(ws) if quiet => ws.release_idle_buffers(),
            _ => 0,
        }
    }
}

#[cfg(test)]
mod size {
    /// A loop's table holds one `Conn` per connection, open or idle: what it weighs
    /// is most of an idle connection's memory (docs/performance.md). Rarely used
    /// state is boxed (a client's masking keys, close reasons, deflate), the `Config`
    /// shared; this keeps it so.
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn a_connection_s_slot_stays_small() {
        let bytes = std::mem::size_of::<super::Conn<()>>();
        assert!(bytes <= 600, "Conn<()> is {bytes} bytes");
    }
}
