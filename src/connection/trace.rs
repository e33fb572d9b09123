//! The frame log behind `--trace`: every frame received and sent, with a preview of
//! its unmasked payload, when [`Config::trace`](super::Config::trace) is on.

use crate::close::CloseCode;
use crate::frame::{FrameHeader, OpCode};
use crate::mask::apply_mask;

/// How many payload bytes a [`TracedFrame`] keeps.
const TRACE_PREVIEW: usize = 40;

/// A frame received or sent, recorded when [`Config::trace`](crate::Config::trace) is
/// on. Its `Display` is one annotated line: direction, FIN, opcode, length, mask,
/// payload preview.
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

/// The frames seen since the last [`take`](Trace::take), when on. Every method is a
/// single branch when off, so the hot paths call them unconditionally.
#[derive(Debug, Default)]
pub(super) struct Trace {
    on: bool,
    frames: Vec<TracedFrame>,
}

impl Trace {
    pub(super) fn new(on: bool) -> Self {
        Trace {
            on,
            frames: Vec::new(),
        }
    }

    pub(super) fn is_on(&self) -> bool {
        self.on
    }

    pub(super) fn take(&mut self) -> Vec<TracedFrame> {
        std::mem::take(&mut self.frames)
    }

    /// A frame this end sends, its payload as given (unmasked).
    #[inline(always)]
    pub(super) fn sent(&mut self, header: &FrameHeader, payload: &[u8]) {
        if self.on {
            self.record(true, header, preview(payload).to_vec());
        }
    }

    /// A frame received, whose payload starts at `input[payload_start..]` (still
    /// masked; as much of it as is at hand). The hot path pays one branch: the rest
    /// is out of line, so that this always inlines.
    #[inline(always)]
    pub(super) fn received(&mut self, header: &FrameHeader, input: &[u8], payload_start: usize) {
        if self.on {
            self.record_received(header, input, payload_start);
        }
    }

    #[cold]
    #[inline(never)]
    fn record_received(&mut self, header: &FrameHeader, input: &[u8], payload_start: usize) {
        let at_hand = &input[payload_start..];
        let at_hand = &at_hand[..at_hand.len().min(header.payload_len as usize)];
        let mut shown = preview(at_hand).to_vec();
        if let Some(key) = header.masking_key {
            apply_mask(&mut shown, key, 0);
        }
        self.record(false, header, shown);
    }

    /// The last frame sent carried `message` compressed: show the message instead.
    pub(super) fn note_inflated(&mut self, message: &[u8]) {
        if let Some(traced) = self.frames.last_mut().filter(|_| self.on) {
            traced.inflated = Some(message.len());
            traced.preview = preview(message).to_vec();
        }
    }

    /// The last frame received ended a compressed message, inflated to `message`.
    pub(super) fn note_inflated_in(&mut self, message: &[u8]) {
        if !self.on {
            return;
        }
        if let Some(traced) = self.frames.iter_mut().rev().find(|t| !t.outgoing) {
            traced.inflated = Some(message.len());
            traced.preview = preview(message).to_vec();
        }
    }

    #[cold]
    fn record(&mut self, outgoing: bool, header: &FrameHeader, payload: Vec<u8>) {
        self.frames.push(TracedFrame {
            outgoing,
            header: *header,
            preview: payload,
            inflated: None,
        });
    }
}

fn preview(payload: &[u8]) -> &[u8] {
    &payload[..payload.len().min(TRACE_PREVIEW)]
}
