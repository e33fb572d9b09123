//! Plain HTTP on the WebSocket port, for requests that are not upgrades: the server
//! answers `GET /healthz` itself and asks the [`Handler`](super::Handler) about the rest
//! (the rooms server serves its page this way). What the handler does not serve is a
//! WebSocket endpoint, so a plain `GET` there gets [`HttpResponse::upgrade_required`].

use crate::handshake::{has_token, owned_headers, MAX_HEADERS};

/// A plain HTTP request head.
///
/// ```
/// use rfc6455::server::HttpRequest;
///
/// let request = HttpRequest::parse(b"GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
/// assert_eq!(request.path(), "/metrics");
/// assert_eq!(request.header("host"), Some("a"));
/// assert!(!request.is_upgrade());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// The method, e.g. `GET`.
    pub method: String,
    /// The request target: path and query.
    pub target: String,
    /// Every header, as (name, value).
    pub headers: Vec<(String, String)>,
    /// The body (`Content-Length` bytes; empty without one).
    pub body: Vec<u8>,
    /// The address of the peer that sent it (set by the server; `None` from
    /// [`parse`](Self::parse)): for limits per client.
    pub peer: Option<std::net::IpAddr>,
    upgrade: bool,
}

impl HttpRequest {
    /// Parses a complete request head; `None` if it is not HTTP/1.x.
    ///
    /// ```
    /// use rfc6455::server::HttpRequest;
    ///
    /// let request = HttpRequest::parse(b"POST /messages HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    /// assert_eq!((request.method.as_str(), request.target.as_str()), ("POST", "/messages"));
    /// assert!(request.body.is_empty() && request.peer.is_none()); // the server fills them in
    /// // Not HTTP: a TLS ClientHello that reached a plain-TCP port.
    /// assert_eq!(HttpRequest::parse(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"), None);
    /// ```
    pub fn parse(head: &[u8]) -> Option<HttpRequest> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(head) {
            Ok(httparse::Status::Complete(_)) => {}
            _ => return None,
        }
        let upgrade = has_token(req.headers, "Upgrade", "websocket");
        Some(HttpRequest {
            method: req.method?.to_string(),
            target: req.path?.to_string(),
            headers: owned_headers(req.headers),
            body: Vec::new(),
            peer: None,
            upgrade,
        })
    }

    /// The path, without the query.
    ///
    /// ```
    /// use rfc6455::server::HttpRequest;
    ///
    /// let request = HttpRequest::parse(b"GET /metrics?format=json HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    /// assert_eq!(request.path(), "/metrics"); // what to route on
    /// ```
    pub fn path(&self) -> &str {
        crate::handshake::target_path(&self.target)
    }

    /// The query string, if any.
    ///
    /// ```
    /// use rfc6455::server::HttpRequest;
    ///
    /// let with = HttpRequest::parse(b"GET /metrics?format=json HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    /// assert_eq!(with.query(), Some("format=json"));
    /// let without = HttpRequest::parse(b"GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    /// assert_eq!(without.query(), None);
    /// ```
    pub fn query(&self) -> Option<&str> {
        crate::handshake::target_query(&self.target)
    }

    /// The first header with this name (case-insensitive).
    ///
    /// ```
    /// use rfc6455::server::HttpRequest;
    ///
    /// let head = b"GET / HTTP/1.1\r\nHost: a\r\nAccept: text/html\r\nAccept: */*\r\n\r\n";
    /// let request = HttpRequest::parse(head).unwrap();
    /// // Header names are case-insensitive (RFC 9110 §5.1); the first line wins.
    /// assert_eq!(request.header("accept"), Some("text/html"));
    /// assert_eq!(request.header("Cookie"), None);
    /// ```
    pub fn header(&self, name: &str) -> Option<&str> {
        crate::handshake::find_header(&self.headers, name)
    }

    /// How long its body is: `Ok(0)` without one, `Err(411)` when it has one of no
    /// stated length (a `Transfer-Encoding`, which this server does not decode:
    /// RFC 9112 §6.3 lets it ask for a length) or a `Content-Length` that is not a
    /// number, or two that differ (`Err(400)`, RFC 9112 §6.3 rule 5).
    ///
    /// ```
    /// use rfc6455::server::HttpRequest;
    ///
    /// let post = HttpRequest::parse(b"POST /m HTTP/1.1\r\nContent-Length: 12\r\n\r\n").unwrap();
    /// assert_eq!(post.body_length(), Ok(12));
    /// let chunked = HttpRequest::parse(b"POST /m HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
    /// assert_eq!(chunked.body_length(), Err(411));
    /// let signed = HttpRequest::parse(b"POST /m HTTP/1.1\r\nContent-Length: +12\r\n\r\n").unwrap();
    /// assert_eq!(signed.body_length(), Err(400));
    /// ```
    pub fn body_length(&self) -> Result<usize, u16> {
        if self.header("transfer-encoding").is_some() {
            return Err(411);
        }
        let mut length = None;
        for (name, value) in &self.headers {
            if name.eq_ignore_ascii_case("content-length") {
                // `1*DIGIT` (RFC 9110 §8.6): no sign, no spaces inside.
                let value = value.trim();
                if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(400);
                }
                let n: usize = value.parse().map_err(|_| 400u16)?;
                if length.is_some_and(|l| l != n) {
                    return Err(400);
                }
                length = Some(n);
            }
        }
        Ok(length.unwrap_or(0))
    }

    /// True if the request asks for a WebSocket upgrade (even an invalid one).
    ///
    /// ```
    /// use rfc6455::server::HttpRequest;
    ///
    /// // An upgrade without its key: still an upgrade, answered 400 (RFC 6455 §4.2.1),
    /// // not served as a page.
    /// let head = b"GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\n\r\n";
    /// assert!(HttpRequest::parse(head).unwrap().is_upgrade());
    /// assert!(!HttpRequest::parse(b"GET /chat HTTP/1.1\r\nHost: a\r\n\r\n").unwrap().is_upgrade());
    /// ```
    pub fn is_upgrade(&self) -> bool {
        self.upgrade
    }
}

/// A response to a plain HTTP request; the connection closes after it.
///
/// ```
/// use rfc6455::server::HttpResponse;
///
/// let bytes = HttpResponse::text(200, "ok\n").to_bytes();
/// assert!(bytes.starts_with(b"HTTP/1.1 200 OK\r\n"));
/// assert!(bytes.ends_with(b"\r\n\r\nok\n"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The Content-Type.
    pub content_type: String,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// A `text/plain` response.
    ///
    /// ```
    /// use rfc6455::server::HttpResponse;
    ///
    /// let response = HttpResponse::text(404, "no such room\n");
    /// assert_eq!(response.content_type, "text/plain; charset=utf-8");
    /// let text = String::from_utf8(response.to_bytes()).unwrap();
    /// assert!(text.starts_with("HTTP/1.1 404 Not Found\r\n"));
    /// assert!(text.contains("\r\nContent-Length: 13\r\n"));
    /// ```
    pub fn text(status: u16, body: &str) -> Self {
        Self::with_type(
            status,
            "text/plain; charset=utf-8",
            body.as_bytes().to_vec(),
        )
    }

    /// A `text/html` response.
    ///
    /// ```
    /// use rfc6455::server::HttpResponse;
    ///
    /// // The page that opens the WebSocket, served from the same port.
    /// let page = HttpResponse::html(200, "<script>new WebSocket(`ws://${location.host}/chat`)</script>");
    /// assert_eq!(page.content_type, "text/html; charset=utf-8");
    /// assert!(page.to_bytes().ends_with(b"</script>"));
    /// ```
    pub fn html(status: u16, body: &str) -> Self {
        Self::with_type(status, "text/html; charset=utf-8", body.as_bytes().to_vec())
    }

    /// `426 Upgrade Required`, for a plain request at a WebSocket endpoint: it names
    /// the protocol to upgrade to (`Upgrade: websocket`, which RFC 9110 §15.5.22
    /// requires in a 426, with `Connection: Upgrade` as §7.8 asks of every `Upgrade`
    /// header) and the version this server speaks (RFC 6455 §4.2.2). A request that
    /// does ask for the upgrade but gets it wrong is a 400 instead (§4.2.1).
    ///
    /// ```
    /// use rfc6455::server::HttpResponse;
    ///
    /// let text = String::from_utf8(HttpResponse::upgrade_required().to_bytes()).unwrap();
    /// assert!(text.starts_with("HTTP/1.1 426 Upgrade Required\r\n"));
    /// assert!(text.contains("\r\nUpgrade: websocket\r\n"));
    /// assert!(text.contains("\r\nConnection: Upgrade\r\n"));
    /// assert!(!text.contains("Connection: close"));
    /// ```
    pub fn upgrade_required() -> Self {
        let mut response = Self::text(
            426,
            "This is a WebSocket endpoint: connect with a WebSocket client \
             (an HTTP/1.1 GET with Upgrade: websocket, RFC 6455 §4.1).\n",
        );
        response.headers = vec![
            ("Upgrade".into(), "websocket".into()),
            ("Connection".into(), "Upgrade".into()),
            ("Sec-WebSocket-Version".into(), "13".into()),
        ];
        response
    }

    /// A response with any content type.
    ///
    /// ```
    /// use rfc6455::server::HttpResponse;
    ///
    /// let json = HttpResponse::with_type(200, "application/json", br#"{"open":3}"#.to_vec());
    /// let text = String::from_utf8(json.to_bytes()).unwrap();
    /// assert!(text.contains("\r\nContent-Type: application/json\r\n"));
    /// assert!(text.ends_with("\r\n\r\n{\"open\":3}"));
    /// ```
    pub fn with_type(status: u16, content_type: &str, body: Vec<u8>) -> Self {
        HttpResponse {
            status,
            content_type: content_type.to_string(),
            headers: Vec::new(),
            body,
        }
    }

    /// The response on the wire. The server closes the connection after it, and says
    /// so with `Connection: close` unless the headers carry a `Connection` of their own.
    /// A header value loses any CR and LF (no response splitting).
    ///
    /// ```
    /// use rfc6455::server::HttpResponse;
    ///
    /// let mut response = HttpResponse::text(202, "");
    /// response.headers.push(("X-Echo".into(), "a\r\nSet-Cookie: b".into()));
    /// let text = String::from_utf8(response.to_bytes()).unwrap();
    /// assert!(text.starts_with("HTTP/1.1 202 Accepted\r\n"));
    /// assert!(text.contains("\r\nX-Echo: aSet-Cookie: b\r\n"));
    /// ```
    pub fn to_bytes(&self) -> Vec<u8> {
        self.encode(Some(self.body.len()))
    }

    /// The head and first bytes of a response that stays open ([`Reply::Stream`]):
    /// no `Content-Length`, so the body lasts until the connection closes
    /// (RFC 9112 §6.3, last rule).
    ///
    /// [`Reply::Stream`]: super::Reply::Stream
    ///
    /// ```
    /// use rfc6455::server::HttpResponse;
    ///
    /// let head = HttpResponse::with_type(200, "text/event-stream", b"retry: 1000\n\n".to_vec());
    /// let text = String::from_utf8(head.to_stream_bytes()).unwrap();
    /// assert!(text.starts_with("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"));
    /// assert!(!text.contains("Content-Length"));
    /// assert!(text.ends_with("\r\n\r\nretry: 1000\n\n"));
    /// ```
    pub fn to_stream_bytes(&self) -> Vec<u8> {
        self.encode(None)
    }

    fn encode(&self, length: Option<usize>) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\n",
            self.status,
            crate::handshake::server::reason_phrase(self.status),
            self.content_type,
        )
        .into_bytes();
        if let Some(length) = length {
            out.extend_from_slice(format!("Content-Length: {length}\r\n").as_bytes());
        }
        if !self
            .headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("connection"))
        {
            out.extend_from_slice(b"Connection: close\r\n");
        }
        for (name, value) in &self.headers {
            // CR and LF dropped: an application's string cannot split the response.
            let value = value.replace(['\r', '\n'], "");
            out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        out
    }
}
