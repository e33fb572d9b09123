//! Blocking drivers over `std::io::Read + Write`: a client ([`connect`]) and a server
//! ([`accept`]) that run the sans-IO [`Connection`] on a stream, one thread each.
//!
//! ```
//! use rfc6455::blocking;
//! use rfc6455::{CloseCode, Event};
//!
//! # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
//! # let address = format!("ws://{}/", listener.local_addr()?);
//! # std::thread::spawn(move || -> Result<(), blocking::Error> {
//! #     let mut ws = blocking::accept(listener.accept()?.0)?;
//! #     loop {
//! #         if let Event::Text(text) = ws.read()? {
//! #             ws.send_text(&text)?;
//! #         }
//! #     }
//! # });
//! // `address` is a local echo server's (ws://127.0.0.1:PORT/).
//! let mut ws = blocking::connect(&address)?;
//! ws.send_text("hello")?;
//! assert_eq!(ws.read()?, Event::Text("hello".into()));
//! ws.close(CloseCode::NORMAL, "done")?;
//! // The server answers our Close with its own (RFC 6455 §5.5.1), ending the connection.
//! assert!(matches!(ws.read()?, Event::Close(Some(close)) if close.code == CloseCode::NORMAL));
//! # Ok::<(), rfc6455::blocking::Error>(())
//! ```

use crate::handshake::client::{Accepted, ClientHandshake, ResponseError, UrlError, WsUrl};
use crate::handshake::server::{reject, Request, RequestError};
use crate::handshake::{HeadReader, DEFAULT_MAX_HEAD};
use crate::{
    CloseCode, Config, Connection, Event, MessageKind, MessageRef, ProtocolError, Role, SendError,
    State,
};
use std::fmt;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// How much to read from the stream at a time.
const READ_CHUNK: usize = 64 * 1024;

/// How long the closing handshake may take by default: waiting for the peer's Close
/// after ours, then (a client) for the server to close the TCP connection. RFC 6455
/// §7.1.1 lets a client close the TCP connection itself "if it has not received a TCP
/// Close from the server in a reasonable time period"; the event-loop server uses the
/// same 5 s (`ServerConfig::close_timeout`).
pub const DEFAULT_CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// What can go wrong on a blocking WebSocket.
///
/// ```
/// use rfc6455::blocking::{self, Error};
/// use std::io::Cursor;
///
/// // Not a WebSocket URL (RFC 6455 §3): refused before any connection is made.
/// assert!(matches!(blocking::connect("http://example.com/"), Err(Error::Url(_))));
/// // A stream that ends before the handshake is done: "abnormal closure" (§7.1.5).
/// let empty = Cursor::new(Vec::new());
/// assert!(matches!(blocking::accept(empty), Err(Error::AbnormalClosure)));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The transport failed.
    Io(io::Error),
    /// The peer broke the protocol; the Close frame with the error's code was sent.
    Protocol(ProtocolError),
    /// A send the protocol does not allow now.
    Send(SendError),
    /// The client's request was not a valid upgrade; the error response was sent.
    Request(RequestError),
    /// The application refused the upgrade with this status; the response was sent.
    Rejected(u16),
    /// The server's response did not complete the handshake.
    Response(ResponseError),
    /// The URL cannot be connected to.
    Url(UrlError),
    /// The stream ended before the handshake or the closing handshake completed
    /// (RFC 6455 §7.1.5: "abnormal closure", 1006).
    AbnormalClosure,
    /// The connection is closed: the closing handshake completed earlier.
    Closed,
    /// The peer did not answer our Close within the close timeout (see
    /// [`WebSocket::set_close_timeout`]); the closing handshake is abandoned and the
    /// connection counts as closed abnormally (1006).
    CloseTimeout,
    /// The TLS handshake failed: e.g. the server's certificate is not trusted
    /// (`UnknownIssuer`) or not valid for the host name (`NotValidForName`), or the
    /// peer sent an alert.
    #[cfg(feature = "tls")]
    Tls(rustls::Error),
    /// A `wss://` URL, but the crate was built without the `tls` feature.
    TlsUnavailable,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(e) => write!(f, "I/O error: {e}"),
            Error::Protocol(e) => write!(f, "protocol error: {e}"),
            Error::Send(e) => write!(f, "cannot send: {e}"),
            Error::Request(e) => write!(f, "bad handshake request: {e}"),
            Error::Rejected(status) => write!(f, "handshake rejected with status {status}"),
            Error::Response(e) => write!(f, "bad handshake response: {e}"),
            Error::Url(e) => e.fmt(f),
            Error::AbnormalClosure => {
                f.write_str("connection dropped without a closing handshake (1006)")
            }
            Error::Closed => f.write_str("the connection is closed"),
            Error::CloseTimeout => {
                f.write_str("the peer did not answer the Close frame in time (1006)")
            }
            #[cfg(feature = "tls")]
            Error::Tls(e) => write!(f, "TLS handshake failed: {e}"),
            Error::TlsUnavailable => f.write_str("wss:// needs the crate's `tls` feature"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            Error::Protocol(e) => Some(e),
            Error::Send(e) => Some(e),
            Error::Request(e) => Some(e),
            Error::Response(e) => Some(e),
            Error::Url(e) => Some(e),
            #[cfg(feature = "tls")]
            Error::Tls(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

impl From<SendError> for Error {
    fn from(e: SendError) -> Self {
        Error::Send(e)
    }
}

/// A WebSocket over a blocking stream.
///
/// ```
/// use rfc6455::{blocking, CloseCode, Event};
///
/// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
/// # let address = format!("ws://{}/", listener.local_addr()?);
/// # std::thread::spawn(move || -> Result<(), blocking::Error> {
/// #     let mut ws = blocking::accept(listener.accept()?.0)?;
/// #     loop {
/// #         match ws.read()? {
/// #             rfc6455::Event::Text(text) => ws.send_text(&text)?,
/// #             rfc6455::Event::Binary(data) => ws.send_binary(&data)?,
/// #             _ => {}
/// #         }
/// #     }
/// # });
/// // `address` is a local echo server's.
/// let mut ws = blocking::connect(&address)?;
/// ws.send_text("Hello")?;
/// assert_eq!(ws.read()?, Event::Text("Hello".into()));
/// ws.close(CloseCode::NORMAL, "done")?;
/// // The closing handshake (RFC 6455 §7.1.2): the server's Close echoes our code.
/// assert!(matches!(ws.read()?, Event::Close(Some(close)) if close.code == CloseCode::NORMAL));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct WebSocket<S> {
    stream: S,
    conn: Connection,
    protocol: Option<String>,
    eof: bool,
    /// The request and response heads, kept when [`Config::trace`] is on.
    heads: Option<(Vec<u8>, Vec<u8>)>,
    /// Until when a client waits for the server to close the TCP connection once the
    /// WebSocket is closed (RFC 6455 §7.1.1), from the first such wait: the transport's
    /// linger. The closing handshake's own timeout is the `Connection`'s.
    linger_deadline: Option<Instant>,
    /// Sets the stream's read timeout, so that a blocked read ends at a close
    /// deadline: known for a `TcpStream` from [`connect`]; other streams are checked
    /// between reads only (give them a read timeout to bound each read).
    set_read_timeout: Option<SetReadTimeout<S>>,
}

/// A stream's `set_read_timeout`, e.g. [`TcpStream::set_read_timeout`].
type SetReadTimeout<S> = fn(&S, Option<Duration>) -> io::Result<()>;

/// A read that ended for lack of data (a read timeout), not for an error.
fn timed_out(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// Connects to a `ws://` or `wss://` URL and completes the opening handshake. A
/// `wss://` server is verified against the platform's trusted roots (see
/// [`connect_tls`] for a CA of your own).
///
/// ```
/// use rfc6455::{blocking, Config, Event};
///
/// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
/// # let addr = listener.local_addr()?;
/// # std::thread::spawn(move || -> Result<(), blocking::Error> {
/// #     let mut target = String::new();
/// #     let mut ws = blocking::accept_with(listener.accept()?.0, Config::default(), |request| {
/// #         target = request.target().to_string();
/// #         Ok(None)
/// #     })?;
/// #     ws.send_text(&target)
/// # });
/// // A local server that greets each client with the target it asked for.
/// let mut ws = blocking::connect(&format!("ws://{addr}/chat?room=1"))?;
/// // RFC 6455 §4.1: the URL's path and query are the request line's target.
/// assert_eq!(ws.read()?, Event::Text("/chat?room=1".into()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn connect(url: &str) -> Result<WebSocket<ClientStream>, Error> {
    connect_with(url, Config::default(), &[])
}

/// Like [`connect`], with a configuration and subprotocols to offer.
///
/// ```
/// use rfc6455::{blocking, Config};
///
/// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
/// # let addr = listener.local_addr()?;
/// # std::thread::spawn(move || -> Result<(), blocking::Error> {
/// #     blocking::accept_with(listener.accept()?.0, Config::default(), |request| {
/// #         Ok(request.protocols().iter().find(|p| *p == "chat").cloned())
/// #     })?;
/// #     Ok(())
/// # });
/// // A local server that speaks "chat" only. Offer two subprotocols, the preferred first
/// // (RFC 6455 §4.1); the server answers with the one it picked (§4.2.2).
/// let ws = blocking::connect_with(&format!("ws://{addr}/"), Config::default(), &["superchat", "chat"])?;
/// assert_eq!(ws.protocol(), Some("chat"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn connect_with(
    url: &str,
    config: Config,
    protocols: &[&str],
) -> Result<WebSocket<ClientStream>, Error> {
    #[cfg(feature = "tls")]
    if WsUrl::parse(url).is_ok_and(|u| u.secure) {
        // The platform's roots are read once per process (hundreds of files).
        static PLATFORM: std::sync::OnceLock<std::sync::Arc<rustls::ClientConfig>> =
            std::sync::OnceLock::new();
        let tls = match PLATFORM.get() {
            Some(tls) => tls.clone(),
            None => {
                let tls =
                    crate::tls::client_config().map_err(|e| Error::Io(io::Error::other(e)))?;
                PLATFORM.get_or_init(|| tls).clone()
            }
        };
        return connect_with_tls(url, config, protocols, tls);
    }
    open(url, config, protocols, |tcp, _| {
        Ok(ClientStream::Plain(tcp))
    })
}

/// Connects to a `wss://` URL with a TLS configuration of your own, e.g. one that
/// trusts your CA ([`tls::client_config_with_ca`](crate::tls::client_config_with_ca)).
///
/// ```
/// use rfc6455::{blocking, tls, Event};
///
/// # let dir = std::env::temp_dir().join(format!("rfc6455-doc-{}-{}", std::process::id(), line!()));
/// # std::fs::create_dir_all(&dir)?;
/// # let key = rcgen::KeyPair::generate()?;
/// # let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])?.self_signed(&key)?;
/// # std::fs::write(dir.join("cert.pem"), cert.pem())?;
/// # std::fs::write(dir.join("key.pem"), key.serialize_pem())?;
/// # let server = tls::server_config(&dir.join("cert.pem"), &dir.join("key.pem"))?;
/// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
/// # let port = listener.local_addr()?.port();
/// # std::thread::spawn(move || -> Result<(), blocking::Error> {
/// #     let tcp = listener.accept()?.0;
/// #     let mut ws = blocking::accept_tls(tcp, server, rfc6455::Config::default(), |_| Ok(None))?;
/// #     loop {
/// #         if let Event::Text(text) = ws.read()? {
/// #             ws.send_text(&text)?;
/// #         }
/// #     }
/// # });
/// // A local `wss://` echo server on `port` presents a self-signed certificate for
/// // localhost, in `dir`: trusted as its own CA.
/// let ca = tls::client_config_with_ca(&dir.join("cert.pem"))?;
/// let mut ws = blocking::connect_tls(&format!("wss://localhost:{port}/"), ca)?;
/// ws.send_text("over TLS")?;
/// assert_eq!(ws.read()?, Event::Text("over TLS".into()));
/// // RFC 6455 §4.1 step 5: the TLS handshake came first; the WebSocket runs inside it.
/// assert!(ws.get_ref().tls().is_some());
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[cfg(feature = "tls")]
pub fn connect_tls(
    url: &str,
    tls: std::sync::Arc<rustls::ClientConfig>,
) -> Result<WebSocket<ClientStream>, Error> {
    connect_with_tls(url, Config::default(), &[], tls)
}

/// [`connect_tls`] with a configuration and subprotocols to offer. A `ws://` URL
/// connects without TLS.
///
/// ```
/// use rfc6455::{blocking, tls, Config};
///
/// # let dir = std::env::temp_dir().join(format!("rfc6455-doc-{}-{}", std::process::id(), line!()));
/// # std::fs::create_dir_all(&dir)?;
/// # let key = rcgen::KeyPair::generate()?;
/// # let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])?.self_signed(&key)?;
/// # std::fs::write(dir.join("cert.pem"), cert.pem())?;
/// # std::fs::write(dir.join("key.pem"), key.serialize_pem())?;
/// # let server = tls::server_config(&dir.join("cert.pem"), &dir.join("key.pem"))?;
/// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
/// # let port = listener.local_addr()?.port();
/// # std::thread::spawn(move || -> Result<(), blocking::Error> {
/// #     let tcp = listener.accept()?.0;
/// #     let mut ws = blocking::accept_tls(tcp, server, Config::default(), |request| {
/// #         Ok(request.protocols().iter().find(|p| *p == "chat").cloned())
/// #     })?;
/// #     loop {
/// #         ws.read()?;
/// #     }
/// # });
/// // A local `wss://` server on `port` that speaks "chat", with a self-signed
/// // certificate for localhost in `dir`.
/// let ca = tls::client_config_with_ca(&dir.join("cert.pem"))?;
/// let url = format!("wss://localhost:{port}/");
/// let ws = blocking::connect_with_tls(&url, Config::default(), &["chat"], ca)?;
/// // The subprotocol is agreed inside TLS, as over TCP (RFC 6455 §4.2.2).
/// assert_eq!(ws.protocol(), Some("chat"));
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[cfg(feature = "tls")]
pub fn connect_with_tls(
    url: &str,
    config: Config,
    protocols: &[&str],
    tls: std::sync::Arc<rustls::ClientConfig>,
) -> Result<WebSocket<ClientStream>, Error> {
    open(url, config, protocols, |mut tcp, url| {
        if !url.secure {
            return Ok(ClientStream::Plain(tcp));
        }
        let name = rustls::pki_types::ServerName::try_from(url.host.clone())
            .map_err(|e| Error::Url(UrlError(format!("bad host name for TLS: {e}"))))?;
        let mut session = rustls::ClientConnection::new(tls, name).map_err(Error::Tls)?;
        // The TLS handshake first (RFC 6455 §4.1 step 5), so that its failures are
        // told apart from the WebSocket handshake's.
        while session.is_handshaking() {
            session.complete_io(&mut tcp).map_err(tls_error)?;
        }
        Ok(ClientStream::Tls(Box::new(rustls::StreamOwned::new(
            session, tcp,
        ))))
    })
}

/// An I/O error from rustls, told apart: its TLS errors become [`Error::Tls`].
#[cfg(feature = "tls")]
fn tls_error(e: io::Error) -> Error {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(tls) => Error::Tls(tls.clone()),
        None if e.kind() == io::ErrorKind::UnexpectedEof => Error::AbnormalClosure,
        None => Error::Io(e),
    }
}

/// Connects over TCP, wraps the stream (`secure` decides TLS or not) and runs the
/// client handshake.
fn open(
    url: &str,
    config: Config,
    protocols: &[&str],
    wrap: impl FnOnce(TcpStream, &WsUrl) -> Result<ClientStream, Error>,
) -> Result<WebSocket<ClientStream>, Error> {
    let parsed = WsUrl::parse(url).map_err(Error::Url)?;
    if parsed.secure && cfg!(not(feature = "tls")) {
        return Err(Error::TlsUnavailable);
    }
    let tcp = TcpStream::connect((parsed.host.as_str(), parsed.port))?;
    tcp.set_nodelay(true)?;
    let stream = wrap(tcp, &parsed)?;
    let mut ws = client(stream, &parsed, config, protocols)?;
    ws.set_read_timeout = Some(|stream: &ClientStream, timeout| stream.set_read_timeout(timeout));
    Ok(ws)
}

/// The stream under a client from [`connect`]: TCP for `ws://`, TLS over TCP for
/// `wss://`.
///
/// ```
/// use rfc6455::blocking::{self, ClientStream};
///
/// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
/// # let addr = listener.local_addr()?;
/// # std::thread::spawn(move || -> Result<(), blocking::Error> {
/// #     let mut ws = blocking::accept(listener.accept()?.0)?;
/// #     loop {
/// #         ws.read()?;
/// #     }
/// # });
/// // `addr` is a local server's. A `ws://` URL: plain TCP, no TLS (RFC 6455 §3).
/// let ws = blocking::connect(&format!("ws://{addr}/"))?;
/// assert!(matches!(ws.get_ref(), ClientStream::Plain(_)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum ClientStream {
    /// `ws://`.
    Plain(TcpStream),
    /// `wss://`: rustls over the TCP stream.
    #[cfg(feature = "tls")]
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl ClientStream {
    /// The TCP stream underneath.
    ///
    /// ```
    /// use rfc6455::{blocking, Event};
    ///
    /// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// # let addr = listener.local_addr()?;
    /// # std::thread::spawn(move || -> Result<(), blocking::Error> {
    /// #     let (tcp, peer) = listener.accept()?;
    /// #     let mut ws = blocking::accept(tcp)?;
    /// #     ws.send_text(&peer.to_string())?;
    /// #     loop {
    /// #         ws.read()?;
    /// #     }
    /// # });
    /// // A local server at `addr` that tells each client the address it sees it from.
    /// let mut ws = blocking::connect(&format!("ws://{addr}/"))?;
    /// let local = ws.get_ref().tcp().local_addr()?;
    /// assert_eq!(ws.read()?, Event::Text(local.to_string()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn tcp(&self) -> &TcpStream {
        match self {
            ClientStream::Plain(tcp) => tcp,
            #[cfg(feature = "tls")]
            ClientStream::Tls(tls) => tls.get_ref(),
        }
    }

    /// Sets the TCP stream's read timeout (see [`TcpStream::set_read_timeout`]).
    ///
    /// ```
    /// use rfc6455::blocking::{self, Error};
    /// use std::io::ErrorKind;
    /// use std::time::Duration;
    ///
    /// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// # let addr = listener.local_addr()?;
    /// # std::thread::spawn(move || -> Result<(), blocking::Error> {
    /// #     let mut ws = blocking::accept(listener.accept()?.0)?;
    /// #     loop {
    /// #         ws.read()?;
    /// #     }
    /// # });
    /// // `addr` is a local server's that never sends anything.
    /// let mut ws = blocking::connect(&format!("ws://{addr}/"))?;
    /// ws.get_ref().set_read_timeout(Some(Duration::from_millis(50)))?;
    /// // The read gives up after 50 ms: WouldBlock on Unix (TimedOut on Windows).
    /// let Err(Error::Io(e)) = ws.read() else { panic!("the read did not time out") };
    /// assert!(matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut), "{e}");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.tcp().set_read_timeout(timeout)
    }

    /// The TLS session of a `wss://` connection (e.g. for
    /// [`tls::describe`](crate::tls::describe)).
    ///
    /// ```
    /// use rfc6455::{blocking, tls};
    ///
    /// # let dir = std::env::temp_dir().join(format!("rfc6455-doc-{}-{}", std::process::id(), line!()));
    /// # std::fs::create_dir_all(&dir)?;
    /// # let key = rcgen::KeyPair::generate()?;
    /// # let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])?.self_signed(&key)?;
    /// # std::fs::write(dir.join("cert.pem"), cert.pem())?;
    /// # std::fs::write(dir.join("key.pem"), key.serialize_pem())?;
    /// # let server = tls::server_config(&dir.join("cert.pem"), &dir.join("key.pem"))?;
    /// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// # let port = listener.local_addr()?.port();
    /// # std::thread::spawn(move || -> Result<(), blocking::Error> {
    /// #     let tcp = listener.accept()?.0;
    /// #     let mut ws = blocking::accept_tls(tcp, server, rfc6455::Config::default(), |_| Ok(None))?;
    /// #     loop {
    /// #         ws.read()?;
    /// #     }
    /// # });
    /// // A local `wss://` server on `port`, whose self-signed certificate is in `dir`.
    /// let ca = tls::client_config_with_ca(&dir.join("cert.pem"))?;
    /// let ws = blocking::connect_tls(&format!("wss://localhost:{port}/"), ca)?;
    /// let session = ws.get_ref().tls().expect("wss://");
    /// // e.g. "TLSv1_3 TLS13_AES_256_GCM_SHA384 alpn=http/1.1": both ends offer TLS 1.3,
    /// // and HTTP/1.1, which carries the opening handshake (RFC 6455 §4.1).
    /// let line = tls::describe(session, None).unwrap();
    /// assert!(line.starts_with("TLSv1_3 ") && line.ends_with(" alpn=http/1.1"), "{line}");
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "tls")]
    pub fn tls(&self) -> Option<&rustls::ClientConnection> {
        match self {
            ClientStream::Plain(_) => None,
            ClientStream::Tls(tls) => Some(&tls.conn),
        }
    }
}

impl Read for ClientStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            ClientStream::Plain(tcp) => tcp.read(buf),
            #[cfg(feature = "tls")]
            ClientStream::Tls(tls) => match tls.read(buf) {
                // The TCP stream ended without TLS close_notify: the WebSocket closing
                // handshake, not TLS, says whether the conversation was complete
                // (RFC 6455 §7.1.5), so this ends the stream like a plain EOF.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
                other => other,
            },
        }
    }
}

impl Write for ClientStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            ClientStream::Plain(tcp) => tcp.write(buf),
            #[cfg(feature = "tls")]
            ClientStream::Tls(tls) => tls.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            ClientStream::Plain(tcp) => tcp.flush(),
            #[cfg(feature = "tls")]
            ClientStream::Tls(tls) => tls.flush(),
        }
    }
}

/// A server-side TLS stream, as [`accept_tls`] gives it.
///
/// ```
/// use rfc6455::blocking::{self, ServerTlsStream};
/// use rfc6455::{tls, Config};
///
/// # let dir = std::env::temp_dir().join(format!("rfc6455-doc-{}-{}", std::process::id(), line!()));
/// # std::fs::create_dir_all(&dir)?;
/// # let key = rcgen::KeyPair::generate()?;
/// # let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])?.self_signed(&key)?;
/// # std::fs::write(dir.join("cert.pem"), cert.pem())?;
/// # std::fs::write(dir.join("key.pem"), key.serialize_pem())?;
/// # let config = tls::server_config(&dir.join("cert.pem"), &dir.join("key.pem"))?;
/// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
/// # let url = format!("wss://localhost:{}/", listener.local_addr()?.port());
/// # let ca = tls::client_config_with_ca(&dir.join("cert.pem"))?;
/// # std::thread::spawn(move || -> Result<(), blocking::Error> {
/// #     let mut ws = blocking::connect_tls(&url, ca)?;
/// #     loop {
/// #         ws.read()?;
/// #     }
/// # });
/// // `listener` is a local one; a client connects to it as wss://localhost:PORT/.
/// let (tcp, peer) = listener.accept()?;
/// let ws = blocking::accept_tls(tcp, config, Config::default(), |_| Ok(None))?;
/// let stream: &ServerTlsStream = ws.get_ref();
/// // rustls' session (`conn`) over the TCP stream (`sock`).
/// assert_eq!(stream.conn.server_name(), Some("localhost")); // the client's SNI
/// assert_eq!(stream.sock.peer_addr()?, peer);
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[cfg(feature = "tls")]
pub type ServerTlsStream = rustls::StreamOwned<rustls::ServerConnection, TcpStream>;

/// Runs the TLS handshake on an accepted TCP stream, then [`accept_with`] over it: a
/// blocking `wss://` server.
///
/// ```
/// use rfc6455::{blocking, tls, Event};
/// use std::net::TcpListener;
///
/// # let dir = std::env::temp_dir().join(format!("rfc6455-doc-{}-{}", std::process::id(), line!()));
/// # std::fs::create_dir_all(&dir)?;
/// # let key = rcgen::KeyPair::generate()?;
/// # let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])?.self_signed(&key)?;
/// # std::fs::write(dir.join("cert.pem"), cert.pem())?;
/// # std::fs::write(dir.join("key.pem"), key.serialize_pem())?;
/// // `dir` holds a self-signed certificate for localhost and its key.
/// let config = tls::server_config(&dir.join("cert.pem"), &dir.join("key.pem"))?;
/// let listener = TcpListener::bind("127.0.0.1:0")?;
/// # let url = format!("wss://localhost:{}/", listener.local_addr()?.port());
/// # let ca = tls::client_config_with_ca(&dir.join("cert.pem"))?;
/// # std::thread::spawn(move || -> Result<(), blocking::Error> {
/// #     let mut ws = blocking::connect_tls(&url, ca)?;
/// #     loop {
/// #         if let Event::Text(text) = ws.read()? {
/// #             ws.send_text(&text)?;
/// #         }
/// #     }
/// # });
/// // A client that trusts the certificate connects and echoes what it gets.
/// let (tcp, _) = listener.accept()?;
/// let mut ws = blocking::accept_tls(tcp, config, rfc6455::Config::default(), |_| Ok(None))?;
/// ws.send_text("hello over TLS")?;
/// assert_eq!(ws.read()?, Event::Text("hello over TLS".into()));
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[cfg(feature = "tls")]
pub fn accept_tls<F>(
    mut tcp: TcpStream,
    tls: std::sync::Arc<rustls::ServerConfig>,
    config: Config,
    decide: F,
) -> Result<WebSocket<ServerTlsStream>, Error>
where
    F: FnOnce(&Request) -> Result<Option<String>, u16>,
{
    let mut session = rustls::ServerConnection::new(tls).map_err(Error::Tls)?;
    while session.is_handshaking() {
        session.complete_io(&mut tcp).map_err(tls_error)?;
    }
    let mut ws = accept_with(rustls::StreamOwned::new(session, tcp), config, decide)?;
    ws.set_read_timeout = Some(|s: &ServerTlsStream, t| s.get_ref().set_read_timeout(t));
    Ok(ws)
}

/// Runs the client handshake on an already connected stream.
///
/// ```
/// use rfc6455::handshake::client::WsUrl;
/// use rfc6455::{blocking, Config, Event};
/// use std::net::TcpStream;
/// use std::time::Duration;
///
/// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
/// # let address = format!("ws://{}/", listener.local_addr()?);
/// # std::thread::spawn(move || -> Result<(), blocking::Error> {
/// #     let mut ws = blocking::accept(listener.accept()?.0)?;
/// #     loop {
/// #         match ws.read()? {
/// #             rfc6455::Event::Text(text) => ws.send_text(&text)?,
/// #             rfc6455::Event::Binary(data) => ws.send_binary(&data)?,
/// #             _ => {}
/// #         }
/// #     }
/// # });
/// // `address` is a local echo server's. The stream is yours to set up first.
/// let url = WsUrl::parse(&address)?;
/// let tcp = TcpStream::connect((url.host.as_str(), url.port))?;
/// tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
/// let mut ws = blocking::client(tcp, &url, Config::default(), &[])?;
/// ws.send_binary(&[1, 2, 3])?;
/// assert_eq!(ws.read()?, Event::Binary(vec![1, 2, 3]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn client<S: Read + Write>(
    mut stream: S,
    url: &WsUrl,
    config: Config,
    protocols: &[&str],
) -> Result<WebSocket<S>, Error> {
    let (handshake, request) = match &config.deflate {
        Some(deflate) => ClientHandshake::offering_deflate(url, protocols, &[], deflate),
        None => ClientHandshake::new(url, protocols, &[]),
    };
    stream.write_all(&request)?;
    stream.flush()?;
    let mut head = HeadReader::new(DEFAULT_MAX_HEAD);
    let head_len = read_head(&mut stream, &mut head).map_err(|e| match e {
        HeadError::Io(e) => Error::Io(e),
        HeadError::TooLarge => Error::Response(ResponseError::Malformed("head too large".into())),
        HeadError::Eof => Error::AbnormalClosure,
    })?;
    let response = &head.buffer()[..head_len];
    let Accepted {
        protocol, deflate, ..
    } = handshake.validate(response).map_err(Error::Response)?;
    let heads = config.trace.then(|| (request, response.to_vec()));
    let mut conn = Connection::with_deflate(Role::Client, config, deflate);
    conn.receive(&head.take_rest());
    let mut ws = WebSocket::from_parts(stream, conn, protocol);
    ws.heads = heads;
    Ok(ws)
}

/// Accepts a WebSocket on a server-side stream with the default configuration,
/// accepting any path and no subprotocol.
///
/// ```
/// use rfc6455::{blocking, Event};
/// use std::io::Cursor;
///
/// // RFC 6455 §1.3's request with §5.7's masked "Hello" right behind it, as an
/// // in-memory stream; what the server writes lands after them.
/// let mut input = b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
///     Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
///     .to_vec();
/// input.extend([0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]);
/// let mut ws = blocking::accept(Cursor::new(input))?;
/// assert_eq!(ws.read()?, Event::Text("Hello".into()));
/// // The 101 response, with the accept key the RFC computes for that nonce.
/// let written = String::from_utf8_lossy(ws.get_ref().get_ref());
/// assert!(written.contains("HTTP/1.1 101 Switching Protocols\r\n"));
/// assert!(written.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
/// # Ok::<(), rfc6455::blocking::Error>(())
/// ```
pub fn accept<S: Read + Write>(stream: S) -> Result<WebSocket<S>, Error> {
    accept_with(stream, Config::default(), |_| Ok(None))
}

/// Accepts a WebSocket on a server-side stream. `decide` sees the validated request
/// and answers `Ok(subprotocol)` to accept or `Err(status)` to refuse (e.g. 401, 403).
///
/// ```
/// use rfc6455::{blocking, Config};
/// use std::io::Cursor;
///
/// # const REQUEST: &[u8] = b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
/// #     Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: http://example.com\r\n\
/// #     Sec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Version: 13\r\n\r\n";
/// // REQUEST is RFC 6455 §1.3's, which offers "chat, superchat": pick one (§4.2.2)...
/// let stream = Cursor::new(REQUEST.to_vec());
/// let ws = blocking::accept_with(stream, Config::default(), |request| {
///     Ok(request.protocols().iter().find(|p| *p == "chat").cloned())
/// })?;
/// assert_eq!(ws.protocol(), Some("chat"));
/// // ... or refuse the upgrade with an HTTP status, e.g. for a bad Origin (§10.2).
/// let refused = blocking::accept_with(Cursor::new(REQUEST.to_vec()), Config::default(), |_| Err(403));
/// assert!(matches!(refused, Err(blocking::Error::Rejected(403))));
/// # Ok::<(), rfc6455::blocking::Error>(())
/// ```
pub fn accept_with<S, F>(mut stream: S, config: Config, decide: F) -> Result<WebSocket<S>, Error>
where
    S: Read + Write,
    F: FnOnce(&Request) -> Result<Option<String>, u16>,
{
    let mut head = HeadReader::new(DEFAULT_MAX_HEAD);
    let head_len = match read_head(&mut stream, &mut head) {
        Ok(len) => len,
        Err(HeadError::Io(e)) => return Err(Error::Io(e)),
        Err(HeadError::Eof) => return Err(Error::AbnormalClosure),
        Err(HeadError::TooLarge) => {
            let err = RequestError::HeadTooLarge;
            stream.write_all(&err.response())?;
            return Err(Error::Request(err));
        }
    };
    let request = match Request::parse(&head.buffer()[..head_len]) {
        Ok(request) => request,
        Err(err) => {
            stream.write_all(&err.response())?;
            stream.flush()?;
            return Err(Error::Request(err));
        }
    };
    let protocol = match decide(&request) {
        Ok(protocol) => protocol,
        Err(status) => {
            stream.write_all(&reject(status, &[], "upgrade refused"))?;
            stream.flush()?;
            return Err(Error::Rejected(status));
        }
    };
    let (response, deflate) =
        request.accept_negotiating(protocol.as_deref(), config.deflate.as_ref());
    stream.write_all(&response)?;
    stream.flush()?;
    let heads = config
        .trace
        .then(|| (head.buffer()[..head_len].to_vec(), response));
    let mut conn = Connection::with_deflate(Role::Server, config, deflate);
    conn.receive(&head.take_rest());
    let mut ws = WebSocket::from_parts(stream, conn, protocol);
    ws.heads = heads;
    Ok(ws)
}

impl<S> WebSocket<S> {
    /// Wraps a stream whose opening handshake is already done, and the connection to
    /// run on it (holding any frame bytes that arrived with the handshake). For drivers
    /// that perform the handshake themselves, e.g. to show it.
    ///
    /// ```
    /// use rfc6455::blocking::WebSocket;
    /// use rfc6455::{Connection, Event, Role};
    /// use std::io::Cursor;
    ///
    /// // The handshake was done elsewhere, and RFC 6455 §5.7's "Hello" came in with it.
    /// let mut conn = Connection::new(Role::Server);
    /// conn.receive(&[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]);
    /// let mut ws = WebSocket::from_parts(Cursor::new(Vec::new()), conn, Some("chat".into()));
    /// assert_eq!(ws.read()?, Event::Text("Hello".into())); // nothing read from the stream
    /// assert_eq!(ws.protocol(), Some("chat"));
    /// # Ok::<(), rfc6455::blocking::Error>(())
    /// ```
    pub fn from_parts(stream: S, conn: Connection, protocol: Option<String>) -> WebSocket<S> {
        WebSocket {
            stream,
            conn,
            protocol,
            eof: false,
            heads: None,
            linger_deadline: None,
            set_read_timeout: None,
        }
    }

    /// Bounds the closing handshake (default [`DEFAULT_CLOSE_TIMEOUT`]; `None`: no
    /// bound). The time runs from our Close, or from the peer's: [`read`](Self::read)
    /// then returns [`Error::CloseTimeout`] if the peer's Close has not come by the
    /// deadline, and a client stops waiting for the server to close the TCP connection
    /// (RFC 6455 §7.1.1) and returns [`Error::Closed`]. Drop the `WebSocket` to close
    /// the stream.
    ///
    /// On a stream from [`connect`] a blocked read ends at the deadline (the socket's
    /// read timeout is set to the time left, replacing one set by hand); on other
    /// streams the deadline is checked between reads, so give them a read timeout too.
    ///
    /// ```
    /// use rfc6455::blocking::{self, Error};
    /// use rfc6455::CloseCode;
    /// use std::time::{Duration, Instant};
    ///
    /// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// # let addr = listener.local_addr()?;
    /// # std::thread::spawn(move || -> Result<(), blocking::Error> {
    /// #     let mut ws = blocking::accept(listener.accept()?.0)?;
    /// #     std::io::copy(ws.get_mut(), &mut std::io::sink())?; // reads, never answers
    /// #     Ok(())
    /// # });
    /// // `addr` is a local server's that never answers a Close, though RFC 6455 §5.5.1
    /// // says it must.
    /// let mut ws = blocking::connect(&format!("ws://{addr}/"))?;
    /// ws.set_close_timeout(Some(Duration::from_millis(100)));
    /// assert_eq!(ws.close_timeout(), Some(Duration::from_millis(100)));
    /// let start = Instant::now();
    /// ws.close(CloseCode::NORMAL, "")?;
    /// assert!(matches!(ws.read(), Err(Error::CloseTimeout)));
    /// assert!(start.elapsed() >= Duration::from_millis(100));
    /// # Ok::<(), rfc6455::blocking::Error>(())
    /// ```
    pub fn set_close_timeout(&mut self, timeout: Option<Duration>) {
        self.conn.set_close_timeout(timeout);
        self.linger_deadline = None;
    }

    /// The bound on the closing handshake (see [`set_close_timeout`](Self::set_close_timeout)).
    ///
    /// ```
    /// use rfc6455::blocking::{WebSocket, DEFAULT_CLOSE_TIMEOUT};
    /// use rfc6455::{Connection, Role};
    /// use std::time::Duration;
    ///
    /// let mut ws = WebSocket::from_parts(std::io::empty(), Connection::new(Role::Server), None);
    /// assert_eq!(ws.close_timeout(), Some(DEFAULT_CLOSE_TIMEOUT));
    /// assert_eq!(DEFAULT_CLOSE_TIMEOUT, Duration::from_secs(5));
    /// ws.set_close_timeout(None); // wait for the peer's Close as long as it takes
    /// assert_eq!(ws.close_timeout(), None);
    /// ```
    pub fn close_timeout(&self) -> Option<Duration> {
        self.conn.config().close_timeout
    }

    /// Before a read while our Close awaits the peer's: the `Connection` keeps the
    /// close timeout (it is told the time here), and the read is bounded by what is
    /// left of it. False once it passed (the connection is then closed).
    fn within_close_timeout(&mut self) -> bool {
        let now = Instant::now();
        self.conn.handle_timeout(now);
        if self.conn.is_closed() {
            return false;
        }
        if let Some(deadline) = self.conn.poll_timeout(now) {
            self.bound_read(deadline.saturating_duration_since(now));
        }
        true
    }

    /// Before a read while a closed client waits for the server's FIN: starts the
    /// linger deadline if it is not running, and bounds the read by what is left of
    /// it. False once it passed.
    fn within_linger(&mut self) -> bool {
        let Some(timeout) = self.close_timeout() else {
            return true;
        };
        let deadline = *self
            .linger_deadline
            .get_or_insert_with(|| Instant::now() + timeout);
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        self.bound_read(left);
        true
    }

    /// Ends a blocked read after `left`, where the stream allows it.
    fn bound_read(&mut self, left: Duration) {
        if let Some(set_read_timeout) = self.set_read_timeout {
            let _ = set_read_timeout(&self.stream, Some(left.max(Duration::from_millis(1))));
        }
    }

    /// The opening handshake's request and response heads, when [`Config::trace`] was
    /// on: what `rfc6455 client --trace` shows.
    ///
    /// ```
    /// use rfc6455::{blocking, Config};
    /// use std::io::Cursor;
    ///
    /// # const REQUEST: &[u8] = b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
    /// #     Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: http://example.com\r\n\
    /// #     Sec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Version: 13\r\n\r\n";
    /// let config = Config { trace: true, ..Config::default() };
    /// let ws = blocking::accept_with(Cursor::new(REQUEST.to_vec()), config, |_| Ok(None))?;
    /// // REQUEST is RFC 6455 §1.3's; the response is the server's side of §4.2.2.
    /// let (request, response) = ws.handshake_heads().unwrap();
    /// assert!(request.starts_with(b"GET /chat HTTP/1.1\r\n"));
    /// assert!(response.starts_with(b"HTTP/1.1 101 Switching Protocols\r\n"));
    /// # Ok::<(), rfc6455::blocking::Error>(())
    /// ```
    pub fn handshake_heads(&self) -> Option<(&[u8], &[u8])> {
        self.heads.as_ref().map(|(req, resp)| (&req[..], &resp[..]))
    }
}

enum HeadError {
    Io(io::Error),
    TooLarge,
    Eof,
}

fn read_head<S: Read>(stream: &mut S, head: &mut HeadReader) -> Result<usize, HeadError> {
    let mut buf = [0u8; 4096];
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) => return Err(HeadError::Eof),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(HeadError::Io(e)),
        };
        if let Some(len) = head.push(&buf[..n]).map_err(|_| HeadError::TooLarge)? {
            return Ok(len);
        }
    }
}

impl<S: Read + Write> WebSocket<S> {
    /// Reads the next message or control frame. Pongs to pings and the reply to a
    /// Close are sent before it returns.
    ///
    /// After the closing handshake it returns [`Error::Closed`]. A client first waits
    /// for the server to close the TCP connection (RFC 6455 §7.1.1), after a clean close
    /// as after a failure. Both waits, for the peer's Close and for the end of the TCP
    /// connection, are bounded by the close timeout ([`set_close_timeout`](Self::set_close_timeout)).
    ///
    /// ```
    /// use rfc6455::blocking::{Error, WebSocket};
    /// use rfc6455::{Connection, Event, Role};
    /// use std::io::Cursor;
    ///
    /// // A client's ping "hi", masked with a zero key, on an in-memory stream.
    /// let stream = Cursor::new(vec![0x89, 0x82, 0, 0, 0, 0, b'h', b'i']);
    /// let mut ws = WebSocket::from_parts(stream, Connection::new(Role::Server), None);
    /// assert_eq!(ws.read()?, Event::Ping(b"hi".to_vec()));
    /// // The pong went out before `read` returned (RFC 6455 §5.5.3).
    /// assert_eq!(ws.get_ref().get_ref()[8..], [0x8a, 0x02, b'h', b'i']);
    /// // Then the stream ends without a Close: 1006 (§7.1.5).
    /// assert!(matches!(ws.read(), Err(Error::AbnormalClosure)));
    /// # Ok::<(), rfc6455::blocking::Error>(())
    /// ```
    pub fn read(&mut self) -> Result<Event, Error> {
        self.wait_for_message()?;
        match self.conn.next_event() {
            Ok(Some(event)) => Ok(event),
            // A message parsed by `poll_next` is handed out as it was checked.
            _ => Err(Error::Closed),
        }
    }

    /// [`read`](Self::read), lent: the payload stays in the connection's buffer until
    /// the next call (see [`Connection::next_message`]), so a loop that reads, looks
    /// and moves on allocates nothing per message.
    ///
    /// ```
    /// use rfc6455::{blocking, MessageRef};
    ///
    /// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// # let addr = listener.local_addr()?;
    /// # std::thread::spawn(move || -> Result<(), blocking::Error> {
    /// #     let mut ws = blocking::accept(listener.accept()?.0)?;
    /// #     ws.send_binary(&[0; 1000])?;
    /// #     ws.send_text("not counted")?;
    /// #     ws.send_binary(&[0; 24])?;
    /// #     ws.close(rfc6455::CloseCode::NORMAL, "")?;
    /// #     loop {
    /// #         ws.read()?;
    /// #     }
    /// # });
    /// // `addr` is a local server's that sends 1000 and 24 bytes, with a text between,
    /// // then closes.
    /// let mut ws = blocking::connect(&format!("ws://{addr}/"))?;
    /// let mut total = 0;
    /// let ended = loop {
    ///     match ws.read_message() {
    ///         Ok(MessageRef::Binary(data)) => total += data.len(),
    ///         Ok(_) => {} // the text, then the server's Close
    ///         Err(e) => break e,
    ///     }
    /// };
    /// // It ends after the closing handshake (RFC 6455 §7.1.2), with `Error::Closed`.
    /// assert!(matches!(ended, blocking::Error::Closed), "{ended}");
    /// assert_eq!(total, 1024);
    /// # Ok::<(), rfc6455::blocking::Error>(())
    /// ```
    pub fn read_message(&mut self) -> Result<MessageRef<'_>, Error> {
        self.wait_for_message()?;
        match self.conn.next_message() {
            Ok(Some(message)) => Ok(message),
            // A message parsed by `poll_next` is handed out as it was checked.
            _ => Err(Error::Closed),
        }
    }

    /// The peer broke the protocol: our Close is sent (best effort: the peer may
    /// already be gone) and a client waits for the server to close the stream.
    fn protocol_error(&mut self, err: ProtocolError) -> Error {
        if self.flush().is_ok() && self.conn.role() == Role::Client {
            self.wait_for_server_close();
        }
        Error::Protocol(err)
    }

    /// Reads until the connection has a message or control frame ready (parsed, not
    /// yet taken), and sends the replies it queued (pongs, the Close reply).
    fn wait_for_message(&mut self) -> Result<(), Error> {
        loop {
            match self.conn.poll_next() {
                Ok(true) => {
                    self.flush()?;
                    return Ok(());
                }
                Ok(false) => {}
                Err(err) => return Err(self.protocol_error(err)),
            }
            if self.conn.is_closed() {
                self.flush()?;
                if self.conn.role() == Role::Client {
                    self.wait_for_server_close();
                }
                return Err(Error::Closed);
            }
            // Our Close is out: the peer's must come within the close timeout.
            let closing = self.conn.state() == State::Closing;
            if closing && !self.within_close_timeout() {
                return Err(Error::CloseTimeout);
            }
            let space = self.conn.input_buffer(READ_CHUNK);
            match self.stream.read(space) {
                Ok(0) => {
                    self.eof = true;
                    return Err(Error::AbnormalClosure);
                }
                Ok(n) => self.conn.commit_input(n),
                // A TLS stream whose TCP connection ended without close_notify: for
                // the WebSocket it is the end of the stream like any other.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    self.eof = true;
                    return Err(Error::AbnormalClosure);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if closing && self.close_timeout().is_some() && timed_out(&e) => {}
                Err(e) => return Err(Error::Io(e)),
            }
        }
    }

    /// Reads and discards until the server closes the stream, it fails, or the close
    /// timeout passes (then RFC 6455 §7.1.1 lets the client close the TCP connection
    /// itself, which dropping the `WebSocket` does).
    fn wait_for_server_close(&mut self) {
        let mut sink = [0u8; 1024];
        while !self.eof && self.within_linger() {
            match self.stream.read(&mut sink) {
                Ok(0) => self.eof = true,
                Ok(_) => {}
                Err(e) if self.close_timeout().is_some() && timed_out(&e) => {}
                Err(_) => self.eof = true,
            }
        }
    }

    /// Sends a text message.
    ///
    /// ```
    /// use rfc6455::blocking::WebSocket;
    /// use rfc6455::{Connection, Role};
    /// use std::io::Cursor;
    ///
    /// let mut ws = WebSocket::from_parts(Cursor::new(Vec::new()), Connection::new(Role::Server), None);
    /// ws.send_text("Hello")?;
    /// // Written before it returns: RFC 6455 §5.7's unmasked "Hello".
    /// assert_eq!(ws.get_ref().get_ref(), &[0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
    /// # Ok::<(), rfc6455::blocking::Error>(())
    /// ```
    pub fn send_text(&mut self, text: &str) -> Result<(), Error> {
        self.conn.send_text(text)?;
        self.flush()
    }

    /// Sends a binary message.
    ///
    /// ```
    /// use rfc6455::blocking::WebSocket;
    /// use rfc6455::{Connection, Role};
    /// use std::io::Cursor;
    ///
    /// let mut ws = WebSocket::from_parts(Cursor::new(Vec::new()), Connection::new(Role::Client), None);
    /// ws.send_binary(&[1, 2, 3])?;
    /// let wire = ws.get_ref().get_ref();
    /// assert_eq!(wire[..2], [0x82, 0x80 | 3]); // binary, masked, 3 bytes
    /// // RFC 6455 §5.3: payload byte i is XORed with key byte i mod 4.
    /// let key = &wire[2..6];
    /// assert_eq!([wire[6] ^ key[0], wire[7] ^ key[1], wire[8] ^ key[2]], [1, 2, 3]);
    /// # Ok::<(), rfc6455::blocking::Error>(())
    /// ```
    pub fn send_binary(&mut self, data: &[u8]) -> Result<(), Error> {
        self.conn.send_binary(data)?;
        self.flush()
    }

    /// Sends one fragment of a message (see [`Connection::send_fragment`]).
    ///
    /// ```
    /// use rfc6455::blocking::WebSocket;
    /// use rfc6455::{Connection, MessageKind, Role};
    /// use std::io::Cursor;
    ///
    /// let mut ws = WebSocket::from_parts(Cursor::new(Vec::new()), Connection::new(Role::Server), None);
    /// ws.send_fragment(MessageKind::Text, b"Hel", false)?;
    /// ws.send_ping(b"")?; // control frames may come between fragments (RFC 6455 §5.4)
    /// ws.send_fragment(MessageKind::Text, b"lo", true)?;
    /// let wire = [0x01, 0x03, b'H', b'e', b'l', 0x89, 0x00, 0x80, 0x02, b'l', b'o'];
    /// assert_eq!(ws.get_ref().get_ref(), &wire);
    /// # Ok::<(), rfc6455::blocking::Error>(())
    /// ```
    pub fn send_fragment(
        &mut self,
        kind: MessageKind,
        data: &[u8],
        fin: bool,
    ) -> Result<(), Error> {
        self.conn.send_fragment(kind, data, fin)?;
        self.flush()
    }

    /// Sends a ping.
    ///
    /// ```
    /// use rfc6455::blocking::{Error, WebSocket};
    /// use rfc6455::{Connection, Role, SendError};
    /// use std::io::Cursor;
    ///
    /// let mut ws = WebSocket::from_parts(Cursor::new(Vec::new()), Connection::new(Role::Server), None);
    /// ws.send_ping(b"Hello")?;
    /// // RFC 6455 §5.7: an unmasked Ping carrying "Hello".
    /// assert_eq!(ws.get_ref().get_ref(), &[0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
    /// // Control frames carry at most 125 bytes (§5.5).
    /// let too_long = ws.send_ping(&[0; 126]);
    /// assert!(matches!(too_long, Err(Error::Send(SendError::ControlPayloadTooLong(126)))));
    /// # Ok::<(), rfc6455::blocking::Error>(())
    /// ```
    pub fn send_ping(&mut self, payload: &[u8]) -> Result<(), Error> {
        self.conn.send_ping(payload)?;
        self.flush()
    }

    /// Sends a pong.
    ///
    /// ```
    /// use rfc6455::blocking::WebSocket;
    /// use rfc6455::{Connection, Role};
    /// use std::io::Cursor;
    ///
    /// let mut ws = WebSocket::from_parts(Cursor::new(Vec::new()), Connection::new(Role::Server), None);
    /// // An unsolicited pong: a one-way heartbeat, no reply expected (RFC 6455 §5.5.3).
    /// ws.send_pong(b"")?;
    /// assert_eq!(ws.get_ref().get_ref(), &[0x8a, 0x00]);
    /// # Ok::<(), rfc6455::blocking::Error>(())
    /// ```
    pub fn send_pong(&mut self, payload: &[u8]) -> Result<(), Error> {
        self.conn.send_pong(payload)?;
        self.flush()
    }

    /// Starts the closing handshake. Keep calling [`read`](Self::read) until it returns
    /// the peer's Close (or [`Error::Closed`]) to complete it; the close timeout starts
    /// now (see [`set_close_timeout`](Self::set_close_timeout)).
    ///
    /// ```
    /// use rfc6455::blocking::{Error, WebSocket};
    /// use rfc6455::{CloseCode, Connection, Role, SendError};
    /// use std::io::Cursor;
    ///
    /// let mut ws = WebSocket::from_parts(Cursor::new(Vec::new()), Connection::new(Role::Server), None);
    /// ws.close(CloseCode::GOING_AWAY, "")?;
    /// // RFC 6455 §5.5.1: a Close carrying 1001 in network byte order.
    /// assert_eq!(ws.get_ref().get_ref(), &[0x88, 0x02, 0x03, 0xe9]);
    /// // No data may follow our Close, while the peer's is awaited.
    /// assert!(matches!(ws.send_text("late"), Err(Error::Send(SendError::Closing))));
    /// # Ok::<(), rfc6455::blocking::Error>(())
    /// ```
    pub fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), Error> {
        self.conn.close(code, reason)?;
        // The connection's close timeout counts from now.
        self.conn.poll_timeout(Instant::now());
        // "The time runs from our Close": the client's wait for the FIN too.
        self.linger_deadline = self.close_timeout().map(|t| Instant::now() + t);
        self.flush()
    }

    /// Writes all pending output.
    ///
    /// ```
    /// use rfc6455::blocking::WebSocket;
    /// use rfc6455::{Connection, Role};
    /// use std::io::Cursor;
    ///
    /// let mut conn = Connection::new(Role::Server);
    /// conn.send_text("queued")?; // before the connection met its stream
    /// let mut ws = WebSocket::from_parts(Cursor::new(Vec::new()), conn, None);
    /// assert!(ws.get_ref().get_ref().is_empty());
    /// ws.flush()?;
    /// assert_eq!(ws.get_ref().get_ref()[..2], [0x81, 0x06]);
    /// assert!(ws.connection().pending_output().is_empty());
    /// # Ok::<(), rfc6455::blocking::Error>(())
    /// ```
    pub fn flush(&mut self) -> Result<(), Error> {
        while !self.conn.pending_output().is_empty() {
            match self.stream.write(self.conn.pending_output()) {
                Ok(0) => return Err(Error::Io(io::ErrorKind::WriteZero.into())),
                Ok(n) => self.conn.consume_output(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::Io(e)),
            }
        }
        self.stream.flush()?;
        Ok(())
    }

    /// The subprotocol agreed in the handshake.
    ///
    /// ```
    /// use rfc6455::{blocking, Config};
    /// use std::io::Cursor;
    ///
    /// # const REQUEST: &[u8] = b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
    /// #     Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: http://example.com\r\n\
    /// #     Sec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Version: 13\r\n\r\n";
    /// // REQUEST (RFC 6455 §1.3) offers "chat, superchat". `accept` picks neither: a server
    /// // may speak none of the offered subprotocols (§4.2.2).
    /// let ws = blocking::accept(Cursor::new(REQUEST.to_vec()))?;
    /// assert_eq!(ws.protocol(), None);
    /// let ws = blocking::accept_with(Cursor::new(REQUEST.to_vec()), Config::default(), |request| {
    ///     Ok(request.protocols().last().cloned())
    /// })?;
    /// assert_eq!(ws.protocol(), Some("superchat"));
    /// # Ok::<(), rfc6455::blocking::Error>(())
    /// ```
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// The frames received and sent since the last call, when [`Config::trace`] is on
    /// (see [`Connection::take_trace`]).
    ///
    /// ```
    /// use rfc6455::blocking::WebSocket;
    /// use rfc6455::{Config, Connection, Role};
    /// use std::io::Cursor;
    ///
    /// let conn = Connection::with_config(Role::Server, Config { trace: true, ..Config::default() });
    /// let mut ws = WebSocket::from_parts(Cursor::new(Vec::new()), conn, None);
    /// ws.send_text("Hi")?;
    /// let lines: Vec<String> = ws.take_trace().iter().map(|f| f.to_string()).collect();
    /// assert_eq!(lines, ["-> FIN=1 text (0x1) len=2 (7-bit) unmasked \"Hi\""]);
    /// # Ok::<(), rfc6455::blocking::Error>(())
    /// ```
    pub fn take_trace(&mut self) -> Vec<crate::TracedFrame> {
        self.conn.take_trace()
    }

    /// The sans-IO connection underneath.
    ///
    /// ```
    /// use rfc6455::blocking::WebSocket;
    /// use rfc6455::{CloseCode, Connection, Role, State};
    /// use std::io::Cursor;
    ///
    /// let mut ws = WebSocket::from_parts(Cursor::new(Vec::new()), Connection::new(Role::Server), None);
    /// ws.close(CloseCode::NORMAL, "")?;
    /// // Our Close is sent and the peer's awaited (RFC 6455 §7.1.2).
    /// assert_eq!(ws.connection().state(), State::Closing);
    /// assert!(!ws.connection().can_send_data());
    /// # Ok::<(), rfc6455::blocking::Error>(())
    /// ```
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// The stream.
    ///
    /// ```
    /// use rfc6455::blocking;
    ///
    /// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// # let addr = listener.local_addr()?;
    /// # std::thread::spawn(move || blocking::accept(listener.accept()?.0).map(drop));
    /// // `addr` is a local server's.
    /// let ws = blocking::connect(&format!("ws://{addr}/"))?;
    /// // A `ws://` client runs over TCP (RFC 6455 §4.1); the stream says where to.
    /// assert_eq!(ws.get_ref().tcp().peer_addr()?, addr);
    /// # Ok::<(), rfc6455::blocking::Error>(())
    /// ```
    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    /// The stream, mutably (e.g. to set timeouts).
    ///
    /// ```
    /// use rfc6455::blocking::WebSocket;
    /// use rfc6455::{Connection, Role};
    /// use std::io::{Cursor, Write};
    ///
    /// let mut ws = WebSocket::from_parts(Cursor::new(Vec::new()), Connection::new(Role::Server), None);
    /// // A frame encoded once for many connections, written straight to the stream: only
    /// // between messages (RFC 6455 §5.4), which the connection knows.
    /// assert!(ws.connection().can_send_data());
    /// ws.get_mut().write_all(&[0x81, 0x02, b'h', b'i'])?;
    /// assert_eq!(ws.get_ref().get_ref(), &[0x81, 0x02, b'h', b'i']);
    /// # Ok::<(), rfc6455::blocking::Error>(())
    /// ```
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.stream
    }
}
