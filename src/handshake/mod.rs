//! The opening handshake (RFC 6455 §4): an HTTP/1.1 Upgrade request and its 101 reply.
//!
//! - [`accept_key`] computes `Sec-WebSocket-Accept` from `Sec-WebSocket-Key` (§4.2.2).
//! - [`HeadReader`] collects an HTTP head from the network, scanning each byte once and
//!   capping its size, and keeps the bytes that follow the head (the first frames).
//! - [`server`] parses and validates a client's request and builds the reply.
//! - [`client`] builds a request and validates the server's reply.
//! - With the `http` feature, [`server::Request::from_http`] and
//!   [`server::Request::http_response`] do the server's part in the `http` crate's types.

pub mod client;
#[cfg(feature = "http")]
mod http;
pub mod server;

use base64::Engine;
use sha1::{Digest, Sha1};

/// The GUID that the server appends to the client's key (RFC 6455 §1.3, §4.2.2).
pub const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The default limit on an HTTP head (request or response line plus headers).
pub const DEFAULT_MAX_HEAD: usize = 16 * 1024;

/// The most header lines a head may have.
pub(crate) const MAX_HEADERS: usize = 64;

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`: base64(SHA-1(key + GUID))
/// (RFC 6455 §4.2.2, step 5.4).
///
/// ```
/// // The example of RFC 6455 §1.3.
/// assert_eq!(
///     rfc6455::accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
///     "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
/// );
/// ```
pub fn accept_key(key: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(accept_digest(key))
}

/// The SHA-1 digest of the key concatenated with [`GUID`]: the step of
/// [`accept_key`] before base64, shown by `rfc6455 accept`.
///
/// ```
/// let digest = rfc6455::handshake::accept_digest("dGhlIHNhbXBsZSBub25jZQ==");
/// assert_eq!(digest[..4], [0xb3, 0x7a, 0x4f, 0x2c]); // RFC 6455 §1.3: 0xb3 0x7a 0x4f 0x2c ...
/// ```
pub fn accept_digest(key: &str) -> [u8; 20] {
    let mut sha1 = Sha1::new();
    sha1.update(key.as_bytes());
    sha1.update(GUID.as_bytes());
    sha1.finalize().into()
}

/// A fresh `Sec-WebSocket-Key`: 16 random bytes from the OS, base64 (RFC 6455 §4.1).
///
/// ```
/// use rfc6455::handshake::generate_key;
///
/// let key = generate_key();
/// // 16 bytes in base64: 24 characters, the last two padding (RFC 6455 §4.1 item 7).
/// assert_eq!(key.len(), 24);
/// assert!(key.ends_with("=="));
/// // "The nonce MUST be selected randomly for each connection."
/// assert_ne!(key, generate_key());
/// ```
pub fn generate_key() -> String {
    let mut nonce = [0u8; 16];
    crate::random::fill(&mut nonce);
    base64::engine::general_purpose::STANDARD.encode(nonce)
}

/// Collects an HTTP head (up to and including the blank line) from bytes that arrive
/// in pieces.
///
/// It scans each byte for the end of the head only once, so a peer that sends its
/// head one byte at a time costs linear time (the lesson of CVE-2023-43669), and it
/// refuses a head over its limit. Bytes after the head stay in the buffer: they are
/// the first frames, for the connection.
///
/// The head ends at its first empty line, CRLF or bare LF, where `httparse` ends it (RFC
/// 7230 §3.5 lets a recipient take a bare LF as a line end); empty lines *before* the
/// start line are skipped, as the same section says a server should. Both found by the
/// `diff_handshake` fuzz target: a head ending `\n\r\n` was read on to a later `\r\n\r\n`
/// (the bytes between silently dropped), and `\r\n\r\nGET …` was taken for an empty head.
///
/// ```
/// use rfc6455::handshake::HeadReader;
///
/// let mut reader = HeadReader::new(1024);
/// assert_eq!(reader.push(b"GET / HTTP/1.1\r\nHost: a\r\n"), Ok(None));
/// let head_len = reader.push(b"\r\n\x81\x00").unwrap().unwrap();
/// assert_eq!(&reader.buffer()[head_len..], b"\x81\x00");
/// assert!(reader.push(&[b'x'; 2000]).is_ok()); // a complete head is not re-checked
/// ```
#[derive(Debug, Clone)]
pub struct HeadReader {
    buf: Vec<u8>,
    scanned: usize,
    /// Leading empty lines seen so far (bytes), skipped before the start line.
    empty_lines: usize,
    head_len: Option<usize>,
    max_head: usize,
}

/// The head grew past its limit without ending (answer 431, RFC 6585).
///
/// ```
/// use rfc6455::handshake::{server::RequestError, HeadReader, HeadTooLarge};
///
/// let mut reader = HeadReader::new(16);
/// assert_eq!(reader.push(b"GET /long/path"), Ok(None)); // 14 bytes: it may yet end
/// // 16 bytes or more and still no blank line: refused, not buffered without end.
/// assert_eq!(reader.push(b" HTTP/1.1"), Err(HeadTooLarge));
/// // What a server answers then: 431 Request Header Fields Too Large (RFC 6585 §5).
/// assert_eq!(RequestError::HeadTooLarge.status(), 431);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadTooLarge;

impl HeadReader {
    /// A reader that refuses heads longer than `max_head` bytes.
    ///
    /// ```
    /// use rfc6455::handshake::{HeadReader, DEFAULT_MAX_HEAD};
    ///
    /// let mut reader = HeadReader::new(DEFAULT_MAX_HEAD); // 16 KiB
    /// assert_eq!(reader.push(&[b'a'; 8 * 1024]), Ok(None)); // no end yet: waiting
    /// assert!(reader.push(&[b'a'; 8 * 1024]).is_err()); // at the limit: refused
    /// ```
    pub fn new(max_head: usize) -> Self {
        HeadReader {
            buf: Vec::new(),
            scanned: 0,
            empty_lines: 0,
            head_len: None,
            max_head,
        }
    }

    /// Adds bytes; returns the length of the head once its blank line has arrived.
    ///
    /// ```
    /// use rfc6455::handshake::HeadReader;
    ///
    /// // A head that arrives one byte at a time: each byte is scanned once.
    /// let head = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    /// let mut reader = HeadReader::new(1024);
    /// for &byte in &head[..head.len() - 1] {
    ///     assert_eq!(reader.push(&[byte]), Ok(None));
    /// }
    /// assert_eq!(reader.push(b"\n"), Ok(Some(head.len())));
    /// // Bare LF line ends end a head too (RFC 7230 §3.5).
    /// assert_eq!(HeadReader::new(1024).push(b"GET / HTTP/1.1\nHost: a\n\n"), Ok(Some(24)));
    /// ```
    pub fn push(&mut self, data: &[u8]) -> Result<Option<usize>, HeadTooLarge> {
        self.buf.extend_from_slice(data);
        if self.head_len.is_none() {
            self.head_len = self.scan()?;
        }
        Ok(self.head_len)
    }

    fn scan(&mut self) -> Result<Option<usize>, HeadTooLarge> {
        let limit = self.buf.len().min(self.max_head);
        // Only ever advances, so a flood of CRLFs is still scanned once.
        loop {
            match &self.buf[self.empty_lines..limit] {
                [b'\r', b'\n', ..] => self.empty_lines += 2,
                [b'\n', ..] => self.empty_lines += 1,
                _ => break,
            }
        }
        // Resume three bytes back: the terminator may straddle two pushes.
        let from = self.scanned.saturating_sub(3).max(self.empty_lines);
        // The head ends at an empty line: "\r\n\r\n", or with bare LFs "\n\n" / "\n\r\n"
        // (RFC 7230 §3.5 lets a recipient take LF alone as a line end; httparse does, so
        // the head we hand it ends exactly where it says headers end).
        let window = &self.buf[from..limit];
        for (i, _) in window.iter().enumerate().filter(|(_, &b)| b == b'\n') {
            match &window[i + 1..] {
                [b'\n', ..] => return Ok(Some(from + i + 2)),
                [b'\r', b'\n', ..] => return Ok(Some(from + i + 3)),
                _ => {}
            }
        }
        self.scanned = limit;
        if self.buf.len() >= self.max_head {
            return Err(HeadTooLarge);
        }
        Ok(None)
    }

    /// Everything pushed so far: the head, then whatever followed it.
    ///
    /// ```
    /// use rfc6455::handshake::HeadReader;
    ///
    /// // A server may send its first frame right behind the 101 (here an empty ping,
    /// // unmasked as server frames are, RFC 6455 §5.1), in the same TCP segment.
    /// let mut reader = HeadReader::new(1024);
    /// let arrived = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x89\x00";
    /// let head_len = reader.push(arrived).unwrap().unwrap();
    /// assert!(reader.buffer()[..head_len].ends_with(b"\r\n\r\n"));
    /// assert_eq!(&reader.buffer()[head_len..], b"\x89\x00");
    /// ```
    pub fn buffer(&self) -> &[u8] {
        &self.buf
    }

    /// The head's length, once complete.
    ///
    /// ```
    /// use rfc6455::handshake::HeadReader;
    ///
    /// let mut reader = HeadReader::new(1024);
    /// reader.push(b"GET / HTTP/1.1\r\n").unwrap();
    /// assert_eq!(reader.head_len(), None); // no blank line yet
    /// reader.push(b"Host: a\r\n\r\n").unwrap();
    /// assert_eq!(reader.head_len(), Some(16 + 9 + 2));
    /// ```
    pub fn head_len(&self) -> Option<usize> {
        self.head_len
    }

    /// The bytes after the head (empty until the head is complete).
    ///
    /// ```
    /// use rfc6455::handshake::HeadReader;
    ///
    /// let mut reader = HeadReader::new(1024);
    /// reader.push(b"GET / HTTP/1.1\r\nHost: a\r\n").unwrap();
    /// assert!(reader.take_rest().is_empty()); // the head is not complete: nothing taken
    /// // The blank line, then a client's first frame: an empty masked text (RFC 6455 §5.3).
    /// reader.push(b"\r\n\x81\x80abcd").unwrap();
    /// assert_eq!(reader.take_rest(), b"\x81\x80abcd"); // for the connection
    /// assert_eq!(reader.buffer().len(), 27); // the head stays, for the parser
    /// ```
    pub fn take_rest(&mut self) -> Vec<u8> {
        match self.head_len {
            Some(len) => self.buf.split_off(len),
            None => Vec::new(),
        }
    }
}

/// The comma-separated tokens of every instance of a header, trimmed
/// (RFC 7230 §7 lists; RFC 6455 §4.1 allows repeated header lines).
pub(crate) fn header_tokens<'a>(
    headers: &'a [httparse::Header<'a>],
    name: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .iter()
        .filter(move |h| h.name.eq_ignore_ascii_case(name))
        .filter_map(|h| std::str::from_utf8(h.value).ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Does some instance of header `name` contain `token` (case-insensitively)?
/// The headers as owned (name, value) pairs; values that are not UTF-8 are converted
/// lossily (they are for display and lookup, not for the protocol's checks).
pub(crate) fn owned_headers(headers: &[httparse::Header<'_>]) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|h| {
            (
                h.name.to_string(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect()
}

/// The path of a request target, without the query.
pub(crate) fn target_path(target: &str) -> &str {
    target.split('?').next().unwrap_or("/")
}

/// The query of a request target, after `?`.
pub(crate) fn target_query(target: &str) -> Option<&str> {
    target.split_once('?').map(|(_, q)| q)
}

/// The value of the first header called `name` (case-insensitive).
pub(crate) fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

pub(crate) fn has_token(headers: &[httparse::Header<'_>], name: &str, token: &str) -> bool {
    header_tokens(headers, name).any(|t| t.eq_ignore_ascii_case(token))
}

/// The value of the one instance of header `name`; `Err(())` if it appears twice.
pub(crate) fn single_header<'a>(
    headers: &'a [httparse::Header<'a>],
    name: &str,
) -> Result<Option<&'a [u8]>, ()> {
    let mut found = headers.iter().filter(|h| h.name.eq_ignore_ascii_case(name));
    let first = found.next().map(|h| h.value);
    if found.next().is_some() {
        return Err(());
    }
    Ok(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_lines_before_the_request_line_are_skipped() {
        let head = b"\r\n\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n";
        let mut reader = HeadReader::new(100);
        assert_eq!(reader.push(head), Ok(Some(head.len())));
        // In pieces too, the CRLFs split between pushes.
        let mut reader = HeadReader::new(100);
        let found: Vec<_> = head.iter().map(|b| reader.push(&[*b]).unwrap()).collect();
        assert_eq!(found.iter().position(Option::is_some), Some(head.len() - 1));
        // Only CRLFs: no head yet, and the limit still holds.
        let mut reader = HeadReader::new(100);
        assert_eq!(reader.push(&b"\r\n".repeat(20)), Ok(None));
        assert_eq!(reader.push(&b"\r\n".repeat(40)), Err(HeadTooLarge));
    }

    #[test]
    fn head_split_byte_by_byte() {
        let head = b"GET / HTTP/1.1\r\nHost: x\r\n\r\nrest";
        let mut reader = HeadReader::new(100);
        let mut done = None;
        for (i, b) in head.iter().enumerate() {
            if let Some(len) = reader.push(&[*b]).unwrap() {
                done.get_or_insert((i, len));
            }
        }
        assert_eq!(done, Some((26, 27)));
        assert_eq!(reader.take_rest(), b"rest");
    }

    #[test]
    fn head_over_the_limit() {
        let mut reader = HeadReader::new(10);
        assert_eq!(reader.push(b"GET / HTTP"), Err(HeadTooLarge));
        // Exactly at the limit with the terminator inside it is fine.
        let mut reader = HeadReader::new(10);
        assert_eq!(reader.push(b"GET /\r\n\r\n"), Ok(Some(9)));
    }
}
