//! The send path: messages → frames (RFC 6455 §5.2, §5.4), masking for a client
//! (§5.3), permessage-deflate on the way out (RFC 7692 §7.2.1), and the queue of bytes
//! for the transport.
//!
//! It knows nothing of what was received. The read side's needs — the Pong for a Ping,
//! the echo of a Close, the Close that fails a connection — reach it only through the
//! three methods under "Answers", which [`Connection`](super::Connection) calls (as
//! rustls' receive path sends alerts through one narrow door).

use super::config::RETAINED_BUFFER;
use super::message::MessageKind;
use super::trace::Trace;
use crate::close::{CloseCode, CloseFrame};
use crate::deflate::codec::Deflater;
use crate::deflate::Negotiated;
use crate::error::SendError;
use crate::frame::{FrameHeader, OpCode, Role, MAX_CONTROL_PAYLOAD, RSV1};
use crate::mask::apply_mask;
use crate::random::MaskKeys;

/// Unsent output past which an automatic Pong replaces the previous one still waiting.
pub(super) const PONG_BACKLOG: usize = 4096;

/// permessage-deflate on the way out, once negotiated.
#[derive(Debug)]
struct Deflating {
    negotiated: Negotiated,
    deflater: Deflater,
    /// Where a message is compressed before it is framed.
    scratch: Vec<u8>,
}

/// The send path's state: the output queue and what framing the next message needs.
#[derive(Debug)]
pub(super) struct WriteSide {
    /// Bytes to send: `output[output_start..]`.
    output: Vec<u8>,
    output_start: usize,
    /// Where an automatic Pong starts in `output`, while it is the last frame there
    /// and none of it is written: the next Ping's Pong replaces it (see `answer_ping`).
    unsent_pong: Option<usize>,
    /// The kind of the fragmented message being sent, if one is unfinished.
    sending_fragmented: Option<MessageKind>,
    /// A client's masking keys (RFC 6455 §5.3); `None` for a server, which never masks.
    /// Boxed: the pool is 256 bytes, which a server's connections (thousands in one
    /// event loop's table) would otherwise each carry unused.
    mask_keys: Option<Box<MaskKeys>>,
    /// Boxed: a connection without permessage-deflate pays one pointer for it (an
    /// event loop keeps thousands of connections in one table).
    deflating: Option<Box<Deflating>>,
}

impl WriteSide {
    pub(super) fn new(role: Role, deflate: Option<Negotiated>) -> Self {
        WriteSide {
            output: Vec::new(),
            output_start: 0,
            unsent_pong: None,
            sending_fragmented: None,
            mask_keys: (role == Role::Client).then(|| Box::new(MaskKeys::new())),
            deflating: deflate.map(|negotiated| {
                Box::new(Deflating {
                    negotiated,
                    deflater: Deflater::new(&negotiated),
                    scratch: Vec::new(),
                })
            }),
        }
    }

    pub(super) fn negotiated(&self) -> Option<&Negotiated> {
        self.deflating.as_ref().map(|d| &d.negotiated)
    }

    pub(super) fn pending(&self) -> &[u8] {
        &self.output[self.output_start..]
    }

    pub(super) fn consume(&mut self, n: usize) {
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

    /// True while a fragmented message is unfinished: only control frames may go
    /// until it is (RFC 6455 §5.4).
    pub(super) fn mid_message(&self) -> bool {
        self.sending_fragmented.is_some()
    }

    /// A whole message in one frame, compressed when permessage-deflate is on and the
    /// message reaches its threshold.
    pub(super) fn message(
        &mut self,
        kind: MessageKind,
        payload: &[u8],
        trace: &mut Trace,
    ) -> Result<(), SendError> {
        if self.sending_fragmented.is_some() {
            return Err(SendError::FragmentOrder);
        }
        let Some(d) = self
            .deflating
            .as_mut()
            .filter(|d| payload.len() >= d.negotiated.threshold && d.deflater.can_compress())
        else {
            self.frame(true, 0, kind.opcode(), payload, trace);
            return Ok(());
        };
        // RFC 7692 §7.2.1: compressed, the tail removed, RSV1 on the (only) frame.
        // Without context takeover, a message that does not shrink goes as it is
        // (every message may choose); with it, the peer's window must see what ours
        // saw, so the compressed form goes whatever its size.
        let mut compressed = std::mem::take(&mut d.scratch);
        compressed.clear();
        d.deflater.compress(payload, &mut compressed);
        let takeover = !d.negotiated.local_no_context_takeover;
        if takeover || compressed.len() < payload.len() {
            self.frame(true, RSV1, kind.opcode(), &compressed, trace);
            trace.note_inflated(payload);
        } else {
            self.frame(true, 0, kind.opcode(), payload, trace);
        }
        if let Some(d) = &mut self.deflating {
            d.scratch = compressed;
        }
        Ok(())
    }

    /// A whole message compressed elsewhere (`compressed`) or plain.
    pub(super) fn prepared(
        &mut self,
        kind: MessageKind,
        payload: &[u8],
        compressed: bool,
        trace: &mut Trace,
    ) -> Result<(), SendError> {
        if self.sending_fragmented.is_some() {
            return Err(SendError::FragmentOrder);
        }
        if !compressed {
            self.frame(true, 0, kind.opcode(), payload, trace);
            return Ok(());
        }
        match &self.deflating {
            Some(d) if d.negotiated.local_no_context_takeover => {
                self.frame(true, RSV1, kind.opcode(), payload, trace);
                Ok(())
            }
            _ => Err(SendError::CompressionNotAgreed),
        }
    }

    /// One fragment of a message (RFC 6455 §5.4): the first fixes the kind, later ones
    /// are continuations of it.
    pub(super) fn fragment(
        &mut self,
        kind: MessageKind,
        payload: &[u8],
        fin: bool,
        trace: &mut Trace,
    ) -> Result<(), SendError> {
        let opcode = match self.sending_fragmented {
            None => kind.opcode(),
            Some(current) if current == kind => OpCode::Continuation,
            Some(_) => return Err(SendError::FragmentOrder),
        };
        self.sending_fragmented = if fin { None } else { Some(kind) };
        self.frame(fin, 0, opcode, payload, trace);
        Ok(())
    }

    /// A Ping or Pong the application sends (RFC 6455 §5.5.2, §5.5.3).
    pub(super) fn control(
        &mut self,
        opcode: OpCode,
        payload: &[u8],
        trace: &mut Trace,
    ) -> Result<(), SendError> {
        if payload.len() > MAX_CONTROL_PAYLOAD {
            return Err(SendError::ControlPayloadTooLong(payload.len()));
        }
        self.frame(true, 0, opcode, payload, trace);
        Ok(())
    }

    /// A Close with a status code and a reason that fits (RFC 6455 §5.5.1).
    pub(super) fn close(&mut self, code: CloseCode, reason: &str, trace: &mut Trace) {
        let mut payload = Vec::with_capacity(2 + reason.len());
        CloseFrame::encode_payload(code, reason, &mut payload);
        self.frame(true, 0, OpCode::Close, &payload, trace);
    }

    // ---- Answers: what the read side asks of the send path ------------------------

    /// The Pong for a Ping (RFC 6455 §5.5.3). Only the latest Ping needs an answer:
    /// once output backs up, a Pong still wholly unsent at its end is replaced, so a
    /// peer that pings and never reads queues at most `PONG_BACKLOG` and one Pong.
    /// Below that every Ping is answered (what peers, and Autobahn's case 2.10, expect).
    pub(super) fn answer_ping(&mut self, payload: &[u8], trace: &mut Trace) {
        if self.output.len() - self.output_start > PONG_BACKLOG {
            if let Some(at) = self.unsent_pong.take() {
                self.output.truncate(at);
            }
        }
        self.frame(true, 0, OpCode::Pong, payload, trace);
        // Its header: 2 bytes, and a masking key from a client (§5.2).
        let header = if self.mask_keys.is_some() { 6 } else { 2 };
        self.unsent_pong = Some(self.output.len() - header - payload.len());
    }

    /// The reply to the peer's Close: its code echoed (RFC 6455 §5.5.1), or an empty
    /// Close for an empty one.
    pub(super) fn echo_close(&mut self, code: Option<CloseCode>, trace: &mut Trace) {
        match code {
            Some(code) => self.frame(true, 0, OpCode::Close, &code.0.to_be_bytes(), trace),
            None => self.frame(true, 0, OpCode::Close, &[], trace),
        }
    }

    // ---- memory ------------------------------------------------------------------

    /// Frees the output buffer when it holds nothing and is larger than `keep`, and
    /// the compressor's idle memory.
    pub(super) fn release_idle(&mut self, keep: usize) {
        if self.output_start == self.output.len() && self.output.capacity() > keep {
            self.output = Vec::new();
            self.output_start = 0;
        }
        if let Some(d) = &mut self.deflating {
            d.scratch = Vec::new();
            d.deflater.release_idle();
        }
    }

    pub(super) fn capacity(&self) -> usize {
        self.output.capacity()
    }

    #[cfg(test)]
    pub(super) fn deflater_holds_state(&self) -> bool {
        self.deflating
            .as_ref()
            .is_some_and(|d| d.deflater.holds_state())
    }

    /// Appends one frame to the output: header, then the payload copied once and, for
    /// a client, masked in place with a fresh key (RFC 6455 §5.3). `rsv` is RSV1 for a
    /// compressed message.
    fn frame(&mut self, fin: bool, rsv: u8, opcode: OpCode, payload: &[u8], trace: &mut Trace) {
        // Something follows the waiting Pong (or it moved): it is no longer replaceable.
        self.unsent_pong = None;
        let masking_key = self.mask_keys.as_mut().map(|keys| keys.next_key());
        let header = FrameHeader {
            fin,
            rsv,
            opcode,
            masking_key,
            payload_len: payload.len() as u64,
        };
        trace.sent(&header, payload);
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
