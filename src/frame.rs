//! The base framing protocol: frame headers (RFC 6455 §5.2).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-------+-+-------------+-------------------------------+
//! |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
//! |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
//! |N|V|V|V|       |S|             |   (if payload len==126/127)   |
//! | |1|2|3|       |K|             |                               |
//! +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
//! |     Extended payload length continued, if payload len == 127  |
//! + - - - - - - - - - - - - - - - +-------------------------------+
//! |                               |Masking-key, if MASK set to 1  |
//! +-------------------------------+-------------------------------+
//! | Masking-key (continued)       |          Payload Data         |
//! +-------------------------------- - - - - - - - - - - - - - - - +
//! ```
//!
//! [`FrameHeader::parse`] reads a header from the front of a byte slice without
//! consuming or allocating anything: it answers either with the header and its length
//! or with how many more bytes it needs. [`FrameHeader::encode`] writes one into a
//! 14-byte stack buffer. Which headers a receiver *accepts* (reserved bits and
//! opcodes, control frame rules, masking direction, the message order, the limits)
//! depends on its role, its extensions and the frames before: those rules are in
//! [`crate::rules`], one layer up ([`FrameHeader::check`] is defined there).

use crate::error::ProtocolError;
use std::fmt;

/// Which end of the connection this is. Clients mask what they send; servers require
/// masked frames and send unmasked ones (RFC 6455 §5.1).
///
/// ```
/// use rfc6455::{Connection, Role};
///
/// // RFC 6455 §5.1, §5.2: a client's frame has MASK set and a 4-byte key; a server's has neither.
/// let mut client = Connection::new(Role::Client);
/// client.send_binary(&[1]).unwrap();
/// assert_eq!(client.pending_output()[..2], [0x82, 0x80 | 1]);
/// assert_eq!(client.pending_output().len(), 2 + 4 + 1);
/// let mut server = Connection::new(Role::Server);
/// server.send_binary(&[1]).unwrap();
/// assert_eq!(server.pending_output(), [0x82, 0x01, 1]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The end that sent the opening handshake.
    Client,
    /// The end that accepted it.
    Server,
}

/// The longest frame header: 2 bytes, 8 of extended length, 4 of masking key.
pub const MAX_HEADER_LEN: usize = 14;

/// The longest control frame payload (RFC 6455 §5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// RSV1, which permessage-deflate names "Per-Message Compressed" (RFC 7692 §6).
pub(crate) const RSV1: u8 = 0b100;

/// A frame's opcode (RFC 6455 §5.2, §11.8).
///
/// ```
/// use rfc6455::OpCode;
///
/// assert_eq!(OpCode::from_bits(0x1), OpCode::Text);
/// assert!(OpCode::from_bits(0x9).is_control());
/// assert_eq!(OpCode::from_bits(0xb), OpCode::Reserved(0xb));
/// assert_eq!(OpCode::Pong.bits(), 0xa);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpCode {
    /// 0x0: continues a fragmented message (§5.4).
    Continuation,
    /// 0x1: a text frame, UTF-8 (§5.6).
    Text,
    /// 0x2: a binary frame (§5.6).
    Binary,
    /// 0x8: connection close (§5.5.1).
    Close,
    /// 0x9: ping (§5.5.2).
    Ping,
    /// 0xA: pong (§5.5.3).
    Pong,
    /// 0x3–0x7 (data) and 0xB–0xF (control): reserved for future use.
    Reserved(u8),
}

impl OpCode {
    /// The opcode of the low 4 bits of `bits`.
    ///
    /// ```
    /// use rfc6455::OpCode;
    ///
    /// // RFC 6455 §5.2: the first byte of a final text frame is 0x81; FIN and the RSV bits
    /// // are above the opcode, so the byte itself can be given.
    /// assert_eq!(OpCode::from_bits(0x81), OpCode::Text);
    /// assert_eq!(OpCode::from_bits(0x0b), OpCode::Reserved(0xb)); // §11.8: unassigned
    /// ```
    pub fn from_bits(bits: u8) -> OpCode {
        match bits & 0x0f {
            0x0 => OpCode::Continuation,
            0x1 => OpCode::Text,
            0x2 => OpCode::Binary,
            0x8 => OpCode::Close,
            0x9 => OpCode::Ping,
            0xa => OpCode::Pong,
            other => OpCode::Reserved(other),
        }
    }

    /// The 4-bit value on the wire.
    ///
    /// ```
    /// use rfc6455::OpCode;
    ///
    /// assert_eq!(OpCode::Close.bits(), 0x8);
    /// // With FIN (0x80) it makes the first byte of an unfragmented ping (RFC 6455 §5.2).
    /// assert_eq!(0x80 | OpCode::Ping.bits(), 0x89);
    /// ```
    pub fn bits(self) -> u8 {
        match self {
            OpCode::Continuation => 0x0,
            OpCode::Text => 0x1,
            OpCode::Binary => 0x2,
            OpCode::Close => 0x8,
            OpCode::Ping => 0x9,
            OpCode::Pong => 0xa,
            OpCode::Reserved(bits) => bits & 0x0f,
        }
    }

    /// Control opcodes have the high bit of the opcode set (§5.5).
    ///
    /// ```
    /// use rfc6455::OpCode;
    ///
    /// assert!(OpCode::Close.is_control() && OpCode::Ping.is_control() && OpCode::Pong.is_control());
    /// assert!(!OpCode::Text.is_control() && !OpCode::Continuation.is_control());
    /// // Reserved opcodes are control or data by the same bit: 0xB is a control opcode.
    /// assert!(OpCode::Reserved(0xb).is_control());
    /// assert!(!OpCode::Reserved(0x3).is_control());
    /// ```
    pub fn is_control(self) -> bool {
        self.bits() & 0x8 != 0
    }

    /// The RFC's name for the opcode.
    ///
    /// ```
    /// use rfc6455::OpCode;
    ///
    /// assert_eq!(OpCode::Continuation.name(), "continuation");
    /// assert_eq!(OpCode::Reserved(0xb).name(), "reserved control");
    /// // `Display` adds the wire value, as the trace and `rfc6455 decode` print it.
    /// assert_eq!(OpCode::Ping.to_string(), "ping (0x9)");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            OpCode::Continuation => "continuation",
            OpCode::Text => "text",
            OpCode::Binary => "binary",
            OpCode::Close => "close",
            OpCode::Ping => "ping",
            OpCode::Pong => "pong",
            OpCode::Reserved(b) if b & 0x8 != 0 => "reserved control",
            OpCode::Reserved(_) => "reserved data",
        }
    }
}

/// The start of a frame's one-line summary, shared by the connection trace and the
/// tap: `FIN=1 text (0x1) len=5 (7-bit)`, then ` RSV=100` when RSV bits are set.
pub(crate) fn write_summary(f: &mut fmt::Formatter<'_>, h: &FrameHeader) -> fmt::Result {
    let bits = match h.payload_len {
        0..=125 => 7,
        126..=65535 => 16,
        _ => 64,
    };
    write!(
        f,
        "FIN={} {} len={} ({bits}-bit)",
        u8::from(h.fin),
        h.opcode,
        h.payload_len
    )?;
    if h.rsv != 0 {
        write!(f, " RSV={:03b}", h.rsv)?;
    }
    Ok(())
}

/// ` mask=37fa213d`, or ` unmasked`.
pub(crate) fn write_mask(f: &mut fmt::Formatter<'_>, key: Option<[u8; 4]>) -> fmt::Result {
    match key {
        Some(k) => write!(f, " mask={:02x}{:02x}{:02x}{:02x}", k[0], k[1], k[2], k[3]),
        None => f.write_str(" unmasked"),
    }
}

impl fmt::Display for OpCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({:#x})", self.name(), self.bits())
    }
}

/// One frame header (RFC 6455 §5.2).
///
/// ```
/// use rfc6455::frame::{FrameHeader, Parsed};
/// use rfc6455::OpCode;
///
/// // A client's masked, final binary frame of 70,000 bytes: the 64-bit length (RFC 6455 §5.2).
/// let header = FrameHeader { fin: true, rsv: 0, opcode: OpCode::Binary, masking_key: Some([1, 2, 3, 4]), payload_len: 70_000 };
/// let (buf, len) = header.encode();
/// assert_eq!(buf[..2], [0x82, 0x80 | 127]);
/// assert_eq!(FrameHeader::parse(&buf[..len]), Ok(Parsed::Complete(header, 14)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// FIN: this is the final fragment of a message.
    pub fin: bool,
    /// RSV1, RSV2, RSV3 as `0b0RRR` (RSV1 is the high bit): zero unless an extension
    /// defines them (permessage-deflate uses RSV1).
    pub rsv: u8,
    /// The opcode.
    pub opcode: OpCode,
    /// The masking key, present iff the MASK bit is set.
    pub masking_key: Option<[u8; 4]>,
    /// The payload length in bytes.
    pub payload_len: u64,
}

/// The outcome of parsing a header from a prefix of the input.
///
/// ```
/// use rfc6455::frame::{FrameHeader, Parsed};
///
/// // A masked header with a 16-bit length: 2 + 2 + 4 bytes (RFC 6455 §5.2).
/// let header = [0x82, 0xfe, 0x01, 0x00, 1, 2, 3, 4];
/// assert_eq!(FrameHeader::parse(&header[..1]), Ok(Parsed::Incomplete(1)));
/// // The second byte tells how long the header is: 6 more bytes are needed.
/// assert_eq!(FrameHeader::parse(&header[..2]), Ok(Parsed::Incomplete(6)));
/// assert!(matches!(FrameHeader::parse(&header), Ok(Parsed::Complete(_, 8))));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// A whole header: it and the number of bytes it took.
    Complete(FrameHeader, usize),
    /// Not enough bytes yet: at least this many more are needed.
    Incomplete(usize),
}

impl FrameHeader {
    /// Parses the header at the front of `buf`, consuming nothing.
    ///
    /// Fails only on what cannot be a valid header in any context: a 64-bit length with
    /// its most significant bit set, and a length not in its minimal encoding (both
    /// §5.2). Every other rule depends on the role, the extensions and the frames
    /// before: see [`FrameRules`](crate::rules::FrameRules).
    ///
    /// ```
    /// use rfc6455::frame::{FrameHeader, Parsed};
    /// use rfc6455::OpCode;
    ///
    /// // RFC 6455 §5.7: a single-frame masked text message "Hello".
    /// let frame = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
    /// let Parsed::Complete(header, len) = FrameHeader::parse(&frame).unwrap() else { panic!() };
    /// assert_eq!(len, 6);
    /// assert!(header.fin);
    /// assert_eq!(header.opcode, OpCode::Text);
    /// assert_eq!(header.masking_key, Some([0x37, 0xfa, 0x21, 0x3d]));
    /// assert_eq!(header.payload_len, 5);
    ///
    /// assert_eq!(FrameHeader::parse(&frame[..3]).unwrap(), Parsed::Incomplete(3));
    /// ```
    #[inline]
    pub fn parse(buf: &[u8]) -> Result<Parsed, ProtocolError> {
        let [b0, b1, rest @ ..] = buf else {
            return Ok(Parsed::Incomplete(2 - buf.len()));
        };
        let masked = b1 & 0x80 != 0;
        let len7 = b1 & 0x7f;
        let ext_len = match len7 {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let header_len = 2 + ext_len + if masked { 4 } else { 0 };
        if buf.len() < header_len {
            return Ok(Parsed::Incomplete(header_len - buf.len()));
        }
        let payload_len = match len7 {
            126 => {
                let len = u16::from_be_bytes([rest[0], rest[1]]);
                if len < 126 {
                    return Err(ProtocolError::NonMinimalLength);
                }
                u64::from(len)
            }
            127 => {
                let mut bytes = [0; 8];
                bytes.copy_from_slice(&rest[..8]);
                let len = u64::from_be_bytes(bytes);
                if len >> 63 != 0 {
                    return Err(ProtocolError::PayloadLengthMsbSet);
                }
                if len <= u64::from(u16::MAX) {
                    return Err(ProtocolError::NonMinimalLength);
                }
                len
            }
            short => u64::from(short),
        };
        let masking_key = masked.then(|| {
            let k = &rest[ext_len..ext_len + 4];
            [k[0], k[1], k[2], k[3]]
        });
        Ok(Parsed::Complete(
            FrameHeader {
                fin: b0 & 0x80 != 0,
                rsv: (b0 >> 4) & 0x07,
                opcode: OpCode::from_bits(*b0),
                masking_key,
                payload_len,
            },
            header_len,
        ))
    }

    /// The number of bytes [`encode`](Self::encode) writes for this header.
    ///
    /// ```
    /// use rfc6455::frame::FrameHeader;
    /// use rfc6455::OpCode;
    ///
    /// let header = |payload_len, masking_key| FrameHeader { fin: true, rsv: 0, opcode: OpCode::Binary, masking_key, payload_len };
    /// // RFC 6455 §5.2: 7-bit, 16-bit and 64-bit lengths, plus 4 bytes of masking key.
    /// assert_eq!(header(125, None).encoded_len(), 2);
    /// assert_eq!(header(126, None).encoded_len(), 4);
    /// assert_eq!(header(65_536, None).encoded_len(), 10);
    /// assert_eq!(header(65_536, Some([0; 4])).encoded_len(), 14);
    /// ```
    pub fn encoded_len(&self) -> usize {
        let ext = match self.payload_len {
            0..=125 => 0,
            126..=0xffff => 2,
            _ => 8,
        };
        2 + ext + if self.masking_key.is_some() { 4 } else { 0 }
    }

    /// Encodes the header into a stack buffer, using the minimal length encoding;
    /// returns the buffer and the number of bytes used.
    ///
    /// ```
    /// use rfc6455::frame::FrameHeader;
    /// use rfc6455::OpCode;
    ///
    /// // RFC 6455 §5.7: the header of a 256-byte unmasked binary frame.
    /// let header = FrameHeader { fin: true, rsv: 0, opcode: OpCode::Binary, masking_key: None, payload_len: 256 };
    /// let (buf, len) = header.encode();
    /// assert_eq!(&buf[..len], &[0x82, 0x7e, 0x01, 0x00]);
    /// ```
    pub fn encode(&self) -> ([u8; MAX_HEADER_LEN], usize) {
        let mut buf = [0u8; MAX_HEADER_LEN];
        buf[0] = (u8::from(self.fin) << 7) | ((self.rsv & 0x07) << 4) | self.opcode.bits();
        let mask_bit = if self.masking_key.is_some() { 0x80 } else { 0 };
        let mut len = 2;
        match self.payload_len {
            short @ 0..=125 => buf[1] = mask_bit | short as u8,
            medium @ 126..=0xffff => {
                buf[1] = mask_bit | 126;
                buf[2..4].copy_from_slice(&(medium as u16).to_be_bytes());
                len += 2;
            }
            long => {
                buf[1] = mask_bit | 127;
                buf[2..10].copy_from_slice(&long.to_be_bytes());
                len += 8;
            }
        }
        if let Some(key) = self.masking_key {
            buf[len..len + 4].copy_from_slice(&key);
            len += 4;
        }
        (buf, len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(opcode: OpCode, len: u64) -> FrameHeader {
        FrameHeader {
            fin: true,
            rsv: 0,
            opcode,
            masking_key: None,
            payload_len: len,
        }
    }

    #[test]
    fn length_encodings_at_their_boundaries() {
        for (len, width) in [(0, 2), (125, 2), (126, 4), (65535, 4), (65536, 10)] {
            let h = header(OpCode::Binary, len);
            let (buf, n) = h.encode();
            assert_eq!(n, width, "len {len}");
            assert_eq!(n, h.encoded_len());
            assert_eq!(FrameHeader::parse(&buf[..n]), Ok(Parsed::Complete(h, n)));
        }
    }

    #[test]
    fn incomplete_reports_missing_bytes_at_every_prefix() {
        let mut h = header(OpCode::Binary, 70000);
        h.masking_key = Some([1, 2, 3, 4]);
        let (buf, n) = h.encode();
        assert_eq!(FrameHeader::parse(&[]), Ok(Parsed::Incomplete(2)));
        assert_eq!(FrameHeader::parse(&buf[..1]), Ok(Parsed::Incomplete(1)));
        for cut in 2..n {
            assert_eq!(
                FrameHeader::parse(&buf[..cut]),
                Ok(Parsed::Incomplete(n - cut))
            );
        }
    }

    #[test]
    fn rejects_length_msb_and_non_minimal_lengths() {
        let mut long = [0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            FrameHeader::parse(&long),
            Err(ProtocolError::PayloadLengthMsbSet)
        );
        long[2] = 0;
        long[9] = 5;
        assert_eq!(
            FrameHeader::parse(&long),
            Err(ProtocolError::NonMinimalLength)
        );
        assert_eq!(
            FrameHeader::parse(&[0x82, 0x7e, 0x00, 0x7d]),
            Err(ProtocolError::NonMinimalLength)
        );
    }
}
