//! A single-threaded `mio` event-loop server that drives the sans-IO [`Connection`]:
//! many connections on one thread, no async runtime, no thread per connection.
//!
//! The application is a [`Handler`]: it decides upgrades (authentication, Origin checks,
//! subprotocols) before the 101, and hears about opens, messages, closes and a periodic
//! tick. Every callback gets a [`Ctx`] through which it can send to any connection,
//! close one, and reach the data it attached at accept time.
//!
//! The loop: accept until `WouldBlock`; read until `WouldBlock`; feed the connection;
//! write while output is pending, with WRITABLE interest registered only then. Every
//! buffer is bounded: request heads by [`ServerConfig::max_head`], messages by the
//! [`Config`] limits, queued output by [`ServerConfig::max_queued_output`] (a slow
//! consumer is closed with 1008 or loses messages, per [`SlowConsumer`]). Timers
//! (handshake timeout, heartbeat pings, pong and close timeouts) live in one deadline
//! heap checked each turn of the loop.
//!
//! ```no_run
//! use rfc6455::server::{Accept, Ctx, ConnId, Handler, Message, Server, ServerConfig};
//! use rfc6455::handshake::server::Request;
//!
//! struct Echo;
//!
//! impl Handler for Echo {
//!     type Data = ();
//!     fn upgrade(&mut self, _request: &Request) -> Result<Accept<()>, u16> {
//!         Ok(Accept::new(()))
//!     }
//!     fn message(&mut self, ctx: &mut Ctx<'_, ()>, id: ConnId, message: Message) {
//!         ctx.send(id, &message);
//!     }
//! }
//!
//! let server = Server::bind("127.0.0.1:9001".parse().unwrap(), ServerConfig::default())?;
//! let handle = server.handle(); // shutdown from another thread: handle.shutdown()
//! server.run(Echo)?;
//! # Ok::<(), std::io::Error>(())
//! ```

mod http;
pub mod rooms;
mod timers;

pub use http::{HttpRequest, HttpResponse};

use crate::frame::FrameHeader;
use crate::handshake::server::{reject, Request};
use crate::handshake::HeadReader;
use crate::{CloseCode, Config, Connection, Event, MessageKind, OpCode, Role, State};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use timers::Timers;

const LISTENER: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX - 2);
/// How much is read from a socket at a time.
const READ_CHUNK: usize = 64 * 1024;

/// What to do with a connection whose queued output is over the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlowConsumer {
    /// Close it with 1008 (policy violation): memory stays bounded and the client
    /// learns why. The default.
    Close,
    /// Drop messages for it until its queue drains below the limit.
    DropMessages,
}

/// Limits and timers of a [`Server`].
///
/// ```
/// use rfc6455::server::ServerConfig;
/// use std::time::Duration;
///
/// let config = ServerConfig { ping_interval: Some(Duration::from_secs(10)), ..ServerConfig::default() };
/// assert_eq!(config.max_connections, 10_000);
/// ```
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Limits of each WebSocket connection (frame and message sizes: 1009 beyond).
    pub connection: Config,
    /// More connections than this: upgrades get 503. Default 10 000.
    pub max_connections: usize,
    /// The longest request head accepted (431 beyond). Default 16 KiB.
    pub max_head: usize,
    /// A client that has not finished its request head by then is dropped (slowloris).
    /// Default 10 s.
    pub handshake_timeout: Duration,
    /// Send a ping after this long without one. Default 25 s; `None`: no heartbeat.
    pub ping_interval: Option<Duration>,
    /// Close the connection when nothing (pong or anything else) arrives this long
    /// after a ping: the peer vanished without a FIN. Default 20 s.
    pub ping_timeout: Duration,
    /// Drop the TCP connection when the peer does not answer our Close (or close its
    /// end) within this time. Default 5 s.
    pub close_timeout: Duration,
    /// The most output queued for one connection. Default 4 MiB.
    pub max_queued_output: usize,
    /// What happens to a connection over `max_queued_output`.
    pub slow_consumer: SlowConsumer,
    /// Messages per second a connection may send (token bucket, burst of the same
    /// size); over it, close 1008. Default `None`: no limit.
    pub max_messages_per_second: Option<u32>,
    /// How often [`Handler::tick`] runs. Default 1 s.
    pub tick_interval: Duration,
    /// How long a graceful shutdown waits for the peers' Close frames. Default 5 s.
    pub shutdown_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            connection: Config::default(),
            max_connections: 10_000,
            max_head: 16 * 1024,
            handshake_timeout: Duration::from_secs(10),
            ping_interval: Some(Duration::from_secs(25)),
            ping_timeout: Duration::from_secs(20),
            close_timeout: Duration::from_secs(5),
            max_queued_output: 4 << 20,
            slow_consumer: SlowConsumer::Close,
            max_messages_per_second: None,
            tick_interval: Duration::from_secs(1),
            shutdown_timeout: Duration::from_secs(5),
        }
    }
}

/// A connection's identity, stable for its lifetime (slab key + generation, so that a
/// stale id never reaches a later connection in the same slot).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    slot: usize,
    generation: u64,
}

impl std::fmt::Display for ConnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}.{}", self.slot, self.generation)
    }
}

/// A complete message from a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A text message.
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
}

/// A server frame (unmasked, RFC 6455 §5.1) encoded once and shared by reference among
/// any number of connections: a broadcast costs one encoding and no per-recipient copy.
///
/// ```
/// use rfc6455::server::SharedFrame;
///
/// let frame = SharedFrame::text("Hello");
/// assert_eq!(frame.bytes(), [0x81, 0x05, b'H', b'e', b'l', b'l', b'o']);
/// assert_eq!(frame.payload_len(), 5);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedFrame {
    bytes: Arc<[u8]>,
    header_len: usize,
}

impl SharedFrame {
    /// A text message in one frame.
    pub fn text(text: &str) -> Self {
        Self::encode(OpCode::Text, text.as_bytes())
    }

    /// A binary message in one frame.
    pub fn binary(data: &[u8]) -> Self {
        Self::encode(OpCode::Binary, data)
    }

    fn encode(opcode: OpCode, payload: &[u8]) -> Self {
        let header = FrameHeader {
            fin: true,
            rsv: 0,
            opcode,
            masking_key: None,
            payload_len: payload.len() as u64,
        };
        let (head, header_len) = header.encode();
        let mut bytes = Vec::with_capacity(header_len + payload.len());
        bytes.extend_from_slice(&head[..header_len]);
        bytes.extend_from_slice(payload);
        SharedFrame {
            bytes: bytes.into(),
            header_len,
        }
    }

    /// The frame on the wire.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The payload's length (for statistics).
    pub fn payload_len(&self) -> usize {
        self.bytes.len() - self.header_len
    }
}

/// Bytes still to write in a connection's queue of shared chunks.
fn shared_len(queue: &VecDeque<(Arc<[u8]>, usize)>) -> usize {
    queue
        .iter()
        .map(|(chunk, written)| chunk.len() - written)
        .sum()
}

/// The handler's yes to an upgrade: the subprotocol chosen and the connection's data.
#[derive(Debug)]
pub struct Accept<D> {
    /// One of the subprotocols the client offered, or `None`.
    pub protocol: Option<String>,
    /// Per-connection data, reachable through [`Ctx::data`].
    pub data: D,
}

impl<D> Accept<D> {
    /// Accepts without a subprotocol.
    pub fn new(data: D) -> Self {
        Accept {
            protocol: None,
            data,
        }
    }
}

/// How a connection ended, as told to [`Handler::close`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseInfo {
    /// The code of the peer's Close, or of ours when we failed or timed out the
    /// connection; 1006 when the TCP connection ended without a Close.
    pub code: CloseCode,
    /// The reason that came with the code.
    pub reason: String,
    /// True when both Close frames were exchanged (RFC 6455 §7.1.4 "cleanly").
    pub clean: bool,
}

/// The application's side of the server. Every method but `upgrade` has a default
/// that does nothing.
pub trait Handler {
    /// Data kept with each connection.
    type Data;

    /// A valid upgrade request arrived (RFC 6455 §4.2.1): accept it, or refuse with an
    /// HTTP status (401, 403, 404…), before anything else is sent.
    fn upgrade(&mut self, request: &Request) -> Result<Accept<Self::Data>, u16>;

    /// The 101 was sent: the connection is open.
    fn open(&mut self, _ctx: &mut Ctx<'_, Self::Data>, _id: ConnId) {}

    /// A complete message arrived.
    fn message(&mut self, _ctx: &mut Ctx<'_, Self::Data>, _id: ConnId, _message: Message) {}

    /// The connection ended; its data is handed back.
    fn close(
        &mut self,
        _ctx: &mut Ctx<'_, Self::Data>,
        _id: ConnId,
        _data: Self::Data,
        _info: CloseInfo,
    ) {
    }

    /// Runs every [`ServerConfig::tick_interval`].
    fn tick(&mut self, _ctx: &mut Ctx<'_, Self::Data>) {}

    /// A plain HTTP request that is not an upgrade (and not `GET /healthz`, which the
    /// server answers itself): answer it (404 included), or `None` to treat the path
    /// as a WebSocket endpoint: a `GET` then gets `426 Upgrade Required`
    /// ([`HttpResponse::upgrade_required`]), other methods 405. `stats` are the
    /// server's counters now (e.g. for a `/metrics` page).
    fn http(&mut self, _request: &HttpRequest, _stats: &Stats) -> Option<HttpResponse> {
        None
    }
}

/// Shuts a running [`Server`] down from another thread.
#[derive(Debug, Clone)]
pub struct Handle {
    waker: Arc<Waker>,
    stop: Arc<AtomicBool>,
}

impl Handle {
    /// Starts a graceful shutdown: stop accepting, send Close 1001 "going away" to every
    /// connection, wait for their Close frames up to [`ServerConfig::shutdown_timeout`],
    /// then return from [`Server::run`].
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.waker.wake();
    }
}

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
    fn count_rejection(&mut self, status: u16) {
        match self.rejected.iter_mut().find(|(s, _)| *s == status) {
            Some((_, n)) => *n += 1,
            None => self.rejected.push((status, 1)),
        }
    }
}

// Nearly every connection is Open: boxing the large variant would cost an allocation
// and an indirection on the hot path to save memory only on the rare others.
#[allow(clippy::large_enum_variant)]
enum Phase<D> {
    /// Reading the request head.
    Handshake(HeadReader),
    /// A WebSocket connection.
    Open { ws: Connection, data: D },
    /// Writing a final HTTP response, then closing.
    Closing,
}

struct Conn<D> {
    stream: TcpStream,
    generation: u64,
    phase: Phase<D>,
    /// For HTTP responses and the 101; WebSocket output is in the `Connection`.
    raw_output: Vec<u8>,
    /// Frames shared with other connections (broadcasts), each with how much of it is
    /// written; they go out after `raw_output` and before the `Connection`'s output.
    shared: VecDeque<(Arc<[u8]>, usize)>,
    writable_registered: bool,
    /// When the next timer for this connection is due (see `on_timer`).
    handshake_deadline: Option<Instant>,
    next_ping: Option<Instant>,
    pong_deadline: Option<Instant>,
    close_deadline: Option<Instant>,
    /// Token bucket for the message rate limit.
    tokens: f64,
    refilled: Instant,
    /// Why we closed, if we did: reported when the connection ends.
    our_close: Option<(CloseCode, String)>,
    peer_close: Option<(CloseCode, String)>,
    /// The TCP write side is shut: waiting for the peer's EOF, then drop.
    shut: bool,
    /// Frames received since the last tick: such a connection keeps its buffers and
    /// reads straight into them (see `read` and `release_idle_buffers`).
    active: bool,
}

impl<D> Conn<D> {
    /// The id of the connection in `slot` (this one).
    fn id(&self, slot: usize) -> ConnId {
        ConnId {
            slot,
            generation: self.generation,
        }
    }
}

/// The event-loop server.
pub struct Server {
    poll: Poll,
    listener: TcpListener,
    config: ServerConfig,
    waker: Arc<Waker>,
    stop: Arc<AtomicBool>,
}

impl Server {
    /// Binds `addr`. Run it with [`run`](Self::run).
    pub fn bind(addr: SocketAddr, config: ServerConfig) -> io::Result<Server> {
        let poll = Poll::new()?;
        let mut listener = TcpListener::bind(addr)?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        Ok(Server {
            poll,
            listener,
            config,
            waker,
            stop: Arc::new(AtomicBool::new(false)),
        })
    }

    /// The address bound (useful after binding port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// A handle to shut the server down from another thread.
    pub fn handle(&self) -> Handle {
        Handle {
            waker: self.waker.clone(),
            stop: self.stop.clone(),
        }
    }

    /// Runs the loop until [`Handle::shutdown`] completes.
    pub fn run<H: Handler>(self, handler: H) -> io::Result<()> {
        Loop {
            poll: self.poll,
            listener: Some(self.listener),
            config: self.config,
            stop: self.stop,
            conns: Slab::new(),
            timers: Timers::default(),
            next_generation: 0,
            stats: Stats::default(),
            handler,
            shutdown_deadline: None,
            scratch: vec![0; READ_CHUNK],
            dirty: Vec::new(),
        }
        .run()
    }
}

struct Loop<H: Handler> {
    poll: Poll,
    listener: Option<TcpListener>,
    config: ServerConfig,
    stop: Arc<AtomicBool>,
    conns: Slab<Conn<H::Data>>,
    timers: Timers,
    next_generation: u64,
    stats: Stats,
    handler: H,
    shutdown_deadline: Option<Instant>,
    /// Where idle connections read into (see `read`).
    scratch: Vec<u8>,
    /// Connections with output queued during this turn of the loop.
    dirty: Vec<usize>,
}

/// What a handler callback can do: send to and close any connection, reach its data.
pub struct Ctx<'a, D> {
    conns: &'a mut Slab<Conn<D>>,
    config: &'a ServerConfig,
    stats: &'a mut Stats,
    /// Connections whose output changed, to flush after the callback.
    touched: &'a mut Vec<usize>,
}

impl<D> Ctx<'_, D> {
    fn open_conn(&mut self, id: ConnId) -> Option<&mut Conn<D>> {
        self.conns
            .get_mut(id.slot)
            .filter(|c| c.generation == id.generation)
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
        }) = self.open_conn(id)
        else {
            return false;
        };
        // One whole message. Text came in as a `&str` (see `send_text`), so it is not
        // validated again here.
        if ws.send_fragment(kind, payload, true).is_err() {
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
        let Some(conn) = self.open_conn(id) else {
            return false;
        };
        let Phase::Open { ws, .. } = &mut conn.phase else {
            return false;
        };
        // Keep the order: what the connection queued before goes out before this.
        let own = ws.pending_output();
        if !own.is_empty() {
            let earlier: Arc<[u8]> = Arc::from(own);
            ws.consume_output(earlier.len());
            conn.shared.push_back((earlier, 0));
        }
        conn.shared.push_back((frame.bytes.clone(), 0));
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

impl<H: Handler> Loop<H> {
    fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        let mut next_tick = Instant::now() + self.config.tick_interval;
        loop {
            let now = Instant::now();
            let mut wake = next_tick;
            if let Some(t) = self.timers.next() {
                wake = wake.min(t);
            }
            if let Some(t) = self.shutdown_deadline {
                wake = wake.min(t);
            }
            let timeout = wake.saturating_duration_since(now);
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept()?,
                    WAKER => {}
                    Token(slot) => self.ready(slot, event.is_readable(), event.is_writable()),
                }
            }
            self.flush_dirty();
            if self.stop.load(Ordering::SeqCst) && self.shutdown_deadline.is_none() {
                self.begin_shutdown();
            }
            let now = Instant::now();
            for slot in self.timers.due(now) {
                self.on_timer(slot, now);
            }
            if now >= next_tick {
                next_tick = now + self.config.tick_interval;
                self.with_ctx(|handler, ctx| handler.tick(ctx));
                self.release_idle_buffers();
            }
            self.flush_dirty();
            if let Some(deadline) = self.shutdown_deadline {
                if self.conns.is_empty() || now >= deadline {
                    log::info!(
                        "shutdown complete ({} connections dropped)",
                        self.conns.len()
                    );
                    let slots: Vec<usize> = self.conns.iter().map(|(s, _)| s).collect();
                    for slot in slots {
                        self.drop_conn(slot);
                    }
                    return Ok(());
                }
            }
        }
    }

    fn begin_shutdown(&mut self) {
        log::info!("shutting down: closing {} connections", self.conns.len());
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        self.shutdown_deadline = Some(Instant::now() + self.config.shutdown_timeout);
        let ids: Vec<ConnId> = self.conns.iter().map(|(slot, c)| c.id(slot)).collect();
        self.with_ctx(|_, ctx| {
            for id in ids {
                ctx.close(id, CloseCode::GOING_AWAY, "server shutting down");
            }
        });
        let handshaking: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| matches!(c.phase, Phase::Handshake(_)))
            .map(|(s, _)| s)
            .collect();
        for slot in handshaking {
            self.drop_conn(slot);
        }
    }

    fn accept(&mut self) -> io::Result<()> {
        loop {
            let Some(listener) = &self.listener else {
                return Ok(());
            };
            let (mut stream, peer) = match listener.accept() {
                Ok(pair) => pair,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // Out of file descriptors and the like: log, keep serving the others.
                Err(e) => {
                    log::warn!("accept failed: {e}");
                    return Ok(());
                }
            };
            let _ = stream.set_nodelay(true);
            let entry = self.conns.vacant_entry();
            let slot = entry.key();
            self.poll
                .registry()
                .register(&mut stream, Token(slot), Interest::READABLE)?;
            self.next_generation += 1;
            let now = Instant::now();
            let deadline = now + self.config.handshake_timeout;
            entry.insert(Conn {
                stream,
                generation: self.next_generation,
                phase: Phase::Handshake(HeadReader::new(self.config.max_head)),
                raw_output: Vec::new(),
                shared: VecDeque::new(),
                writable_registered: false,
                handshake_deadline: Some(deadline),
                next_ping: None,
                pong_deadline: None,
                close_deadline: None,
                tokens: f64::from(self.config.max_messages_per_second.unwrap_or(0)),
                refilled: now,
                our_close: None,
                peer_close: None,
                shut: false,
                active: false,
            });
            self.timers.schedule(deadline, slot);
            log::debug!("accepted {peer} as slot {slot}");
        }
    }

    fn ready(&mut self, slot: usize, readable: bool, writable: bool) {
        if !self.conns.contains(slot) {
            return;
        }
        if readable {
            self.read(slot);
        }
        if writable && self.conns.contains(slot) {
            self.flush(slot);
        }
    }

    fn read(&mut self, slot: usize) {
        let mut buf = [0u8; 4096];
        loop {
            let Some(conn) = self.conns.get_mut(slot) else {
                return;
            };
            let active = conn.active;
            let result = match &mut conn.phase {
                // Head bytes (or, while closing, bytes to discard) go through `buf`.
                Phase::Handshake(_) | Phase::Closing => conn.stream.read(&mut buf),
                // A busy connection (traffic since the last tick, so its buffer is
                // kept) or one in the middle of a frame reads straight into its input
                // buffer: the payload is copied once, from there into the message. A
                // quiet one reads into the loop's scratch buffer and keeps only what
                // arrived, so that idle connections hold no read buffer of their own.
                Phase::Open { ws, .. } if active || ws.buffered_input() > 0 => {
                    let space = ws.input_buffer(READ_CHUNK);
                    let result = conn.stream.read(space);
                    if let Ok(n) = result {
                        ws.commit_input(n);
                    }
                    result
                }
                Phase::Open { ws, .. } => {
                    let result = conn.stream.read(&mut self.scratch);
                    if let Ok(n) = result {
                        ws.receive(&self.scratch[..n]);
                    }
                    result
                }
            };
            match result {
                Ok(0) => return self.drop_conn(slot),
                Ok(n) => match &mut self.conns[slot].phase {
                    Phase::Handshake(head) => {
                        let pushed = head.push(&buf[..n]);
                        self.after_head(slot, pushed);
                    }
                    Phase::Open { .. } => {
                        self.conns[slot].active = true;
                        self.process(slot);
                    }
                    Phase::Closing => {}
                },
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::debug!("slot {slot}: read error: {e}");
                    return self.drop_conn(slot);
                }
            }
        }
    }

    /// Handles a pushed request head: an upgrade, a plain HTTP request, or an error.
    fn after_head(
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
    fn plain_http(&mut self, request: &HttpRequest) -> HttpResponse {
        if request.method == "GET" && request.path() == "/healthz" {
            return HttpResponse::text(200, "ok\n");
        }
        if let Some(response) = self.handler.http(request, &self.stats) {
            return response;
        }
        if request.method == "GET" || request.method == "HEAD" {
            return HttpResponse::upgrade_required();
        }
        let mut response = HttpResponse::text(405, "a WebSocket endpoint takes GET\n");
        response.headers.push(("Allow".into(), "GET".into()));
        response
    }

    fn upgrade(&mut self, slot: usize, request: Request, rest: Vec<u8>) {
        let open = self.stats.open;
        if open >= self.config.max_connections {
            log::warn!("slot {slot}: refused, {open} connections open (503)");
            self.stats.count_rejection(503);
            return self.respond_and_close(slot, reject(503, &[], "too many connections"));
        }
        let accepted = match self.handler.upgrade(&request) {
            Ok(accepted) => accepted,
            Err(status) => {
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
        conn.raw_output = request.accept(accepted.protocol.as_deref());
        if self.config.connection.trace {
            for line in String::from_utf8_lossy(&conn.raw_output).lines() {
                log::info!(target: "rfc6455::trace", "slot {slot} -> {line}");
            }
        }
        let mut ws = Connection::with_config(Role::Server, self.config.connection.clone());
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

    fn respond_and_close(&mut self, slot: usize, response: Vec<u8>) {
        let conn = &mut self.conns[slot];
        conn.raw_output = response;
        conn.phase = Phase::Closing;
        conn.handshake_deadline = None;
        let deadline = Instant::now() + self.config.close_timeout;
        conn.close_deadline = Some(deadline);
        self.timers.schedule(deadline, slot);
        self.flush(slot);
    }

    /// Takes every event the connection has, and answers them.
    fn process(&mut self, slot: usize) {
        loop {
            let Some(conn) = self.conns.get_mut(slot) else {
                return;
            };
            let id = conn.id(slot);
            let Phase::Open { ws, .. } = &mut conn.phase else {
                return;
            };
            let event = ws.next_event();
            // Any frame from the peer shows it is alive (RFC 6455 §5.5.2 heartbeat).
            if matches!(event, Ok(Some(_))) {
                conn.pong_deadline = None;
            }
            match event {
                Ok(None) => break,
                Ok(Some(Event::Text(text))) => self.on_message(id, Message::Text(text)),
                Ok(Some(Event::Binary(data))) => self.on_message(id, Message::Binary(data)),
                Ok(Some(Event::Ping(_) | Event::Pong(_))) => {}
                Ok(Some(Event::Close(frame))) => {
                    let (code, reason) = frame
                        .map(|f| (f.code, f.reason))
                        .unwrap_or((CloseCode::NO_STATUS_RECEIVED, String::new()));
                    conn.peer_close = Some((code, reason));
                }
                Err(err) => {
                    log::info!(
                        "{id}: protocol error, closing with {}: {err}",
                        err.close_code().0
                    );
                    conn.our_close = Some((err.close_code(), err.to_string()));
                }
            }
        }
        self.dirty.push(slot);
    }

    /// Frees the buffers of connections that saw no traffic since the last tick, so an
    /// idle connection holds almost no memory, while a busy one keeps its buffers
    /// (freeing and faulting in large buffers per message costs more than the copies).
    fn release_idle_buffers(&mut self) {
        for (_, conn) in self.conns.iter_mut() {
            if let Phase::Open { ws, .. } = &mut conn.phase {
                if !conn.active {
                    ws.release_idle_buffers();
                }
            }
            conn.active = false;
        }
    }

    fn on_message(&mut self, id: ConnId, message: Message) {
        let len = match &message {
            Message::Text(t) => t.len(),
            Message::Binary(b) => b.len(),
        };
        self.stats.messages_in += 1;
        self.stats.bytes_in += len as u64;
        if let Some(rate) = self.config.max_messages_per_second {
            let conn = &mut self.conns[id.slot];
            let now = Instant::now();
            let refill = now.duration_since(conn.refilled).as_secs_f64() * f64::from(rate);
            conn.tokens = (conn.tokens + refill).min(f64::from(rate));
            conn.refilled = now;
            if conn.tokens < 1.0 {
                log::info!("{id}: over {rate} messages/s, closing");
                self.with_ctx(|_, ctx| ctx.close(id, CloseCode::POLICY_VIOLATION, "rate limit"));
                return;
            }
            conn.tokens -= 1.0;
        }
        self.with_ctx(|handler, ctx| handler.message(ctx, id, message));
    }

    /// Runs a handler callback with a context, then flushes what it sent.
    fn with_ctx(&mut self, f: impl FnOnce(&mut H, &mut Ctx<'_, H::Data>)) {
        let mut touched = Vec::new();
        let mut ctx = Ctx {
            conns: &mut self.conns,
            config: &self.config,
            stats: &mut self.stats,
            touched: &mut touched,
        };
        f(&mut self.handler, &mut ctx);
        for &slot in &touched {
            if let Some(conn) = self.conns.get(slot) {
                if let Some(deadline) = conn.close_deadline {
                    self.timers.schedule(deadline, slot);
                }
            }
        }
        // Written at the end of this turn of the loop: every message queued for a
        // connection meanwhile goes out in one write.
        self.dirty.extend(touched);
    }

    /// Writes the output of every connection that got some during this turn.
    fn flush_dirty(&mut self) {
        while !self.dirty.is_empty() {
            let mut dirty = std::mem::take(&mut self.dirty);
            dirty.sort_unstable();
            dirty.dedup();
            for slot in dirty {
                self.flush(slot);
            }
        }
    }

    /// Writes pending output until done or `WouldBlock`; registers WRITABLE interest
    /// only while output is left. Ends the connection once it is closed and flushed.
    fn flush(&mut self, slot: usize) {
        if self.config.connection.trace {
            self.log_trace(slot);
        }
        let has_output = match self.write_pending(slot) {
            Ok(has_output) => has_output,
            Err(e) => {
                log::debug!("slot {slot}: write error: {e}");
                return self.drop_conn(slot);
            }
        };
        let Some(conn) = self.conns.get_mut(slot) else {
            return;
        };
        if conn.shut {
            return;
        }
        if has_output != conn.writable_registered {
            let interest = if has_output {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            if let Err(e) = self
                .poll
                .registry()
                .reregister(&mut conn.stream, Token(slot), interest)
            {
                log::debug!("slot {slot}: reregister failed: {e}");
                return self.drop_conn(slot);
            }
            conn.writable_registered = has_output;
        }
        // Everything written and nothing more to say: the server closes the TCP
        // connection first (RFC 6455 §7.1.1), then reads until the peer's EOF.
        let done = match &conn.phase {
            Phase::Closing => true,
            Phase::Open { ws, .. } => ws.state() == State::Closed,
            Phase::Handshake(_) => false,
        };
        if done && !has_output {
            let _ = conn.stream.shutdown(Shutdown::Write);
            conn.shut = true;
            let deadline = Instant::now() + self.config.close_timeout;
            conn.close_deadline = Some(deadline);
            self.timers.schedule(deadline, slot);
            if matches!(conn.phase, Phase::Open { .. }) {
                self.report_close(slot);
            }
        }
    }

    /// Logs the frames a connection received and sent since the last call (`--trace`).
    fn log_trace(&mut self, slot: usize) {
        let Some(conn) = self.conns.get_mut(slot) else {
            return;
        };
        let id = conn.id(slot);
        if let Phase::Open { ws, .. } = &mut conn.phase {
            for frame in ws.take_trace() {
                log::info!(target: "rfc6455::trace", "{id} {frame}");
            }
        }
    }

    /// Writes what is pending; returns whether output is left.
    fn write_pending(&mut self, slot: usize) -> io::Result<bool> {
        let Some(conn) = self.conns.get_mut(slot) else {
            return Ok(false);
        };
        loop {
            // In order: the HTTP head, shared frames, the connection's own frames.
            let pending: &[u8] = if !conn.raw_output.is_empty() {
                &conn.raw_output
            } else if let Some((chunk, written)) = conn.shared.front() {
                &chunk[*written..]
            } else if let Phase::Open { ws, .. } = &conn.phase {
                ws.pending_output()
            } else {
                &[]
            };
            if pending.is_empty() || conn.shut {
                return Ok(!pending.is_empty());
            }
            match conn.stream.write(pending) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    if !conn.raw_output.is_empty() {
                        conn.raw_output.drain(..n);
                    } else if let Some((chunk, written)) = conn.shared.front_mut() {
                        *written += n;
                        if *written == chunk.len() {
                            conn.shared.pop_front();
                        }
                    } else if let Phase::Open { ws, .. } = &mut conn.phase {
                        ws.consume_output(n);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Tells the handler how the connection ended (once), leaving the socket to drain.
    fn report_close(&mut self, slot: usize) {
        let conn = &mut self.conns[slot];
        let id = conn.id(slot);
        let phase = std::mem::replace(&mut conn.phase, Phase::Closing);
        let Phase::Open { data, .. } = phase else {
            return;
        };
        // The peer's Close arrived, and the connection answers every Close it
        // receives: both Close frames were exchanged.
        let clean = conn.peer_close.is_some();
        let (code, reason) = conn
            .peer_close
            .clone()
            .or_else(|| conn.our_close.clone())
            .unwrap_or((CloseCode::ABNORMAL_CLOSURE, String::new()));
        self.stats.open -= 1;
        log::info!(
            "{id}: closed with {} ({})",
            code.0,
            if clean { "clean" } else { "not clean" }
        );
        let info = CloseInfo {
            code,
            reason,
            clean,
        };
        self.with_ctx(|handler, ctx| handler.close(ctx, id, data, info));
    }

    fn on_timer(&mut self, slot: usize, now: Instant) {
        let Some(conn) = self.conns.get_mut(slot) else {
            return;
        };
        if conn.handshake_deadline.is_some_and(|d| now >= d) {
            log::info!("slot {slot}: handshake timeout");
            self.stats.count_rejection(408);
            return self.drop_conn(slot);
        }
        if conn.close_deadline.is_some_and(|d| now >= d) {
            log::debug!("slot {slot}: close timeout");
            return self.drop_conn(slot);
        }
        let id = conn.id(slot);
        if conn.pong_deadline.is_some_and(|d| now >= d) {
            log::info!("{id}: no pong within the timeout, closing");
            conn.pong_deadline = None;
            conn.next_ping = None;
            self.with_ctx(|_, ctx| ctx.close(id, CloseCode::POLICY_VIOLATION, "ping timeout"));
            return;
        }
        if conn.next_ping.is_some_and(|d| now >= d) {
            if let Phase::Open { ws, .. } = &mut conn.phase {
                if ws.send_ping(b"").is_ok() {
                    let pong_deadline = now + self.config.ping_timeout;
                    conn.pong_deadline.get_or_insert(pong_deadline);
                    let next = now + self.config.ping_interval.unwrap_or(Duration::MAX / 4);
                    conn.next_ping = Some(next);
                    let soonest = (*conn.pong_deadline.as_ref().unwrap()).min(next);
                    self.timers.schedule(soonest, slot);
                    self.flush(slot);
                }
            }
        }
    }

    /// The connection is over (EOF, error, timeout): tell the handler, drop it.
    fn drop_conn(&mut self, slot: usize) {
        if !self.conns.contains(slot) {
            return;
        }
        if matches!(self.conns[slot].phase, Phase::Open { .. }) {
            self.report_close(slot);
        }
        let mut conn = self.conns.remove(slot);
        let _ = self.poll.registry().deregister(&mut conn.stream);
    }
}
