//! What the peer did wrong, and what this endpoint may not do.
//!
//! [`ProtocolError`] names every rule of RFC 6455 a received frame can break; each
//! knows the close code that fails the connection (§7.1.7, §7.4.1) and the section
//! the rule comes from. [`SendError`] is the local counterpart: a call the
//! application made that the protocol does not allow.

use crate::close::{CloseCode, CloseFrameError};
use std::fmt;

/// A rule of RFC 6455 broken by the peer. Receiving one fails the connection
/// (RFC 6455 §7.1.7): a Close frame with [`close_code`](Self::close_code) is queued and
/// nothing more is read.
///
/// ```
/// use rfc6455::{CloseCode, ProtocolError};
///
/// let err = ProtocolError::ControlFrameTooLong(126);
/// assert_eq!(err.close_code(), CloseCode::PROTOCOL_ERROR);
/// assert_eq!(err.rfc_section(), "§5.5");
/// assert_eq!(ProtocolError::InvalidUtf8.close_code(), CloseCode::INVALID_PAYLOAD);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtocolError {
    /// RSV1–3 set (the bits, as `0b0RRR`) without an extension that defines them.
    ReservedBitsSet(u8),
    /// An opcode RFC 6455 reserves: 0x3–0x7 (data) or 0xB–0xF (control).
    ReservedOpcode(u8),
    /// A control frame with a payload over 125 bytes.
    ControlFrameTooLong(u64),
    /// A control frame without FIN: control frames must not be fragmented.
    FragmentedControlFrame,
    /// A client frame without a mask: servers must reject it.
    UnmaskedClientFrame,
    /// A server frame with a mask: clients must reject it.
    MaskedServerFrame,
    /// A 64-bit payload length with its most significant bit set.
    PayloadLengthMsbSet,
    /// A payload length not in the minimal number of bytes.
    NonMinimalLength,
    /// A continuation frame with no fragmented message to continue.
    UnexpectedContinuation,
    /// A new text or binary frame while a fragmented message is unfinished.
    ExpectedContinuation,
    /// A text message, or part of one, that is not UTF-8.
    InvalidUtf8,
    /// A Close payload of one byte: too short for a code.
    CloseFrameOneByte,
    /// A close code that must not appear on the wire.
    InvalidCloseCode(u16),
    /// A close reason that is not UTF-8.
    InvalidCloseReason,
    /// A frame whose announced payload exceeds the configured maximum.
    FrameTooBig {
        /// The announced payload length.
        len: u64,
        /// The configured maximum frame payload.
        max: usize,
    },
    /// A message whose size so far plus an announced frame exceeds the maximum (for a
    /// compressed message: whose inflated size passes it).
    MessageTooBig {
        /// The message size if this frame were accepted.
        len: u64,
        /// The configured maximum message size.
        max: usize,
    },
    /// RSV1 (compressed) on a control frame: only data messages are compressed.
    CompressedControlFrame,
    /// RSV1 on a continuation frame: it belongs on the message's first frame only.
    CompressedContinuation,
    /// A compressed message that does not inflate: not DEFLATE data.
    InvalidDeflateData,
}

impl ProtocolError {
    /// The status code of the Close frame that fails the connection (RFC 6455 §7.4.1):
    /// 1007 for bad UTF-8, 1009 for size limits, 1002 for the rest.
    ///
    /// ```
    /// use rfc6455::{CloseCode, ProtocolError};
    ///
    /// assert_eq!(ProtocolError::InvalidCloseReason.close_code(), CloseCode::INVALID_PAYLOAD);
    /// let too_big = ProtocolError::FrameTooBig { len: 1 << 30, max: 16 << 20 };
    /// assert_eq!(too_big.close_code(), CloseCode::MESSAGE_TOO_BIG);
    /// assert_eq!(ProtocolError::UnmaskedClientFrame.close_code(), CloseCode::PROTOCOL_ERROR);
    /// ```
    pub fn close_code(&self) -> CloseCode {
        match self {
            ProtocolError::CloseFrameOneByte => CloseFrameError::OneByte.close_code(),
            ProtocolError::InvalidCloseCode(code) => {
                CloseFrameError::InvalidCode(*code).close_code()
            }
            ProtocolError::InvalidCloseReason => CloseFrameError::InvalidReason.close_code(),
            ProtocolError::InvalidUtf8 | ProtocolError::InvalidDeflateData => {
                CloseCode::INVALID_PAYLOAD
            }
            ProtocolError::FrameTooBig { .. } | ProtocolError::MessageTooBig { .. } => {
                CloseCode::MESSAGE_TOO_BIG
            }
            _ => CloseCode::PROTOCOL_ERROR,
        }
    }

    /// The RFC that states the rule: RFC 6455, or RFC 7692 for compression.
    ///
    /// ```
    /// use rfc6455::ProtocolError;
    ///
    /// assert_eq!(ProtocolError::ReservedOpcode(0x3).rfc(), "RFC 6455");
    /// // permessage-deflate's rules are in its own RFC.
    /// assert_eq!(ProtocolError::CompressedControlFrame.rfc(), "RFC 7692");
    /// ```
    pub fn rfc(&self) -> &'static str {
        match self {
            ProtocolError::CompressedControlFrame
            | ProtocolError::CompressedContinuation
            | ProtocolError::InvalidDeflateData => "RFC 7692",
            _ => "RFC 6455",
        }
    }

    /// The section of [`rfc`](Self::rfc) that states the rule.
    ///
    /// ```
    /// use rfc6455::ProtocolError;
    ///
    /// assert_eq!(ProtocolError::MaskedServerFrame.rfc_section(), "§5.1");
    /// assert_eq!(ProtocolError::InvalidDeflateData.rfc_section(), "§7.2.2"); // of RFC 7692
    /// // `Display` ends with both.
    /// assert!(ProtocolError::InvalidUtf8.to_string().ends_with("(RFC 6455 §8.1)"));
    /// ```
    pub fn rfc_section(&self) -> &'static str {
        match self {
            ProtocolError::ReservedBitsSet(_) => "§5.2",
            ProtocolError::ReservedOpcode(_) => "§5.2",
            ProtocolError::ControlFrameTooLong(_) => "§5.5",
            ProtocolError::FragmentedControlFrame => "§5.5",
            ProtocolError::UnmaskedClientFrame => "§5.1",
            ProtocolError::MaskedServerFrame => "§5.1",
            ProtocolError::PayloadLengthMsbSet => "§5.2",
            ProtocolError::NonMinimalLength => "§5.2",
            ProtocolError::UnexpectedContinuation => "§5.4",
            ProtocolError::ExpectedContinuation => "§5.4",
            ProtocolError::InvalidUtf8 => "§8.1",
            ProtocolError::CloseFrameOneByte => CloseFrameError::OneByte.rfc_section(),
            ProtocolError::InvalidCloseCode(code) => {
                CloseFrameError::InvalidCode(*code).rfc_section()
            }
            ProtocolError::InvalidCloseReason => CloseFrameError::InvalidReason.rfc_section(),
            ProtocolError::FrameTooBig { .. } => "§10.4",
            ProtocolError::MessageTooBig { .. } => "§10.4",
            ProtocolError::CompressedControlFrame => "§6.1",
            ProtocolError::CompressedContinuation => "§6.1",
            ProtocolError::InvalidDeflateData => "§7.2.2",
        }
    }
}

/// A bad Close payload fails the connection (RFC 6455 §7.1.7) as the variant of the
/// same name: `?` on [`CloseFrame::parse`](crate::CloseFrame::parse) in the connection.
///
/// ```
/// use rfc6455::{CloseFrameError, ProtocolError};
///
/// assert_eq!(ProtocolError::from(CloseFrameError::OneByte), ProtocolError::CloseFrameOneByte);
/// assert_eq!(ProtocolError::from(CloseFrameError::InvalidCode(5000)), ProtocolError::InvalidCloseCode(5000));
/// // The same words, the same close code.
/// let err = CloseFrameError::InvalidReason;
/// assert_eq!(err.to_string(), ProtocolError::from(err).to_string());
/// assert_eq!(err.close_code(), ProtocolError::from(err).close_code());
/// ```
impl From<CloseFrameError> for ProtocolError {
    fn from(err: CloseFrameError) -> ProtocolError {
        match err {
            CloseFrameError::OneByte => ProtocolError::CloseFrameOneByte,
            CloseFrameError::InvalidCode(code) => ProtocolError::InvalidCloseCode(code),
            CloseFrameError::InvalidReason => ProtocolError::InvalidCloseReason,
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::ReservedBitsSet(bits) => {
                write!(f, "reserved bits set ({bits:03b}) without an extension")
            }
            ProtocolError::ReservedOpcode(op) => write!(f, "reserved opcode {op:#x}"),
            ProtocolError::ControlFrameTooLong(len) => {
                write!(f, "control frame payload of {len} bytes (over 125)")
            }
            ProtocolError::FragmentedControlFrame => f.write_str("fragmented control frame"),
            ProtocolError::UnmaskedClientFrame => f.write_str("unmasked frame from a client"),
            ProtocolError::MaskedServerFrame => f.write_str("masked frame from a server"),
            ProtocolError::PayloadLengthMsbSet => {
                f.write_str("64-bit payload length with the most significant bit set")
            }
            ProtocolError::NonMinimalLength => {
                f.write_str("payload length not encoded in the minimal number of bytes")
            }
            ProtocolError::UnexpectedContinuation => {
                f.write_str("continuation frame with no message to continue")
            }
            ProtocolError::ExpectedContinuation => {
                f.write_str("new data frame inside a fragmented message")
            }
            ProtocolError::InvalidUtf8 => f.write_str("invalid UTF-8 in a text message"),
            // The Close payload rules are worded by `CloseFrameError`, once.
            ProtocolError::CloseFrameOneByte => CloseFrameError::OneByte.write_rule(f),
            ProtocolError::InvalidCloseCode(code) => {
                CloseFrameError::InvalidCode(*code).write_rule(f)
            }
            ProtocolError::InvalidCloseReason => CloseFrameError::InvalidReason.write_rule(f),
            ProtocolError::FrameTooBig { len, max } => {
                write!(f, "frame payload of {len} bytes exceeds the limit of {max}")
            }
            ProtocolError::MessageTooBig { len, max } => {
                write!(f, "message of {len} bytes exceeds the limit of {max}")
            }
            ProtocolError::CompressedControlFrame => {
                f.write_str("RSV1 (compressed) set on a control frame")
            }
            ProtocolError::CompressedContinuation => {
                f.write_str("RSV1 (compressed) set on a continuation frame")
            }
            ProtocolError::InvalidDeflateData => {
                f.write_str("compressed message is not valid DEFLATE data")
            }
        }?;
        write!(f, " ({} {})", self.rfc(), self.rfc_section())
    }
}

impl std::error::Error for ProtocolError {}

/// A send the protocol does not allow in the connection's current state.
///
/// ```
/// use rfc6455::{CloseCode, Connection, Role, SendError};
///
/// let mut conn = Connection::new(Role::Server);
/// conn.close(CloseCode::NORMAL, "bye").unwrap();
/// assert_eq!(conn.send_text("late"), Err(SendError::Closing));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError {
    /// A Close frame was already sent: no data frames may follow (RFC 6455 §5.5.1).
    Closing,
    /// A control frame payload over 125 bytes (RFC 6455 §5.5).
    ControlPayloadTooLong(usize),
    /// A close code that must not be sent (RFC 6455 §7.4.1).
    InvalidCloseCode(u16),
    /// A message started while a fragmented message is unfinished, or a continuation
    /// with no message started (RFC 6455 §5.4).
    FragmentOrder,
    /// A message compressed by the caller where this end may not send one: no
    /// permessage-deflate, or this end takes over context (RFC 7692 §7.1.1), so only
    /// its own compressor may compress.
    CompressionNotAgreed,
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Closing => f.write_str("a Close frame was already sent"),
            SendError::ControlPayloadTooLong(len) => {
                write!(f, "control frame payload of {len} bytes (max 125)")
            }
            SendError::InvalidCloseCode(code) => write!(f, "close code {code} cannot be sent"),
            SendError::FragmentOrder => {
                f.write_str("fragments must continue the unfinished message (RFC 6455 §5.4)")
            }
            SendError::CompressionNotAgreed => f.write_str(
                "a precompressed message needs permessage-deflate without context takeover (RFC 7692 §7.1.1)",
            ),
        }
    }
}

impl std::error::Error for SendError {}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Close payload error reads, closes and cites the same as a `ProtocolError`.
    #[test]
    fn close_frame_errors_convert_unchanged() {
        let cases = [
            (
                CloseFrameError::OneByte,
                "close payload of one byte (RFC 6455 §5.5.1)",
            ),
            (
                CloseFrameError::InvalidCode(1005),
                "close code 1005 is not allowed on the wire (RFC 6455 §7.4)",
            ),
            (
                CloseFrameError::InvalidReason,
                "close reason is not UTF-8 (RFC 6455 §5.5.1)",
            ),
        ];
        for (err, text) in cases {
            let protocol = ProtocolError::from(err);
            assert_eq!(err.to_string(), text);
            assert_eq!(protocol.to_string(), text);
            assert_eq!(protocol.close_code(), err.close_code());
            assert_eq!(protocol.rfc_section(), err.rfc_section());
        }
    }
}
