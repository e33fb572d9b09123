//! Reading a conversation as it passes: one direction of a WebSocket connection, frame
//! by frame, from bytes that arrive in any pieces — what `rfc6455 tap` prints.
//!
//! A [`FrameTap`] never changes or holds back the bytes it is shown: a relay forwards
//! them as they are and hands the tap a look. It reports each frame once its last byte
//! has passed, with every rule of RFC 6455 (and RFC 7692 with permessage-deflate) that
//! the frame breaks, and reads on after a violation, as long as the frame boundaries are
//! still known. Where they are not (a 64-bit length with its top bit set, RFC 6455
//! §5.2), it says so once and from then on only counts bytes.
//!
//! Memory is bounded whatever the stream: a header is at most 14 bytes, a payload is
//! never buffered (only its first [`max_preview`](FrameTap::new) bytes, and a Close
//! payload's first 125), and a compressed message is inflated piece by piece into a
//! small buffer that is emptied as it goes (its window is zlib's 32 KiB).
//!
//! ```
//! use rfc6455::learn::tap::{FrameTap, TapEvent};
//! use rfc6455::Role;
//!
//! // A client's masked "Hello" (RFC 6455 §5.7), arriving in two pieces.
//! let bytes = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
//! let mut tap = FrameTap::new(Role::Client, 64);
//! let mut events = Vec::new();
//! tap.feed(&bytes[..4], &mut events);
//! assert!(events.is_empty());
//! tap.feed(&bytes[4..], &mut events);
//! let [TapEvent::Frame(frame)] = &events[..] else { panic!("{events:?}") };
//! assert_eq!(frame.preview, b"Hello");
//! assert_eq!(frame.to_string(), "FIN=1 text (0x1) len=5 (7-bit) mask=37fa213d \"Hello\"");
//! assert!(frame.violations.is_empty());
//! ```

use crate::close::CloseFrame;
use crate::deflate::codec::Inflater;
use crate::deflate::Negotiated;
use crate::error::ProtocolError;
use crate::frame::{FrameHeader, OpCode, Parsed, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN};
use crate::learn::stream::{parse_non_minimal, StreamRules, TextCheck};
use crate::mask::apply_mask;
use crate::Role;
use std::fmt;

pub use crate::learn::stream::Violation;

/// What a [`FrameTap`] saw.
///
/// ```
/// use rfc6455::learn::tap::{FrameTap, TapEvent};
/// use rfc6455::{OpCode, ProtocolError, Role};
///
/// // A server's pong, then a 64-bit length with its top bit set (RFC 6455 §5.2).
/// let mut tap = FrameTap::new(Role::Server, 16);
/// let mut events = Vec::new();
/// tap.feed(&[0x8a, 0x00, 0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0], &mut events);
/// assert!(matches!(&events[0], TapEvent::Frame(pong) if pong.header.opcode == OpCode::Pong));
/// let lost = TapEvent::Unframeable { offset: 2, error: ProtocolError::PayloadLengthMsbSet };
/// assert_eq!(events[1], lost);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TapEvent {
    /// A whole frame passed.
    Frame(TapFrame),
    /// Bytes that cannot be framed (RFC 6455 §5.2): the frame boundaries are lost, and
    /// the tap only counts the rest of this direction's bytes.
    Unframeable {
        /// Where the bad header starts, counted from the first byte fed.
        offset: u64,
        /// Why it cannot be framed.
        error: ProtocolError,
    },
}

/// One frame as it passed, with what it means and the rules it breaks.
///
/// ```
/// use rfc6455::learn::tap::{FrameTap, TapEvent};
/// use rfc6455::{OpCode, Role};
///
/// // RFC 6455 §5.7: a fragmented unmasked text message, "Hel" then "lo".
/// let mut tap = FrameTap::new(Role::Server, 16);
/// let mut events = Vec::new();
/// tap.feed(&[0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f], &mut events);
/// let TapEvent::Frame(second) = &events[1] else { panic!() };
/// assert_eq!((second.index, second.offset, second.header_len), (2, 5, 2));
/// assert_eq!(second.header.opcode, OpCode::Continuation);
/// assert_eq!(second.message, Some(OpCode::Text)); // it continues a text message
/// assert_eq!(second.preview, b"lo");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapFrame {
    /// 1 for the first frame of this direction.
    pub index: u64,
    /// Where the frame starts, counted from the first byte fed.
    pub offset: u64,
    /// The header as sent.
    pub header: FrameHeader,
    /// The header's size on the wire (2 to 14 bytes).
    pub header_len: usize,
    /// The data message (text or binary) this frame belongs to; `None` for control
    /// frames and a continuation with no message.
    pub message: Option<OpCode>,
    /// The frame is part of a compressed message (RFC 7692 §6: RSV1 on its first frame).
    pub compressed: bool,
    /// The first bytes of the payload, unmasked (at most the tap's `max_preview`; all
    /// of a Close payload up to 125 bytes).
    pub preview: Vec<u8>,
    /// A Close frame's status code and reason, when it has valid ones.
    pub close: Option<CloseFrame>,
    /// On the frame that ends a compressed message (permessage-deflate): the message's
    /// sizes and the start of its inflated payload.
    pub inflated: Option<Inflated>,
    /// The rules this frame breaks.
    pub violations: Vec<Violation>,
}

/// A compressed message (RFC 7692 §7.2), reported on its last frame.
///
/// ```
/// use rfc6455::learn::tap::{FrameTap, Inflated, TapEvent};
/// use rfc6455::Role;
///
/// let mut tap = FrameTap::new(Role::Server, 16);
/// tap.enable_deflate();
/// let mut events = Vec::new();
/// // RFC 7692 §7.2.3.1: "Hello" compressed, in one unmasked frame with RSV1 set.
/// tap.feed(&[0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], &mut events);
/// let TapEvent::Frame(frame) = &events[0] else { panic!() };
/// let hello = Inflated { compressed_len: 7, len: 5, preview: b"Hello".to_vec() };
/// assert_eq!(frame.inflated, Some(hello));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inflated {
    /// The payload bytes of all its frames, as sent.
    pub compressed_len: u64,
    /// Its size once inflated.
    pub len: u64,
    /// The first bytes of the inflated message.
    pub preview: Vec<u8>,
}

impl fmt::Display for TapFrame {
    /// One line in the form of the connection trace (`client --trace`): FIN, opcode,
    /// length, RSV bits when set, mask key, then the payload: a preview, a close code,
    /// or for a compressed message both sizes and the inflated preview.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = &self.header;
        crate::frame::write_summary(f, h)?;
        crate::frame::write_mask(f, h.masking_key)?;
        let text = self.message == Some(OpCode::Text);
        if let Some(message) = &self.inflated {
            return write!(
                f,
                " deflate: message {} -> {} bytes {}",
                message.compressed_len,
                message.len,
                preview(&message.preview, message.len, text)
            );
        }
        if h.opcode == OpCode::Close {
            return match &self.close {
                Some(close) if close.reason.is_empty() => write!(f, " code={}", close.code),
                Some(close) => write!(f, " code={} {:?}", close.code, close.reason),
                None if h.payload_len == 0 => f.write_str(" (no code)"),
                None => write!(f, " {}", preview(&self.preview, h.payload_len, false)),
            };
        }
        if self.compressed {
            // The message is shown inflated on its last frame.
            return f.write_str(" (compressed)");
        }
        if h.payload_len == 0 {
            return Ok(());
        }
        let text = text || matches!(h.opcode, OpCode::Ping | OpCode::Pong);
        write!(f, " {}", preview(&self.preview, h.payload_len, text))
    }
}

/// Bytes as quoted text (when `text` and they are UTF-8, possibly cut inside a
/// character), else in hex; `…` when `total` is longer than what is shown.
///
/// ```
/// use rfc6455::learn::tap::preview;
///
/// assert_eq!(preview(b"Hello", 5, true), "\"Hello\"");
/// // "€" is e2 82 ac: a preview cut after its first two bytes shows what is whole.
/// assert_eq!(preview(&[b'a', 0xe2, 0x82], 9, true), "\"a\"…");
/// assert_eq!(preview(&[0, 1, 0xff], 3, false), "0001ff");
/// ```
pub fn preview(bytes: &[u8], total: u64, text: bool) -> String {
    let more = if (bytes.len() as u64) < total {
        "…"
    } else {
        ""
    };
    if text {
        let valid = match std::str::from_utf8(bytes) {
            Ok(s) => Some(s),
            // Cut inside a character by the preview's limit: show what is whole.
            Err(e) if e.error_len().is_none() && more == "…" => {
                std::str::from_utf8(&bytes[..e.valid_up_to()]).ok()
            }
            Err(_) => None,
        };
        if let Some(s) = valid {
            return format!("{s:?}{more}");
        }
    }
    let mut out = String::with_capacity(bytes.len() * 2 + 3);
    for b in bytes {
        out.push_str(&format!("{b:02x}"));
    }
    out.push_str(more);
    out
}

/// Where a [`FrameTap`] is in its stream.
#[derive(Debug)]
enum State {
    /// Reading a header: the bytes of it so far.
    Header {
        bytes: [u8; MAX_HEADER_LEN],
        len: usize,
    },
    /// Reading a payload: the frame being built and how much of its payload passed.
    Payload { frame: Box<TapFrame>, seen: u64 },
    /// The frame boundaries are lost: bytes are only counted.
    Raw,
}

/// How much compressed input is inflated at a time: DEFLATE expands at most ~1,032
/// times, so one step yields at most ~264 KB, well under [`INFLATE_LIMIT`].
const INFLATE_STEP: usize = 256;
const INFLATE_LIMIT: usize = 1 << 20;
/// Payload bytes are unmasked through a buffer of this size on the stack.
const UNMASK_CHUNK: usize = 4096;

/// One direction of a conversation, read frame by frame from bytes in any pieces.
///
/// ```
/// use rfc6455::learn::tap::{FrameTap, TapEvent};
/// use rfc6455::Role;
///
/// // A server's ping "hi" (RFC 6455 §5.5.2), passing one byte at a time.
/// let mut tap = FrameTap::new(Role::Server, 16);
/// let mut events = Vec::new();
/// for byte in [0x89, 0x02, b'h', b'i'] {
///     assert!(events.is_empty()); // reported once its last byte has passed
///     tap.feed(&[byte], &mut events);
/// }
/// let TapEvent::Frame(ping) = &events[0] else { panic!() };
/// assert_eq!(ping.to_string(), "FIN=1 ping (0x9) len=2 (7-bit) unmasked \"hi\"");
/// ```
#[derive(Debug)]
pub struct FrameTap {
    /// Who sends these frames (clients mask, servers do not: RFC 6455 §5.1).
    sender: Role,
    max_preview: usize,
    state: State,
    /// Bytes fed so far.
    offset: u64,
    frames: u64,
    /// The message order and the frame rules (RFC 6455 §5, RFC 7692 §6.1).
    rules: StreamRules,
    /// Checks the text message in progress (uncompressed or inflated).
    text: TextCheck,
    /// With permessage-deflate: the inflate state, carried from message to message.
    inflater: Option<Inflater>,
    /// The compressed message in progress.
    compressed: Option<Inflated>,
    /// Inflated bytes between two steps (emptied after each).
    inflated: Vec<u8>,
}

impl FrameTap {
    /// A tap on the frames `sender` sends, keeping the first `max_preview` bytes of
    /// each payload.
    ///
    /// ```
    /// use rfc6455::learn::tap::{FrameTap, TapEvent};
    /// use rfc6455::{ProtocolError, Role};
    ///
    /// // A server's Close 1002 followed by a ping: the ping breaks §5.5.1.
    /// let mut tap = FrameTap::new(Role::Server, 16);
    /// let mut events = Vec::new();
    /// tap.feed(&[0x88, 0x02, 0x03, 0xea, 0x89, 0x00], &mut events);
    /// let TapEvent::Frame(close) = &events[0] else { panic!() };
    /// assert_eq!(close.to_string(), "FIN=1 close (0x8) len=2 (7-bit) unmasked code=1002 (protocol error)");
    /// let TapEvent::Frame(ping) = &events[1] else { panic!() };
    /// assert_eq!(ping.violations[0].section(), "RFC 6455 §5.5.1");
    /// ```
    pub fn new(sender: Role, max_preview: usize) -> FrameTap {
        FrameTap {
            sender,
            max_preview,
            state: State::Header {
                bytes: [0; MAX_HEADER_LEN],
                len: 0,
            },
            offset: 0,
            frames: 0,
            rules: StreamRules::default(),
            text: TextCheck::new(),
            inflater: None,
            compressed: None,
            inflated: Vec::new(),
        }
    }

    /// permessage-deflate was agreed (RFC 7692): from now on RSV1 marks a compressed
    /// message, which is inflated to report its size and content.
    ///
    /// A receiver's inflater with the largest window (15 bits) and context carried over
    /// reads whatever window and context choice the sender agreed to, so the
    /// negotiated parameters are not needed.
    ///
    /// ```
    /// use rfc6455::learn::tap::{FrameTap, TapEvent};
    /// use rfc6455::Role;
    ///
    /// let hello = [0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]; // RFC 7692 §7.2.3.1
    /// let (mut plain, mut deflate) = (FrameTap::new(Role::Server, 16), FrameTap::new(Role::Server, 16));
    /// deflate.enable_deflate();
    /// let mut events = Vec::new();
    /// plain.feed(&hello, &mut events);
    /// deflate.feed(&hello, &mut events);
    /// let [TapEvent::Frame(before), TapEvent::Frame(after)] = &events[..] else { panic!() };
    /// // Without the extension, RSV1 breaks RFC 6455 §5.2, and DEFLATE data is no text.
    /// let broken: Vec<String> = before.violations.iter().map(|v| v.section()).collect();
    /// assert_eq!(broken, ["RFC 6455 §5.2", "RFC 6455 §8.1"]);
    /// assert!(after.violations.is_empty() && after.compressed);
    /// ```
    pub fn enable_deflate(&mut self) {
        self.rules.deflate = true;
        self.inflater = Some(Inflater::new(&Negotiated::default()));
    }

    /// Bytes fed so far.
    ///
    /// ```
    /// use rfc6455::learn::tap::FrameTap;
    /// use rfc6455::Role;
    ///
    /// let mut tap = FrameTap::new(Role::Server, 16);
    /// tap.feed(&[0x82, 0x05, 1, 2], &mut Vec::new());
    /// assert_eq!(tap.bytes(), 4); // counted as they pass, whole frames or not
    /// tap.feed(&[3, 4, 5], &mut Vec::new());
    /// assert_eq!(tap.bytes(), 7);
    /// ```
    pub fn bytes(&self) -> u64 {
        self.offset
    }

    /// Frames seen so far, counted as soon as a frame's header has been read (before the
    /// frame itself is reported, once its last byte has passed).
    ///
    /// ```
    /// use rfc6455::learn::tap::FrameTap;
    /// use rfc6455::Role;
    ///
    /// let mut tap = FrameTap::new(Role::Client, 16);
    /// // Two empty pings from a client, masked with a zero key (RFC 6455 §5.3), in one read.
    /// tap.feed(&[0x89, 0x80, 0, 0, 0, 0, 0x89, 0x80, 0, 0, 0, 0], &mut Vec::new());
    /// assert_eq!(tap.frames(), 2);
    /// ```
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// True once the frame boundaries are lost (after [`TapEvent::Unframeable`]).
    ///
    /// ```
    /// use rfc6455::learn::tap::FrameTap;
    /// use rfc6455::Role;
    ///
    /// let mut tap = FrameTap::new(Role::Server, 16);
    /// let mut events = Vec::new();
    /// // A 64-bit length with its top bit set (RFC 6455 §5.2): no one knows where it ends.
    /// tap.feed(&[0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0], &mut events);
    /// assert!(tap.is_raw());
    /// tap.feed(&[0x81, 0x00], &mut events); // from now on only counted
    /// assert_eq!((events.len(), tap.bytes()), (1, 12));
    /// ```
    pub fn is_raw(&self) -> bool {
        matches!(self.state, State::Raw)
    }

    /// A frame cut short, when the stream ended now: how much of it passed.
    ///
    /// ```
    /// use rfc6455::learn::tap::FrameTap;
    /// use rfc6455::Role;
    ///
    /// let mut tap = FrameTap::new(Role::Server, 16);
    /// tap.feed(&[0x82, 0x05, 1, 2], &mut Vec::new());
    /// assert_eq!(tap.unfinished().as_deref(), Some("2 of 5 payload bytes of frame 1"));
    /// ```
    pub fn unfinished(&self) -> Option<String> {
        match &self.state {
            State::Header { len: 0, .. } | State::Raw => None,
            State::Header { len, .. } => Some(format!(
                "{len} header byte{} of frame {}",
                if *len == 1 { "" } else { "s" },
                self.frames + 1
            )),
            State::Payload { frame, seen } => Some(format!(
                "{seen} of {} payload bytes of frame {}",
                frame.header.payload_len, frame.index
            )),
        }
    }

    /// Reads the next bytes of the stream; every frame they complete is appended to
    /// `events`.
    ///
    /// ```
    /// use rfc6455::learn::tap::FrameTap;
    /// use rfc6455::Role;
    ///
    /// let mut tap = FrameTap::new(Role::Server, 16);
    /// let mut events = Vec::new();
    /// // One read ends a pong and starts RFC 6455 §5.7's unmasked "Hello".
    /// tap.feed(&[0x8a, 0x00, 0x81, 0x05, b'H', b'e'], &mut events);
    /// assert_eq!(events.len(), 1);
    /// tap.feed(b"llo", &mut events);
    /// assert_eq!(events.len(), 2); // appended: the caller empties `events` when it likes
    /// ```
    pub fn feed(&mut self, mut bytes: &[u8], events: &mut Vec<TapEvent>) {
        while !bytes.is_empty() {
            let used = match &mut self.state {
                State::Raw => bytes.len(),
                State::Header { .. } => self.header(bytes, events),
                State::Payload { .. } => self.payload(bytes, events),
            };
            self.offset += used as u64;
            bytes = &bytes[used..];
        }
    }

    /// Takes header bytes; returns how many were used.
    fn header(&mut self, bytes: &[u8], events: &mut Vec<TapEvent>) -> usize {
        let State::Header { bytes: buf, len } = &mut self.state else {
            unreachable!("called in the header state")
        };
        let had = *len;
        let take = bytes.len().min(MAX_HEADER_LEN - had);
        buf[had..had + take].copy_from_slice(&bytes[..take]);
        let available = &buf[..had + take];
        let mut violations = Vec::new();
        let (header, header_len) = match FrameHeader::parse(available) {
            Ok(Parsed::Complete(header, header_len)) => (header, header_len),
            Ok(Parsed::Incomplete(_)) => {
                *len = had + take;
                return take;
            }
            Err(ProtocolError::NonMinimalLength) => {
                violations.push(Violation::Protocol(ProtocolError::NonMinimalLength));
                parse_non_minimal(available)
            }
            Err(error) => {
                events.push(TapEvent::Unframeable {
                    offset: self.offset - had as u64,
                    error,
                });
                self.state = State::Raw;
                return bytes.len();
            }
        };
        let used = header_len - had;
        self.frames += 1;
        let receiver = match self.sender {
            Role::Client => Role::Server,
            Role::Server => Role::Client,
        };
        let starts_compressed = self.rules.check(&header, receiver, &mut violations);
        if matches!(header.opcode, OpCode::Text | OpCode::Binary) {
            self.text.reset();
            if let Some(inflater) = &mut self.inflater {
                if self.compressed.is_some() {
                    // A new message inside an unfinished one (already reported).
                    inflater.end_message();
                }
            }
            self.compressed = starts_compressed.then(|| Inflated {
                compressed_len: 0,
                len: 0,
                preview: Vec::new(),
            });
        }
        let frame = Box::new(TapFrame {
            index: self.frames,
            offset: self.offset - had as u64,
            header,
            header_len,
            message: self.rules.message(&header),
            compressed: self.rules.message(&header).is_some() && self.compressed.is_some(),
            preview: Vec::new(),
            close: None,
            inflated: None,
            violations,
        });
        self.state = State::Payload { frame, seen: 0 };
        if header.payload_len == 0 {
            self.end_frame(events);
        }
        used
    }

    /// Takes payload bytes; returns how many were used.
    fn payload(&mut self, bytes: &[u8], events: &mut Vec<TapEvent>) -> usize {
        let State::Payload { frame, seen } = &mut self.state else {
            unreachable!("called in the payload state")
        };
        let remaining = frame.header.payload_len - *seen;
        let take = bytes
            .len()
            .min(usize::try_from(remaining).unwrap_or(usize::MAX));
        let keep = if frame.header.opcode == OpCode::Close {
            MAX_CONTROL_PAYLOAD.max(self.max_preview)
        } else {
            self.max_preview
        };
        let compressed = frame.compressed && self.compressed.is_some();
        let text = frame.message == Some(OpCode::Text);
        // Past the preview, only a text or compressed message's bytes are looked at:
        // a binary payload is then just counted, and unmasked bytes are never copied.
        let read_all = compressed || text;
        let mut chunk = [0u8; UNMASK_CHUNK];
        for piece in bytes[..take].chunks(UNMASK_CHUNK) {
            let room = keep.saturating_sub(frame.preview.len());
            if room == 0 && !read_all {
                *seen += piece.len() as u64;
                continue;
            }
            let plain: &[u8] = match frame.header.masking_key {
                None => piece,
                Some(key) => {
                    // A copy: the bytes passed on stay as they were sent. The offset
                    // into the payload picks the key byte (RFC 6455 §5.3).
                    let copy = &mut chunk[..piece.len()];
                    copy.copy_from_slice(piece);
                    apply_mask(copy, key, (*seen % 4) as usize);
                    copy
                }
            };
            frame
                .preview
                .extend_from_slice(&plain[..room.min(plain.len())]);
            *seen += piece.len() as u64;
            if compressed {
                let message = self.compressed.as_mut().expect("checked above");
                message.compressed_len += piece.len() as u64;
                let text = if text { Some(&mut self.text) } else { None };
                if let Err(e) = inflate(
                    self.inflater.as_mut().expect("deflate is on"),
                    plain,
                    false,
                    message,
                    &mut self.inflated,
                    self.max_preview,
                    text,
                    &mut frame.violations,
                ) {
                    self.compressed = None;
                    self.text.not_deflate(e, &mut frame.violations);
                    break;
                }
            } else if text {
                self.text.feed(plain, &mut frame.violations);
            }
        }
        if *seen == frame.header.payload_len {
            self.end_frame(events);
        }
        take
    }

    /// The frame's last byte has passed: what only the whole frame tells, then report.
    fn end_frame(&mut self, events: &mut Vec<TapEvent>) {
        let state = std::mem::replace(
            &mut self.state,
            State::Header {
                bytes: [0; MAX_HEADER_LEN],
                len: 0,
            },
        );
        let State::Payload { mut frame, .. } = state else {
            unreachable!("a frame ends in the payload state")
        };
        let header = frame.header;
        let text = frame.message == Some(OpCode::Text);
        let ends_message = header.fin && frame.message.is_some();
        if ends_message && self.compressed.is_some() {
            let mut message = self.compressed.take().expect("checked above");
            let inflater = self.inflater.as_mut().expect("deflate is on");
            let check = if text { Some(&mut self.text) } else { None };
            match inflate(
                inflater,
                &[],
                true,
                &mut message,
                &mut self.inflated,
                self.max_preview,
                check,
                &mut frame.violations,
            ) {
                Ok(()) => {
                    if text {
                        self.text.finish(&mut frame.violations);
                    }
                    frame.inflated = Some(message);
                }
                Err(e) => self.text.not_deflate(e, &mut frame.violations),
            }
        } else if ends_message && text {
            self.text.finish(&mut frame.violations);
        }
        if header.opcode == OpCode::Close && header.payload_len <= MAX_CONTROL_PAYLOAD as u64 {
            match CloseFrame::parse(&frame.preview) {
                Ok(close) => frame.close = close,
                Err(e) => frame.violations.push(Violation::Protocol(e.into())),
            }
        }
        self.rules.end_frame(&header);
        events.push(TapEvent::Frame(*frame));
    }
}

/// Inflates a piece of a compressed message (`finish`: the message's end, when the
/// tail goes in, RFC 7692 §7.2.2), counting and previewing what comes out and
/// checking it as text as it comes. The output is dropped step by step: memory stays
/// bounded.
#[allow(clippy::too_many_arguments)]
fn inflate(
    inflater: &mut Inflater,
    input: &[u8],
    finish: bool,
    message: &mut Inflated,
    scratch: &mut Vec<u8>,
    max_preview: usize,
    mut text: Option<&mut TextCheck>,
    violations: &mut Vec<Violation>,
) -> Result<(), ProtocolError> {
    let mut on_output = |out: &[u8]| {
        message.len += out.len() as u64;
        let room = max_preview.saturating_sub(message.preview.len());
        message
            .preview
            .extend_from_slice(&out[..room.min(out.len())]);
        if let Some(check) = text.as_deref_mut() {
            check.feed(out, violations);
        }
        true
    };
    let mut result = Ok(());
    for step in input.chunks(INFLATE_STEP) {
        scratch.clear();
        result = inflater.inflate(step, scratch, INFLATE_LIMIT, &mut on_output);
        if result.is_err() {
            break;
        }
    }
    if result.is_ok() && finish {
        scratch.clear();
        result = inflater.finish(scratch, INFLATE_LIMIT, &mut on_output);
    }
    scratch.clear();
    if scratch.capacity() > INFLATE_LIMIT {
        *scratch = Vec::new();
    }
    if result.is_err() {
        inflater.end_message();
        return Err(ProtocolError::InvalidDeflateData);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{Compress, Compression, FlushCompress};

    /// A compressed message of 16 MiB of zeros in a few KiB: the tap counts it and
    /// previews it without ever holding more than one inflate step of it.
    #[test]
    fn a_deflate_bomb_is_counted_not_kept() {
        let size = 16 << 20;
        let mut deflater = Compress::new_with_window_bits(Compression::best(), false, 15);
        let mut compressed = Vec::with_capacity(size / 500);
        deflater
            .compress_vec(&vec![0u8; size], &mut compressed, FlushCompress::Sync)
            .unwrap();
        assert!(compressed.ends_with(&[0, 0, 0xff, 0xff]));
        compressed.truncate(compressed.len() - 4);
        assert!((126..65536).contains(&compressed.len()));
        let mut wire = vec![0xc2, 126];
        wire.extend((compressed.len() as u16).to_be_bytes());
        wire.extend(&compressed);

        let mut tap = FrameTap::new(Role::Server, 8);
        tap.enable_deflate();
        let mut events = Vec::new();
        for piece in wire.chunks(1000) {
            tap.feed(piece, &mut events);
            assert!(tap.inflated.capacity() <= INFLATE_LIMIT + 1);
        }
        let [TapEvent::Frame(frame)] = &events[..] else {
            panic!("{events:?}")
        };
        let inflated = frame.inflated.as_ref().expect("a compressed message");
        assert_eq!(inflated.len, size as u64);
        assert_eq!(inflated.compressed_len, compressed.len() as u64);
        assert_eq!(inflated.preview, [0; 8]);
        assert!(frame.violations.is_empty(), "{:?}", frame.violations);
        assert!(frame.to_string().ends_with(&format!(
            "deflate: message {} -> {size} bytes 0000000000000000…",
            compressed.len()
        )));
    }
}
