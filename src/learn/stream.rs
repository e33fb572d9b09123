//! What the inspector and the tap share: reading a stream of frames the way a tool
//! does, reporting every rule broken instead of stopping at the first.
//!
//! A header is parsed even when its length is not minimal ([`parse_lenient`]), the
//! frame rules of [`crate::rules`] are applied with the message order tracked from
//! frame to frame ([`StreamRules`]), a text message is checked as UTF-8
//! ([`TextCheck`]), and each finding is a [`Violation`]. Both tools sit on this file;
//! neither imports the other.

use crate::error::ProtocolError;
use crate::frame::{FrameHeader, OpCode, Parsed};
use crate::rules::{FrameClass, FrameRules, InProgress};
use crate::utf8::Utf8Validator;
use crate::Role;
use std::fmt;

/// A rule a frame breaks: one of [`ProtocolError`], or a frame after the Close frame.
///
/// ```
/// use rfc6455::learn::tap::{FrameTap, TapEvent, Violation};
/// use rfc6455::{ProtocolError, Role};
///
/// // A client's text frame without a mask (RFC 6455 §5.1).
/// let mut tap = FrameTap::new(Role::Client, 16);
/// let mut events = Vec::new();
/// tap.feed(&[0x81, 0x02, b'h', b'i'], &mut events);
/// let TapEvent::Frame(frame) = &events[0] else { panic!() };
/// assert_eq!(frame.violations, [Violation::Protocol(ProtocolError::UnmaskedClientFrame)]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// A rule a receiving endpoint enforces by failing the connection.
    Protocol(ProtocolError),
    /// A frame sent after a Close frame (RFC 6455 §5.5.1: nothing follows a Close).
    AfterClose,
}

impl Violation {
    /// The rule, without its section: `"unmasked frame from a client"`.
    ///
    /// ```
    /// use rfc6455::learn::tap::Violation;
    /// use rfc6455::ProtocolError;
    ///
    /// let v = Violation::Protocol(ProtocolError::UnmaskedClientFrame);
    /// assert_eq!(v.rule(), "unmasked frame from a client");
    /// assert_eq!(v.section(), "RFC 6455 §5.1");
    /// assert_eq!(v.to_string(), "unmasked frame from a client (RFC 6455 §5.1)");
    /// ```
    pub fn rule(&self) -> String {
        let full = self.to_string();
        let suffix = format!(" ({})", self.section());
        full.strip_suffix(&suffix).unwrap_or(&full).to_string()
    }

    /// Where the rule is written: `"RFC 6455 §5.1"`.
    ///
    /// ```
    /// use rfc6455::learn::tap::Violation;
    /// use rfc6455::ProtocolError;
    ///
    /// assert_eq!(Violation::AfterClose.section(), "RFC 6455 §5.5.1");
    /// // permessage-deflate's rules come from RFC 7692.
    /// let v = Violation::Protocol(ProtocolError::CompressedContinuation);
    /// assert_eq!(v.section(), "RFC 7692 §6.1");
    /// ```
    pub fn section(&self) -> String {
        match self {
            Violation::Protocol(e) => format!("{} {}", e.rfc(), e.rfc_section()),
            Violation::AfterClose => "RFC 6455 §5.5.1".to_string(),
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::Protocol(e) => e.fmt(f),
            Violation::AfterClose => f.write_str("a frame after the Close frame (RFC 6455 §5.5.1)"),
        }
    }
}

/// [`FrameRules`] applied to a stream, frame after frame: with what they need of the
/// frames before — the data message in progress (RFC 6455 §5.4), permessage-deflate
/// (RFC 7692 §6.1) — and whether a Close has passed (§5.5.1). A [`crate::Connection`]
/// tracks the same in its own state and stops at the first error; a tool reads on, so
/// the state moves on whatever the frame broke.
#[derive(Debug, Default)]
pub(crate) struct StreamRules {
    /// The opcode of the data message in progress, and whether it is compressed.
    fragmented: Option<(OpCode, bool)>,
    /// A Close frame has passed.
    closed: bool,
    /// permessage-deflate is in use: RSV1 marks a compressed message.
    pub(crate) deflate: bool,
}

impl StreamRules {
    /// The rules for a stream with permessage-deflate (`deflate`) or without.
    pub(crate) fn new(deflate: bool) -> StreamRules {
        StreamRules {
            deflate,
            ..StreamRules::default()
        }
    }

    /// Appends every rule `header`, sent to `receiver`, breaks (those of
    /// [`FrameRules`], then a frame after the Close) and moves the order on. Returns
    /// true when the frame starts a compressed message.
    pub(crate) fn check(
        &mut self,
        header: &FrameHeader,
        receiver: Role,
        found: &mut Vec<Violation>,
    ) -> bool {
        let rules = FrameRules::new(receiver).deflate(self.deflate);
        let in_progress = self
            .fragmented
            .map(|(_, compressed)| InProgress { compressed, len: 0 });
        found.extend(
            rules
                .violations(header, in_progress)
                .map(Violation::Protocol),
        );
        if self.closed {
            found.push(Violation::AfterClose);
        }
        match rules.class(header) {
            // A new message, even inside an unfinished one (reported above).
            Some(FrameClass::Start { compressed, .. }) => {
                self.fragmented = Some((header.opcode, compressed));
                compressed
            }
            _ => {
                self.closed |= header.opcode == OpCode::Close;
                false
            }
        }
    }

    /// The data message (text or binary) a frame belongs to, after [`check`](Self::check).
    pub(crate) fn message(&self, header: &FrameHeader) -> Option<OpCode> {
        match header.opcode {
            OpCode::Continuation | OpCode::Text | OpCode::Binary => {
                self.fragmented.map(|(opcode, _)| opcode)
            }
            _ => None,
        }
    }

    /// The frame has passed: a final data frame ends its message.
    pub(crate) fn end_frame(&mut self, header: &FrameHeader) {
        if header.fin && self.message(header).is_some() {
            self.fragmented = None;
        }
    }
}

/// The UTF-8 check of the text message in progress (RFC 6455 §8.1), reported once.
#[derive(Debug)]
pub(crate) struct TextCheck {
    utf8: Utf8Validator,
    failed: bool,
}

impl TextCheck {
    pub(crate) fn new() -> TextCheck {
        TextCheck {
            utf8: Utf8Validator::new(),
            failed: false,
        }
    }

    /// A new text message starts.
    pub(crate) fn reset(&mut self) {
        self.utf8.reset();
        self.failed = false;
    }

    /// The next bytes of the message: the first that cannot be UTF-8 is reported.
    pub(crate) fn feed(&mut self, bytes: &[u8], violations: &mut Vec<Violation>) {
        if !self.failed && self.utf8.feed(bytes).is_err() {
            self.failed = true;
            violations.push(Violation::Protocol(ProtocolError::InvalidUtf8));
        }
    }

    /// The compressed message is not DEFLATE data (`e`): what it inflated to before
    /// the error is not judged as text — how much came out before the error depends
    /// on how the bytes were cut — and the rest of the message is not checked.
    pub(crate) fn not_deflate(&mut self, e: ProtocolError, violations: &mut Vec<Violation>) {
        violations.retain(|v| *v != Violation::Protocol(ProtocolError::InvalidUtf8));
        self.failed = true;
        violations.push(Violation::Protocol(e));
    }

    /// The message ends: it must not stop inside a character.
    pub(crate) fn finish(&mut self, violations: &mut Vec<Violation>) {
        if !self.failed && !self.utf8.is_complete() {
            self.failed = true;
            violations.push(Violation::Protocol(ProtocolError::InvalidUtf8));
        }
    }
}

/// Parses a header, tolerating a non-minimal length (the caller reports it) so that the
/// frame can still be shown; a length with its top bit set stays an error: where the
/// frame ends is unknown.
pub(crate) fn parse_lenient(buf: &[u8]) -> Result<Parsed, ProtocolError> {
    match FrameHeader::parse(buf) {
        Err(ProtocolError::NonMinimalLength) => {
            let (header, len) = parse_non_minimal(buf);
            Ok(Parsed::Complete(header, len))
        }
        other => other,
    }
}

/// The header of `buf`, which [`FrameHeader::parse`] refused only for a length not in
/// its minimal encoding (RFC 6455 §5.2): read as if it were minimal.
pub(crate) fn parse_non_minimal(buf: &[u8]) -> (FrameHeader, usize) {
    let ext = if buf[1] & 0x7f == 126 { 2 } else { 8 };
    let masked = buf[1] & 0x80 != 0;
    let payload_len = buf[2..2 + ext]
        .iter()
        .fold(0u64, |v, b| v << 8 | u64::from(*b));
    let key_at = 2 + ext;
    (
        FrameHeader {
            fin: buf[0] & 0x80 != 0,
            rsv: (buf[0] >> 4) & 0x07,
            opcode: OpCode::from_bits(buf[0]),
            masking_key: masked.then(|| {
                [
                    buf[key_at],
                    buf[key_at + 1],
                    buf[key_at + 2],
                    buf[key_at + 3],
                ]
            }),
            payload_len,
        },
        key_at + if masked { 4 } else { 0 },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(opcode: OpCode, rsv: u8) -> FrameHeader {
        FrameHeader {
            fin: true,
            rsv,
            opcode,
            masking_key: None,
            payload_len: 0,
        }
    }

    /// The rules' violations in their order, then a frame after the Close; the order
    /// moves on whatever a frame broke.
    #[test]
    fn every_violation_is_listed_and_the_order_moves_on() {
        let mut rules = StreamRules::new(true);
        let mut found = Vec::new();
        assert!(!rules.check(&header(OpCode::Close, 0), Role::Client, &mut found));
        assert!(found.is_empty());
        // After the Close: a compressed continuation, with RSV2, of nothing.
        rules.check(
            &header(OpCode::Continuation, 0b110),
            Role::Client,
            &mut found,
        );
        assert_eq!(
            found,
            [
                Violation::Protocol(ProtocolError::ReservedBitsSet(0b110)),
                Violation::Protocol(ProtocolError::CompressedContinuation),
                Violation::Protocol(ProtocolError::UnexpectedContinuation),
                Violation::AfterClose,
            ]
        );
        // A compressed text message starts, even after the Close.
        let mut first = header(OpCode::Text, 0b100);
        first.fin = false;
        found.clear();
        assert!(rules.check(&first, Role::Client, &mut found));
        assert_eq!(found, [Violation::AfterClose]);
        let more = header(OpCode::Continuation, 0);
        assert_eq!(rules.message(&more), Some(OpCode::Text));
        rules.end_frame(&more);
        assert_eq!(rules.message(&more), None);
    }
}
