//! A frame inspector for people learning the wire protocol: bytes in, an annotated,
//! bit-by-bit account of every frame out, with each rule the bytes break and the RFC
//! section that sets it.
//!
//! It is what `rfc6455 decode` and `rfc6455 encode` print. Unlike [`Connection`], it does
//! not stop at the first violation: it reports it and reads on as long as the frame
//! boundaries are still known.
//!
//! ```
//! use rfc6455::learn::inspect::inspect;
//!
//! // RFC 6455 §5.7: a masked "Hello" from a client, then a ping over 125 bytes.
//! let mut bytes = vec![0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
//! bytes.extend([0x89, 0xfe, 0x00, 0x7e, 0, 0, 0, 0]);
//! let report = inspect(&bytes, None);
//! assert!(report.contains("unmasked: \"Hello\""));
//! assert!(report.contains("control frame payload of 126 bytes (over 125) (RFC 6455 §5.5)"));
//! assert!(report.contains("126 more bytes needed"));
//! ```
//!
//! [`Connection`]: crate::Connection

use crate::close::CloseFrame;
use crate::deflate::codec::Inflater;
use crate::deflate::Negotiated;
use crate::error::ProtocolError;
use crate::frame::{FrameHeader, OpCode, Parsed};
use crate::learn::stream::{parse_lenient, StreamRules, TextCheck};
use crate::mask::apply_mask;
use crate::Role;
use std::fmt::Write as _;

/// How many payload bytes are shown in hex, and text characters quoted.
const PREVIEW_BYTES: usize = 32;
const PREVIEW_CHARS: usize = 120;

/// Describes every frame in `bytes`, as sent by `sender` (`None`: decided from the
/// first frame's MASK bit, since only clients mask, RFC 6455 §5.3).
///
/// ```
/// use rfc6455::learn::inspect::inspect;
/// use rfc6455::Role;
///
/// // A server's Close 1000 (RFC 6455 §5.5.1): unmasked, so read as sent by a server.
/// let report = inspect(&[0x88, 0x02, 0x03, 0xe8], None);
/// assert!(report.contains("close code 1000 (normal closure)"));
/// assert!(report.ends_with("4 bytes, 1 frame, 0 violations\n"));
/// // Said to come from a client, an unmasked frame breaks §5.1.
/// let report = inspect(&[0x81, 0x00], Some(Role::Client));
/// assert!(report.contains("✗ unmasked frame from a client (RFC 6455 §5.1)"));
/// ```
pub fn inspect(bytes: &[u8], sender: Option<Role>) -> String {
    inspect_with(bytes, sender, false)
}

/// [`inspect`], and with `deflate` the frames are read as permessage-deflate traffic
/// (RFC 7692): RSV1 marks a compressed message, whose payload is inflated and shown
/// both ways (context carried over from message to message, as by default).
///
/// ```
/// use rfc6455::learn::inspect::inspect_with;
///
/// // RFC 7692 §7.2.3.1: "Hello" compressed.
/// let report = inspect_with(&[0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], None, true);
/// assert!(report.contains("inflated: 7 -> 5 bytes: \"Hello\""));
/// assert!(report.contains("0 violations"));
/// ```
pub fn inspect_with(bytes: &[u8], sender: Option<Role>, deflate: bool) -> String {
    let mut inspector = Inspector {
        out: String::new(),
        sender,
        rules: StreamRules::new(deflate),
        text: TextCheck::new(),
        violations: 0,
        inflater: deflate.then(|| Inflater::new(&Negotiated::default())),
        compressed: None,
    };
    let mut offset = 0;
    let mut frames = 0;
    while offset < bytes.len() {
        frames += 1;
        match inspector.frame(frames, offset, &bytes[offset..]) {
            Some(len) => offset += len,
            None => break,
        }
    }
    if bytes.is_empty() {
        inspector.out.push_str("no bytes\n");
    }
    let violations = inspector.violations;
    let _ = writeln!(
        inspector.out,
        "{} byte{}, {} frame{}, {} violation{}",
        bytes.len(),
        plural(bytes.len()),
        frames,
        plural(frames),
        violations,
        plural(violations)
    );
    inspector.out
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

struct Inspector {
    out: String,
    sender: Option<Role>,
    /// The frame rules and the message order (RFC 6455 §5, RFC 7692 §6.1).
    rules: StreamRules,
    /// The UTF-8 check of the text message in progress (RFC 6455 §8.1).
    text: TextCheck,
    violations: usize,
    /// With `--deflate`: the inflate state, carried from message to message.
    inflater: Option<Inflater>,
    /// The compressed message in progress: its compressed size so far and what it
    /// inflated to.
    compressed: Option<(usize, Vec<u8>)>,
}

/// The most a compressed message is inflated to, for a report.
const MAX_INFLATED: usize = 16 << 20;

impl Inspector {
    fn violation(&mut self, err: impl std::fmt::Display) {
        self.violations += 1;
        let _ = writeln!(self.out, "  ✗ {err}");
    }

    /// Describes the frame at the start of `buf`; returns its length, or `None` when
    /// it is incomplete or its length cannot be known.
    fn frame(&mut self, index: usize, offset: usize, buf: &[u8]) -> Option<usize> {
        let _ = writeln!(self.out, "frame {index} at byte {offset}:");
        let (header, header_len) = match parse_lenient(buf) {
            Ok(Parsed::Complete(header, len)) => (header, len),
            Ok(Parsed::Incomplete(missing)) => {
                self.bits(buf);
                let _ = writeln!(
                    self.out,
                    "  incomplete header: {missing} more byte{} needed",
                    plural(missing)
                );
                return None;
            }
            Err(err) => {
                self.bits(buf);
                self.violation(err);
                let _ = writeln!(
                    self.out,
                    "  (the frame's length is unknown: decoding stops)"
                );
                return None;
            }
        };
        self.bits(&buf[..header_len]);
        if let Err(ProtocolError::NonMinimalLength) = FrameHeader::parse(buf) {
            self.violation(ProtocolError::NonMinimalLength);
        }

        let sender = *self.sender.get_or_insert(if header.masking_key.is_some() {
            Role::Client
        } else {
            Role::Server
        });
        let receiver = match sender {
            Role::Client => Role::Server,
            Role::Server => Role::Client,
        };
        self.rules(&header, receiver);

        let payload_len = header.payload_len as usize;
        let available = buf.len() - header_len;
        if available < payload_len {
            let _ = writeln!(
                self.out,
                "  incomplete payload: {available} of {payload_len} bytes present, {} more bytes needed",
                payload_len - available
            );
            return None;
        }
        let raw = &buf[header_len..header_len + payload_len];
        let mut payload = raw.to_vec();
        if let Some(key) = header.masking_key {
            apply_mask(&mut payload, key, 0);
            if !raw.is_empty() {
                let _ = writeln!(self.out, "  payload, masked: {}", hex_preview(raw));
            }
        }
        self.payload(&header, &payload);
        Some(header_len + payload_len)
    }

    /// The header, byte by byte and bit by bit.
    fn bits(&mut self, header: &[u8]) {
        let out = &mut self.out;
        if let Some(&b0) = header.first() {
            let opcode = OpCode::from_bits(b0);
            let _ = writeln!(
                out,
                "  {b0:02x}  {:08b}  FIN={} RSV1={} RSV2={} RSV3={} opcode={:#x} {}",
                b0,
                b0 >> 7,
                (b0 >> 6) & 1,
                (b0 >> 5) & 1,
                (b0 >> 4) & 1,
                b0 & 0x0f,
                opcode.name()
            );
        }
        let Some(&b1) = header.get(1) else { return };
        let len7 = b1 & 0x7f;
        let length = match len7 {
            126 => "126: a 16-bit length follows".to_string(),
            127 => "127: a 64-bit length follows".to_string(),
            n => format!("{n} (7-bit length)"),
        };
        let _ = writeln!(
            out,
            "  {b1:02x}  {b1:08b}  MASK={} payload length {length}",
            b1 >> 7
        );
        let ext = match len7 {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let ext_bytes = &header[2.min(header.len())..(2 + ext).min(header.len())];
        if ext > 0 && ext_bytes.len() == ext {
            let value = ext_bytes.iter().fold(0u128, |v, b| v << 8 | u128::from(*b));
            let _ = writeln!(
                out,
                "  {}  extended payload length = {value} ({}-bit)",
                hex(ext_bytes),
                ext * 8
            );
        }
        if b1 & 0x80 != 0 {
            let key = &header[(2 + ext).min(header.len())..(6 + ext).min(header.len())];
            if key.len() == 4 {
                let _ = writeln!(out, "  {}  masking key", hex(key));
            }
        }
    }

    /// The rules of RFC 6455 §5 that the header and the frames before it decide.
    fn rules(&mut self, header: &FrameHeader, receiver: Role) {
        let mut found = Vec::new();
        let compressed = self.rules.check(header, receiver, &mut found);
        for violation in found {
            self.violation(violation);
        }
        if matches!(header.opcode, OpCode::Text | OpCode::Binary) {
            self.compressed = compressed.then(|| (0, Vec::new()));
            self.text.reset();
        }
    }

    fn payload(&mut self, header: &FrameHeader, payload: &[u8]) {
        let message = self.rules.message(header);
        let position = match (header.opcode, header.fin) {
            (OpCode::Continuation, true) => "last fragment of a message",
            (OpCode::Continuation, false) => "middle fragment of a message",
            (OpCode::Text | OpCode::Binary, false) => "first fragment of a message",
            (OpCode::Text | OpCode::Binary, true) => "a whole message",
            (OpCode::Reserved(_), _) => "a frame with a reserved opcode",
            _ => "control frame",
        };
        let _ = writeln!(self.out, "  {position}, {} payload bytes", payload.len());
        if message.is_some() && self.compressed.is_some() {
            self.inflate(header, payload, message == Some(OpCode::Text));
            self.rules.end_frame(header);
            return;
        }
        match header.opcode {
            OpCode::Close => self.close_payload(payload),
            _ if message == Some(OpCode::Text) => {
                let mut found = Vec::new();
                self.text.feed(payload, &mut found);
                if header.fin {
                    self.text.finish(&mut found);
                }
                for violation in found {
                    self.violation(violation);
                }
                self.show(payload);
            }
            _ => self.show(payload),
        }
        self.rules.end_frame(header);
    }

    /// A piece of a compressed message (RFC 7692 §7.2.2): shown as it came, inflated
    /// with the tail appended at the message's end, then the message shown.
    fn inflate(&mut self, header: &FrameHeader, payload: &[u8], text: bool) {
        let _ = writeln!(self.out, "  compressed: {}", hex_preview(payload));
        let (Some(inflater), Some((size, data))) = (&mut self.inflater, &mut self.compressed)
        else {
            return;
        };
        *size += payload.len();
        let mut ignore = |_: &[u8]| true;
        let mut result = inflater.inflate(payload, data, MAX_INFLATED, &mut ignore);
        if result.is_ok() && header.fin {
            result = inflater.finish(data, MAX_INFLATED, &mut ignore);
        }
        if result.is_err() {
            inflater.end_message();
            self.compressed = None;
            self.violation(ProtocolError::InvalidDeflateData);
            return;
        }
        if !header.fin {
            return;
        }
        let (size, data) = self.compressed.take().expect("checked above");
        let shown = preview(&data);
        let _ = writeln!(
            self.out,
            "  inflated: {size} -> {} bytes: {shown}",
            data.len()
        );
        if text && std::str::from_utf8(&data).is_err() {
            self.violation(ProtocolError::InvalidUtf8);
        }
    }

    fn close_payload(&mut self, payload: &[u8]) {
        match CloseFrame::parse(payload) {
            Ok(None) => self.out.push_str("  no status code (the peer sees 1005)\n"),
            Ok(Some(frame)) => {
                let _ = writeln!(self.out, "  close code {}", frame.code);
                if !frame.reason.is_empty() {
                    let _ = writeln!(self.out, "  reason {:?}", frame.reason);
                }
            }
            Err(err) => {
                if payload.len() >= 2 {
                    let code = crate::CloseCode(u16::from_be_bytes([payload[0], payload[1]]));
                    let _ = writeln!(self.out, "  close code {code}");
                }
                self.violation(ProtocolError::from(err));
            }
        }
    }

    /// The unmasked payload: as text when it is UTF-8, else in hex.
    fn show(&mut self, payload: &[u8]) {
        if payload.is_empty() {
            return;
        }
        let _ = writeln!(self.out, "  unmasked: {}", preview(payload));
    }
}

/// Bytes as quoted text when they are UTF-8, else in hex; cut to a preview.
fn preview(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) if !text.is_empty() => {
            let shown: String = text.chars().take(PREVIEW_CHARS).collect();
            let more = if shown.len() < text.len() { "…" } else { "" };
            format!("{shown:?}{more}")
        }
        _ => hex_preview(bytes),
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            s.push(' ');
        }
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn hex_preview(bytes: &[u8]) -> String {
    if bytes.len() <= PREVIEW_BYTES {
        hex(bytes)
    } else {
        format!(
            "{} … ({} more bytes)",
            hex(&bytes[..PREVIEW_BYTES]),
            bytes.len() - PREVIEW_BYTES
        )
    }
}

/// Parses hex digits, ignoring whitespace, commas, colons and `0x` prefixes, so that
/// bytes pasted from a capture or from the RFC work as they are.
///
/// ```
/// use rfc6455::learn::inspect::parse_hex;
///
/// assert_eq!(parse_hex("0x81 0x05, 48:65 6c6c6f"), Ok(vec![0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]));
/// assert!(parse_hex("8").is_err());
/// ```
pub fn parse_hex(text: &str) -> Result<Vec<u8>, String> {
    let cleaned = text.replace("0x", "").replace("0X", "");
    let digits: Vec<u8> = cleaned
        .bytes()
        .filter(|b| !b.is_ascii_whitespace() && !matches!(b, b',' | b':'))
        .collect();
    if digits.len() % 2 != 0 {
        return Err(format!(
            "odd number of hex digits ({}): each byte is two digits",
            digits.len()
        ));
    }
    digits
        .chunks(2)
        .map(|pair| {
            let s = std::str::from_utf8(pair).map_err(|_| "not hex".to_string())?;
            u8::from_str_radix(s, 16).map_err(|_| format!("{s:?} is not a hex byte"))
        })
        .collect()
}
