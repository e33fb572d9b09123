//! The connection state machine (RFC 6455 §5, §6, §7), for both roles, without I/O.
//!
//! A [`Connection`] takes the bytes that arrive ([`receive`](Connection::receive), or
//! [`input_buffer`](Connection::input_buffer) + [`commit_input`](Connection::commit_input)
//! to read straight into it), gives back [`Event`]s one at a time
//! ([`next_event`](Connection::next_event)), and queues the bytes to send
//! ([`pending_output`](Connection::pending_output) /
//! [`consume_output`](Connection::consume_output)). It owns no socket, thread or clock.
//!
//! Parsing is lazy: bytes are only interpreted when the application asks for the next
//! event. A message that arrived before a bad frame is therefore delivered (and can be
//! answered) before the bad frame fails the connection, in the order the peer sent
//! them.
//!
//! Data payloads are streamed: each piece is copied once from the input buffer into
//! the message being assembled, unmasked there in place, and — for text — checked as
//! UTF-8 on arrival, so invalid text fails the connection on the read that brings the
//! offending byte (RFC 6455 §8.1), not at the end of the message.

use crate::close::{truncate_utf8, CloseCode, CloseFrame, MAX_CLOSE_REASON};
use crate::deflate::codec::{Deflater, InflateError, Inflater};
use crate::deflate::{DeflateConfig, Negotiated};
use crate::error::{ProtocolError, SendError};
use crate::frame::{FrameHeader, OpCode, Parsed, Role, MAX_CONTROL_PAYLOAD};
use crate::mask::{apply_mask, extend_unmasked};
use crate::random::MaskKeys;
use crate::utf8::Utf8Validator;

/// Limits and behaviour of a connection.
///
/// ```
/// use rfc6455::Config;
///
/// let config = Config { max_message_size: 1 << 20, ..Config::default() };
/// assert_eq!(config.max_frame_size, 16 << 20);
/// assert!(config.auto_pong);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The largest frame payload accepted; a header announcing more fails the connection
    /// with 1009 at once (RFC 6455 §10.4). Default 16 MiB.
    pub max_frame_size: usize,
    /// The largest message accepted, all fragments together; 1009 beyond. Default 64 MiB.
    pub max_message_size: usize,
    /// Answer every ping with a pong carrying its payload (RFC 6455 §5.5.2). Default on.
    /// Pings are reported as events either way.
    pub auto_pong: bool,
    /// RSV bits (`0b0RRR`, RSV1 high) that negotiated extensions define; any other RSV
    /// bit fails the connection (RFC 6455 §5.2). Default 0: no extensions.
    pub allowed_rsv: u8,
    /// Record every frame received and sent, for [`Connection::take_trace`] (the
    /// `--trace` of the command line tools). Default off.
    pub trace: bool,
    /// permessage-deflate (RFC 7692) for the drivers to offer (client) or accept
    /// (server) in the opening handshake; `None`: not offered, offers declined.
    /// Default `None` here; the event-loop server's default turns it on. What was
    /// agreed is given to [`Connection::with_deflate`].
    pub deflate: Option<DeflateConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_frame_size: 16 << 20,
            max_message_size: 64 << 20,
            auto_pong: true,
            allowed_rsv: 0,
            trace: false,
            deflate: None,
        }
    }
}

/// What the peer sent: a whole message, a control frame, or its Close.
///
/// ```
/// use rfc6455::{CloseCode, CloseFrame, Connection, Event, Role};
///
/// let mut client = Connection::new(Role::Client);
/// // A server's ping "hi" (RFC 6455 §5.5.2), then its Close with 1000 (§5.5.1).
/// client.receive(&[0x89, 0x02, b'h', b'i', 0x88, 0x02, 0x03, 0xe8]);
/// assert_eq!(client.next_event(), Ok(Some(Event::Ping(b"hi".to_vec()))));
/// let normal = CloseFrame { code: CloseCode::NORMAL, reason: String::new() };
/// assert_eq!(client.next_event(), Ok(Some(Event::Close(Some(normal)))));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A complete text message, valid UTF-8.
    Text(String),
    /// A complete binary message.
    Binary(Vec<u8>),
    /// A ping (already answered when [`Config::auto_pong`] is on).
    Ping(Vec<u8>),
    /// A pong, solicited or not (RFC 6455 §5.5.3).
    Pong(Vec<u8>),
    /// The peer's Close frame: `None` when it carried no status code. The reply is
    /// already queued when the peer closed first.
    Close(Option<CloseFrame>),
}

/// What the peer sent, lent by [`Connection::next_message`]: the borrowed twin of
/// [`Event`], valid until the connection is next used. Text is valid UTF-8.
///
/// ```
/// use rfc6455::{Connection, Event, MessageRef, Role};
///
/// let mut client = Connection::new(Role::Client);
/// client.receive(&[0x82, 0x03, 1, 2, 3]); // a server's binary message
/// let message = client.next_message().unwrap().unwrap();
/// assert_eq!(message, MessageRef::Binary(&[1, 2, 3]));
/// assert_eq!(Event::from(message), Event::Binary(vec![1, 2, 3])); // to keep it
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageRef<'a> {
    /// A complete text message.
    Text(&'a str),
    /// A complete binary message.
    Binary(&'a [u8]),
    /// A ping (already answered when [`Config::auto_pong`] is on).
    Ping(&'a [u8]),
    /// A pong.
    Pong(&'a [u8]),
    /// The peer's Close frame, as in [`Event::Close`].
    Close(Option<CloseFrame>),
}

impl From<MessageRef<'_>> for Event {
    fn from(message: MessageRef<'_>) -> Event {
        match message {
            MessageRef::Text(text) => Event::Text(text.to_owned()),
            MessageRef::Binary(data) => Event::Binary(data.to_vec()),
            MessageRef::Ping(data) => Event::Ping(data.to_vec()),
            MessageRef::Pong(data) => Event::Pong(data.to_vec()),
            MessageRef::Close(frame) => Event::Close(frame),
        }
    }
}

/// The kind of a data message.
///
/// ```
/// use rfc6455::{Connection, MessageKind, Role};
///
/// // The kind picks the opcode of the first frame: 0x1 text, 0x2 binary (RFC 6455 §5.6).
/// let mut server = Connection::new(Role::Server);
/// server.send_message(MessageKind::Text, b"a").unwrap();
/// server.send_message(MessageKind::Binary, b"a").unwrap();
/// assert_eq!(server.pending_output(), [0x81, 0x01, b'a', 0x82, 0x01, b'a']);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// UTF-8 text (opcode 0x1).
    Text,
    /// Binary data (opcode 0x2).
    Binary,
}

impl MessageKind {
    fn opcode(self) -> OpCode {
        match self {
            MessageKind::Text => OpCode::Text,
            MessageKind::Binary => OpCode::Binary,
        }
    }
}

/// Where the closing handshake stands (RFC 6455 §7).
///
/// ```
/// use rfc6455::{CloseCode, Connection, Event, Role, State};
///
/// let mut server = Connection::new(Role::Server);
/// assert_eq!(server.state(), State::Open);
/// server.close(CloseCode::GOING_AWAY, "").unwrap();
/// assert_eq!(server.state(), State::Closing); // ours sent, the peer's awaited
/// // The client's Close, masked with a zero key, ends the handshake (RFC 6455 §7.1.2).
/// server.receive(&[0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe9]);
/// assert!(matches!(server.next_event(), Ok(Some(Event::Close(Some(_))))));
/// assert_eq!(server.state(), State::Closed);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Messages flow both ways.
    Open,
    /// This end sent a Close and waits for the peer's; it still receives.
    Closing,
    /// Both Close frames are exchanged, or the connection failed. Once the pending
    /// output is written, a server closes the TCP connection; a client waits for the
    /// server to close it (RFC 6455 §7.1.1).
    Closed,
}

/// Reading a data frame's payload, piece by piece, into the current message.
#[derive(Debug, Clone, Copy)]
struct PayloadInProgress {
    remaining: u64,
    masking_key: Option<[u8; 4]>,
    /// Bytes of this frame's payload already read: the key phase (§5.3).
    offset: usize,
    fin: bool,
}

/// A data message being assembled from its fragments (RFC 6455 §5.4), in the
/// connection's `assembled` buffer.
#[derive(Debug)]
struct IncomingMessage {
    kind: MessageKind,
    utf8: Utf8Validator,
    /// RSV1 on its first frame: its payloads are inflated into `data` (RFC 7692 §6).
    compressed: bool,
}

/// permessage-deflate on this connection (RFC 7692), once negotiated.
#[derive(Debug)]
struct Compression {
    negotiated: Negotiated,
    deflater: Deflater,
    inflater: Inflater,
    /// Where a message is compressed before it is framed.
    scratch: Vec<u8>,
}

/// RSV1: "Per-Message Compressed" (RFC 7692 §6).
const RSV1: u8 = 0b100;

/// The sans-IO WebSocket connection, after the opening handshake.
///
/// ```
/// use rfc6455::{Connection, Event, Role};
///
/// let mut client = Connection::new(Role::Client);
/// let mut server = Connection::new(Role::Server);
///
/// client.send_text("Hello").unwrap();
/// server.receive(client.pending_output());
/// client.consume_output(client.pending_output().len());
/// assert_eq!(server.next_event(), Ok(Some(Event::Text("Hello".into()))));
/// assert_eq!(server.next_event(), Ok(None)); // nothing more yet
///
/// // RFC 6455 §5.7: the server's unmasked reply, byte for byte.
/// server.send_text("Hello").unwrap();
/// assert_eq!(server.pending_output(), [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
/// ```
#[derive(Debug)]
pub struct Connection {
    role: Role,
    config: Config,
    state: State,
    /// Received bytes: `input[input_start..input_end]` are not yet interpreted; the
    /// rest of `input` is initialised space for the next read.
    input: Vec<u8>,
    input_start: usize,
    input_end: usize,
    payload: Option<PayloadInProgress>,
    message: Option<IncomingMessage>,
    /// The payload of the message being assembled (or of the last one lent by
    /// `next_message`): reused from message to message, so that streamed messages
    /// cost no allocation once it has grown.
    assembled: Vec<u8>,
    /// A finished message waiting to be handed out while the next one is assembled,
    /// and otherwise the spare that `assembled` is swapped with (so that, message
    /// after message, neither needs allocating).
    finished: Vec<u8>,
    /// What [`poll_next`](Connection::poll_next) parsed and the next call hands out;
    /// its bytes in the input buffer are kept until then.
    ready: Option<Ready>,
    /// Where in `input` the payload of an `InInput`, `Ping` or `Pong` is.
    ready_span: (usize, usize),
    /// The peer's Close frame, from parsing until it is handed out.
    close_received: Option<CloseFrame>,
    /// Bytes to send: `output[output_start..]`.
    output: Vec<u8>,
    output_start: usize,
    /// Where an automatic Pong starts in `output`, while it is the last frame there
    /// and none of it is written: the next Ping's Pong replaces it (see `on_control`).
    unsent_pong: Option<usize>,
    /// The kind of the fragmented message being sent, if one is unfinished.
    sending_fragmented: Option<MessageKind>,
    close_sent: bool,
    mask_keys: Option<MaskKeys>,
    /// Frames seen, when `Config::trace` is on.
    trace: Vec<TracedFrame>,
    /// Boxed: a connection without permessage-deflate pays one pointer for it (an
    /// event loop keeps thousands of connections in one table).
    compression: Option<Box<Compression>>,
}

/// How many payload bytes a [`TracedFrame`] keeps.
const TRACE_PREVIEW: usize = 40;

/// A frame received or sent, recorded when [`Config::trace`] is on. Its `Display` is
/// one annotated line: direction, FIN, opcode, length, mask, payload preview.
///
/// ```
/// use rfc6455::{Config, Connection, Role};
///
/// let mut server = Connection::with_config(Role::Server, Config { trace: true, ..Config::default() });
/// server.receive(&[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]);
/// server.next_event().unwrap();
/// server.send_text("Hi").unwrap();
/// let lines: Vec<String> = server.take_trace().iter().map(|f| f.to_string()).collect();
/// assert_eq!(lines, [
///     "<- FIN=1 text (0x1) len=5 (7-bit) mask=37fa213d \"Hello\"",
///     "-> FIN=1 text (0x1) len=2 (7-bit) unmasked \"Hi\"",
/// ]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TracedFrame {
    /// True for a frame this end sent.
    pub outgoing: bool,
    /// The frame's header.
    pub header: FrameHeader,
    /// The first bytes of the unmasked payload (those at hand when it was read); of
    /// the inflated message for a compressed one whose size is known.
    pub preview: Vec<u8>,
    /// For a compressed message (RSV1, RFC 7692): its inflated size, on the frame
    /// that ends it (and on the only frame of a message sent compressed).
    pub inflated: Option<usize>,
}

impl std::fmt::Display for TracedFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let h = &self.header;
        let arrow = if self.outgoing { "->" } else { "<-" };
        write!(f, "{arrow} ")?;
        crate::frame::write_summary(f, h)?;
        if let Some(size) = self.inflated {
            write!(f, " deflate: {} -> {size} bytes", h.payload_len)?;
        }
        crate::frame::write_mask(f, h.masking_key)?;
        if h.opcode == OpCode::Close && self.preview.len() >= 2 {
            let code = CloseCode(u16::from_be_bytes([self.preview[0], self.preview[1]]));
            write!(f, " code={code}")?;
            let reason = String::from_utf8_lossy(&self.preview[2..]);
            if !reason.is_empty() {
                write!(f, " {reason:?}")?;
            }
            return Ok(());
        }
        if self.preview.is_empty() {
            return Ok(());
        }
        let more = if (self.preview.len() as u64) < h.payload_len {
            "…"
        } else {
            ""
        };
        match std::str::from_utf8(&self.preview) {
            Ok(text) if h.opcode != OpCode::Binary => write!(f, " {text:?}{more}"),
            _ => {
                f.write_str(" ")?;
                for b in &self.preview {
                    write!(f, "{b:02x}")?;
                }
                f.write_str(more)
            }
        }
    }
}

/// Buffers larger than this are released when they empty, so that one big message
/// does not pin its memory to an idle connection.
const RETAINED_BUFFER: usize = 1024 * 1024;

/// How much room a streamed frame's header alone may reserve in the assembly buffer
/// (a peer could announce 16 MiB and send nothing); beyond, it grows as bytes come.
const RESERVE_AHEAD: usize = 256 * 1024;

impl Connection {
    /// A connection in the Open state with the default [`Config`].
    ///
    /// ```
    /// use rfc6455::{Config, Connection, Role, State};
    ///
    /// // The opening handshake (RFC 6455 §4) is done before a `Connection` exists.
    /// let conn = Connection::new(Role::Server);
    /// assert_eq!(conn.state(), State::Open);
    /// assert_eq!(conn.config(), &Config::default());
    /// assert_eq!(conn.deflate(), None); // no permessage-deflate
    /// ```
    pub fn new(role: Role) -> Self {
        Self::with_config(role, Config::default())
    }

    /// A connection in the Open state.
    ///
    /// ```
    /// use rfc6455::{CloseCode, Config, Connection, Role};
    ///
    /// let config = Config { max_message_size: 4, ..Config::default() };
    /// let mut server = Connection::with_config(Role::Server, config);
    /// // A 5-byte message is over the limit: "message too big", 1009 (RFC 6455 §7.4.1).
    /// server.receive(&[0x82, 0x85, 0, 0, 0, 0, 1, 2, 3, 4, 5]);
    /// let err = server.next_event().unwrap_err();
    /// assert_eq!(err.close_code(), CloseCode::MESSAGE_TOO_BIG);
    /// ```
    pub fn with_config(role: Role, config: Config) -> Self {
        Self::with_deflate(role, config, None)
    }

    /// A connection in the Open state with permessage-deflate as negotiated in the
    /// opening handshake (RFC 7692; see [`crate::deflate`]), or without it (`None`).
    /// Text and binary messages of at least the threshold are then sent compressed,
    /// and compressed messages are inflated, their inflated size counting against
    /// [`Config::max_message_size`].
    ///
    /// ```
    /// use rfc6455::deflate::{negotiate, DeflateConfig};
    /// use rfc6455::extensions::parse;
    /// use rfc6455::{Config, Connection, Event, Role};
    ///
    /// let offer = parse(&["permessage-deflate"]);
    /// let (agreed, _answer) = negotiate(&DeflateConfig::default(), &offer).unwrap();
    /// let mut server = Connection::with_deflate(Role::Server, Config::default(), Some(agreed));
    /// // RFC 7692 §7.2.3.1: "Hello" compressed, in one masked frame with RSV1 set.
    /// let payload = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
    /// let mut frame = vec![0xc1, 0x80 | 7, 0, 0, 0, 0];
    /// frame.extend_from_slice(&payload);
    /// server.receive(&frame);
    /// assert_eq!(server.next_event(), Ok(Some(Event::Text("Hello".into()))));
    /// ```
    pub fn with_deflate(role: Role, config: Config, deflate: Option<Negotiated>) -> Self {
        Connection {
            role,
            config,
            state: State::Open,
            input: Vec::new(),
            input_start: 0,
            input_end: 0,
            payload: None,
            message: None,
            assembled: Vec::new(),
            finished: Vec::new(),
            ready: None,
            ready_span: (0, 0),
            close_received: None,
            output: Vec::new(),
            output_start: 0,
            unsent_pong: None,
            sending_fragmented: None,
            close_sent: false,
            mask_keys: (role == Role::Client).then(MaskKeys::new),
            trace: Vec::new(),
            compression: deflate.map(|negotiated| {
                Box::new(Compression {
                    negotiated,
                    deflater: Deflater::new(&negotiated),
                    inflater: Inflater::new(&negotiated),
                    scratch: Vec::new(),
                })
            }),
        }
    }

    /// permessage-deflate as negotiated, if it was.
    ///
    /// ```
    /// use rfc6455::deflate::Negotiated;
    /// use rfc6455::{Config, Connection, Role};
    ///
    /// assert_eq!(Connection::new(Role::Server).deflate(), None);
    /// // What a bare `permessage-deflate` offer and answer agree (RFC 7692 §7.1).
    /// let agreed = Negotiated::default();
    /// let conn = Connection::with_deflate(Role::Server, Config::default(), Some(agreed));
    /// assert_eq!(conn.deflate(), Some(&agreed));
    /// ```
    pub fn deflate(&self) -> Option<&Negotiated> {
        self.compression.as_ref().map(|c| &c.negotiated)
    }

    /// This end's role.
    ///
    /// ```
    /// use rfc6455::{Connection, Role};
    ///
    /// // A driver asks, e.g. to know who closes the TCP connection first (RFC 6455 §7.1.1).
    /// let conn = Connection::new(Role::Client);
    /// assert_eq!(conn.role(), Role::Client);
    /// ```
    pub fn role(&self) -> Role {
        self.role
    }

    /// The configuration.
    ///
    /// ```
    /// use rfc6455::{Config, Connection, Role};
    ///
    /// let config = Config { auto_pong: false, ..Config::default() };
    /// let conn = Connection::with_config(Role::Server, config);
    /// assert!(!conn.config().auto_pong); // pings are the application's to answer
    /// assert_eq!(conn.config().max_frame_size, 16 << 20);
    /// ```
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Where the closing handshake stands.
    ///
    /// ```
    /// use rfc6455::{Connection, Event, Role, State};
    ///
    /// let mut server = Connection::new(Role::Server);
    /// // The client closes first, with no status code (RFC 6455 §5.5.1).
    /// server.receive(&[0x88, 0x80, 0, 0, 0, 0]);
    /// assert_eq!(server.next_event(), Ok(Some(Event::Close(None))));
    /// // The reply is queued with the event: both Close frames are exchanged.
    /// assert_eq!(server.state(), State::Closed);
    /// assert_eq!(server.pending_output(), [0x88, 0x00]);
    /// ```
    pub fn state(&self) -> State {
        self.state
    }

    /// True once both Close frames are exchanged or the connection failed.
    ///
    /// ```
    /// use rfc6455::{Connection, Role};
    ///
    /// let mut client = Connection::new(Role::Client);
    /// // A masked frame from a server fails the connection (RFC 6455 §5.1).
    /// client.receive(&[0x81, 0x80, 0, 0, 0, 0]);
    /// assert!(client.next_event().is_err());
    /// assert!(client.is_closed()); // write the queued Close 1002, then drop the transport
    /// ```
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    // ---- input -------------------------------------------------------------------

    /// Adds received bytes. Nothing is interpreted until [`next_event`](Self::next_event).
    /// Bytes received after the connection closed are discarded.
    ///
    /// Bytes that continue a data frame already being read (a frame larger than what
    /// arrived with its header) skip the input buffer: they are unmasked straight
    /// from `data` into the message, one pass instead of a copy and then a second.
    /// Where the caller already holds the bytes (a TLS session's plaintext, a test),
    /// `receive` is therefore cheaper for large frames than
    /// [`input_buffer`](Self::input_buffer), which suits a read from a socket.
    ///
    /// ```
    /// use rfc6455::{Connection, Event, Role};
    ///
    /// let mut client = Connection::new(Role::Client);
    /// // RFC 6455 §5.7: a fragmented unmasked text message, arriving one byte at a time.
    /// for byte in [0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f] {
    ///     client.receive(&[byte]);
    /// }
    /// assert_eq!(client.next_event(), Ok(Some(Event::Text("Hello".into()))));
    /// ```
    pub fn receive(&mut self, data: &[u8]) {
        if self.state == State::Closed {
            return;
        }
        let mut data = data;
        loop {
            data = &data[self.receive_payload_directly(data)..];
            if data.is_empty() {
                return;
            }
            if !self.start_frame_directly(&mut data) {
                break;
            }
        }
        let space = self.input_buffer(data.len());
        space[..data.len()].copy_from_slice(data);
        self.commit_input(data.len());
    }

    /// The part of `receive` that starts a frame which `data` holds only the beginning
    /// of: with nothing buffered before it, only its header goes through the input
    /// buffer, and is read at once, so that its payload can be taken directly. True
    /// when a data frame's payload is now being read. A header that fails its checks
    /// stays in the input buffer, where the next `next_*` call meets it as it would
    /// have; the tap's previews need the payload in the buffer, so not when tracing.
    fn start_frame_directly(&mut self, data: &mut &[u8]) -> bool {
        let waiting = match self.ready {
            None => None,
            Some(Ready::Assembled(kind)) => Some(kind),
            Some(_) => return false,
        };
        if self.payload.is_some() || self.input_start != self.input_end || self.config.trace {
            return false;
        }
        let Ok(Parsed::Complete(header, header_len)) = FrameHeader::parse(data) else {
            return false;
        };
        if header.payload_len <= (data.len() - header_len) as u64 {
            return false; // Whole at hand: unmasked in place, as usual.
        }
        if let Some(kind) = waiting {
            // The message waiting in `assembled` moves aside for the next one.
            std::mem::swap(&mut self.assembled, &mut self.finished);
            self.ready = Some(Ready::Finished(kind));
        }
        let space = self.input_buffer(header_len);
        space[..header_len].copy_from_slice(&data[..header_len]);
        self.commit_input(header_len);
        *data = &data[header_len..];
        match self.read_header() {
            Ok(Step::Continue) => self.payload.is_some(),
            // Not for a frame that is not whole; were it, it is handed out next.
            Ok(Step::Ready(ready)) => {
                self.ready = Some(ready);
                false
            }
            // A control frame waits whole in the buffer, after its header; an error
            // is met again there, by the next call.
            Ok(Step::NeedMore) | Err(_) => false,
        }
    }

    /// The part of `receive` that continues a frame's payload: takes the first bytes
    /// of `data` that belong to the data frame being read, when nothing is buffered
    /// before them, and says how many it took. Nothing observable changes before the
    /// next `next_*` call: a finished message waits in `ready`, and a piece that would
    /// fail (bad UTF-8) is not taken, so that the error comes from the input buffer's
    /// path at the same call as it would without this one.
    fn receive_payload_directly(&mut self, data: &[u8]) -> usize {
        let Some(mut progress) = self.payload else {
            return 0;
        };
        let Some(message) = self.message.as_mut() else {
            return 0;
        };
        if message.compressed || self.input_start != self.input_end {
            return 0;
        }
        let n = progress.remaining.min(data.len() as u64) as usize;
        let finished = n as u64 == progress.remaining && progress.fin;
        // A message waiting to be handed out goes first: this one may not finish
        // before it is (and none may follow one that is still in `assembled`).
        match self.ready {
            None => {}
            Some(Ready::Finished(_)) if !finished => {}
            Some(_) => return 0,
        }
        let (old_len, before) = (self.assembled.len(), message.utf8.clone());
        let appended = append_piece(&mut self.assembled, message, &data[..n], &mut progress);
        let cut_short = message.kind == MessageKind::Text && !message.utf8.is_complete();
        if appended.is_err() || finished && cut_short {
            self.assembled.truncate(old_len);
            message.utf8 = before;
            return 0;
        }
        match self.after_payload(progress) {
            Ok(Step::Ready(ready)) => self.ready = Some(ready),
            Ok(Step::Continue | Step::NeedMore) => {}
            // Its one failure, text that ends mid-character, was ruled out above;
            // were there another, the connection would still fail, if one call early.
            Err(err) => {
                self.fail(err);
            }
        }
        n
    }

    /// Space for at least `min` more received bytes, to read into directly; follow with
    /// [`commit_input`](Self::commit_input).
    ///
    /// ```
    /// use rfc6455::{Connection, Event, Role};
    ///
    /// let mut conn = Connection::new(Role::Client);
    /// let frame = [0x81, 0x02, b'h', b'i'];
    /// let space = conn.input_buffer(4096);
    /// space[..4].copy_from_slice(&frame); // e.g. `stream.read(space)`
    /// conn.commit_input(4);
    /// assert_eq!(conn.next_event(), Ok(Some(Event::Text("hi".into()))));
    /// ```
    pub fn input_buffer(&mut self, min: usize) -> &mut [u8] {
        // A message parsed by `poll_next` and not yet handed out keeps its bytes.
        let keep = match self.ready {
            Some(Ready::InInput(_) | Ready::Ping | Ready::Pong) => self.ready_span.0,
            _ => self.input_start,
        };
        if keep == self.input_end {
            self.input_start = 0;
            self.input_end = 0;
            if self.input.len() > RETAINED_BUFFER && min <= RETAINED_BUFFER {
                self.input = Vec::new();
            }
        }
        if self.input.len() - self.input_end < min {
            if keep > 0 && keep < self.input_end {
                self.input.copy_within(keep..self.input_end, 0);
                self.input_end -= keep;
                self.input_start -= keep;
                if let Some(Ready::InInput(_) | Ready::Ping | Ready::Pong) = self.ready {
                    self.ready_span.0 -= keep;
                    self.ready_span.1 -= keep;
                }
            }
            if self.input.len() - self.input_end < min {
                self.input.resize(self.input_end + min, 0);
            }
        }
        &mut self.input[self.input_end..]
    }

    /// Marks `n` bytes written into [`input_buffer`](Self::input_buffer) as received.
    ///
    /// # Panics
    /// If `n` exceeds the space that `input_buffer` returned.
    ///
    /// ```
    /// use rfc6455::{Connection, Event, Role};
    ///
    /// let mut client = Connection::new(Role::Client);
    /// let space = client.input_buffer(16);
    /// space[..3].copy_from_slice(&[0x82, 0x01, 0xff]); // as if `stream.read(space)` gave 3
    /// client.commit_input(3);
    /// assert_eq!(client.buffered_input(), 3); // received, not yet interpreted
    /// assert_eq!(client.next_event(), Ok(Some(Event::Binary(vec![0xff]))));
    /// ```
    pub fn commit_input(&mut self, n: usize) {
        assert!(
            self.input_end + n <= self.input.len(),
            "commit_input past the buffer"
        );
        if self.state != State::Closed {
            self.input_end += n;
        }
    }

    /// Frees the input and output buffers when they hold nothing and are larger than
    /// a few KiB, so that an idle connection keeps almost no memory. An event loop
    /// holding many connections calls it when one goes quiet. Returns how many bytes
    /// of buffer capacity it gave back (compression state not counted).
    ///
    /// ```
    /// use rfc6455::{Connection, Role};
    ///
    /// let mut conn = Connection::new(Role::Server);
    /// conn.input_buffer(64 * 1024);
    /// assert!(conn.release_idle_buffers() >= 64 * 1024);
    /// assert_eq!(conn.buffered_input(), 0);
    /// ```
    pub fn release_idle_buffers(&mut self) -> usize {
        const KEEP: usize = 4096;
        let before = self.input.capacity()
            + self.output.capacity()
            + self.assembled.capacity()
            + self.finished.capacity();
        // An event parsed (by `poll_next`, or a message `receive` finished) and not
        // yet handed out keeps its bytes, in either buffer.
        let waiting = self.ready.is_some();
        let unread = self.input_end - self.input_start;
        if !waiting && unread <= KEEP && self.input.capacity() > KEEP {
            // A header still arriving keeps its few bytes, not the read buffer: a
            // peer that sends a frame's first bytes and stops holds no 64 KiB.
            self.input = self.input[self.input_start..self.input_end].to_vec();
            self.input_start = 0;
            self.input_end = unread;
        }
        if self.output_start == self.output.len() && self.output.capacity() > KEEP {
            self.output = Vec::new();
            self.output_start = 0;
        }
        // The assembly buffer and compression state, between messages and where no
        // context is carried over.
        let between_messages = self.message.is_none() && !waiting;
        if between_messages && self.assembled.capacity() > KEEP {
            self.assembled = Vec::new();
        } else if !waiting {
            // A message that stopped arriving keeps its bytes, not the doubling
            // growth's spare room (up to as much again).
            self.assembled.shrink_to_fit();
        }
        if !waiting && self.finished.capacity() > KEEP {
            self.finished = Vec::new();
        }
        if let Some(c) = &mut self.compression {
            c.scratch = Vec::new();
            c.deflater.release_idle();
            if between_messages {
                c.inflater.release_idle();
            }
        }
        let after = self.input.capacity()
            + self.output.capacity()
            + self.assembled.capacity()
            + self.finished.capacity();
        before.saturating_sub(after)
    }

    /// The frames received and sent since the last call, when [`Config::trace`] is on.
    ///
    /// ```
    /// use rfc6455::{Config, Connection, OpCode, Role};
    ///
    /// let mut client = Connection::with_config(Role::Client, Config { trace: true, ..Config::default() });
    /// client.send_ping(b"").unwrap();
    /// let trace = client.take_trace();
    /// assert!(trace[0].outgoing);
    /// assert_eq!(trace[0].header.opcode, OpCode::Ping);
    /// assert!(trace[0].header.masking_key.is_some()); // a client masks (RFC 6455 §5.3)
    /// assert!(client.take_trace().is_empty()); // taken: the next call starts afresh
    /// ```
    pub fn take_trace(&mut self) -> Vec<TracedFrame> {
        std::mem::take(&mut self.trace)
    }

    /// Records a received frame whose payload starts at `payload_start` in the input.
    #[inline]
    fn trace_in(&mut self, header: &FrameHeader, payload_start: usize) {
        if self.config.trace {
            self.record_in(header, payload_start);
        }
    }

    #[cold]
    fn record_in(&mut self, header: &FrameHeader, payload_start: usize) {
        let at_hand = (self.input_end - payload_start).min(header.payload_len as usize);
        let mut preview =
            self.input[payload_start..payload_start + at_hand.min(TRACE_PREVIEW)].to_vec();
        if let Some(key) = header.masking_key {
            apply_mask(&mut preview, key, 0);
        }
        self.trace.push(TracedFrame {
            outgoing: false,
            header: *header,
            preview,
            inflated: None,
        });
    }

    /// The number of received bytes not yet interpreted.
    ///
    /// ```
    /// use rfc6455::{Connection, Role};
    ///
    /// let mut server = Connection::new(Role::Server);
    /// // 3 bytes of a 6-byte masked header (RFC 6455 §5.2): not yet a frame.
    /// server.receive(&[0x81, 0x85, 0x37]);
    /// assert_eq!(server.next_event(), Ok(None));
    /// assert_eq!(server.buffered_input(), 3);
    /// ```
    pub fn buffered_input(&self) -> usize {
        self.input_end - self.input_start
    }

    /// Interprets buffered bytes up to the next event, handed out owned.
    ///
    /// `Ok(None)`: more bytes are needed (or the connection is closed). `Err`: the peer
    /// broke the protocol; a Close frame with [`ProtocolError::close_code`] is queued
    /// (unless one was already sent), the connection is [`State::Closed`], and the
    /// transport should be closed once the output is written (RFC 6455 §7.1.7).
    ///
    /// Each message is copied out of the input buffer into its own allocation (a
    /// message assembled from pieces is moved, not copied). Where that matters,
    /// [`next_message`](Self::next_message) lends the payload instead.
    ///
    /// ```
    /// use rfc6455::{Connection, Event, ProtocolError, Role};
    ///
    /// let mut server = Connection::new(Role::Server);
    /// // RFC 6455 §5.7's masked "Hello", then an unmasked frame, which a server rejects (§5.1).
    /// server.receive(&[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58, 0x81, 0x00]);
    /// assert_eq!(server.next_event(), Ok(Some(Event::Text("Hello".into())))); // sent first, delivered first
    /// assert_eq!(server.next_event(), Err(ProtocolError::UnmaskedClientFrame));
    /// let close = server.pending_output(); // queued: FIN + Close, code 1002, the reason
    /// assert_eq!(close[0], 0x88);
    /// assert_eq!(close[2..4], [0x03, 0xea]);
    /// assert_eq!(server.next_event(), Ok(None)); // nothing more is read
    /// ```
    pub fn next_event(&mut self) -> Result<Option<Event>, ProtocolError> {
        let Some(ready) = self.next_ready()? else {
            return Ok(None);
        };
        let (start, end) = self.ready_span;
        let event = match ready {
            Ready::InInput(kind) => {
                let data = &self.input[start..end];
                match kind {
                    MessageKind::Binary => Event::Binary(data.to_vec()),
                    // Checked when parsed; a `&str` again by simdutf8, faster than
                    // `String::from_utf8`.
                    MessageKind::Text => match simdutf8::basic::from_utf8(data) {
                        Ok(text) => Event::Text(text.to_owned()),
                        Err(_) => return Err(self.fail(ProtocolError::InvalidUtf8)),
                    },
                }
            }
            Ready::Assembled(kind) | Ready::Finished(kind) => {
                let data = match ready {
                    Ready::Finished(_) => std::mem::take(&mut self.finished),
                    _ => std::mem::take(&mut self.assembled),
                };
                match kind {
                    MessageKind::Binary => Event::Binary(data),
                    // Checked piece by piece as it arrived (and complete): this
                    // cannot fail, but a String is only made by checking.
                    MessageKind::Text => match String::from_utf8(data) {
                        Ok(text) => Event::Text(text),
                        Err(_) => return Err(self.fail(ProtocolError::InvalidUtf8)),
                    },
                }
            }
            Ready::Ping => Event::Ping(self.input[start..end].to_vec()),
            Ready::Pong => Event::Pong(self.input[start..end].to_vec()),
            Ready::Close => Event::Close(self.close_received.take()),
        };
        Ok(Some(event))
    }

    /// Interprets buffered bytes up to the next event, lent: the payload stays in the
    /// connection's buffers — unmasked in place in the input buffer when the whole
    /// frame was at hand, else in a buffer reused from message to message — until the
    /// next call. Receiving then costs no allocation and, for a frame that arrived
    /// whole, no copy. Errors and `Ok(None)` as for [`next_event`](Self::next_event);
    /// both may be used on one connection.
    ///
    /// ```
    /// use rfc6455::{Connection, MessageRef, Role};
    ///
    /// let mut server = Connection::new(Role::Server);
    /// // RFC 6455 §5.7: a masked "Hello", then a masked ping.
    /// server.receive(&[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]);
    /// server.receive(&[0x89, 0x80, 1, 2, 3, 4]);
    /// assert_eq!(server.next_message(), Ok(Some(MessageRef::Text("Hello"))));
    /// assert_eq!(server.next_message(), Ok(Some(MessageRef::Ping(&[]))));
    /// assert_eq!(server.next_message(), Ok(None));
    /// ```
    #[inline]
    pub fn next_message(&mut self) -> Result<Option<MessageRef<'_>>, ProtocolError> {
        let Some(ready) = self.next_ready()? else {
            return Ok(None);
        };
        // Text was checked when it was parsed; it is made a `&str` by checking it
        // again (simdutf8, tens of GB/s on ASCII): safe Rust has no other way.
        let text =
            |bytes| simdutf8::basic::from_utf8(bytes).map_err(|_| ProtocolError::InvalidUtf8);
        let (start, end) = self.ready_span;
        Ok(Some(match ready {
            Ready::InInput(kind) => {
                let bytes = &self.input[start..end];
                match kind {
                    MessageKind::Binary => MessageRef::Binary(bytes),
                    MessageKind::Text => MessageRef::Text(text(bytes)?),
                }
            }
            Ready::Assembled(MessageKind::Binary) => MessageRef::Binary(&self.assembled),
            Ready::Assembled(MessageKind::Text) => MessageRef::Text(text(&self.assembled)?),
            Ready::Finished(MessageKind::Binary) => MessageRef::Binary(&self.finished),
            Ready::Finished(MessageKind::Text) => MessageRef::Text(text(&self.finished)?),
            Ready::Ping => MessageRef::Ping(&self.input[start..end]),
            Ready::Pong => MessageRef::Pong(&self.input[start..end]),
            Ready::Close => MessageRef::Close(self.close_received.take()),
        }))
    }

    /// [`next_message`](Self::next_message), with a data message's payload placed in
    /// the caller's `buf` (its contents replaced) rather than lent from the
    /// connection: for a driver that must hand the message on while it uses the
    /// connection again (to send the answer, say). A payload assembled from pieces is
    /// swapped in — no copy, and `buf`'s old memory becomes the connection's next
    /// assembly buffer; one that arrived whole is copied once. Control frames are lent
    /// as by `next_message`.
    ///
    /// ```
    /// use rfc6455::{Connection, MessageRef, Role};
    ///
    /// let mut client = Connection::new(Role::Client);
    /// let mut buf = Vec::new();
    /// client.receive(&[0x02, 0x01, 1, 0x80, 0x01, 2]); // binary in two fragments
    /// assert_eq!(client.next_message_into(&mut buf), Ok(Some(MessageRef::Binary(&[1, 2]))));
    /// assert_eq!(buf, [1, 2]); // still there after the call
    /// ```
    pub fn next_message_into<'a>(
        &'a mut self,
        buf: &'a mut Vec<u8>,
    ) -> Result<Option<MessageRef<'a>>, ProtocolError> {
        let Some(ready) = self.next_ready()? else {
            return Ok(None);
        };
        let (start, end) = self.ready_span;
        let kind = match ready {
            Ready::InInput(kind) => {
                buf.clear();
                buf.extend_from_slice(&self.input[start..end]);
                kind
            }
            Ready::Assembled(kind) => {
                std::mem::swap(buf, &mut self.assembled);
                kind
            }
            Ready::Finished(kind) => {
                std::mem::swap(buf, &mut self.finished);
                kind
            }
            Ready::Ping => return Ok(Some(MessageRef::Ping(&self.input[start..end]))),
            Ready::Pong => return Ok(Some(MessageRef::Pong(&self.input[start..end]))),
            Ready::Close => return Ok(Some(MessageRef::Close(self.close_received.take()))),
        };
        let data: &'a [u8] = buf;
        Ok(Some(match kind {
            MessageKind::Binary => MessageRef::Binary(data),
            // Checked when parsed; a `&str` again as in `next_message`.
            MessageKind::Text => MessageRef::Text(
                simdutf8::basic::from_utf8(data).map_err(|_| ProtocolError::InvalidUtf8)?,
            ),
        }))
    }

    /// Parses up to the next event without handing it out: `Ok(true)` when the next
    /// [`next_event`](Self::next_event) or [`next_message`](Self::next_message) will
    /// return one at once. A driver that lends messages waits with it (its read loop
    /// cannot hold a lent message while it reads more), then flushes the replies, then
    /// takes the message. Errors as for `next_event`.
    ///
    /// ```
    /// use rfc6455::{Connection, MessageRef, Role};
    ///
    /// let mut client = Connection::new(Role::Client);
    /// client.receive(&[0x81, 0x02, b'h']);
    /// assert_eq!(client.poll_next(), Ok(false)); // half a frame
    /// client.receive(b"i");
    /// assert_eq!(client.poll_next(), Ok(true));
    /// client.receive(&[0x89, 0x00]); // more bytes may arrive meanwhile
    /// assert_eq!(client.next_message(), Ok(Some(MessageRef::Text("hi"))));
    /// ```
    pub fn poll_next(&mut self) -> Result<bool, ProtocolError> {
        if self.ready.is_none() {
            self.ready = self.next_ready()?;
        }
        Ok(self.ready.is_some())
    }

    /// Parses up to the next event and says where its bytes are; fails the
    /// connection on a protocol error.
    #[inline]
    fn next_ready(&mut self) -> Result<Option<Ready>, ProtocolError> {
        if let Some(ready) = self.ready.take() {
            return Ok(Some(ready));
        }
        while self.state != State::Closed {
            let step = match self.payload {
                Some(progress) => self.read_payload(progress),
                None => self.read_header(),
            };
            match step {
                Ok(Step::Ready(ready)) => return Ok(Some(ready)),
                Ok(Step::Continue) => {}
                Ok(Step::NeedMore) => return Ok(None),
                Err(err) => return Err(self.fail(err)),
            }
        }
        Ok(None)
    }

    #[inline]
    fn read_header(&mut self) -> Result<Step, ProtocolError> {
        let available = &self.input[self.input_start..self.input_end];
        let available_len = available.len();
        let (header, header_len) = match FrameHeader::parse(available)? {
            Parsed::Complete(header, len) => (header, len),
            Parsed::Incomplete(_) => return Ok(Step::NeedMore),
        };
        let allowed_rsv = match self.compression {
            Some(_) => self.config.allowed_rsv | RSV1,
            None => self.config.allowed_rsv,
        };
        header.check(self.role, allowed_rsv)?;
        let compressed = self.compression.is_some() && header.rsv & RSV1 != 0;
        if compressed && header.opcode.is_control() {
            return Err(ProtocolError::CompressedControlFrame);
        }
        if compressed && header.opcode == OpCode::Continuation {
            return Err(ProtocolError::CompressedContinuation);
        }

        if header.opcode.is_control() {
            // At most 125 bytes (checked above): wait for the whole frame.
            let len = header.payload_len as usize;
            if available.len() < header_len + len {
                return Ok(Step::NeedMore);
            }
            let (start, end) = self.take_in_place(&header, header_len);
            return self.on_control(header.opcode, start, end);
        }

        let too_big = |len| len > self.config.max_frame_size as u64;
        if too_big(header.payload_len) {
            return Err(ProtocolError::FrameTooBig {
                len: header.payload_len,
                max: self.config.max_frame_size,
            });
        }
        let starts = match header.opcode {
            OpCode::Text => Some(MessageKind::Text),
            OpCode::Binary => Some(MessageKind::Binary),
            _ => None, // Continuation: check() let no other opcode through.
        };
        match (starts, &self.message) {
            (None, None) => return Err(ProtocolError::UnexpectedContinuation),
            (Some(_), Some(_)) => return Err(ProtocolError::ExpectedContinuation),
            _ => {}
        }
        // A compressed message is held to the limit as it inflates (read_payload).
        let inflating = compressed || self.message.as_ref().is_some_and(|m| m.compressed);
        let so_far = match self.message {
            Some(_) => self.assembled.len() as u64,
            None => 0,
        };
        if !inflating && so_far + header.payload_len > self.config.max_message_size as u64 {
            return Err(ProtocolError::MessageTooBig {
                len: so_far + header.payload_len,
                max: self.config.max_message_size,
            });
        }
        let Some(kind) = starts else {
            return Ok(self.start_payload(&header, header_len));
        };
        // The common case: a whole unfragmented message already in the buffer. It is
        // unmasked where it lies and handed out from there; text is checked all at
        // once (all of it is at hand, so failing at its end is failing fast).
        let len = header.payload_len as usize;
        if header.fin && !compressed && available_len - header_len >= len {
            let (start, end) = self.take_in_place(&header, header_len);
            let text = &self.input[start..end];
            if kind == MessageKind::Text && simdutf8::basic::from_utf8(text).is_err() {
                return Err(ProtocolError::InvalidUtf8);
            }
            self.ready_span = (start, end);
            return Ok(Step::Ready(Ready::InInput(kind)));
        }
        // Streamed into `assembled`: room for this frame at once (no regrowth copies
        // while it arrives), but no more than a bounded amount on the word of a
        // header alone.
        // A compressed message starts from an empty buffer: the inflater's output
        // comes in pieces as big as the buffer's room, and a message with two faults
        // (bad text, then bad DEFLATE data) is failed for whichever a piece shows
        // first — so the verdict must not depend on a previous message's capacity.
        if compressed || self.assembled.capacity() > RETAINED_BUFFER {
            self.assembled = Vec::new();
        }
        self.assembled.clear();
        if !compressed {
            self.assembled.reserve_exact(len.min(RESERVE_AHEAD));
        }
        self.message = Some(IncomingMessage {
            kind,
            utf8: Utf8Validator::new(),
            compressed,
        });
        Ok(self.start_payload(&header, header_len))
    }

    /// Consumes a frame whose payload is entirely in the input buffer, unmasking it in
    /// place: its payload is `input[start..end]` until the buffer is next written.
    #[inline]
    fn take_in_place(&mut self, header: &FrameHeader, header_len: usize) -> (usize, usize) {
        let start = self.input_start + header_len;
        let end = start + header.payload_len as usize;
        self.trace_in(header, start);
        if let Some(key) = header.masking_key {
            apply_mask(&mut self.input[start..end], key, 0);
        }
        self.input_start = end;
        (start, end)
    }

    /// Consumes a data frame's header; its payload is read by `read_payload`.
    fn start_payload(&mut self, header: &FrameHeader, header_len: usize) -> Step {
        self.input_start += header_len;
        self.trace_in(header, self.input_start);
        self.payload = Some(PayloadInProgress {
            remaining: header.payload_len,
            masking_key: header.masking_key,
            offset: 0,
            fin: header.fin,
        });
        Step::Continue
    }

    /// Moves the payload bytes at hand into the message: one copy, unmasked in place,
    /// UTF-8 checked as they arrive.
    fn read_payload(&mut self, mut progress: PayloadInProgress) -> Result<Step, ProtocolError> {
        let available = self.input_end - self.input_start;
        let n = progress.remaining.min(available as u64) as usize;
        if n == 0 && progress.remaining > 0 {
            return Ok(Step::NeedMore);
        }
        let message = self
            .message
            .as_mut()
            .expect("a data payload always belongs to a message");
        if message.compressed {
            return self.inflate_payload(progress, n);
        }
        let arrived = &self.input[self.input_start..self.input_start + n];
        append_piece(&mut self.assembled, message, arrived, &mut progress)?;
        self.input_start += n;
        self.after_payload(progress)
    }

    /// After a piece of a data frame's payload: wait for the rest of the frame, go on
    /// to the next frame, or deliver the message the frame ended.
    fn after_payload(&mut self, progress: PayloadInProgress) -> Result<Step, ProtocolError> {
        if progress.remaining > 0 {
            self.payload = Some(progress);
            return Ok(Step::NeedMore);
        }
        self.payload = None;
        if !progress.fin {
            return Ok(Step::Continue);
        }
        let message = self
            .message
            .take()
            .expect("a data payload belongs to a message");
        if message.compressed && self.config.trace {
            // The frame that ended it shows the message's inflated size and start.
            let data = &self.assembled;
            if let Some(traced) = self.trace.iter_mut().rev().find(|t| !t.outgoing) {
                traced.inflated = Some(data.len());
                traced.preview = data[..data.len().min(TRACE_PREVIEW)].to_vec();
            }
        }
        if message.kind == MessageKind::Text && !message.utf8.is_complete() {
            return Err(ProtocolError::InvalidUtf8);
        }
        Ok(Step::Ready(Ready::Assembled(message.kind)))
    }

    /// Unmasks the `n` payload bytes at hand in the input buffer and inflates them
    /// into the message (RFC 7692 §7.2.2): its inflated size is held to
    /// `max_message_size` as it grows, and text is checked as it inflates.
    fn inflate_payload(
        &mut self,
        mut progress: PayloadInProgress,
        n: usize,
    ) -> Result<Step, ProtocolError> {
        let max = self.config.max_message_size;
        let piece = &mut self.input[self.input_start..self.input_start + n];
        if let Some(key) = progress.masking_key {
            apply_mask(piece, key, progress.offset);
        }
        let message = self.message.as_mut().expect("checked by the caller");
        let compression = self
            .compression
            .as_mut()
            .expect("compressed implies negotiated");
        let (data, utf8, kind) = (&mut self.assembled, &mut message.utf8, message.kind);
        let mut bad_text = false;
        let mut check = |fresh: &[u8]| {
            bad_text = kind == MessageKind::Text && utf8.feed(fresh).is_err();
            !bad_text
        };
        let inflated = compression.inflater.inflate(piece, data, max, &mut check);
        self.input_start += n;
        progress.remaining -= n as u64;
        progress.offset += n;
        let finished = progress.remaining == 0 && progress.fin;
        let result = match inflated {
            Ok(()) if finished => compression.inflater.finish(data, max, &mut check),
            other => other,
        };
        if let Err(err) = result {
            compression.inflater.end_message();
            return Err(match err {
                InflateError::TooBig(len) => ProtocolError::MessageTooBig {
                    len: len as u64,
                    max,
                },
                InflateError::Invalid if bad_text => ProtocolError::InvalidUtf8,
                InflateError::Invalid => ProtocolError::InvalidDeflateData,
            });
        }
        self.after_payload(progress)
    }

    /// A control frame whose payload is `input[start..end]`: a ping is answered (from
    /// a copy: the reply goes into the output while the payload stays lent), a Close
    /// ends the connection's reading.
    fn on_control(
        &mut self,
        opcode: OpCode,
        start: usize,
        end: usize,
    ) -> Result<Step, ProtocolError> {
        Ok(Step::Ready(match opcode {
            OpCode::Ping => {
                if self.config.auto_pong && self.state == State::Open {
                    let mut payload = [0u8; MAX_CONTROL_PAYLOAD];
                    let len = end - start;
                    payload[..len].copy_from_slice(&self.input[start..end]);
                    // Only the latest Ping needs an answer (RFC 6455 §5.5.3): once
                    // output backs up, a Pong still wholly unsent at its end is
                    // replaced, so a peer that pings and never reads queues at most
                    // PONG_BACKLOG and one Pong. Below that every Ping is answered
                    // (what peers, and Autobahn's case 2.10, expect).
                    if self.output.len() - self.output_start > PONG_BACKLOG {
                        if let Some(at) = self.unsent_pong.take() {
                            self.output.truncate(at);
                        }
                    }
                    self.queue_frame(true, OpCode::Pong, &payload[..len]);
                    // Its header: 2 bytes, and a masking key from a client (§5.2).
                    let header = if self.mask_keys.is_some() { 6 } else { 2 };
                    self.unsent_pong = Some(self.output.len() - header - len);
                }
                self.ready_span = (start, end);
                Ready::Ping
            }
            OpCode::Pong => {
                self.ready_span = (start, end);
                Ready::Pong
            }
            OpCode::Close => {
                let frame = CloseFrame::parse(&self.input[start..end])?;
                if self.state == State::Open {
                    // Echo the code (RFC 6455 §5.5.1); an empty Close gets an empty reply.
                    let mut reply = Vec::with_capacity(2);
                    if let Some(frame) = &frame {
                        reply.extend_from_slice(&frame.code.0.to_be_bytes());
                    }
                    self.queue_frame(true, OpCode::Close, &reply);
                    self.close_sent = true;
                }
                self.finish();
                self.close_received = frame;
                Ready::Close
            }
            other => unreachable!("{other:?} is not a control opcode that passed check()"),
        }))
    }

    /// Fails the connection (RFC 6455 §7.1.7): queue a Close with the error's code unless
    /// one was sent, and stop reading.
    fn fail(&mut self, err: ProtocolError) -> ProtocolError {
        if !self.close_sent {
            let mut payload = Vec::with_capacity(2 + MAX_CLOSE_REASON);
            let reason = err.to_string();
            CloseFrame::encode_payload(
                err.close_code(),
                truncate_utf8(&reason, MAX_CLOSE_REASON),
                &mut payload,
            );
            self.queue_frame(true, OpCode::Close, &payload);
            self.close_sent = true;
        }
        self.finish();
        err
    }

    /// Enters Closed: everything received from now on is ignored.
    fn finish(&mut self) {
        if let Some(c) = &mut self.compression {
            c.inflater.end_message();
        }
        self.state = State::Closed;
        self.input = Vec::new();
        self.input_start = 0;
        self.input_end = 0;
        self.payload = None;
        self.message = None;
        self.assembled = Vec::new();
        self.finished = Vec::new();
    }

    // ---- output ------------------------------------------------------------------

    /// Bytes waiting to be written to the transport, in order.
    ///
    /// ```
    /// use rfc6455::{Connection, Role};
    ///
    /// let mut client = Connection::new(Role::Client);
    /// client.send_text("Hi").unwrap();
    /// let out = client.pending_output();
    /// // RFC 6455 §5.2: FIN + text, MASK + length 2, the 4-byte key, the masked payload.
    /// assert_eq!(out[..2], [0x81, 0x82]);
    /// assert_eq!(out.len(), 2 + 4 + 2);
    /// ```
    pub fn pending_output(&self) -> &[u8] {
        &self.output[self.output_start..]
    }

    /// Marks the first `n` bytes of [`pending_output`](Self::pending_output) as written.
    ///
    /// # Panics
    /// If `n` exceeds the pending output.
    ///
    /// ```
    /// use rfc6455::{Connection, Role};
    ///
    /// let mut server = Connection::new(Role::Server);
    /// server.send_binary(&[1, 2, 3]).unwrap();
    /// // The transport took 2 of the 5 bytes: the rest waits, in order.
    /// server.consume_output(2);
    /// assert_eq!(server.pending_output(), [1, 2, 3]);
    /// server.consume_output(3);
    /// assert!(server.pending_output().is_empty());
    /// ```
    pub fn consume_output(&mut self, n: usize) {
        assert!(
            n <= self.output.len() - self.output_start,
            "consumed more than pending"
        );
        self.output_start += n;
        if self.unsent_pong.is_some_and(|at| at < self.output_start) {
            self.unsent_pong = None;
        }
        if self.output_start == self.output.len() {
            self.output_start = 0;
            if self.output.capacity() > RETAINED_BUFFER {
                self.output = Vec::new();
            } else {
                self.output.clear();
            }
        }
    }

    /// Sends a text message in one frame.
    ///
    /// ```
    /// use rfc6455::{Connection, Role};
    ///
    /// let mut server = Connection::new(Role::Server);
    /// server.send_text("€").unwrap();
    /// // The length counts UTF-8 bytes, not characters (RFC 6455 §5.2, §5.6).
    /// assert_eq!(server.pending_output(), [0x81, 0x03, 0xe2, 0x82, 0xac]);
    /// ```
    pub fn send_text(&mut self, text: &str) -> Result<(), SendError> {
        self.send_message(MessageKind::Text, text.as_bytes())
    }

    /// Sends a binary message in one frame.
    ///
    /// ```
    /// use rfc6455::{Connection, Role};
    ///
    /// let mut server = Connection::new(Role::Server);
    /// server.send_binary(&[0; 256]).unwrap();
    /// // RFC 6455 §5.7: a 256-byte binary message in a single unmasked frame (16-bit length).
    /// assert_eq!(server.pending_output()[..4], [0x82, 0x7e, 0x01, 0x00]);
    /// assert_eq!(server.pending_output().len(), 4 + 256);
    /// ```
    pub fn send_binary(&mut self, data: &[u8]) -> Result<(), SendError> {
        self.send_message(MessageKind::Binary, data)
    }

    /// Sends a whole message of `kind` in one frame, compressed when permessage-deflate
    /// is on and the message reaches its threshold. A text payload must be UTF-8: as
    /// with [`send_fragment`](Self::send_fragment), it is not checked again (use
    /// [`send_text`](Self::send_text) to have the type system check it).
    ///
    /// ```
    /// use rfc6455::{Connection, MessageKind, Role};
    ///
    /// let mut server = Connection::new(Role::Server);
    /// server.send_message(MessageKind::Binary, &[1, 2, 3]).unwrap();
    /// assert_eq!(server.pending_output(), [0x82, 0x03, 1, 2, 3]);
    /// ```
    pub fn send_message(&mut self, kind: MessageKind, payload: &[u8]) -> Result<(), SendError> {
        self.check_can_send_data()?;
        if self.sending_fragmented.is_some() {
            return Err(SendError::FragmentOrder);
        }
        let Some(c) = self
            .compression
            .as_mut()
            .filter(|c| payload.len() >= c.negotiated.threshold && c.deflater.can_compress())
        else {
            self.queue_frame(true, kind.opcode(), payload);
            return Ok(());
        };
        // RFC 7692 §7.2.1: compressed, the tail removed, RSV1 on the (only) frame.
        // Without context takeover, a message that does not shrink goes as it is
        // (every message may choose); with it, the peer's window must see what ours
        // saw, so the compressed form goes whatever its size.
        let mut compressed = std::mem::take(&mut c.scratch);
        compressed.clear();
        c.deflater.compress(payload, &mut compressed);
        let takeover = !c.negotiated.local_no_context_takeover;
        if takeover || compressed.len() < payload.len() {
            self.queue_frame_rsv(true, RSV1, kind.opcode(), &compressed);
            if let Some(traced) = self.trace.last_mut().filter(|_| self.config.trace) {
                traced.inflated = Some(payload.len());
                traced.preview = payload[..payload.len().min(TRACE_PREVIEW)].to_vec();
            }
        } else {
            self.queue_frame(true, kind.opcode(), payload);
        }
        if let Some(c) = &mut self.compression {
            c.scratch = compressed;
        }
        Ok(())
    }

    /// Sends a whole message as prepared by the caller: `compressed` means the payload
    /// is already DEFLATE data as RFC 7692 §7.2.1 makes it (raw, sync-flushed, the
    /// `00 00 ff ff` tail removed), sent with RSV1; otherwise it goes uncompressed.
    ///
    /// A precompressed message lets many connections share one compressor (an event
    /// loop's), which is only correct when this end starts every message with an
    /// empty window: it needs permessage-deflate with
    /// [`Negotiated::local_no_context_takeover`](crate::deflate::Negotiated).
    ///
    /// ```
    /// use rfc6455::deflate::Negotiated;
    /// use rfc6455::{Config, Connection, MessageKind, Role, SendError};
    ///
    /// let agreed = Negotiated {
    ///     local_no_context_takeover: true,
    ///     remote_no_context_takeover: true,
    ///     local_max_window_bits: 15,
    ///     remote_max_window_bits: 15,
    ///     level: 6,
    ///     threshold: 64,
    /// };
    /// let mut server = Connection::with_deflate(Role::Server, Config::default(), Some(agreed));
    /// // RFC 7692 §7.2.3.1: "Hello", compressed elsewhere.
    /// let hello = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
    /// server.send_prepared(MessageKind::Text, &hello, true).unwrap();
    /// assert_eq!(server.pending_output()[..2], [0xc1, 0x07]);
    ///
    /// let mut plain = Connection::new(Role::Server);
    /// assert_eq!(plain.send_prepared(MessageKind::Text, &hello, true), Err(SendError::CompressionNotAgreed));
    /// ```
    pub fn send_prepared(
        &mut self,
        kind: MessageKind,
        payload: &[u8],
        compressed: bool,
    ) -> Result<(), SendError> {
        self.check_can_send_data()?;
        if self.sending_fragmented.is_some() {
            return Err(SendError::FragmentOrder);
        }
        if !compressed {
            self.queue_frame(true, kind.opcode(), payload);
            return Ok(());
        }
        match &self.compression {
            Some(c) if c.negotiated.local_no_context_takeover => {
                self.queue_frame_rsv(true, RSV1, kind.opcode(), payload);
                Ok(())
            }
            _ => Err(SendError::CompressionNotAgreed),
        }
    }

    /// Sends one fragment of a message (RFC 6455 §5.4): the first call gives the
    /// message's kind, later ones must repeat it, and `fin` ends the message. Control
    /// frames may be sent between fragments.
    ///
    /// ```
    /// use rfc6455::{Connection, MessageKind, Role};
    ///
    /// // RFC 6455 §5.7: a fragmented unmasked text message, "Hel" then "lo".
    /// let mut server = Connection::new(Role::Server);
    /// server.send_fragment(MessageKind::Text, b"Hel", false).unwrap();
    /// server.send_fragment(MessageKind::Text, b"lo", true).unwrap();
    /// assert_eq!(server.pending_output(), [0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f]);
    /// ```
    pub fn send_fragment(
        &mut self,
        kind: MessageKind,
        payload: &[u8],
        fin: bool,
    ) -> Result<(), SendError> {
        self.check_can_send_data()?;
        let opcode = match self.sending_fragmented {
            None => kind.opcode(),
            Some(current) if current == kind => OpCode::Continuation,
            Some(_) => return Err(SendError::FragmentOrder),
        };
        self.sending_fragmented = if fin { None } else { Some(kind) };
        self.queue_frame(fin, opcode, payload);
        Ok(())
    }

    /// Sends a ping (RFC 6455 §5.5.2); the payload is at most 125 bytes.
    ///
    /// ```
    /// use rfc6455::{Connection, Role, SendError};
    ///
    /// let mut server = Connection::new(Role::Server);
    /// server.send_ping(b"Hello").unwrap();
    /// // RFC 6455 §5.7: an unmasked Ping carrying "Hello".
    /// assert_eq!(server.pending_output(), [0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
    /// assert_eq!(server.send_ping(&[0; 126]), Err(SendError::ControlPayloadTooLong(126)));
    /// ```
    pub fn send_ping(&mut self, payload: &[u8]) -> Result<(), SendError> {
        self.send_control(OpCode::Ping, payload)
    }

    /// Sends a pong (RFC 6455 §5.5.3): as a reply when `auto_pong` is off, or
    /// unsolicited, as a one-way heartbeat.
    ///
    /// ```
    /// use rfc6455::{Config, Connection, Event, Role};
    ///
    /// let config = Config { auto_pong: false, ..Config::default() };
    /// let mut server = Connection::with_config(Role::Server, config);
    /// server.receive(&[0x89, 0x82, 0, 0, 0, 0, b'h', b'i']); // a client's ping "hi"
    /// let Ok(Some(Event::Ping(payload))) = server.next_event() else { panic!() };
    /// assert!(server.pending_output().is_empty()); // no automatic reply
    /// // RFC 6455 §5.5.3: the Pong carries the Ping's payload.
    /// server.send_pong(&payload).unwrap();
    /// assert_eq!(server.pending_output(), [0x8a, 0x02, b'h', b'i']);
    /// ```
    pub fn send_pong(&mut self, payload: &[u8]) -> Result<(), SendError> {
        self.send_control(OpCode::Pong, payload)
    }

    fn send_control(&mut self, opcode: OpCode, payload: &[u8]) -> Result<(), SendError> {
        if self.close_sent {
            return Err(SendError::Closing);
        }
        if payload.len() > MAX_CONTROL_PAYLOAD {
            return Err(SendError::ControlPayloadTooLong(payload.len()));
        }
        self.queue_frame(true, opcode, payload);
        Ok(())
    }

    /// Starts the closing handshake (RFC 6455 §7.1.2): sends a Close with `code` and
    /// `reason` (at most 123 bytes). The connection keeps receiving until the peer's
    /// Close arrives.
    ///
    /// ```
    /// use rfc6455::{CloseCode, Connection, Role, SendError, State};
    ///
    /// let mut server = Connection::new(Role::Server);
    /// server.close(CloseCode::NORMAL, "bye").unwrap();
    /// // RFC 6455 §5.5.1: the code in network byte order, then the UTF-8 reason.
    /// assert_eq!(server.pending_output(), [0x88, 0x05, 0x03, 0xe8, b'b', b'y', b'e']);
    /// assert_eq!(server.state(), State::Closing);
    /// // 1006 is only reported locally, never sent (§7.4.1).
    /// let err = Connection::new(Role::Server).close(CloseCode::ABNORMAL_CLOSURE, "");
    /// assert_eq!(err, Err(SendError::InvalidCloseCode(1006)));
    /// ```
    pub fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), SendError> {
        if self.close_sent || self.state == State::Closed {
            return Err(SendError::Closing);
        }
        if !code.is_valid_on_wire() {
            return Err(SendError::InvalidCloseCode(code.0));
        }
        if reason.len() > MAX_CLOSE_REASON {
            return Err(SendError::ControlPayloadTooLong(2 + reason.len()));
        }
        let mut payload = Vec::with_capacity(2 + reason.len());
        CloseFrame::encode_payload(code, reason, &mut payload);
        self.queue_frame(true, OpCode::Close, &payload);
        self.close_sent = true;
        self.state = State::Closing;
        Ok(())
    }

    /// True when a data message may be sent now: no Close sent and no fragmented
    /// message unfinished. Drivers that queue pre-encoded frames next to this
    /// connection's output (e.g. a broadcast encoded once) ask this first.
    ///
    /// ```
    /// use rfc6455::{Connection, MessageKind, Role};
    ///
    /// let mut server = Connection::new(Role::Server);
    /// server.send_fragment(MessageKind::Text, b"Hel", false).unwrap();
    /// // Nothing may come between a message's fragments but control frames (RFC 6455 §5.4).
    /// assert!(!server.can_send_data());
    /// server.send_fragment(MessageKind::Text, b"lo", true).unwrap();
    /// assert!(server.can_send_data());
    /// ```
    pub fn can_send_data(&self) -> bool {
        self.check_can_send_data().is_ok() && self.sending_fragmented.is_none()
    }

    fn check_can_send_data(&self) -> Result<(), SendError> {
        if self.close_sent || self.state == State::Closed {
            Err(SendError::Closing)
        } else {
            Ok(())
        }
    }

    /// Appends one frame to the output: header, then the payload copied once and, for a
    /// client, masked in place with a fresh key (RFC 6455 §5.3).
    fn queue_frame(&mut self, fin: bool, opcode: OpCode, payload: &[u8]) {
        self.queue_frame_rsv(fin, 0, opcode, payload);
    }

    /// [`queue_frame`](Self::queue_frame) with RSV bits (RSV1 for a compressed message).
    fn queue_frame_rsv(&mut self, fin: bool, rsv: u8, opcode: OpCode, payload: &[u8]) {
        // Something follows the waiting Pong (or it moved): it is no longer replaceable.
        self.unsent_pong = None;
        let masking_key = self.mask_keys.as_mut().map(MaskKeys::next_key);
        let header = FrameHeader {
            fin,
            rsv,
            opcode,
            masking_key,
            payload_len: payload.len() as u64,
        };
        if self.config.trace {
            self.trace.push(TracedFrame {
                outgoing: true,
                header,
                preview: payload[..payload.len().min(TRACE_PREVIEW)].to_vec(),
                inflated: None,
            });
        }
        let (head, head_len) = header.encode();
        // Written bytes at the front are reclaimed only when the frame would not fit
        // otherwise: the pending bytes are then moved once, where growing would have
        // copied them anyway; a partial write alone never moves anything.
        let needed = head_len + payload.len();
        if self.output_start > 0 && self.output.capacity() - self.output.len() < needed {
            self.output.drain(..self.output_start);
            self.output_start = 0;
        }
        self.output.reserve(needed);
        self.output.extend_from_slice(&head[..head_len]);
        let start = self.output.len();
        self.output.extend_from_slice(payload);
        if let Some(key) = masking_key {
            apply_mask(&mut self.output[start..], key, 0);
        }
    }
}

/// Appends a piece of a data frame's payload to its (uncompressed) message: unmasked
/// as it is copied (RFC 6455 §5.3), checked as it arrives when the message is text
/// (§5.6, §8.1), and counted in the frame's `progress`. On bad UTF-8 the piece has
/// been appended already: `read_payload` fails the connection, and `receive`'s
/// direct path takes it back out.
fn append_piece(
    assembled: &mut Vec<u8>,
    message: &mut IncomingMessage,
    arrived: &[u8],
    progress: &mut PayloadInProgress,
) -> Result<(), ProtocolError> {
    let old_len = assembled.len();
    match progress.masking_key {
        Some(key) => extend_unmasked(assembled, arrived, key, progress.offset),
        None => assembled.extend_from_slice(arrived),
    }
    progress.remaining -= arrived.len() as u64;
    progress.offset += arrived.len();
    if message.kind == MessageKind::Text {
        let piece = &assembled[old_len..];
        message
            .utf8
            .feed(piece)
            .map_err(|_| ProtocolError::InvalidUtf8)?;
    }
    Ok(())
}

/// What one parsing step produced.
enum Step {
    Ready(Ready),
    Continue,
    NeedMore,
}

/// A message or control frame ready to be handed out, and where its bytes are.
///
/// One byte: where the bytes are is kept in the connection (`ready_span`,
/// `close_received`), so that the hot path passes no aggregate through memory (a
/// 32-byte enum returned through the parsing loop cost a store-forwarding stall per
/// message, a third of the time of a 16-byte frame).
#[derive(Debug, Clone, Copy)]
enum Ready {
    /// A whole data frame's payload, unmasked in place at `input[ready_span]`, text
    /// checked.
    InInput(MessageKind),
    /// A data message streamed or inflated into `assembled`, text checked.
    Assembled(MessageKind),
    /// A data message finished in `assembled` and moved to `finished` while
    /// `receive` started the next one there (see `start_frame_directly`).
    Finished(MessageKind),
    /// A ping's payload at `input[ready_span]`.
    Ping,
    /// A pong's payload at `input[ready_span]`.
    Pong,
    /// The peer's Close, in `close_received`.
    Close,
}

/// Unsent output past which an automatic Pong replaces the previous one still waiting.
const PONG_BACKLOG: usize = 4096;

#[cfg(test)]
mod tests {
    use super::*;

    fn agreed(no_context_takeover: bool) -> Negotiated {
        Negotiated {
            local_no_context_takeover: no_context_takeover,
            remote_no_context_takeover: no_context_takeover,
            threshold: 0,
            ..Negotiated::default()
        }
    }

    /// Compression state exists only while it is needed: allocated by the first
    /// compressed message each way, and freed when the connection goes idle, unless
    /// context takeover obliges it to be kept (RFC 7692 §7.1.1).
    #[test]
    fn compression_state_is_freed_when_idle_unless_context_is_taken_over() {
        for no_context_takeover in [true, false] {
            let mut client =
                Connection::with_deflate(Role::Client, Config::default(), Some(agreed(true)));
            client.send_text(&"compressible ".repeat(20)).unwrap();
            let frame = client.pending_output().to_vec();
            let mut server = Connection::with_deflate(
                Role::Server,
                Config::default(),
                Some(agreed(no_context_takeover)),
            );
            let state = |conn: &Connection| {
                let c = conn.compression.as_ref().unwrap();
                (c.deflater.holds_state(), c.inflater.holds_state())
            };
            assert_eq!(state(&server), (false, false), "nothing before a message");
            server.receive(&frame);
            assert!(matches!(server.next_event(), Ok(Some(Event::Text(_)))));
            server
                .send_text(&"a reply that compresses ".repeat(10))
                .unwrap();
            assert_eq!(state(&server), (true, true));
            let pending = server.pending_output().len();
            server.consume_output(pending);
            server.release_idle_buffers();
            let kept = !no_context_takeover;
            assert_eq!(state(&server), (kept, kept));
            assert!(server.input.capacity() <= 4096);
        }
    }

    /// A message parsed by `poll_next` keeps its bytes while more input arrives, even
    /// when the buffer is compacted to make room.
    #[test]
    fn a_polled_message_survives_more_input() {
        let mut client = Connection::new(Role::Server);
        client.send_binary(&[7; 100]).unwrap();
        client.send_text("second").unwrap();
        client.send_ping(b"p").unwrap();
        let wire = client.pending_output().to_vec();
        let first_len = 2 + 100;
        for role_end in [first_len + 3, first_len + 8] {
            let mut conn = Connection::new(Role::Client);
            conn.receive(&wire[..role_end]);
            assert_eq!(conn.poll_next(), Ok(true));
            assert_eq!(
                conn.poll_next(),
                Ok(true),
                "polling again keeps the same message"
            );
            // Room for far more than the buffer holds: the unread bytes move to the front.
            let rest = &wire[role_end..];
            let space = conn.input_buffer(1 << 16);
            space[..rest.len()].copy_from_slice(rest);
            conn.commit_input(rest.len());
            assert_eq!(conn.next_message(), Ok(Some(MessageRef::Binary(&[7; 100]))));
            assert_eq!(conn.next_message(), Ok(Some(MessageRef::Text("second"))));
            assert_eq!(conn.poll_next(), Ok(true));
            conn.receive(&[0x81, 0x01]);
            assert_eq!(conn.next_event(), Ok(Some(Event::Ping(b"p".to_vec()))));
            assert_eq!(conn.poll_next(), Ok(false));
        }
    }

    /// A masked client frame, its bytes and its payload.
    fn client_frame(kind: MessageKind, payload: &[u8]) -> Vec<u8> {
        let mut client = Connection::new(Role::Client);
        client.send_message(kind, payload).unwrap();
        client.pending_output().to_vec()
    }

    /// Once a large frame's header is read, `receive` puts the rest of its payload
    /// straight into the message (nothing waits in the input buffer), and what follows
    /// the frame in the same call goes to the input buffer as usual.
    #[test]
    fn receive_unmasks_a_frame_in_progress_straight_into_the_message() {
        let payload: Vec<u8> = (0..100_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
        let mut wire = client_frame(MessageKind::Binary, &payload);
        wire.extend(client_frame(MessageKind::Text, "after".as_bytes()));
        let mut server = Connection::new(Role::Server);
        server.receive(&wire[..5000]);
        assert_eq!(server.next_event(), Ok(None), "the frame goes on");
        let mut at = 5000;
        while at < wire.len() {
            let end = (at + 7001).min(wire.len());
            server.receive(&wire[at..end]);
            at = end;
            if at < wire.len() - 11 {
                assert_eq!(server.buffered_input(), 0, "at {at}: nothing buffered");
            }
        }
        assert!(server.buffered_input() > 0, "the next frame is buffered");
        assert_eq!(server.state(), State::Open);
        assert_eq!(server.next_event(), Ok(Some(Event::Binary(payload))));
        assert_eq!(server.next_event(), Ok(Some(Event::Text("after".into()))));
        assert_eq!(server.next_event(), Ok(None));
    }

    /// Bad text met by `receive`'s direct path is left for the input buffer's path, so
    /// that the error comes from the next call, as it would through `input_buffer`.
    #[test]
    fn bad_text_continued_by_receive_fails_at_the_next_call() {
        let mut text = "é".repeat(20_000).into_bytes();
        let bad_at = text.len() - 3_000;
        text[bad_at] = 0xff;
        // Valid bytes, except one; and valid bytes ending halfway through a character.
        let cases = [
            (client_frame(MessageKind::Text, &text), 30_000),
            (
                client_frame(
                    MessageKind::Text,
                    &"é".repeat(20_000).into_bytes()[..39_999],
                ),
                35_000,
            ),
        ];
        for (wire, split) in cases {
            let mut server = Connection::new(Role::Server);
            server.receive(&wire[..split]);
            assert_eq!(server.next_event(), Ok(None));
            server.receive(&wire[split..]);
            assert_eq!(server.state(), State::Open, "nothing interpreted yet");
            assert!(server.pending_output().is_empty());
            assert_eq!(server.next_event(), Err(ProtocolError::InvalidUtf8));
            assert_eq!(server.state(), State::Closed);
        }
    }

    /// An event parsed but not yet handed out (by `poll_next`, or a message that
    /// `receive` finished) keeps its bytes through `release_idle_buffers`.
    #[test]
    fn a_message_waiting_to_be_handed_out_survives_release_idle_buffers() {
        let payload = vec![9u8; 20_000];
        let wire = client_frame(MessageKind::Binary, &payload);
        // Whole in the input buffer, parsed by poll_next.
        let mut server = Connection::new(Role::Server);
        server.receive(&wire);
        assert_eq!(server.poll_next(), Ok(true));
        server.release_idle_buffers();
        assert_eq!(
            server.next_message(),
            Ok(Some(MessageRef::Binary(&payload)))
        );
        // Finished by receive's direct path, in the assembly buffer.
        let mut server = Connection::new(Role::Server);
        server.receive(&wire[..100]);
        assert_eq!(server.next_event(), Ok(None));
        server.receive(&wire[100..]);
        server.release_idle_buffers();
        assert_eq!(
            server.next_message(),
            Ok(Some(MessageRef::Binary(&payload)))
        );
    }

    /// Large frames in 64 KiB pieces: each piece ends one message and starts the
    /// next, which `receive` assembles while the finished one waits to be handed out
    /// — through every receive API, each message intact and in order.
    #[test]
    fn back_to_back_large_frames_in_pieces_arrive_whole_through_every_api() {
        let messages: Vec<Vec<u8>> = (0..6u8)
            .map(|m| {
                (0..70_000 + m as usize * 999)
                    .map(|i| (i as u8) ^ m)
                    .collect()
            })
            .collect();
        let wire: Vec<u8> = messages
            .iter()
            .flat_map(|m| client_frame(MessageKind::Binary, m))
            .collect();
        for api in 0..3 {
            let mut server = Connection::new(Role::Server);
            let mut got = Vec::new();
            let mut reused = Vec::new();
            for piece in wire.chunks(64 * 1024) {
                server.receive(piece);
                loop {
                    let message = match api {
                        0 => match server.next_event().unwrap() {
                            Some(Event::Binary(data)) => data,
                            other => break assert_eq!(other, None),
                        },
                        1 => match server.next_message().unwrap() {
                            Some(MessageRef::Binary(data)) => data.to_vec(),
                            other => break assert_eq!(other, None),
                        },
                        _ => match server.next_message_into(&mut reused).unwrap() {
                            Some(MessageRef::Binary(data)) => data.to_vec(),
                            other => break assert_eq!(other, None),
                        },
                    };
                    got.push(message);
                }
            }
            assert!(got == messages, "api {api}: {} messages", got.len());
        }
    }

    /// A control frame that `receive` gets in pieces waits whole in the input buffer,
    /// its header there once.
    #[test]
    fn a_ping_in_small_pieces_is_answered_once_whole() {
        let mut peer = Connection::new(Role::Server);
        peer.send_ping(&[5; 24]).unwrap();
        let wire = peer.pending_output().to_vec();
        let mut client = Connection::new(Role::Client);
        for piece in wire.chunks(6) {
            client.receive(piece);
            if client.buffered_input() < wire.len() {
                assert_eq!(client.next_event(), Ok(None));
            }
        }
        assert_eq!(client.next_event(), Ok(Some(Event::Ping(vec![5; 24]))));
        assert_eq!(client.next_event(), Ok(None));
    }

    /// Masked pings from a client, as the server reads them.
    fn pings(payloads: &[&[u8]]) -> Vec<u8> {
        let mut client = Connection::new(Role::Client);
        for payload in payloads {
            client.send_ping(payload).unwrap();
        }
        client.pending_output().to_vec()
    }

    #[test]
    fn a_ping_flood_queues_a_bounded_backlog_ending_with_the_latest_pong() {
        let mut server = Connection::new(Role::Server);
        let many: Vec<Vec<u8>> = (0..1000u32).map(|i| i.to_be_bytes().to_vec()).collect();
        let refs: Vec<&[u8]> = many.iter().map(Vec::as_slice).collect();
        server.receive(&pings(&refs));
        while server.next_event().unwrap().is_some() {}
        let out = server.pending_output();
        assert!(out.len() <= PONG_BACKLOG + 6, "{} bytes queued", out.len());
        // RFC 6455 §5.5.3: the latest ping is answered.
        assert_eq!(&out[out.len() - 6..], &[0x8A, 4, 0, 0, 0x03, 0xE7]);
    }

    #[test]
    fn ten_pings_at_once_get_ten_pongs() {
        let mut server = Connection::new(Role::Server);
        let payloads: Vec<[u8; 1]> = (0..10u8).map(|i| [i]).collect();
        let refs: Vec<&[u8]> = payloads.iter().map(|p| &p[..]).collect();
        server.receive(&pings(&refs));
        while server.next_event().unwrap().is_some() {}
        let expected: Vec<u8> = (0..10u8).flat_map(|i| [0x8A, 1, i]).collect();
        assert_eq!(server.pending_output(), &expected[..]);
    }

    #[test]
    fn only_a_trailing_wholly_unsent_pong_is_replaced() {
        let big = vec![7u8; PONG_BACKLOG + 1];
        let mut header = vec![0x82, 126];
        header.extend_from_slice(&(big.len() as u16).to_be_bytes());
        let answered = |between: bool| {
            let mut server = Connection::new(Role::Server);
            server.send_binary(&big).unwrap();
            server.receive(&pings(&[b"one"]));
            while server.next_event().unwrap().is_some() {}
            if between {
                server.send_text("hi").unwrap();
            }
            server.receive(&pings(&[b"two"]));
            while server.next_event().unwrap().is_some() {}
            server.pending_output()[header.len() + big.len()..].to_vec()
        };
        assert_eq!(answered(false), [&[0x8A, 3][..], b"two"].concat());
        let kept = [
            &[0x8A, 3][..],
            b"one",
            &[0x81, 2],
            b"hi",
            &[0x8A, 3],
            b"two",
        ]
        .concat();
        assert_eq!(answered(true), kept, "a Pong followed by a message stays");
    }

    #[test]
    fn an_unfinished_frame_keeps_only_its_bytes_when_idle() {
        let mut client = Connection::new(Role::Client);
        client.send_text(&"x".repeat(30_000)).unwrap();
        let wire = client.pending_output().to_vec();
        let mut server = Connection::new(Role::Server);
        let space = server.input_buffer(64 * 1024);
        space[..5].copy_from_slice(&wire[..5]);
        server.commit_input(5);
        assert_eq!(server.next_event(), Ok(None));
        server.release_idle_buffers();
        assert!(
            server.input.capacity() < 4096,
            "{}",
            server.input.capacity()
        );
        server.receive(&wire[5..]);
        assert_eq!(
            server.next_event(),
            Ok(Some(Event::Text("x".repeat(30_000))))
        );
    }
}
