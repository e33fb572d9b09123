//! The receive path: bytes → frames → messages (RFC 6455 §5.2–§5.6), with text
//! checked as it arrives (§8.1) and permessage-deflate undone (RFC 7692 §7.2.2).
//!
//! It only parses. What a frame asks of the rest of the connection — a Pong for a
//! Ping, the echo of a Close, a failure's Close — is done by
//! [`Connection`](super::Connection) when this side hands the frame over; this side
//! never writes.
//!
//! Bytes come in two ways that end in the same parser: read straight into the input
//! buffer ([`input_buffer`](ReadSide::input_buffer) + [`commit`](ReadSide::commit)),
//! or handed over ([`receive`](ReadSide::receive)), which takes a large frame's
//! payload straight into the message being assembled and buffers the rest.
//!
//! Parsing is lazy: bytes are interpreted when the application asks for the next
//! event. A message that arrived before a bad frame is therefore delivered (and can be
//! answered) before the bad frame fails the connection, in the order the peer sent
//! them.

use super::config::{Config, RETAINED_BUFFER};
use super::message::MessageKind;
use super::trace::Trace;
use crate::close::{CloseCode, CloseFrame};
use crate::deflate::codec::{InflateError, Inflater};
use crate::deflate::Negotiated;
use crate::error::ProtocolError;
use crate::frame::{FrameHeader, OpCode, Parsed, Role};
use crate::mask::{apply_mask, extend_unmasked};
use crate::rules::{FrameClass, FrameRules, InProgress};
use crate::utf8::Utf8Validator;

/// How much room a streamed frame's header alone may reserve in the assembly buffer
/// (a peer could announce 16 MiB and send nothing); beyond, it grows as bytes come.
const RESERVE_AHEAD: usize = 256 * 1024;

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
/// `assembled` buffer.
#[derive(Debug)]
struct IncomingMessage {
    kind: MessageKind,
    utf8: Utf8Validator,
    /// RSV1 on its first frame: its payloads are inflated into `assembled` (RFC 7692 §6).
    compressed: bool,
}

/// What one parsing step produced.
enum Step {
    Ready(Ready),
    Continue,
    NeedMore,
}

/// A message or control frame ready to be handed out, and where its bytes are.
///
/// One byte: where the bytes are is kept in the read side (`span`, `close_received`),
/// so that the hot path passes no aggregate through memory (a 32-byte enum returned
/// through the parsing loop cost a store-forwarding stall per message, a third of the
/// time of a 16-byte frame).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ready {
    /// A whole data frame's payload, unmasked in place at `input[span]`, text checked.
    InInput(MessageKind),
    /// A data message streamed or inflated into `assembled`, text checked.
    Assembled(MessageKind),
    /// A data message finished in `assembled` and moved to `finished` while
    /// `receive` started the next one there (see `start_frame_directly`).
    Finished(MessageKind),
    /// A ping's payload at `input[span]`.
    Ping,
    /// A pong's payload at `input[span]`.
    Pong,
    /// The peer's Close, in `close_received`.
    Close,
}

/// The receive path's state.
#[derive(Debug)]
pub(super) struct ReadSide {
    role: Role,
    /// Which frames this end accepts, given its role, extensions and limits: every
    /// rule of RFC 6455 §5 and RFC 7692 §6.1, in `crate::rules`.
    rules: FrameRules,
    /// What an inflating message is held to as it grows (the rules cannot know its
    /// inflated size).
    max_message_size: usize,
    /// Received bytes: `input[input_start..input_end]` are not yet interpreted; the
    /// rest of `input` is initialised space for the next read.
    input: Vec<u8>,
    input_start: usize,
    input_end: usize,
    payload: Option<PayloadInProgress>,
    message: Option<IncomingMessage>,
    /// The payload of the message being assembled (or of the last one lent): reused
    /// from message to message, so that streamed messages cost no allocation once it
    /// has grown.
    assembled: Vec<u8>,
    /// A finished message waiting to be handed out while the next one is assembled,
    /// and otherwise the spare that `assembled` is swapped with (so that, message
    /// after message, neither needs allocating).
    finished: Vec<u8>,
    /// What was parsed ahead (by `poll_next`, or a message `receive` finished) and is
    /// handed out next; its bytes in the input buffer are kept until then.
    ready: Option<Ready>,
    /// Where in `input` the payload of an `InInput`, `Ping` or `Pong` is.
    span: (usize, usize),
    /// The peer's Close frame, from parsing until it is handed out. Boxed: an open
    /// connection pays a pointer for it, not a frame.
    close_received: Option<Box<CloseFrame>>,
    /// permessage-deflate's inflater; boxed, as the send side's deflater.
    inflater: Option<Box<Inflater>>,
    /// What `receive` found wrong in bytes it took directly, for the next parse.
    failed: Option<ProtocolError>,
}

impl ReadSide {
    pub(super) fn new(role: Role, config: &Config, deflate: Option<&Negotiated>) -> Self {
        ReadSide {
            role,
            rules: FrameRules::new(role)
                .allowed_rsv(config.allowed_rsv)
                .deflate(deflate.is_some())
                .max_frame_size(config.max_frame_size)
                .max_message_size(config.max_message_size),
            max_message_size: config.max_message_size,
            input: Vec::new(),
            input_start: 0,
            input_end: 0,
            payload: None,
            message: None,
            assembled: Vec::new(),
            finished: Vec::new(),
            ready: None,
            span: (0, 0),
            close_received: None,
            inflater: deflate.map(|negotiated| Box::new(Inflater::new(negotiated))),
            failed: None,
        }
    }

    pub(super) fn role(&self) -> Role {
        self.role
    }

    // ---- bytes in ----------------------------------------------------------------

    /// Takes received bytes: those that continue a data frame being read go straight
    /// into the message (one pass: unmasked as copied), the rest into the input
    /// buffer.
    pub(super) fn receive(&mut self, data: &[u8], trace: &mut Trace) {
        if self.failed.is_some() {
            return; // The connection fails at the next parse; nothing more is read.
        }
        let mut data = data;
        loop {
            data = &data[self.receive_payload_directly(data, trace)..];
            if data.is_empty() || self.failed.is_some() {
                return;
            }
            if !self.start_frame_directly(&mut data, trace) {
                break;
            }
        }
        let space = self.input_buffer(data.len());
        space[..data.len()].copy_from_slice(data);
        self.commit(data.len());
    }

    /// The part of `receive` that starts a frame which `data` holds only the beginning
    /// of: with nothing buffered before it, only its header goes through the input
    /// buffer, and is read at once, so that its payload can be taken directly. True
    /// when a data frame's payload is now being read. A header that fails its checks
    /// stays in the input buffer, where the next parse meets it as it would have; the
    /// tap's previews need the payload in the buffer, so not when tracing.
    fn start_frame_directly(&mut self, data: &mut &[u8], trace: &mut Trace) -> bool {
        let waiting = match self.ready {
            None => None,
            Some(Ready::Assembled(kind)) => Some(kind),
            Some(_) => return false,
        };
        if self.payload.is_some() || self.input_start != self.input_end || trace.is_on() {
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
        self.commit(header_len);
        *data = &data[header_len..];
        match self.read_header(trace) {
            Ok(Step::Continue) => self.payload.is_some(),
            // Not for a frame that is not whole; were it, it is handed out next.
            Ok(Step::Ready(ready)) => {
                self.ready = Some(ready);
                false
            }
            // An error is met again in the buffer, by the next parse.
            Ok(Step::NeedMore) | Err(_) => false,
        }
    }

    /// The part of `receive` that continues a frame's payload: takes the first bytes
    /// of `data` that belong to the data frame being read, when nothing is buffered
    /// before them, and says how many it took. It goes through the same steps as the
    /// buffered path (`append_piece`, `after_payload`), and nothing observable
    /// changes before the next parse: a finished message waits in `ready`, and an
    /// error in `failed`, which the next parse returns — the call at which the
    /// buffered path would have met it.
    fn receive_payload_directly(&mut self, data: &[u8], trace: &mut Trace) -> usize {
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
        let step = append_piece(&mut self.assembled, message, &data[..n], &mut progress)
            .and_then(|()| self.after_payload(progress, trace));
        match step {
            Ok(Step::Ready(ready)) => self.ready = Some(ready),
            Ok(Step::Continue | Step::NeedMore) => {}
            Err(err) => self.failed = Some(err),
        }
        n
    }

    /// Space for at least `min` more received bytes, to read into directly.
    pub(super) fn input_buffer(&mut self, min: usize) -> &mut [u8] {
        // A message parsed ahead and not yet handed out keeps its bytes.
        let keep = match self.ready {
            Some(Ready::InInput(_) | Ready::Ping | Ready::Pong) => self.span.0,
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
                    self.span.0 -= keep;
                    self.span.1 -= keep;
                }
            }
            if self.input.len() - self.input_end < min {
                self.input.resize(self.input_end + min, 0);
            }
        }
        &mut self.input[self.input_end..]
    }

    /// Marks `n` bytes written into `input_buffer` as received.
    pub(super) fn commit(&mut self, n: usize) {
        assert!(
            self.input_end + n <= self.input.len(),
            "commit_input past the buffer"
        );
        self.input_end += n;
    }

    /// The number of received bytes not yet interpreted.
    pub(super) fn buffered(&self) -> usize {
        self.input_end - self.input_start
    }

    // ---- frames out --------------------------------------------------------------

    /// Takes what was parsed ahead, if anything.
    #[inline]
    pub(super) fn take_ready(&mut self) -> Option<Ready> {
        self.ready.take()
    }

    /// Keeps a parsed event to be handed out by the next call.
    pub(super) fn put_back(&mut self, ready: Ready) {
        self.ready = Some(ready);
    }

    /// Parses up to the next event.
    #[inline]
    pub(super) fn parse(&mut self, trace: &mut Trace) -> Result<Option<Ready>, ProtocolError> {
        if self.failed.is_some() {
            return Err(self.take_failure());
        }
        loop {
            let step = match self.payload {
                Some(progress) => self.read_payload(progress, trace),
                None => self.read_header(trace),
            }?;
            match step {
                Step::Ready(ready) => return Ok(Some(ready)),
                Step::Continue => {}
                Step::NeedMore => return Ok(None),
            }
        }
    }

    #[cold]
    fn take_failure(&mut self) -> ProtocolError {
        self.failed.take().expect("checked by the caller")
    }

    /// The payload of an `InInput`, `Ping` or `Pong` just handed out.
    #[inline]
    pub(super) fn span(&self) -> &[u8] {
        &self.input[self.span.0..self.span.1]
    }

    /// The payload of an `Assembled` or `Finished` message just handed out.
    #[inline]
    pub(super) fn assembled(&self, ready: Ready) -> &[u8] {
        match ready {
            Ready::Finished(_) => &self.finished,
            _ => &self.assembled,
        }
    }

    /// The payload of an `Assembled` or `Finished` message, taken (the read side
    /// starts its next message in a fresh buffer) or swapped with `buf`.
    pub(super) fn swap_assembled(&mut self, ready: Ready, buf: &mut Vec<u8>) {
        match ready {
            Ready::Finished(_) => std::mem::swap(buf, &mut self.finished),
            _ => std::mem::swap(buf, &mut self.assembled),
        }
    }

    /// The status code of the peer's Close, before it is handed out: the echo's.
    pub(super) fn peek_close_code(&self) -> Option<CloseCode> {
        self.close_received.as_ref().map(|frame| frame.code)
    }

    /// The peer's Close frame, once: `None` when it had no status code.
    pub(super) fn take_close(&mut self) -> Option<CloseFrame> {
        self.close_received.take().map(|frame| *frame)
    }

    #[inline]
    fn read_header(&mut self, trace: &mut Trace) -> Result<Step, ProtocolError> {
        let available = &self.input[self.input_start..self.input_end];
        let available_len = available.len();
        let (header, header_len) = match FrameHeader::parse(available)? {
            Parsed::Complete(header, len) => (header, len),
            Parsed::Incomplete(_) => return Ok(Step::NeedMore),
        };
        let in_progress = self.message.as_ref().map(|message| InProgress {
            compressed: message.compressed,
            len: self.assembled.len() as u64,
        });
        let (kind, compressed) = match self.rules.check(&header, in_progress)? {
            FrameClass::Control => {
                // At most 125 bytes (a rule): wait for the whole frame.
                if available_len < header_len + header.payload_len as usize {
                    return Ok(Step::NeedMore);
                }
                self.take_in_place(&header, header_len, trace);
                return Ok(Step::Ready(match header.opcode {
                    OpCode::Ping => Ready::Ping,
                    OpCode::Pong => Ready::Pong,
                    _ => {
                        self.close_received = CloseFrame::parse(self.span())?.map(Box::new);
                        Ready::Close
                    }
                }));
            }
            FrameClass::Continuation => return Ok(self.start_payload(&header, header_len, trace)),
            FrameClass::Start {
                text: true,
                compressed,
            } => (MessageKind::Text, compressed),
            FrameClass::Start {
                text: false,
                compressed,
            } => (MessageKind::Binary, compressed),
        };
        // The common case: a whole unfragmented message already in the buffer. It is
        // unmasked where it lies and handed out from there; text is checked all at
        // once (all of it is at hand, so failing at its end is failing fast).
        let len = header.payload_len as usize;
        if header.fin && !compressed && available_len - header_len >= len {
            self.take_in_place(&header, header_len, trace);
            if kind == MessageKind::Text && simdutf8::basic::from_utf8(self.span()).is_err() {
                return Err(ProtocolError::InvalidUtf8);
            }
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
        Ok(self.start_payload(&header, header_len, trace))
    }

    /// Consumes a frame whose payload is entirely in the input buffer, unmasking it in
    /// place: its payload is `span` until the buffer is next written.
    #[inline]
    fn take_in_place(&mut self, header: &FrameHeader, header_len: usize, trace: &mut Trace) {
        let start = self.input_start + header_len;
        let end = start + header.payload_len as usize;
        trace.received(header, &self.input, start);
        if let Some(key) = header.masking_key {
            apply_mask(&mut self.input[start..end], key, 0);
        }
        self.input_start = end;
        self.span = (start, end);
    }

    /// Consumes a data frame's header; its payload is read by `read_payload`.
    fn start_payload(
        &mut self,
        header: &FrameHeader,
        header_len: usize,
        trace: &mut Trace,
    ) -> Step {
        self.input_start += header_len;
        trace.received(header, &self.input[..self.input_end], self.input_start);
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
    fn read_payload(
        &mut self,
        mut progress: PayloadInProgress,
        trace: &mut Trace,
    ) -> Result<Step, ProtocolError> {
        let n = progress.remaining.min(self.buffered() as u64) as usize;
        if n == 0 && progress.remaining > 0 {
            return Ok(Step::NeedMore);
        }
        let message = self
            .message
            .as_mut()
            .expect("a data payload always belongs to a message");
        if message.compressed {
            return self.inflate_payload(progress, n, trace);
        }
        let arrived = &self.input[self.input_start..self.input_start + n];
        append_piece(&mut self.assembled, message, arrived, &mut progress)?;
        self.input_start += n;
        self.after_payload(progress, trace)
    }

    /// After a piece of a data frame's payload: wait for the rest of the frame, go on
    /// to the next frame, or deliver the message the frame ended.
    fn after_payload(
        &mut self,
        progress: PayloadInProgress,
        trace: &mut Trace,
    ) -> Result<Step, ProtocolError> {
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
        if message.compressed {
            // The frame that ended it shows the message's inflated size and start.
            trace.note_inflated_in(&self.assembled);
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
        trace: &mut Trace,
    ) -> Result<Step, ProtocolError> {
        let max = self.max_message_size;
        let piece = &mut self.input[self.input_start..self.input_start + n];
        if let Some(key) = progress.masking_key {
            apply_mask(piece, key, progress.offset);
        }
        let message = self.message.as_mut().expect("checked by the caller");
        let inflater = self
            .inflater
            .as_mut()
            .expect("compressed implies negotiated");
        let (data, utf8, kind) = (&mut self.assembled, &mut message.utf8, message.kind);
        let mut bad_text = false;
        let mut check = |fresh: &[u8]| {
            bad_text = kind == MessageKind::Text && utf8.feed(fresh).is_err();
            !bad_text
        };
        let inflated = inflater.inflate(piece, data, max, &mut check);
        self.input_start += n;
        progress.remaining -= n as u64;
        progress.offset += n;
        let finished = progress.remaining == 0 && progress.fin;
        let result = match inflated {
            Ok(()) if finished => inflater.finish(data, max, &mut check),
            other => other,
        };
        if let Err(err) = result {
            inflater.end_message();
            return Err(match err {
                InflateError::TooBig(len) => ProtocolError::MessageTooBig {
                    len: len as u64,
                    max,
                },
                InflateError::Invalid if bad_text => ProtocolError::InvalidUtf8,
                InflateError::Invalid => ProtocolError::InvalidDeflateData,
            });
        }
        self.after_payload(progress, trace)
    }

    // ---- memory ------------------------------------------------------------------

    /// Nothing more is read: every buffer is freed.
    pub(super) fn finish(&mut self) {
        if let Some(inflater) = &mut self.inflater {
            inflater.end_message();
        }
        self.input = Vec::new();
        self.input_start = 0;
        self.input_end = 0;
        self.payload = None;
        self.message = None;
        self.assembled = Vec::new();
        self.finished = Vec::new();
        self.failed = None;
    }

    /// Frees buffers larger than `keep` that hold nothing needed, and the inflater's
    /// memory between messages.
    pub(super) fn release_idle(&mut self, keep: usize) {
        // An event parsed ahead and not yet handed out keeps its bytes, in either
        // buffer.
        let waiting = self.ready.is_some();
        let unread = self.buffered();
        if !waiting && unread <= keep && self.input.capacity() > keep {
            // A header still arriving keeps its few bytes, not the read buffer: a
            // peer that sends a frame's first bytes and stops holds no 64 KiB.
            self.input = self.input[self.input_start..self.input_end].to_vec();
            self.input_start = 0;
            self.input_end = unread;
        }
        // The assembly buffer and inflater, between messages and where no message
        // waits to be handed out.
        let between_messages = self.message.is_none() && !waiting;
        if between_messages && self.assembled.capacity() > keep {
            self.assembled = Vec::new();
        } else if !waiting {
            // A message that stopped arriving keeps its bytes, not the doubling
            // growth's spare room (up to as much again).
            self.assembled.shrink_to_fit();
        }
        if !waiting && self.finished.capacity() > keep {
            self.finished = Vec::new();
        }
        if let Some(inflater) = &mut self.inflater {
            if between_messages {
                inflater.release_idle();
            }
        }
    }

    pub(super) fn capacity(&self) -> usize {
        self.input.capacity() + self.assembled.capacity() + self.finished.capacity()
    }

    #[cfg(test)]
    pub(super) fn input_capacity(&self) -> usize {
        self.input.capacity()
    }

    #[cfg(test)]
    pub(super) fn inflater_holds_state(&self) -> bool {
        self.inflater.as_ref().is_some_and(|i| i.holds_state())
    }
}

/// Appends a piece of a data frame's payload to its (uncompressed) message: unmasked
/// as it is copied (RFC 6455 §5.3), checked as it arrives when the message is text
/// (§5.6, §8.1), and counted in the frame's `progress`. The one step both ways of
/// receiving take for a piece of payload.
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
