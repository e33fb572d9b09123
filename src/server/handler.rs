//! The application's side of the server: the [`Handler`] trait and what its
//! callbacks are given and return.

use super::ctx::Ctx;
use super::http::{HttpRequest, HttpResponse};
use super::id::ConnId;
use super::message::Received;
use super::refusal::Refusal;
use crate::handshake::server::Request;
use crate::CloseCode;

/// The handler's yes to an upgrade: the subprotocol chosen and the connection's data.
///
/// ```
/// use rfc6455::handshake::server::Request;
/// use rfc6455::server::{Accept, Handler, Refusal};
/// # use rfc6455::server::{Server, ServerConfig};
///
/// /// Speaks one version of its chat protocol, whatever else a client offers.
/// struct Chat;
/// impl Handler for Chat {
///     type Data = ();
///     fn upgrade(&mut self, request: &Request) -> Result<Accept<()>, Refusal> {
///         let protocol = request.protocols().iter().find(|p| *p == "v1.chat").cloned();
///         Ok(Accept { protocol, data: () })
///     }
/// }
/// # let server = Server::bind("127.0.0.1:0".parse().unwrap(), ServerConfig::default())?;
/// # let (addr, handle) = (server.local_addr()?, server.handle());
/// # let url = format!("ws://{addr}/");
/// # let server_thread = std::thread::spawn(move || server.run(Chat));
/// let config = rfc6455::Config::default();
/// let ws = rfc6455::blocking::connect_with(&url, config, &["v2.chat", "v1.chat"])?;
/// assert_eq!(ws.protocol(), Some("v1.chat")); // RFC 6455 §4.2.2: one of those offered
/// # drop(ws);
/// # handle.shutdown();
/// # server_thread.join().unwrap()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Accept<D> {
    /// One of the subprotocols the client offered, or `None`.
    pub protocol: Option<String>,
    /// Per-connection data, reachable through [`Ctx::data`].
    pub data: D,
}

impl<D> Accept<D> {
    /// Accepts without a subprotocol.
    ///
    /// ```
    /// use rfc6455::server::Accept;
    ///
    /// // A connection whose data, a message count, starts at 0. No subprotocol: the
    /// // 101 carries no Sec-WebSocket-Protocol header (RFC 6455 §4.2.2).
    /// let accept = Accept::new(0u32);
    /// assert_eq!(accept.protocol, None);
    /// assert_eq!(accept.data, 0);
    /// ```
    pub fn new(data: D) -> Self {
        Accept {
            protocol: None,
            data,
        }
    }
}

/// The handler's answer to a plain HTTP request (see [`Handler::request`]).
///
/// ```
/// # use rfc6455::server::{ConnId, Ctx, Handler, HttpRequest, HttpResponse, Refusal, Reply};
/// # use std::io::{Read, Write};
/// # use rfc6455::server::{Accept, Server, ServerConfig};
/// /// Takes messages posted over HTTP (e.g. by a webhook).
/// struct Inbox;
/// impl Handler for Inbox {
///     type Data = ();
/// #   fn upgrade(&mut self, _: &rfc6455::handshake::server::Request) -> Result<Accept<()>, Refusal> {
/// #       Err(404.into())
/// #   }
///     fn request(&mut self, _: &mut Ctx<'_, ()>, _: ConnId, request: &HttpRequest) -> Option<Reply<()>> {
///         let body = format!("got {} bytes\n", request.body.len());
///         (request.method == "POST").then(|| Reply::Response(HttpResponse::text(202, &body)))
///     }
/// }
/// # let server = Server::bind("127.0.0.1:0".parse().unwrap(), ServerConfig::default())?;
/// # let (addr, handle) = (server.local_addr()?, server.handle());
/// # let url = format!("ws://{addr}/");
/// # let server_thread = std::thread::spawn(move || server.run(Inbox));
/// let mut http = std::net::TcpStream::connect(addr)?;
/// http.write_all(b"POST /messages HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello")?;
/// let mut response = String::new();
/// http.read_to_string(&mut response)?;
/// assert!(response.starts_with("HTTP/1.1 202 Accepted\r\n"));
/// assert!(response.ends_with("\r\n\r\ngot 5 bytes\n"));
/// # handle.shutdown();
/// # server_thread.join().unwrap()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub enum Reply<D> {
    /// A complete response; the connection closes after it.
    Response(HttpResponse),
    /// A response that stays open, e.g. a `text/event-stream` (Server-Sent Events):
    /// `head`'s status, content type and headers are sent with no `Content-Length`
    /// (the body ends when the connection does), then `head.body`, then whatever
    /// [`Ctx::send_stream`](super::Ctx::send_stream) queues for the connection, until
    /// the handler closes it ([`Ctx::close`](super::Ctx::close)), the peer goes away
    /// or the server shuts down: then [`Handler::close`] gets `data` back. A stream
    /// counts against [`ServerConfig::max_connections`](super::ServerConfig) (503
    /// beyond) and [`max_queued_output`](super::ServerConfig::max_queued_output) like a
    /// WebSocket connection.
    Stream {
        /// The status, headers and first bytes.
        head: HttpResponse,
        /// Per-connection data, as for a WebSocket connection.
        data: D,
    },
}

/// How a connection ended, as told to [`Handler::close`].
///
/// ```
/// # use rfc6455::server::{CloseInfo, ConnId, Ctx, Handler, Refusal};
/// # use rfc6455::{CloseCode, Event};
/// # use std::sync::mpsc;
/// # use rfc6455::server::{Accept, Server, ServerConfig};
/// struct Goodbyes(mpsc::Sender<CloseInfo>);
/// impl Handler for Goodbyes {
///     type Data = ();
/// #   fn upgrade(&mut self, _: &rfc6455::handshake::server::Request) -> Result<Accept<()>, Refusal> {
/// #       Ok(Accept::new(()))
/// #   }
///     fn close(&mut self, _: &mut Ctx<'_, ()>, _: ConnId, _: (), info: CloseInfo) {
///         self.0.send(info).unwrap();
///     }
/// }
/// # let server = Server::bind("127.0.0.1:0".parse().unwrap(), ServerConfig::default())?;
/// # let (addr, handle) = (server.local_addr()?, server.handle());
/// # let url = format!("ws://{addr}/");
/// # let (tx, closed) = mpsc::channel();
/// # let server_thread = std::thread::spawn(move || server.run(Goodbyes(tx)));
/// let mut ws = rfc6455::blocking::connect(&url)?;
/// ws.close(CloseCode::NORMAL, "bye")?;
/// assert!(matches!(ws.read()?, Event::Close(_))); // the server's answer
/// let info = closed.recv()?;
/// // Both Close frames exchanged: closed cleanly (RFC 6455 §7.1.4).
/// assert_eq!(info, CloseInfo { code: CloseCode::NORMAL, reason: "bye".into(), clean: true });
/// # drop(ws);
/// # handle.shutdown();
/// # server_thread.join().unwrap()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseInfo {
    /// The code of the peer's Close, or of ours when we failed or timed out the
    /// connection; 1006 when the TCP connection ended without a Close.
    pub code: CloseCode,
    /// The reason that came with the code.
    pub reason: String,
    /// True when both Close frames were exchanged (RFC 6455 §7.1.4 "cleanly").
    pub clean: bool,
}

/// The application's side of the server. Every method but `upgrade` has a default
/// that does nothing.
///
/// ```
/// # use rfc6455::handshake::server::Request;
/// # use rfc6455::server::{Accept, Handler, Refusal};
/// # use std::io::{Read, Write};
/// # use rfc6455::server::{Server, ServerConfig};
/// /// The least handler: accepts every upgrade, and does nothing with what comes.
/// struct Quiet;
/// impl Handler for Quiet {
///     type Data = ();
///     fn upgrade(&mut self, _request: &Request) -> Result<Accept<()>, Refusal> {
///         Ok(Accept::new(()))
///     }
/// }
/// # let server = Server::bind("127.0.0.1:0".parse().unwrap(), ServerConfig::default())?;
/// # let (addr, handle) = (server.local_addr()?, server.handle());
/// # let url = format!("ws://{addr}/");
/// # let server_thread = std::thread::spawn(move || server.run(Quiet));
/// // A plain GET at a WebSocket endpoint: 426, naming the protocol (RFC 9110 §15.5.22).
/// let mut http = std::net::TcpStream::connect(addr)?;
/// http.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")?;
/// let mut response = String::new();
/// http.read_to_string(&mut response)?;
/// assert!(response.starts_with("HTTP/1.1 426 Upgrade Required\r\n"));
/// # handle.shutdown();
/// # server_thread.join().unwrap()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Handler {
    /// Data kept with each connection.
    type Data;

    /// A valid upgrade request arrived (RFC 6455 §4.2.1): accept it, or refuse with an
    /// HTTP status (401, 403, 404…), before anything else is sent.
    ///
    /// ```
    /// # use rfc6455::blocking::Error;
    /// # use rfc6455::handshake::{client::ResponseError, server::Request};
    /// # use rfc6455::server::{Accept, Handler, Refusal};
    /// # use rfc6455::server::{Server, ServerConfig};
    /// /// One endpoint, for pages of one site (RFC 6455 §10.2: check the Origin).
    /// struct Chat;
    /// impl Handler for Chat {
    ///     type Data = ();
    ///     fn upgrade(&mut self, request: &Request) -> Result<Accept<()>, Refusal> {
    ///         match (request.path(), request.origin()) {
    ///             ("/chat", None | Some("https://example.com")) => Ok(Accept::new(())),
    ///             ("/chat", Some(_)) => Err(403.into()),
    ///             _ => Err(404.into()),
    ///         }
    ///     }
    /// }
    /// # let server = Server::bind("127.0.0.1:0".parse().unwrap(), ServerConfig::default())?;
    /// # let (addr, handle) = (server.local_addr()?, server.handle());
    /// # let url = format!("ws://{addr}/");
    /// # let server_thread = std::thread::spawn(move || server.run(Chat));
    /// assert!(rfc6455::blocking::connect(&format!("ws://{addr}/chat")).is_ok());
    /// let refused = rfc6455::blocking::connect(&format!("ws://{addr}/admin")).unwrap_err();
    /// assert!(matches!(refused, Error::Response(ResponseError::Status(404))));
    /// # handle.shutdown();
    /// # server_thread.join().unwrap()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn upgrade(&mut self, request: &Request) -> Result<Accept<Self::Data>, Refusal>;

    /// The 101 was sent: the connection is open.
    ///
    /// ```
    /// # use rfc6455::handshake::server::Request;
    /// # use rfc6455::server::{Accept, ConnId, Ctx, Handler, Refusal};
    /// # use rfc6455::Event;
    /// # use rfc6455::server::{Server, ServerConfig};
    /// /// Greets each client with the room it asked for, before it says anything.
    /// struct Rooms;
    /// impl Handler for Rooms {
    ///     type Data = String;
    ///     fn upgrade(&mut self, request: &Request) -> Result<Accept<String>, Refusal> {
    ///         Ok(Accept::new(request.path().to_string()))
    ///     }
    ///     fn open(&mut self, ctx: &mut Ctx<'_, String>, id: ConnId) {
    ///         let greeting = format!("welcome to {}", ctx.data(id).unwrap());
    ///         ctx.send_text(id, &greeting);
    ///     }
    /// }
    /// # let server = Server::bind("127.0.0.1:0".parse().unwrap(), ServerConfig::default())?;
    /// # let (addr, handle) = (server.local_addr()?, server.handle());
    /// # let url = format!("ws://{addr}/");
    /// # let server_thread = std::thread::spawn(move || server.run(Rooms));
    /// let mut ws = rfc6455::blocking::connect(&format!("ws://{addr}/lobby"))?;
    /// assert_eq!(ws.read()?, Event::Text("welcome to /lobby".into()));
    /// # drop(ws);
    /// # handle.shutdown();
    /// # server_thread.join().unwrap()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn open(&mut self, _ctx: &mut Ctx<'_, Self::Data>, _id: ConnId) {}

    /// A complete message arrived, lent for the length of the call (see
    /// [`Received`]; [`Received::to_message`] makes an owned copy to keep).
    ///
    /// ```
    /// use rfc6455::handshake::server::Request;
    /// use rfc6455::server::{Accept, ConnId, Ctx, Handler, Received, Refusal};
    ///
    /// /// Echoes every message without an allocation per message.
    /// struct Echo;
    ///
    /// impl Handler for Echo {
    ///     type Data = ();
    ///     fn upgrade(&mut self, _request: &Request) -> Result<Accept<()>, Refusal> {
    ///         Ok(Accept::new(()))
    ///     }
    ///     fn message(&mut self, ctx: &mut Ctx<'_, ()>, id: ConnId, message: Received<'_>) {
    ///         ctx.send(id, message); // back as it came: text as text
    ///     }
    /// }
    /// # let server = rfc6455::server::Server::bind("127.0.0.1:0".parse().unwrap(), Default::default())?;
    /// # let (addr, handle) = (server.local_addr()?, server.handle());
    /// # let server_thread = std::thread::spawn(move || server.run(Echo));
    /// let mut ws = rfc6455::blocking::connect(&format!("ws://{addr}/"))?;
    /// ws.send_binary(&[1, 2, 3])?;
    /// assert_eq!(ws.read()?, rfc6455::Event::Binary(vec![1, 2, 3]));
    /// ws.send_text("héllo")?;
    /// assert_eq!(ws.read()?, rfc6455::Event::Text("héllo".into()));
    /// # drop(ws);
    /// # handle.shutdown();
    /// # server_thread.join().unwrap()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn message(&mut self, _ctx: &mut Ctx<'_, Self::Data>, _id: ConnId, _message: Received<'_>) {}

    /// The connection ended; its data is handed back.
    ///
    /// ```
    /// # use rfc6455::handshake::server::Request;
    /// # use rfc6455::server::{Accept, CloseInfo, ConnId, Ctx, Handler, Refusal};
    /// # use std::sync::mpsc;
    /// # use rfc6455::server::{Server, ServerConfig};
    /// /// Tells the application who left, and how.
    /// struct Presence(mpsc::Sender<(String, u16, bool)>);
    /// impl Handler for Presence {
    ///     type Data = String;
    ///     fn upgrade(&mut self, request: &Request) -> Result<Accept<String>, Refusal> {
    ///         Ok(Accept::new(request.query().unwrap_or("anonymous").to_string()))
    ///     }
    ///     fn close(&mut self, _: &mut Ctx<'_, String>, _: ConnId, name: String, info: CloseInfo) {
    ///         self.0.send((name, info.code.0, info.clean)).unwrap();
    ///     }
    /// }
    /// # let server = Server::bind("127.0.0.1:0".parse().unwrap(), ServerConfig::default())?;
    /// # let (addr, handle) = (server.local_addr()?, server.handle());
    /// # let url = format!("ws://{addr}/");
    /// # let (tx, left) = mpsc::channel();
    /// # let server_thread = std::thread::spawn(move || server.run(Presence(tx)));
    /// let ws = rfc6455::blocking::connect(&format!("ws://{addr}/?alice"))?;
    /// drop(ws); // the TCP connection ends without a Close frame
    /// // 1006: closed abnormally (RFC 6455 §7.1.5), not cleanly.
    /// assert_eq!(left.recv()?, ("alice".to_string(), 1006, false));
    /// # handle.shutdown();
    /// # server_thread.join().unwrap()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn close(
        &mut self,
        _ctx: &mut Ctx<'_, Self::Data>,
        _id: ConnId,
        _data: Self::Data,
        _info: CloseInfo,
    ) {
    }

    /// Runs at the end of each turn of the loop, after the callbacks of what one poll
    /// brought (messages, opens, closes, mail) and before their output is written:
    /// the place to finish work that is cheaper done together than one message at a
    /// time — e.g. one round trip to a database for all the messages of the turn,
    /// instead of a loop that waits for one round trip per message while every
    /// other connection on it waits too. What it sends goes out in the same write as
    /// the rest of the turn's output. It also runs on turns that brought nothing, so
    /// it must be cheap when there is nothing to do.
    ///
    /// ```
    /// # use rfc6455::server::{Accept, ConnId, Ctx, Handler, Received, Refusal};
    /// # use rfc6455::server::{Server, ServerConfig};
    /// # use rfc6455::Event;
    /// /// Answers the messages of a turn together, in the order they came.
    /// #[derive(Default)]
    /// struct Batched {
    ///     waiting: Vec<(ConnId, String)>,
    /// }
    /// impl Handler for Batched {
    ///     type Data = ();
    /// #   fn upgrade(&mut self, _: &rfc6455::handshake::server::Request) -> Result<Accept<()>, Refusal> {
    /// #       Ok(Accept::new(()))
    /// #   }
    ///     fn message(&mut self, _: &mut Ctx<'_, ()>, id: ConnId, message: Received<'_>) {
    ///         if let Received::Text(text) = message {
    ///             self.waiting.push((id, text.to_uppercase()));
    ///         }
    ///     }
    ///     fn end_turn(&mut self, ctx: &mut Ctx<'_, ()>) {
    ///         for (id, answer) in self.waiting.drain(..) {
    ///             ctx.send_text(id, &answer);
    ///         }
    ///     }
    /// }
    /// # let server = Server::bind("127.0.0.1:0".parse().unwrap(), ServerConfig::default())?;
    /// # let (addr, handle) = (server.local_addr()?, server.handle());
    /// # let server_thread = std::thread::spawn(move || server.run(Batched::default()));
    /// let mut ws = rfc6455::blocking::connect(&format!("ws://{addr}/"))?;
    /// ws.send_text("one")?;
    /// ws.send_text("two")?;
    /// assert_eq!(ws.read()?, Event::Text("ONE".into()));
    /// assert_eq!(ws.read()?, Event::Text("TWO".into()));
    /// # drop(ws);
    /// # handle.shutdown();
    /// # server_thread.join().unwrap()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn end_turn(&mut self, _ctx: &mut Ctx<'_, Self::Data>) {}

    /// Runs every [`ServerConfig::tick_interval`](super::ServerConfig::tick_interval).
    ///
    /// ```
    /// # use rfc6455::server::{Ctx, Handler, Refusal, ServerConfig};
    /// # use rfc6455::Event;
    /// # use std::time::Duration;
    /// # use rfc6455::server::{Accept, Server};
    /// /// Pushes the time to everyone, whether they said anything or not.
    /// struct Clock;
    /// impl Handler for Clock {
    ///     type Data = ();
    /// #   fn upgrade(&mut self, _: &rfc6455::handshake::server::Request) -> Result<Accept<()>, Refusal> {
    /// #       Ok(Accept::new(()))
    /// #   }
    ///     fn tick(&mut self, ctx: &mut Ctx<'_, ()>) {
    ///         for id in ctx.connections() {
    ///             ctx.send_text(id, "tick");
    ///         }
    ///     }
    /// }
    /// let config = ServerConfig { tick_interval: Duration::from_millis(10), ..ServerConfig::default() };
    /// # let server = Server::bind("127.0.0.1:0".parse().unwrap(), config)?;
    /// # let (addr, handle) = (server.local_addr()?, server.handle());
    /// # let url = format!("ws://{addr}/");
    /// # let server_thread = std::thread::spawn(move || server.run(Clock));
    /// let mut ws = rfc6455::blocking::connect(&url)?;
    /// assert_eq!(ws.read()?, Event::Text("tick".into()));
    /// # drop(ws);
    /// # handle.shutdown();
    /// # server_thread.join().unwrap()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn tick(&mut self, _ctx: &mut Ctx<'_, Self::Data>) {}

    /// A plain HTTP request (not an upgrade, not `GET /healthz`, which the server
    /// answers itself), with its body if it had one (at most
    /// [`ServerConfig::max_body`](super::ServerConfig::max_body) bytes), as connection
    /// `id`: answer it ([`Reply::Response`], 404 included), open a stream on it
    /// ([`Reply::Stream`]), or `None` (the default) to treat the path as a WebSocket
    /// endpoint: a `GET` then gets `426 Upgrade Required`
    /// ([`HttpResponse::upgrade_required`]), other methods 405. Through `ctx` it may
    /// send to other connections (e.g. a message posted over HTTP) and read the
    /// server's counters ([`Ctx::totals`](super::Ctx::totals), e.g. for a `/metrics`
    /// page).
    ///
    /// ```
    /// use rfc6455::handshake::server::Request;
    /// use rfc6455::server::{Accept, ConnId, Ctx, Handler, HttpRequest, HttpResponse, Refusal, Reply};
    ///
    /// /// Streams a tick every second to whoever asks for `/ticks`.
    /// struct Ticks(Vec<ConnId>);
    ///
    /// impl Handler for Ticks {
    ///     type Data = ();
    ///     fn upgrade(&mut self, _request: &Request) -> Result<Accept<()>, Refusal> {
    ///         Err(404.into())
    ///     }
    ///     fn request(&mut self, _ctx: &mut Ctx<'_, ()>, id: ConnId, request: &HttpRequest) -> Option<Reply<()>> {
    ///         if request.path() != "/ticks" {
    ///             return None;
    ///         }
    ///         self.0.push(id);
    ///         let head = HttpResponse::with_type(200, "text/event-stream", b"retry: 1000\n\n".to_vec());
    ///         Some(Reply::Stream { head, data: () })
    ///     }
    ///     fn tick(&mut self, ctx: &mut Ctx<'_, ()>) {
    ///         let bytes: std::sync::Arc<[u8]> = b"data: tick\n\n"[..].into();
    ///         self.0.retain(|id| ctx.send_stream(*id, &bytes));
    ///     }
    /// }
    /// # use std::io::{Read, Write};
    /// # let config = rfc6455::server::ServerConfig {
    /// #     tick_interval: std::time::Duration::from_millis(20),
    /// #     ..Default::default()
    /// # };
    /// # let server = rfc6455::server::Server::bind("127.0.0.1:0".parse().unwrap(), config)?;
    /// # let (addr, handle) = (server.local_addr()?, server.handle());
    /// # let server_thread = std::thread::spawn(move || server.run(Ticks(Vec::new())));
    /// let mut stream = std::net::TcpStream::connect(addr)?;
    /// stream.write_all(b"GET /ticks HTTP/1.1\r\nHost: x\r\n\r\n")?;
    /// let mut seen = String::new();
    /// let mut buf = [0u8; 256];
    /// while !seen.contains("data: tick\n\n") {
    ///     let n = stream.read(&mut buf)?;
    ///     seen.push_str(std::str::from_utf8(&buf[..n])?);
    /// }
    /// assert!(seen.starts_with("HTTP/1.1 200 OK\r\n"));
    /// assert!(seen.contains("retry: 1000\n\n"));
    /// # drop(stream);
    /// # handle.shutdown();
    /// # server_thread.join().unwrap()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn request(
        &mut self,
        _ctx: &mut Ctx<'_, Self::Data>,
        _id: ConnId,
        _request: &HttpRequest,
    ) -> Option<Reply<Self::Data>> {
        None
    }

    /// Whether the application can serve now, for `GET /healthz`: `Err(reason)` makes
    /// it answer `503` with the reason (e.g. a database it needs is unreachable), so
    /// that a load balancer sends new clients elsewhere. Connections stay open.
    ///
    /// ```
    /// # use rfc6455::server::Handler;
    /// # use std::io::{Read, Write};
    /// # use rfc6455::server::{Accept, Refusal, Server, ServerConfig};
    /// struct NeedsDatabase {
    ///     connected: bool,
    /// }
    /// impl Handler for NeedsDatabase {
    ///     type Data = ();
    /// #   fn upgrade(&mut self, _: &rfc6455::handshake::server::Request) -> Result<Accept<()>, Refusal> {
    /// #       Ok(Accept::new(()))
    /// #   }
    ///     fn health(&mut self) -> Result<(), String> {
    ///         self.connected.then_some(()).ok_or_else(|| "database unreachable".into())
    ///     }
    /// }
    /// # let server = Server::bind("127.0.0.1:0".parse().unwrap(), ServerConfig::default())?;
    /// # let (addr, handle) = (server.local_addr()?, server.handle());
    /// # let url = format!("ws://{addr}/");
    /// # let server_thread = std::thread::spawn(move || server.run(NeedsDatabase { connected: false }));
    /// let mut http = std::net::TcpStream::connect(addr)?;
    /// http.write_all(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")?;
    /// let mut response = String::new();
    /// http.read_to_string(&mut response)?;
    /// assert!(response.starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
    /// assert!(response.ends_with("\r\n\r\nunavailable: database unreachable\n"));
    /// # handle.shutdown();
    /// # server_thread.join().unwrap()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn health(&mut self) -> Result<(), String> {
        Ok(())
    }
}
