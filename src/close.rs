//! Close codes and the Close frame payload (RFC 6455 §5.5.1, §7.4).

use std::fmt;

/// A close status code (RFC 6455 §7.4).
///
/// ```
/// use rfc6455::CloseCode;
///
/// assert!(CloseCode::NORMAL.is_valid_on_wire());
/// assert!(CloseCode(4000).is_valid_on_wire()); // private use, §7.4.2
/// assert!(!CloseCode::NO_STATUS_RECEIVED.is_valid_on_wire()); // 1005: never sent, §7.4.1
/// assert!(!CloseCode(2000).is_valid_on_wire()); // reserved for future RFCs
/// assert_eq!(CloseCode::MESSAGE_TOO_BIG.meaning(), "message too big");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: the purpose of the connection was fulfilled.
    pub const NORMAL: CloseCode = CloseCode(1000);
    /// 1001: the endpoint is going away (server shutdown, page navigated away).
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    /// 1002: the peer broke the protocol.
    pub const PROTOCOL_ERROR: CloseCode = CloseCode(1002);
    /// 1003: a data type the endpoint cannot accept.
    pub const UNSUPPORTED_DATA: CloseCode = CloseCode(1003);
    /// 1005: reserved: reported locally when a Close frame had no code. Never sent.
    pub const NO_STATUS_RECEIVED: CloseCode = CloseCode(1005);
    /// 1006: reserved: reported locally when the connection dropped without a Close
    /// frame. Never sent.
    pub const ABNORMAL_CLOSURE: CloseCode = CloseCode(1006);
    /// 1007: message data inconsistent with its type (e.g. invalid UTF-8 in text).
    pub const INVALID_PAYLOAD: CloseCode = CloseCode(1007);
    /// 1008: a message violates the endpoint's policy.
    pub const POLICY_VIOLATION: CloseCode = CloseCode(1008);
    /// 1009: a message too big to process.
    pub const MESSAGE_TOO_BIG: CloseCode = CloseCode(1009);
    /// 1010: the client expected the server to negotiate an extension.
    pub const MANDATORY_EXTENSION: CloseCode = CloseCode(1010);
    /// 1011: the server hit an unexpected condition.
    pub const INTERNAL_ERROR: CloseCode = CloseCode(1011);
    /// 1012: the service is restarting (IANA registry).
    pub const SERVICE_RESTART: CloseCode = CloseCode(1012);
    /// 1013: try again later, e.g. the server is overloaded (IANA registry).
    pub const TRY_AGAIN_LATER: CloseCode = CloseCode(1013);
    /// 1014: a gateway got an invalid response upstream (IANA registry).
    pub const BAD_GATEWAY: CloseCode = CloseCode(1014);
    /// 1015: reserved: reported locally when the TLS handshake failed. Never sent.
    pub const TLS_HANDSHAKE: CloseCode = CloseCode(1015);

    /// May this code appear in a Close frame on the wire?
    ///
    /// RFC 6455 §7.4.1 defines 1000–1003 and 1007–1011, and reserves 1004, 1005, 1006
    /// and 1015 (the last three are for local reporting only); 1012–1014 were
    /// registered later with IANA (§11.7); 1016–2999 are reserved for future RFCs;
    /// 3000–3999 are registered by libraries and 4000–4999 are private (§7.4.2).
    /// Anything else, below 1000 or from 5000, is invalid.
    ///
    /// ```
    /// use rfc6455::CloseCode;
    ///
    /// assert!(CloseCode::TRY_AGAIN_LATER.is_valid_on_wire()); // 1013, IANA registry
    /// assert!(CloseCode(3000).is_valid_on_wire()); // registered for libraries (§7.4.2)
    /// assert!(!CloseCode::ABNORMAL_CLOSURE.is_valid_on_wire()); // 1006: local only (§7.4.1)
    /// assert!(!CloseCode(999).is_valid_on_wire()); // below 1000: unused (§7.4.2)
    /// ```
    pub fn is_valid_on_wire(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }

    /// A short description of the code, from RFC 6455 §7.4 and the IANA registry.
    ///
    /// ```
    /// use rfc6455::CloseCode;
    ///
    /// assert_eq!(CloseCode::GOING_AWAY.meaning(), "going away");
    /// assert_eq!(CloseCode(4001).meaning(), "private use"); // RFC 6455 §7.4.2
    /// // `Display` puts the number first.
    /// assert_eq!(CloseCode::NORMAL.to_string(), "1000 (normal closure)");
    /// ```
    pub fn meaning(self) -> &'static str {
        match self.0 {
            1000 => "normal closure",
            1001 => "going away",
            1002 => "protocol error",
            1003 => "unsupported data",
            1004 => "reserved",
            1005 => "no status received (never sent on the wire)",
            1006 => "abnormal closure (never sent on the wire)",
            1007 => "invalid frame payload data",
            1008 => "policy violation",
            1009 => "message too big",
            1010 => "mandatory extension",
            1011 => "internal error",
            1012 => "service restart",
            1013 => "try again later",
            1014 => "bad gateway",
            1015 => "TLS handshake failure (never sent on the wire)",
            1016..=2999 => "reserved for future RFCs (invalid on the wire)",
            3000..=3999 => "registered for libraries and frameworks",
            4000..=4999 => "private use",
            _ => "invalid (outside the ranges of RFC 6455 §7.4)",
        }
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.0, self.meaning())
    }
}

impl From<u16> for CloseCode {
    fn from(code: u16) -> Self {
        CloseCode(code)
    }
}

/// The payload of a Close frame that carries a status code (RFC 6455 §5.5.1).
///
/// A Close frame without a payload has no code and no reason; the API shows it as
/// `None` rather than inventing a 1005.
///
/// ```
/// use rfc6455::{CloseCode, CloseFrame};
///
/// let frame = CloseFrame::parse(&[0x03, 0xe8, b'b', b'y', b'e']).unwrap().unwrap();
/// assert_eq!(frame.code, CloseCode::NORMAL);
/// assert_eq!(frame.reason, "bye");
/// assert_eq!(CloseFrame::parse(&[]).unwrap(), None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseFrame {
    /// The status code (RFC 6455 §7.4).
    pub code: CloseCode,
    /// The reason, UTF-8, at most 123 bytes on the wire.
    pub reason: String,
}

/// The largest close reason that fits in a control frame: 125 bytes minus the code.
pub const MAX_CLOSE_REASON: usize = 123;

impl CloseFrame {
    /// Parses and validates a received Close payload (RFC 6455 §5.5.1, §7.4).
    ///
    /// Empty → `Ok(None)`. One byte, or a code that must not appear on the wire →
    /// 1002; a reason that is not UTF-8 → 1007. The error converts into the
    /// [`ProtocolError`](crate::ProtocolError) that fails the connection.
    ///
    /// ```
    /// use rfc6455::{CloseCode, CloseFrame, CloseFrameError, ProtocolError};
    ///
    /// assert_eq!(CloseFrame::parse(&[0x03]), Err(CloseFrameError::OneByte));
    /// // 1005 means "no code" locally and may not be sent (RFC 6455 §7.4.1).
    /// assert_eq!(CloseFrame::parse(&[0x03, 0xed]), Err(CloseFrameError::InvalidCode(1005)));
    /// // A reason that is not UTF-8 fails the connection with 1007.
    /// let err = CloseFrame::parse(&[0x03, 0xe8, 0xff]).unwrap_err();
    /// assert_eq!(err.close_code(), CloseCode::INVALID_PAYLOAD);
    /// assert_eq!(ProtocolError::from(err), ProtocolError::InvalidCloseReason);
    /// ```
    pub fn parse(payload: &[u8]) -> Result<Option<CloseFrame>, CloseFrameError> {
        match payload {
            [] => Ok(None),
            [_] => Err(CloseFrameError::OneByte),
            [hi, lo, reason @ ..] => {
                let code = CloseCode(u16::from_be_bytes([*hi, *lo]));
                if !code.is_valid_on_wire() {
                    return Err(CloseFrameError::InvalidCode(code.0));
                }
                // The whole reason is at hand: no need for the incremental validator.
                let reason =
                    std::str::from_utf8(reason).map_err(|_| CloseFrameError::InvalidReason)?;
                Ok(Some(CloseFrame {
                    code,
                    reason: reason.to_string(),
                }))
            }
        }
    }

    /// Appends the wire form (code, then reason) to `out`.
    ///
    /// ```
    /// use rfc6455::{CloseCode, CloseFrame};
    ///
    /// let mut payload = Vec::new();
    /// CloseFrame::encode_payload(CloseCode::GOING_AWAY, "restart", &mut payload);
    /// // RFC 6455 §5.5.1: a 2-byte unsigned integer in network byte order, then the reason.
    /// assert_eq!(payload[..2], [0x03, 0xe9]);
    /// assert_eq!(&payload[2..], b"restart");
    /// ```
    pub fn encode_payload(code: CloseCode, reason: &str, out: &mut Vec<u8>) {
        out.extend_from_slice(&code.0.to_be_bytes());
        out.extend_from_slice(reason.as_bytes());
    }
}

/// A received Close payload that breaks RFC 6455 §5.5.1 or §7.4: what
/// [`CloseFrame::parse`] refuses. It converts into the
/// [`ProtocolError`](crate::ProtocolError) of the same name, which fails the connection
/// with [`close_code`](Self::close_code).
///
/// ```
/// use rfc6455::{CloseCode, CloseFrame, CloseFrameError};
///
/// let err = CloseFrame::parse(&[0x03, 0xee]).unwrap_err(); // 1006: local only
/// assert_eq!(err, CloseFrameError::InvalidCode(1006));
/// assert_eq!(err.close_code(), CloseCode::PROTOCOL_ERROR);
/// assert_eq!(err.to_string(), "close code 1006 is not allowed on the wire (RFC 6455 §7.4)");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseFrameError {
    /// A payload of one byte: too short for a code (§5.5.1).
    OneByte,
    /// A code that must not appear on the wire (§7.4).
    InvalidCode(u16),
    /// A reason that is not UTF-8 (§5.5.1).
    InvalidReason,
}

impl CloseFrameError {
    /// The status code of the Close frame that answers it (RFC 6455 §7.4.1): 1007 for
    /// a reason that is not UTF-8, 1002 for the rest.
    ///
    /// ```
    /// use rfc6455::{CloseCode, CloseFrameError};
    ///
    /// assert_eq!(CloseFrameError::OneByte.close_code(), CloseCode::PROTOCOL_ERROR);
    /// assert_eq!(CloseFrameError::InvalidReason.close_code(), CloseCode::INVALID_PAYLOAD);
    /// ```
    pub fn close_code(self) -> CloseCode {
        match self {
            CloseFrameError::OneByte | CloseFrameError::InvalidCode(_) => CloseCode::PROTOCOL_ERROR,
            CloseFrameError::InvalidReason => CloseCode::INVALID_PAYLOAD,
        }
    }

    /// The section of RFC 6455 that states the rule.
    ///
    /// ```
    /// use rfc6455::CloseFrameError;
    ///
    /// assert_eq!(CloseFrameError::InvalidCode(999).rfc_section(), "§7.4");
    /// assert_eq!(CloseFrameError::InvalidReason.rfc_section(), "§5.5.1");
    /// ```
    pub fn rfc_section(self) -> &'static str {
        match self {
            CloseFrameError::OneByte | CloseFrameError::InvalidReason => "§5.5.1",
            CloseFrameError::InvalidCode(_) => "§7.4",
        }
    }

    /// The rule broken, without its section: what [`Display`](fmt::Display) shows before
    /// `(RFC 6455 §…)`, and [`ProtocolError`](crate::ProtocolError) too.
    pub(crate) fn write_rule(self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseFrameError::OneByte => f.write_str("close payload of one byte"),
            CloseFrameError::InvalidCode(code) => {
                write!(f, "close code {code} is not allowed on the wire")
            }
            CloseFrameError::InvalidReason => f.write_str("close reason is not UTF-8"),
        }
    }
}

impl fmt::Display for CloseFrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_rule(f)?;
        write!(f, " (RFC 6455 {})", self.rfc_section())
    }
}

impl std::error::Error for CloseFrameError {}

/// `text` cut to at most `max` bytes on a character boundary.
pub(crate) fn truncate_utf8(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_validity_by_range() {
        let valid: Vec<u16> = (0..=u16::MAX)
            .filter(|&c| CloseCode(c).is_valid_on_wire())
            .collect();
        assert_eq!(valid.len(), 4 + 8 + 2000);
        for code in [
            0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
        ] {
            assert!(!CloseCode(code).is_valid_on_wire(), "{code}");
        }
        for code in [
            1000, 1001, 1002, 1003, 1007, 1011, 1012, 1014, 3000, 3999, 4000, 4999,
        ] {
            assert!(CloseCode(code).is_valid_on_wire(), "{code}");
        }
    }

    #[test]
    fn truncation_keeps_characters_whole() {
        assert_eq!(truncate_utf8("héllo", 2), "h");
        assert_eq!(truncate_utf8("héllo", 3), "hé");
        assert_eq!(truncate_utf8("abc", 10), "abc");
    }
}
