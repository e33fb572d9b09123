//! The server's side of the opening handshake (RFC 6455 §4.2).
//!
//! [`Request::parse`] validates a client's complete request head and keeps what the
//! application needs to decide (path, query, headers, Origin, offered subprotocols and
//! extensions). The application then answers with [`Request::accept`] (a 101, with the
//! subprotocol it chose) or [`reject`] (any status); a malformed request carries the
//! status to answer in its [`RequestError`].

use super::{accept_key, has_token, header_tokens, owned_headers, single_header, MAX_HEADERS};
use crate::deflate::{DeflateConfig, Negotiated};
use crate::extensions::{Extension, SyntaxError};
use base64::Engine;
use std::fmt;

/// A validated WebSocket upgrade request (RFC 6455 §4.2.1).
///
/// ```
/// use rfc6455::handshake::server::Request;
///
/// let head = b"GET /chat?room=1 HTTP/1.1\r\n\
///     Host: server.example.com\r\n\
///     Upgrade: websocket\r\n\
///     Connection: Upgrade\r\n\
///     Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
///     Origin: http://example.com\r\n\
///     Sec-WebSocket-Protocol: chat, superchat\r\n\
///     Sec-WebSocket-Version: 13\r\n\r\n";
/// let request = Request::parse(head).unwrap();
/// assert_eq!(request.path(), "/chat");
/// assert_eq!(request.query(), Some("room=1"));
/// assert_eq!(request.origin(), Some("http://example.com"));
/// assert_eq!(request.protocols(), ["chat", "superchat"]);
///
/// let response = String::from_utf8(request.accept(Some("chat"))).unwrap();
/// assert!(response.starts_with("HTTP/1.1 101 Switching Protocols\r\n"));
/// assert!(response.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
/// assert!(response.contains("Sec-WebSocket-Protocol: chat\r\n"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    target: String,
    headers: Vec<(String, String)>,
    key: String,
    protocols: Vec<String>,
    extensions: Vec<String>,
}

/// Why a request is not a valid WebSocket upgrade, and the status that says so.
///
/// ```
/// use rfc6455::handshake::server::{Request, RequestError};
///
/// let err = Request::parse(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap_err();
/// assert_eq!(err, RequestError::NotUpgrade);
/// assert_eq!(err.status(), 400);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestError {
    /// Not parseable as HTTP/1.x (400).
    Malformed(String),
    /// The head exceeds the size or header-count limit (431).
    HeadTooLarge,
    /// The method is not GET (405, RFC 6455 §4.1 item 2).
    MethodNotGet(String),
    /// HTTP/1.0: the handshake needs HTTP/1.1 or later (505, §4.1 item 2).
    HttpVersion,
    /// No Host header (400, §4.1 item 4).
    MissingHost,
    /// No `websocket` token in Upgrade or no `upgrade` token in Connection (400,
    /// §4.2.1 items 3–4). A server that also speaks plain HTTP answers such a request
    /// as HTTP instead.
    NotUpgrade,
    /// Sec-WebSocket-Key missing, repeated, or not base64 of 16 bytes (400, §4.1 item 7).
    InvalidKey,
    /// Sec-WebSocket-Version missing or not 13 (426 with `Sec-WebSocket-Version: 13`,
    /// §4.2.2 item 4).
    UnsupportedVersion,
}

impl RequestError {
    /// The HTTP status to answer with.
    ///
    /// ```
    /// use rfc6455::handshake::server::{Request, RequestError};
    ///
    /// // Version 8, a draft's: 426 Upgrade Required (RFC 6455 §4.2.2 item 4).
    /// let head = b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
    ///     Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n";
    /// let err = Request::parse(head).unwrap_err();
    /// assert_eq!(err, RequestError::UnsupportedVersion);
    /// assert_eq!(err.status(), 426);
    /// assert_eq!(RequestError::HttpVersion.status(), 505); // an HTTP/1.0 request
    /// ```
    pub fn status(&self) -> u16 {
        match self {
            RequestError::Malformed(_)
            | RequestError::MissingHost
            | RequestError::NotUpgrade
            | RequestError::InvalidKey => 400,
            RequestError::MethodNotGet(_) => 405,
            RequestError::HeadTooLarge => 431,
            RequestError::HttpVersion => 505,
            RequestError::UnsupportedVersion => 426,
        }
    }

    /// The whole HTTP response for this rejection, with the headers the RFC asks for.
    ///
    /// ```
    /// use rfc6455::handshake::server::RequestError;
    ///
    /// let response = String::from_utf8(RequestError::UnsupportedVersion.response()).unwrap();
    /// // RFC 6455 §4.4: the refusal names the version this server speaks.
    /// assert!(response.starts_with("HTTP/1.1 426 Upgrade Required\r\n"));
    /// assert!(response.contains("\r\nSec-WebSocket-Version: 13\r\n"));
    /// // RFC 7231 §6.5.5: a 405 lists the methods allowed.
    /// let post = RequestError::MethodNotGet("POST".into()).response();
    /// assert!(String::from_utf8(post).unwrap().contains("\r\nAllow: GET\r\n"));
    /// ```
    pub fn response(&self) -> Vec<u8> {
        reject(self.status(), self.extra_headers(), &self.to_string())
    }

    /// The headers the RFC asks a refusal to carry (RFC 6455 §4.2.2 item 4, with the
    /// `Upgrade` every 426 carries, RFC 9110 §15.5.22; RFC 9110 §15.5.6 for 405).
    pub(crate) fn extra_headers(&self) -> &'static [(&'static str, &'static str)] {
        match self {
            RequestError::UnsupportedVersion => {
                &[("Upgrade", "websocket"), ("Sec-WebSocket-Version", "13")]
            }
            RequestError::MethodNotGet(_) => &[("Allow", "GET")],
            _ => &[],
        }
    }
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::Malformed(why) => write!(f, "malformed HTTP request: {why}"),
            RequestError::HeadTooLarge => f.write_str("request head too large"),
            RequestError::MethodNotGet(m) => write!(f, "method {m} is not GET (RFC 6455 §4.1)"),
            RequestError::HttpVersion => f.write_str("HTTP/1.1 or later required (RFC 6455 §4.1)"),
            RequestError::MissingHost => f.write_str("no Host header (RFC 6455 §4.1)"),
            RequestError::NotUpgrade => f.write_str(
                "not a WebSocket upgrade: Upgrade/Connection tokens missing (RFC 6455 §4.2.1)",
            ),
            RequestError::InvalidKey => {
                f.write_str("Sec-WebSocket-Key must be base64 of 16 bytes (RFC 6455 §4.1)")
            }
            RequestError::UnsupportedVersion => {
                f.write_str("Sec-WebSocket-Version must be 13 (RFC 6455 §4.2.2)")
            }
        }
    }
}

impl std::error::Error for RequestError {}

/// The /resource name/ of a request target (RFC 6455 §3: "/" path ["?" query]): the
/// target itself in origin-form, the part after the authority in absolute-form
/// (`http://host/chat` → `/chat`; RFC 7230 §5.3.2 says a server must accept that form).
/// `None` for every other form (`*`, `host:port`, `chat`): no resource is named. Found by
/// the `diff_handshake` fuzz target: `GET 15/chat` was accepted as if it named one.
fn resource_name(target: &str) -> Option<String> {
    if target.starts_with('/') {
        return Some(target.to_string());
    }
    let (scheme, rest) = target.split_once("://")?;
    if !["http", "https", "ws", "wss"]
        .iter()
        .any(|s| s.eq_ignore_ascii_case(scheme))
    {
        return None;
    }
    let path_start = rest.find(['/', '?']).unwrap_or(rest.len());
    if path_start == 0 {
        return None; // no authority
    }
    match &rest[path_start..] {
        path if path.starts_with('/') => Some(path.to_string()),
        query => Some(format!("/{query}")), // an empty path is "/" (RFC 6455 §3)
    }
}

impl Request {
    /// Parses and validates a complete request head, as found by
    /// [`HeadReader`](super::HeadReader) (RFC 6455 §4.2.1).
    ///
    /// ```
    /// use rfc6455::handshake::server::{Request, RequestError};
    ///
    /// // Firefox's Connection header lists two tokens; an absolute-form target names
    /// // the resource too (RFC 7230 §5.3.2).
    /// let head = b"GET http://example.com/chat HTTP/1.1\r\nHost: example.com\r\n\
    ///     Upgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n\
    ///     Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    /// assert_eq!(Request::parse(head).unwrap().target(), "/chat");
    /// // HTTP/1.0 cannot upgrade: "HTTP version MUST be at least 1.1" (RFC 6455 §4.1 item 2).
    /// let old = b"GET /chat HTTP/1.0\r\nHost: example.com\r\n\r\n";
    /// assert_eq!(Request::parse(old), Err(RequestError::HttpVersion));
    /// ```
    pub fn parse(head: &[u8]) -> Result<Request, RequestError> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(head) {
            // Bytes after the end httparse found would be read by no one.
            Ok(httparse::Status::Complete(len)) if len != head.len() => {
                return Err(RequestError::Malformed(
                    "bytes after the end of the head".into(),
                ))
            }
            Ok(httparse::Status::Complete(_)) => {}
            Ok(httparse::Status::Partial) => {
                return Err(RequestError::Malformed("incomplete head".into()))
            }
            Err(httparse::Error::TooManyHeaders) => return Err(RequestError::HeadTooLarge),
            Err(e) => return Err(RequestError::Malformed(e.to_string())),
        }
        let target = req.path.unwrap_or_default();
        Request::validate(
            req.method.unwrap_or_default(),
            req.version == Some(1),
            target,
            req.headers,
        )
    }

    /// The rules of RFC 6455 §4.2.1 on a request already split into its parts, however
    /// it was parsed (here by httparse; by the `http` crate's types in
    /// [`Request::from_http`]). `http11`: the version is HTTP/1.1.
    pub(crate) fn validate(
        method: &str,
        http11: bool,
        target: &str,
        headers: &[httparse::Header<'_>],
    ) -> Result<Request, RequestError> {
        if method != "GET" {
            return Err(RequestError::MethodNotGet(method.to_string()));
        }
        if !http11 {
            return Err(RequestError::HttpVersion);
        }
        let target = resource_name(target).ok_or_else(|| {
            RequestError::Malformed(
                "the request target is not a /resource name/ (RFC 6455 §3, §4.1 item 2)".into(),
            )
        })?;
        match single_header(headers, "Host") {
            Ok(Some(host)) if !host.is_empty() => {}
            _ => return Err(RequestError::MissingHost),
        }
        if !has_token(headers, "Upgrade", "websocket")
            || !has_token(headers, "Connection", "upgrade")
        {
            return Err(RequestError::NotUpgrade);
        }
        match single_header(headers, "Sec-WebSocket-Version") {
            Ok(Some(b"13")) => {}
            _ => return Err(RequestError::UnsupportedVersion),
        }
        let key = match single_header(headers, "Sec-WebSocket-Key") {
            Ok(Some(key)) => std::str::from_utf8(key)
                .map_err(|_| RequestError::InvalidKey)?
                .trim(),
            _ => return Err(RequestError::InvalidKey),
        };
        match base64::engine::general_purpose::STANDARD.decode(key) {
            Ok(nonce) if nonce.len() == 16 => {}
            _ => return Err(RequestError::InvalidKey),
        }
        let owned = |s: &str| s.to_string();
        Ok(Request {
            target,
            headers: owned_headers(headers),
            key: key.to_string(),
            protocols: header_tokens(headers, "Sec-WebSocket-Protocol")
                .map(owned)
                .collect(),
            extensions: header_tokens(headers, "Sec-WebSocket-Extensions")
                .map(owned)
                .collect(),
        })
    }

    /// The request target: path and query (an absolute-form target reduced to them).
    ///
    /// ```
    /// use rfc6455::handshake::server::Request;
    ///
    /// let head = b"GET /chat?room=1 HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\
    ///     Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    ///     Sec-WebSocket-Version: 13\r\n\r\n";
    /// // The /resource name/ of RFC 6455 §3: the path and the query together.
    /// assert_eq!(Request::parse(head).unwrap().target(), "/chat?room=1");
    /// ```
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The path, without the query.
    ///
    /// ```
    /// use rfc6455::handshake::server::Request;
    ///
    /// let head = b"GET /rooms/general?since=42 HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\
    ///     Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    ///     Sec-WebSocket-Version: 13\r\n\r\n";
    /// // What a server routes on: the endpoint, whatever the query says.
    /// assert_eq!(Request::parse(head).unwrap().path(), "/rooms/general");
    /// ```
    pub fn path(&self) -> &str {
        super::target_path(&self.target)
    }

    /// The query string after `?`, if any.
    ///
    /// ```
    /// use rfc6455::handshake::server::Request;
    ///
    /// // A browser's WebSocket API cannot set headers, so a token often rides in the query.
    /// let head = b"GET /chat?token=abc HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\
    ///     Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    ///     Sec-WebSocket-Version: 13\r\n\r\n";
    /// assert_eq!(Request::parse(head).unwrap().query(), Some("token=abc"));
    /// ```
    pub fn query(&self) -> Option<&str> {
        super::target_query(&self.target)
    }

    /// The value of the first header called `name` (case-insensitive).
    ///
    /// ```
    /// use rfc6455::handshake::server::Request;
    ///
    /// let head = b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
    ///     Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
    ///     Cookie: session=42\r\n\r\n";
    /// let request = Request::parse(head).unwrap();
    /// // Header names are case-insensitive (RFC 7230 §3.2).
    /// assert_eq!(request.header("cookie"), Some("session=42"));
    /// assert_eq!(request.header("Authorization"), None);
    /// ```
    pub fn header(&self, name: &str) -> Option<&str> {
        super::find_header(&self.headers, name)
    }

    /// Every header, in order, as (name, value).
    ///
    /// ```
    /// use rfc6455::handshake::server::Request;
    ///
    /// // RFC 6455 §4.1 lets a client repeat Sec-WebSocket-Protocol: both lines are kept.
    /// let head = b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
    ///     Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
    ///     Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Protocol: superchat\r\n\r\n";
    /// let request = Request::parse(head).unwrap();
    /// assert_eq!(request.headers().len(), 7);
    /// assert_eq!(request.headers()[0], ("Host".to_string(), "a".to_string()));
    /// assert_eq!(request.headers()[6].1, "superchat");
    /// ```
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The Origin header, which browsers send (RFC 6455 §4.1 item 8, §10.2).
    ///
    /// ```
    /// use rfc6455::handshake::server::{reject, Request};
    ///
    /// let head = b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
    ///     Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
    ///     Origin: https://evil.example\r\n\r\n";
    /// let request = Request::parse(head).unwrap();
    /// // RFC 6455 §10.2: a page of another site is refused with a 403 (§4.2.2).
    /// assert_ne!(request.origin(), Some("https://example.com"));
    /// assert!(reject(403, &[], "origin not allowed").starts_with(b"HTTP/1.1 403 Forbidden"));
    /// ```
    pub fn origin(&self) -> Option<&str> {
        self.header("Origin")
    }

    /// The Host header.
    ///
    /// ```
    /// use rfc6455::handshake::server::Request;
    ///
    /// let head = b"GET / HTTP/1.1\r\nHost: chat.example.com:8080\r\nUpgrade: websocket\r\n\
    ///     Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    ///     Sec-WebSocket-Version: 13\r\n\r\n";
    /// // The authority the client connected to, port included (RFC 6455 §4.1 item 4):
    /// // for a server that answers for several names.
    /// assert_eq!(Request::parse(head).unwrap().host(), "chat.example.com:8080");
    /// ```
    pub fn host(&self) -> &str {
        self.header("Host").unwrap_or_default()
    }

    /// The client's `Sec-WebSocket-Key`.
    ///
    /// ```
    /// use rfc6455::handshake::server::Request;
    ///
    /// let head = b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
    ///     Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    /// let request = Request::parse(head).unwrap();
    /// // The 101 proves the server read it: base64(SHA-1(key + GUID)) (RFC 6455 §1.3).
    /// assert_eq!(rfc6455::accept_key(request.key()), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    /// ```
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The subprotocols the client offers, in its order of preference (§4.1 item 10).
    ///
    /// ```
    /// use rfc6455::handshake::server::Request;
    ///
    /// let head = b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
    ///     Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
    ///     Sec-WebSocket-Protocol: v2.chat, v1.chat\r\n\r\n";
    /// let request = Request::parse(head).unwrap();
    /// // The server picks the first one it speaks, or none (RFC 6455 §4.2.2).
    /// let spoken = ["v1.chat"];
    /// let chosen = request.protocols().iter().find(|p| spoken.contains(&p.as_str()));
    /// assert_eq!(chosen.map(String::as_str), Some("v1.chat"));
    /// ```
    pub fn protocols(&self) -> &[String] {
        &self.protocols
    }

    /// The extensions the client offers, each with its parameters (§9.1).
    ///
    /// ```
    /// use rfc6455::handshake::server::Request;
    ///
    /// // What Chrome offers: permessage-deflate (RFC 7692), willing to take a smaller window.
    /// let head = b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
    ///     Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
    ///     Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n";
    /// let request = Request::parse(head).unwrap();
    /// assert_eq!(request.extensions(), ["permessage-deflate; client_max_window_bits"]);
    /// ```
    pub fn extensions(&self) -> &[String] {
        &self.extensions
    }

    /// The extensions the client offers, parsed (RFC 6455 §9.1), from every
    /// `Sec-WebSocket-Extensions` header line in order; malformed elements are errors
    /// in the list, for the server to decline.
    ///
    /// ```
    /// use rfc6455::handshake::server::Request;
    ///
    /// let head = b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
    ///     Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
    ///     Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=\"10\"\r\n\
    ///     Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n";
    /// let offers = Request::parse(head).unwrap().extension_offers();
    /// assert_eq!(offers.len(), 2);
    /// assert_eq!(offers[0].as_ref().unwrap().params[0].1.as_deref(), Some("10"));
    /// ```
    pub fn extension_offers(&self) -> Vec<Result<Extension, SyntaxError>> {
        let values: Vec<&str> = self
            .headers
            .iter()
            .filter(|(name, _)| name.eq_ignore_ascii_case("Sec-WebSocket-Extensions"))
            .map(|(_, value)| value.as_str())
            .collect();
        crate::extensions::parse(&values)
    }

    /// Negotiates permessage-deflate with the client's offers (RFC 7692 §5): what was
    /// agreed, and the `Sec-WebSocket-Extensions` value to put in the 101 (see
    /// [`accept_with_headers`](Self::accept_with_headers)), or `None`.
    ///
    /// ```
    /// use rfc6455::deflate::DeflateConfig;
    /// use rfc6455::handshake::server::Request;
    ///
    /// let head = b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
    ///     Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
    ///     Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=10\r\n\r\n";
    /// let request = Request::parse(head).unwrap();
    /// let (agreed, answer) = request.negotiate_deflate(&DeflateConfig::default()).unwrap();
    /// // RFC 7692 §7.1.2.1: the client's limit on our window is kept, and said back.
    /// assert_eq!(agreed.local_max_window_bits, 10);
    /// assert!(answer.contains("server_max_window_bits=10"));
    /// ```
    pub fn negotiate_deflate(&self, config: &DeflateConfig) -> Option<(Negotiated, String)> {
        crate::deflate::negotiate(config, &self.extension_offers())
    }

    /// The 101 with permessage-deflate negotiated when `deflate` is given (the answer
    /// in `Sec-WebSocket-Extensions`), and what was agreed, for
    /// [`Connection::with_deflate`](crate::Connection::with_deflate).
    ///
    /// ```
    /// use rfc6455::deflate::DeflateConfig;
    /// use rfc6455::handshake::server::Request;
    ///
    /// let head = b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
    ///     Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
    ///     Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n";
    /// let request = Request::parse(head).unwrap();
    /// let (response, agreed) = request.accept_negotiating(None, Some(&DeflateConfig::default()));
    /// let response = String::from_utf8(response).unwrap();
    /// assert!(response.contains("\r\nSec-WebSocket-Extensions: permessage-deflate"));
    /// assert!(agreed.is_some()); // for Connection::with_deflate
    /// // Without a config nothing is agreed: the plain 101 (RFC 6455 §9.1).
    /// assert_eq!(request.accept_negotiating(None, None), (request.accept(None), None));
    /// ```
    pub fn accept_negotiating(
        &self,
        protocol: Option<&str>,
        deflate: Option<&DeflateConfig>,
    ) -> (Vec<u8>, Option<Negotiated>) {
        match deflate.and_then(|config| self.negotiate_deflate(config)) {
            Some((agreed, answer)) => (
                self.accept_with_headers(protocol, &[("Sec-WebSocket-Extensions", &answer)]),
                Some(agreed),
            ),
            None => (self.accept(protocol), None),
        }
    }

    /// The 101 response that completes the handshake (RFC 6455 §4.2.2 step 5).
    ///
    /// `protocol` must be one the client offered, or `None`.
    ///
    /// ```
    /// use rfc6455::handshake::server::Request;
    ///
    /// let head = b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
    ///     Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    ///     Sec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Version: 13\r\n\r\n";
    /// // The server's handshake of RFC 6455 §1.3, byte for byte.
    /// assert_eq!(
    ///     Request::parse(head).unwrap().accept(Some("chat")),
    ///     b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
    ///       Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: chat\r\n\r\n"
    /// );
    /// ```
    pub fn accept(&self, protocol: Option<&str>) -> Vec<u8> {
        self.accept_with_headers(protocol, &[])
    }

    /// Like [`accept`](Self::accept), with extra response headers (e.g. Set-Cookie).
    ///
    /// ```
    /// use rfc6455::handshake::server::Request;
    ///
    /// let head = b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
    ///     Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    /// let request = Request::parse(head).unwrap();
    /// // A value with CR LF in it cannot add a header of its own (no response splitting).
    /// let response = request.accept_with_headers(None, &[("Set-Cookie", "sid=1\r\nX-Admin: yes")]);
    /// let response = String::from_utf8(response).unwrap();
    /// assert!(response.contains("\r\nSet-Cookie: sid=1X-Admin: yes\r\n"));
    /// assert!(response.ends_with("\r\n\r\n"));
    /// ```
    pub fn accept_with_headers(&self, protocol: Option<&str>, extra: &[(&str, &str)]) -> Vec<u8> {
        let mut out = String::with_capacity(160);
        out.push_str("HTTP/1.1 101 Switching Protocols\r\n");
        for (name, value) in self.switching_headers(protocol) {
            push_header(&mut out, name, &value);
        }
        for (name, value) in extra {
            push_header(&mut out, name, value);
        }
        out.push_str("\r\n");
        out.into_bytes()
    }

    /// The headers of the 101 (RFC 6455 §4.2.2 step 5): Upgrade, Connection, the
    /// accept value, and the chosen subprotocol if any.
    pub(crate) fn switching_headers(&self, protocol: Option<&str>) -> Vec<(&'static str, String)> {
        debug_assert!(protocol.is_none_or(|p| self.protocols.iter().any(|o| o == p)));
        let mut headers = vec![
            ("Upgrade", "websocket".to_string()),
            ("Connection", "Upgrade".to_string()),
            ("Sec-WebSocket-Accept", accept_key(&self.key)),
        ];
        if let Some(protocol) = protocol {
            // The application's choice, normally one of the client's tokens, which may
            // hold a tab or any non-ASCII text, as any header value may (RFC 9110 §5.5).
            // ASCII control characters (CR, LF: a header injection) are dropped whatever
            // it chose; a client's token never holds one (httparse refuses them).
            let protocol = protocol
                .chars()
                .filter(|c| *c == '\t' || !c.is_ascii_control())
                .collect();
            headers.push(("Sec-WebSocket-Protocol", protocol));
        }
        headers
    }
}

/// An HTTP response that refuses the handshake: `status`, extra headers, and a short
/// plain-text body (RFC 6455 §4.2.2: "an appropriate HTTP error code").
///
/// ```
/// let response = rfc6455::handshake::server::reject(403, &[], "origin not allowed");
/// assert!(response.starts_with(b"HTTP/1.1 403 Forbidden\r\n"));
/// ```
pub fn reject(status: u16, extra: &[(&str, &str)], body: &str) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n",
        reason_phrase(status),
        body.len() + 1,
    );
    for (name, value) in extra {
        push_header(&mut out, name, value);
    }
    out.push_str("\r\n");
    out.push_str(body);
    out.push('\n');
    out.into_bytes()
}

/// Appends a header line, dropping CR and LF from the name and value so that an application's
/// string cannot split the response.
fn push_header(out: &mut String, name: &str, value: &str) {
    out.extend(name.chars().filter(|c| *c != '\r' && *c != '\n'));
    out.push_str(": ");
    out.extend(value.chars().filter(|c| *c != '\r' && *c != '\n'));
    out.push_str("\r\n");
}

/// The reason phrase of the statuses a WebSocket server commonly answers with.
///
/// ```
/// use rfc6455::handshake::server::reason_phrase;
///
/// assert_eq!(reason_phrase(101), "Switching Protocols"); // RFC 6455 §4.2.2
/// assert_eq!(reason_phrase(426), "Upgrade Required"); // RFC 9110 §15.5.22
/// assert_eq!(reason_phrase(431), "Request Header Fields Too Large"); // RFC 6585 §5
/// assert_eq!(reason_phrase(418), "Error"); // any other status
/// ```
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        202 => "Accepted",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Error",
    }
}
