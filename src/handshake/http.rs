//! The opening handshake in the `http` crate's types (feature `http`), for servers
//! whose HTTP layer is hyper, axum or anything else built on them: the request they
//! parsed is validated by the same rules as [`Request::parse`] (RFC 6455 §4.2.1), and
//! the 101 comes back as an [`http::Response`] for them to send. After it, the
//! upgraded byte stream is driven by a [`Connection`](crate::Connection) like any
//! other (`examples/hyper_upgrade.rs` shows it end to end).
//!
//! ```
//! use rfc6455::handshake::server::Request;
//!
//! let request = http::Request::get("/chat")
//!     .header("Host", "example.com")
//!     .header("Upgrade", "websocket")
//!     .header("Connection", "Upgrade")
//!     .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
//!     .header("Sec-WebSocket-Version", "13")
//!     .body(())
//!     .unwrap();
//! let upgrade = Request::from_http(&request).unwrap();
//! let (response, deflate) = upgrade.http_response(None, None);
//! assert_eq!(response.status(), 101);
//! assert_eq!(response.headers()["sec-websocket-accept"], "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
//! assert!(deflate.is_none());
//! ```

use super::server::{Request, RequestError};
use crate::deflate::{DeflateConfig, Negotiated};

/// The request's headers in httparse's type, which the shared rules read. A header
/// value that is not a valid HTTP value never gets here (the `http` crate refuses it).
fn headers<B>(request: &http::Request<B>) -> Vec<httparse::Header<'_>> {
    request
        .headers()
        .iter()
        .map(|(name, value)| httparse::Header {
            name: name.as_str(),
            value: value.as_bytes(),
        })
        .collect()
}

impl Request {
    /// Whether `request` asks for a WebSocket at all: an `Upgrade` header with the
    /// `websocket` token (RFC 6455 §4.2.1 item 3). A server that also serves plain HTTP
    /// answers the others itself, whatever their method or version, and hands these to
    /// [`Request::from_http`], which refuses a broken one with its status.
    ///
    /// ```
    /// use rfc6455::handshake::server::Request;
    ///
    /// let page = http::Request::post("/").body(()).unwrap();
    /// assert!(!Request::is_upgrade(&page));
    /// let upgrade = http::Request::get("/").header("Upgrade", "WebSocket").body(()).unwrap();
    /// assert!(Request::is_upgrade(&upgrade));
    /// ```
    pub fn is_upgrade<B>(request: &http::Request<B>) -> bool {
        super::has_token(&headers(request), "Upgrade", "websocket")
    }

    /// Validates a request that an HTTP library already parsed (RFC 6455 §4.2.1): the
    /// method, version, target and headers are checked exactly as
    /// [`Request::parse`] checks a raw head. The body is not looked at.
    ///
    /// ```
    /// use rfc6455::handshake::server::{Request, RequestError};
    ///
    /// // A POST is no upgrade, whatever its headers say (RFC 6455 §4.1 item 2: a GET).
    /// let post = http::Request::post("/chat")
    ///     .header("Host", "example.com")
    ///     .header("Upgrade", "websocket")
    ///     .header("Connection", "Upgrade")
    ///     .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
    ///     .header("Sec-WebSocket-Version", "13")
    ///     .body(())
    ///     .unwrap();
    /// let refusal = Request::from_http(&post).unwrap_err();
    /// assert_eq!(refusal, RequestError::MethodNotGet("POST".into()));
    /// assert_eq!(refusal.status(), 405);
    /// ```
    pub fn from_http<B>(request: &http::Request<B>) -> Result<Request, RequestError> {
        let headers = headers(request);
        if headers.len() > super::MAX_HEADERS {
            return Err(RequestError::HeadTooLarge); // as Request::parse: 431
        }
        let target = request.uri().to_string();
        let http11 = request.version() == http::Version::HTTP_11;
        Request::validate(request.method().as_str(), http11, &target, &headers)
    }

    /// The 101 that completes the handshake, as an [`http::Response`]: the same
    /// headers as [`Request::accept_negotiating`], with permessage-deflate agreed when
    /// `deflate` is given and the client offered it, and what was agreed, for
    /// [`Connection::with_deflate`](crate::Connection::with_deflate).
    ///
    /// ```
    /// use rfc6455::deflate::DeflateConfig;
    /// use rfc6455::handshake::server::Request;
    ///
    /// let request = http::Request::get("/chat")
    /// #   .header("Host", "example.com")
    /// #   .header("Upgrade", "websocket")
    /// #   .header("Connection", "Upgrade")
    /// #   .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
    /// #   .header("Sec-WebSocket-Version", "13")
    ///     .header("Sec-WebSocket-Protocol", "chat")
    ///     .header("Sec-WebSocket-Extensions", "permessage-deflate")
    ///     .body(())
    ///     .unwrap();
    /// let upgrade = Request::from_http(&request).unwrap();
    /// let (response, agreed) = upgrade.http_response(Some("chat"), Some(&DeflateConfig::default()));
    /// assert_eq!(response.headers()["sec-websocket-protocol"], "chat");
    /// // RFC 7692 §5: the 101 names the extension agreed; `agreed` is for the Connection.
    /// let extensions = response.headers()["sec-websocket-extensions"].to_str().unwrap();
    /// assert!(extensions.starts_with("permessage-deflate") && agreed.is_some());
    /// ```
    pub fn http_response(
        &self,
        protocol: Option<&str>,
        deflate: Option<&DeflateConfig>,
    ) -> (http::Response<()>, Option<Negotiated>) {
        let mut response = http::Response::builder().status(http::StatusCode::SWITCHING_PROTOCOLS);
        for (name, value) in self.switching_headers(protocol) {
            response = response.header(name, value);
        }
        let (response, agreed) = match deflate.and_then(|config| self.negotiate_deflate(config)) {
            Some((agreed, answer)) => (
                response.header("Sec-WebSocket-Extensions", answer),
                Some(agreed),
            ),
            None => (response, None),
        };
        // Every value above is ours, a valid header value already, or stripped of
        // control characters: valid HTTP field values all.
        (response.body(()).expect("valid 101 headers"), agreed)
    }
}

impl RequestError {
    /// The refusal as an [`http::Response`]: the status of
    /// [`RequestError::status`], the headers the RFC asks for (`Allow: GET`,
    /// `Sec-WebSocket-Version: 13`) and the reason as a plain-text body.
    ///
    /// ```
    /// use rfc6455::handshake::server::Request;
    ///
    /// let request = http::Request::get("/").header("Host", "a").body(()).unwrap();
    /// let refusal = Request::from_http(&request).unwrap_err().http_response();
    /// assert_eq!(refusal.status(), 400);
    /// assert!(refusal.body().contains("not a WebSocket upgrade"));
    /// ```
    pub fn http_response(&self) -> http::Response<String> {
        let mut response = http::Response::builder()
            .status(self.status())
            .header("Content-Type", "text/plain; charset=utf-8");
        for (name, value) in self.extra_headers() {
            response = response.header(*name, *value);
        }
        response
            .body(format!("{self}\n"))
            .expect("a valid status and headers")
    }
}
