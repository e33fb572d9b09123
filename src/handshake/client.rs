//! The client's side of the opening handshake (RFC 6455 §4.1).
//!
//! [`ClientHandshake::new`] builds the request for a `ws://` URL with a fresh random
//! key; [`ClientHandshake::validate`] checks the server's response head (§4.1, the
//! client's requirements 1–6).

use super::{accept_key, generate_key, has_token, header_tokens, single_header, MAX_HEADERS};
use crate::deflate::{AnswerError, DeflateConfig, Negotiated};
use std::fmt;

/// The parts of a `ws://` URL the handshake needs (RFC 6455 §3).
///
/// ```
/// use rfc6455::handshake::client::WsUrl;
///
/// let url = WsUrl::parse("ws://example.com:9001/chat?room=1").unwrap();
/// assert_eq!(url.host, "example.com");
/// assert_eq!(url.port, 9001);
/// assert_eq!(url.resource, "/chat?room=1");
/// assert_eq!(url.host_header(), "example.com:9001");
/// assert_eq!(WsUrl::parse("ws://[::1]").unwrap().port, 80);
/// assert_eq!(WsUrl::parse("wss://[::1]").unwrap().port, 443);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsUrl {
    /// The host name or address (IPv6 without brackets).
    pub host: String,
    /// The port: when the URL has none, 80 for `ws://` and 443 for `wss://`.
    pub port: u16,
    /// `wss://`: the connection runs over TLS (RFC 6455 §3, §4.1 step 5).
    pub secure: bool,
    /// The path and query (`/` when the URL has no path).
    pub resource: String,
}

/// A URL this crate cannot connect to.
///
/// ```
/// use rfc6455::handshake::client::WsUrl;
///
/// // RFC 6455 §3: a WebSocket URI has no fragment.
/// let err = WsUrl::parse("ws://example.com/chat#top").unwrap_err();
/// assert_eq!(err.to_string(), "invalid WebSocket URL: fragments are not allowed (RFC 6455 §3)");
/// assert!(WsUrl::parse("http://example.com/").is_err()); // ws:// or wss:// only
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlError(pub String);

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid WebSocket URL: {}", self.0)
    }
}

impl std::error::Error for UrlError {}

/// RFC 3986 §2.3 unreserved characters and §2.2 sub-delims: what a host name or a path
/// segment may hold besides percent-escapes (and, in a path, `:` `@`).
fn is_unreserved_or_sub_delim(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=".contains(&b)
}

impl WsUrl {
    /// Parses `ws://host[:port][/path][?query]` or the same with `wss://` (TLS, port
    /// 443 by default); a fragment is not allowed (RFC 6455 §3). Connecting to a
    /// `wss://` URL needs the `tls` feature.
    ///
    /// ```
    /// use rfc6455::handshake::client::WsUrl;
    ///
    /// let url = WsUrl::parse("wss://example.com?room=1").unwrap();
    /// assert!(url.secure);
    /// assert_eq!(url.port, 443);
    /// assert_eq!(url.resource, "/?room=1"); // an empty path is "/" (RFC 6455 §3)
    /// // Nothing that could end the request line or start a header (CR LF injection).
    /// assert!(WsUrl::parse("ws://example.com/a b").is_err());
    /// assert!(WsUrl::parse("ws://exa\r\nmple.com/").is_err());
    /// ```
    pub fn parse(url: &str) -> Result<WsUrl, UrlError> {
        let (secure, rest) = match url.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("ws") => (false, rest),
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("wss") => (true, rest),
            _ => return Err(UrlError(format!("{url:?} is not a ws:// or wss:// URL"))),
        };
        if rest.contains('#') {
            return Err(UrlError("fragments are not allowed (RFC 6455 §3)".into()));
        }
        let (authority, resource) = match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'?' => (&rest[..i], format!("/{}", &rest[i..])),
            Some(i) => (&rest[..i], rest[i..].to_string()),
            None => (rest, "/".to_string()),
        };
        let (host, port, ip_literal) = if let Some(bracketed) = authority.strip_prefix('[') {
            let (host, after) = bracketed
                .split_once(']')
                .ok_or_else(|| UrlError("unclosed '[' in host".into()))?;
            let port = match after {
                "" => None,
                _ => Some(after.strip_prefix(':').ok_or_else(|| {
                    UrlError(format!("{after:?} after the IPv6 address in {url:?}"))
                })?),
            };
            (host, port, true)
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port), false),
                None => (authority, None, false),
            }
        };
        // Only what RFC 3986 allows, so that nothing in a URL can end a request line or
        // start a header (CR LF injection): found by the `client_handshake` fuzz target,
        // which saw a control character in a host reach the Host header.
        let host_ok = if ip_literal {
            host.bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        } else {
            host.bytes()
                .all(|b| is_unreserved_or_sub_delim(b) || b == b'%')
        };
        if host.is_empty() || !host_ok {
            return Err(UrlError(format!(
                "bad host in {url:?}: RFC 3986 allows letters, digits and -._~!$&'()*+,;=%"
            )));
        }
        if let Some(bad) = resource.chars().find(|&c| {
            !(c.is_ascii() && (is_unreserved_or_sub_delim(c as u8) || "%:@/?".contains(c)))
        }) {
            return Err(UrlError(format!(
                "{bad:?} in the path of {url:?}: percent-encode it (RFC 3986 §2.1)"
            )));
        }
        let port = match port {
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse().map_err(|_| UrlError(format!("bad port {p:?}")))?
            }
            Some(p) => return Err(UrlError(format!("bad port {p:?}"))),
            None if secure => 443,
            None => 80,
        };
        Ok(WsUrl {
            host: host.to_string(),
            port,
            secure,
            resource,
        })
    }

    /// The Host header value: the port is included unless it is the scheme's default,
    /// 80 for `ws://`, 443 for `wss://` (RFC 6455 §4.1 item 4).
    ///
    /// ```
    /// use rfc6455::handshake::client::WsUrl;
    ///
    /// assert_eq!(WsUrl::parse("wss://example.com/").unwrap().host_header(), "example.com");
    /// assert_eq!(WsUrl::parse("wss://example.com:80/").unwrap().host_header(), "example.com:80");
    /// ```
    pub fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == if self.secure { 443 } else { 80 } {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

/// A client handshake in progress: the request it sent and what the reply must match.
///
/// ```
/// use rfc6455::handshake::client::{ClientHandshake, WsUrl};
///
/// let url = WsUrl::parse("ws://localhost:9001/").unwrap();
/// let (handshake, request) = ClientHandshake::new(&url, &["chat"], &[]);
/// let request = String::from_utf8(request).unwrap();
/// assert!(request.starts_with("GET / HTTP/1.1\r\nHost: localhost:9001\r\n"));
///
/// let response = format!(
///     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
///      Sec-WebSocket-Accept: {}\r\nSec-WebSocket-Protocol: chat\r\n\r\n",
///     rfc6455::accept_key(handshake.key()),
/// );
/// let accepted = handshake.validate(response.as_bytes()).unwrap();
/// assert_eq!(accepted.protocol.as_deref(), Some("chat"));
/// ```
#[derive(Debug, Clone)]
pub struct ClientHandshake {
    key: String,
    protocols: Vec<String>,
    /// permessage-deflate, when it was offered (RFC 7692).
    deflate: Option<DeflateConfig>,
}

/// What the server agreed to.
///
/// ```
/// use rfc6455::handshake::client::{ClientHandshake, WsUrl};
///
/// let url = WsUrl::parse("ws://example.com/").unwrap();
/// let (handshake, _request) = ClientHandshake::new(&url, &["chat", "superchat"], &[]);
/// let response = format!(
///     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
///      Sec-WebSocket-Accept: {}\r\nSec-WebSocket-Protocol: superchat\r\nX-Server: demo\r\n\r\n",
///     rfc6455::accept_key(handshake.key()),
/// );
/// let accepted = handshake.validate(response.as_bytes()).unwrap();
/// assert_eq!(accepted.protocol.as_deref(), Some("superchat"));
/// assert!(accepted.headers.contains(&("X-Server".into(), "demo".into())));
/// assert!(accepted.deflate.is_none()); // not offered, so not agreed
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The subprotocol the server chose, one of those offered.
    pub protocol: Option<String>,
    /// Every response header, as (name, value).
    pub headers: Vec<(String, String)>,
    /// permessage-deflate, when offered and accepted (RFC 7692): pass it to
    /// [`Connection::with_deflate`](crate::Connection::with_deflate).
    pub deflate: Option<Negotiated>,
}

/// Why the server's response does not complete the handshake (RFC 6455 §4.1).
///
/// ```
/// use rfc6455::handshake::client::{ClientHandshake, ResponseError, WsUrl};
///
/// let url = WsUrl::parse("ws://example.com/").unwrap();
/// let (handshake, _) = ClientHandshake::new(&url, &[], &[]);
/// // A server with no WebSocket at this path: "the status code ... is not 101".
/// let refused = handshake.validate(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
/// assert_eq!(refused, Err(ResponseError::Status(404)));
/// // A 101 whose accept value was computed from another key (the §1.3 example's).
/// let replayed = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
///     Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
/// assert_eq!(handshake.validate(replayed), Err(ResponseError::BadAccept));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResponseError {
    /// Not parseable as an HTTP/1.1 response.
    Malformed(String),
    /// A status other than 101: the server refused (or wants auth, or redirects).
    Status(u16),
    /// Upgrade lacks `websocket` or Connection lacks `upgrade`.
    MissingUpgrade,
    /// Sec-WebSocket-Accept missing or not the expected value.
    BadAccept,
    /// A subprotocol the client did not offer.
    UnexpectedProtocol(String),
    /// An extension the client did not offer.
    UnexpectedExtension(String),
    /// An answer to the permessage-deflate offer that breaks RFC 7692.
    Deflate(AnswerError),
}

impl fmt::Display for ResponseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResponseError::Malformed(why) => write!(f, "malformed HTTP response: {why}"),
            ResponseError::Status(code) => write!(f, "server answered {code}, not 101"),
            ResponseError::MissingUpgrade => {
                f.write_str("response lacks Upgrade: websocket / Connection: Upgrade")
            }
            ResponseError::BadAccept => f.write_str("Sec-WebSocket-Accept does not match the key"),
            ResponseError::UnexpectedProtocol(p) => write!(f, "subprotocol {p:?} was not offered"),
            ResponseError::UnexpectedExtension(e) => write!(f, "extension {e:?} was not offered"),
            ResponseError::Deflate(e) => write!(f, "permessage-deflate answer: {e}"),
        }
    }
}

impl std::error::Error for ResponseError {}

impl ClientHandshake {
    /// Builds the upgrade request for `url` with a fresh key, offering `protocols` and
    /// adding `extra` headers; returns the handshake and the request bytes.
    ///
    /// ```
    /// use rfc6455::handshake::client::{ClientHandshake, WsUrl};
    ///
    /// let url = WsUrl::parse("ws://example.com/chat").unwrap();
    /// let origin = ("Origin", "http://example.com");
    /// let (handshake, request) = ClientHandshake::new(&url, &["chat"], &[origin]);
    /// let request = String::from_utf8(request).unwrap();
    /// // RFC 6455 §4.1: a GET with Upgrade, Connection, a fresh key and version 13.
    /// assert!(request.starts_with("GET /chat HTTP/1.1\r\nHost: example.com\r\n"));
    /// assert!(request.contains(&format!("\r\nSec-WebSocket-Key: {}\r\n", handshake.key())));
    /// assert!(request.contains("\r\nSec-WebSocket-Version: 13\r\n"));
    /// assert!(request.ends_with("Protocol: chat\r\nOrigin: http://example.com\r\n\r\n"));
    /// ```
    pub fn new(url: &WsUrl, protocols: &[&str], extra: &[(&str, &str)]) -> (Self, Vec<u8>) {
        Self::with_key(generate_key(), url, protocols, extra)
    }

    /// Like [`new`](Self::new), also offering permessage-deflate as `deflate` says
    /// (RFC 7692 §5.1); [`validate`](Self::validate) then checks the answer and reports
    /// what was agreed in [`Accepted::deflate`].
    ///
    /// ```
    /// use rfc6455::deflate::DeflateConfig;
    /// use rfc6455::handshake::client::{ClientHandshake, WsUrl};
    ///
    /// let url = WsUrl::parse("ws://example.com/").unwrap();
    /// let (_, request) = ClientHandshake::offering_deflate(&url, &[], &[], &DeflateConfig::default());
    /// let request = String::from_utf8(request).unwrap();
    /// assert!(request.contains("\r\nSec-WebSocket-Extensions: permessage-deflate; "));
    /// ```
    pub fn offering_deflate(
        url: &WsUrl,
        protocols: &[&str],
        extra: &[(&str, &str)],
        deflate: &DeflateConfig,
    ) -> (Self, Vec<u8>) {
        let offer = crate::deflate::offer(deflate);
        let mut headers = extra.to_vec();
        headers.push(("Sec-WebSocket-Extensions", &offer));
        let (mut handshake, request) = Self::with_key(generate_key(), url, protocols, &headers);
        handshake.deflate = Some(deflate.clone());
        (handshake, request)
    }

    /// Like [`new`](Self::new) with a given key (for tests and reproducible traces).
    ///
    /// ```
    /// use rfc6455::handshake::client::{ClientHandshake, WsUrl};
    ///
    /// // The request of RFC 6455 §1.3, with its key (its Origin left out).
    /// let url = WsUrl::parse("ws://server.example.com/chat").unwrap();
    /// let key = "dGhlIHNhbXBsZSBub25jZQ==".to_string();
    /// let (_, request) = ClientHandshake::with_key(key, &url, &["chat", "superchat"], &[]);
    /// assert_eq!(
    ///     request,
    ///     b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
    ///       Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    ///       Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: chat, superchat\r\n\r\n"
    /// );
    /// ```
    pub fn with_key(
        key: String,
        url: &WsUrl,
        protocols: &[&str],
        extra: &[(&str, &str)],
    ) -> (Self, Vec<u8>) {
        let mut request = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n",
            url.resource,
            url.host_header(),
        );
        if !protocols.is_empty() {
            request.push_str("Sec-WebSocket-Protocol: ");
            request.push_str(&protocols.join(", "));
            request.push_str("\r\n");
        }
        for (name, value) in extra {
            request.push_str(name);
            request.push_str(": ");
            request.extend(value.chars().filter(|c| *c != '\r' && *c != '\n'));
            request.push_str("\r\n");
        }
        request.push_str("\r\n");
        let handshake = ClientHandshake {
            key,
            protocols: protocols.iter().map(|p| p.to_string()).collect(),
            deflate: None,
        };
        (handshake, request.into_bytes())
    }

    /// The `Sec-WebSocket-Key` sent.
    ///
    /// ```
    /// use rfc6455::handshake::client::{ClientHandshake, WsUrl};
    ///
    /// let url = WsUrl::parse("ws://server.example.com/chat").unwrap();
    /// let key = "dGhlIHNhbXBsZSBub25jZQ==".to_string();
    /// let (handshake, _) = ClientHandshake::with_key(key, &url, &[], &[]);
    /// // What the server must answer in Sec-WebSocket-Accept (RFC 6455 §1.3, §4.2.2).
    /// assert_eq!(rfc6455::accept_key(handshake.key()), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    /// ```
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Validates a complete response head (RFC 6455 §4.1, "the client MUST validate").
    ///
    /// ```
    /// use rfc6455::handshake::client::{ClientHandshake, ResponseError, WsUrl};
    ///
    /// let url = WsUrl::parse("ws://server.example.com/chat").unwrap();
    /// let key = "dGhlIHNhbXBsZSBub25jZQ==".to_string();
    /// let (handshake, _) = ClientHandshake::with_key(key, &url, &["chat", "superchat"], &[]);
    /// // The server's handshake of RFC 6455 §1.3.
    /// let reply = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
    ///     Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: chat\r\n\r\n";
    /// assert_eq!(handshake.validate(reply.as_bytes()).unwrap().protocol.as_deref(), Some("chat"));
    /// // A subprotocol the client did not offer fails the connection (§4.1, check 6).
    /// let other = reply.replace("Protocol: chat", "Protocol: v2");
    /// let err = handshake.validate(other.as_bytes()).unwrap_err();
    /// assert_eq!(err, ResponseError::UnexpectedProtocol("v2".into()));
    /// ```
    pub fn validate(&self, head: &[u8]) -> Result<Accepted, ResponseError> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut headers);
        match resp.parse(head) {
            Ok(httparse::Status::Complete(len)) if len != head.len() => {
                return Err(ResponseError::Malformed(
                    "bytes after the end of the head".into(),
                ))
            }
            Ok(httparse::Status::Complete(_)) => {}
            Ok(httparse::Status::Partial) => {
                return Err(ResponseError::Malformed("incomplete head".into()))
            }
            Err(e) => return Err(ResponseError::Malformed(e.to_string())),
        }
        match resp.code {
            Some(101) => {}
            Some(code) => return Err(ResponseError::Status(code)),
            None => return Err(ResponseError::Malformed("no status".into())),
        }
        let headers = resp.headers;
        if !has_token(headers, "Upgrade", "websocket")
            || !has_token(headers, "Connection", "upgrade")
        {
            return Err(ResponseError::MissingUpgrade);
        }
        let expected = accept_key(&self.key);
        match single_header(headers, "Sec-WebSocket-Accept") {
            Ok(Some(value)) if value.trim_ascii() == expected.as_bytes() => {}
            _ => return Err(ResponseError::BadAccept),
        }
        let mut chosen = header_tokens(headers, "Sec-WebSocket-Protocol");
        let protocol = chosen.next().map(str::to_string);
        if let Some(extra) = chosen.next() {
            return Err(ResponseError::UnexpectedProtocol(extra.to_string()));
        }
        if let Some(p) = &protocol {
            if !self.protocols.iter().any(|o| o == p) {
                return Err(ResponseError::UnexpectedProtocol(p.clone()));
            }
        }
        // RFC 6455 §4.1 item 5: only extensions the client offered.
        let values: Vec<&str> = headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("Sec-WebSocket-Extensions"))
            .map(|h| std::str::from_utf8(h.value).unwrap_or("\u{fffd}"))
            .collect();
        let answer = crate::extensions::parse(&values);
        let deflate = match &self.deflate {
            None => match answer.first() {
                None => None,
                Some(Ok(ext)) => return Err(ResponseError::UnexpectedExtension(ext.name.clone())),
                Some(Err(e)) => return Err(ResponseError::UnexpectedExtension(e.0.clone())),
            },
            Some(config) => {
                crate::deflate::accept_response(config, &answer).map_err(ResponseError::Deflate)?
            }
        };
        Ok(Accepted {
            protocol,
            headers: super::owned_headers(headers),
            deflate,
        })
    }
}
