//! A `mio` event-loop server that drives the sans-IO [`Connection`](crate::Connection):
//! many connections on one thread, no async runtime, no thread per connection — and, to
//! use every core, [`ServerConfig::threads`] such loops side by side, connections spread
//! over them ([`Balance`]), any loop able to send to any connection.
//!
//! The application is a [`Handler`]: it decides upgrades (authentication, Origin checks,
//! subprotocols) before the 101, and hears about opens, messages, closes and a periodic
//! tick. Every callback gets a [`Ctx`] through which it can send to any connection,
//! close one, and reach the data it attached at accept time.
//!
//! The loop: accept until `WouldBlock`; read until `WouldBlock`; feed the connection;
//! write while output is pending, with WRITABLE interest registered only then. Every
//! buffer is bounded: request heads by [`ServerConfig::max_head`], messages by the
//! [`Config`](crate::Config) limits, queued output by [`ServerConfig::max_queued_output`] (a slow
//! consumer is closed with 1008 or loses messages, per [`SlowConsumer`]). Timers
//! (handshake timeout, heartbeat pings, pong and close timeouts) live in one deadline
//! heap checked each turn of the loop.
//!
//! ```
//! use rfc6455::server::{Accept, ConnId, Ctx, Handler, Received, Refusal, Server, ServerConfig};
//! use rfc6455::handshake::server::Request;
//!
//! struct Echo;
//!
//! impl Handler for Echo {
//!     type Data = ();
//!     fn upgrade(&mut self, _request: &Request) -> Result<Accept<()>, Refusal> {
//!         Ok(Accept::new(()))
//!     }
//!     fn message(&mut self, ctx: &mut Ctx<'_, ()>, id: ConnId, message: Received<'_>) {
//!         ctx.send(id, message);
//!     }
//! }
//!
//! let server = Server::bind("127.0.0.1:0".parse().unwrap(), ServerConfig::default())?;
//! // Port 0: the system picks a free one. The handle shuts it down from another thread.
//! let (addr, handle) = (server.local_addr()?, server.handle());
//! let server_thread = std::thread::spawn(move || server.run(Echo));
//!
//! let mut ws = rfc6455::blocking::connect(&format!("ws://{addr}/"))?;
//! ws.send_text("hello")?;
//! assert_eq!(ws.read()?, rfc6455::Event::Text("hello".into()));
//! # drop(ws);
//! handle.shutdown();
//! server_thread.join().unwrap()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The files of this module are on the README's map ("Layers").

mod accept;
mod admission;
mod config;
mod conn;
mod ctx;
mod drain;
mod event_loop;
mod handler;
mod http;
mod id;
mod log_limit;
mod loops;
mod message;
mod refusal;
pub mod rooms;
mod shared;
mod socket;
mod stats;
mod timers;
mod trim;

pub use config::{Balance, ServerConfig, SlowConsumer};
pub use ctx::Ctx;
pub use handler::{Accept, CloseInfo, Handler, Reply};
pub use http::{HttpRequest, HttpResponse};
pub use id::ConnId;
pub use message::{Message, Received};
pub use refusal::Refusal;
pub use shared::SharedFrame;
pub use stats::Stats;

use crate::{CloseCode, MessageKind};
use event_loop::{Loop, LISTENER, WAKER};
use loops::{Loops, Mail};
use mio::net::TcpListener;
use mio::{Interest, Poll, Waker};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

/// Reaches a running [`Server`] from any thread: shuts it down, or sends to and closes
/// its connections (e.g. from a thread that receives messages from other processes),
/// as a callback does through its [`Ctx`].
///
/// ```
/// use rfc6455::server::{Refusal, Server, ServerConfig};
/// # use rfc6455::server::{Accept, Handler};
/// # struct App;
/// # impl Handler for App {
/// #     type Data = ();
/// #     fn upgrade(&mut self, _: &rfc6455::handshake::server::Request) -> Result<Accept<()>, Refusal> {
/// #         Err(404.into())
/// #     }
/// # }
///
/// let server = Server::bind("127.0.0.1:0".parse().unwrap(), ServerConfig::default())?;
/// let handle = server.handle(); // Clone + Send: for any thread
/// // E.g. the thread that waits for a signal to stop.
/// let stopper = std::thread::spawn(move || handle.shutdown());
/// server.run(App)?; // returns once the shutdown is complete
/// stopper.join().unwrap();
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct Handle {
    loops: Arc<Loops>,
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle")
            .field("loops", &self.loops.count())
            .finish()
    }
}

impl Handle {
    /// Starts a graceful shutdown of every loop: stop accepting, send Close 1001 "going
    /// away" to every connection, wait for their Close frames up to
    /// [`ServerConfig::shutdown_timeout`], then return from [`Server::run`] (or
    /// [`Server::run_with`]).
    ///
    /// ```
    /// use rfc6455::{CloseCode, Event};
    /// # use rfc6455::server::{Accept, Handler, Refusal, Server, ServerConfig};
    /// # struct App;
    /// # impl Handler for App {
    /// #     type Data = ();
    /// #     fn upgrade(&mut self, _: &rfc6455::handshake::server::Request) -> Result<Accept<()>, Refusal> {
    /// #         Ok(Accept::new(()))
    /// #     }
    /// # }
    /// # let server = Server::bind("127.0.0.1:0".parse().unwrap(), ServerConfig::default())?;
    /// # let (addr, handle) = (server.local_addr()?, server.handle());
    /// # let server_thread = std::thread::spawn(move || server.run(App));
    ///
    /// let mut ws = rfc6455::blocking::connect(&format!("ws://{addr}/"))?;
    /// handle.shutdown();
    /// // 1001 "going away": the server is going down (RFC 6455 §7.4.1).
    /// let Event::Close(Some(close)) = ws.read()? else { panic!("no Close") };
    /// assert_eq!(close.code, CloseCode::GOING_AWAY);
    /// // Reading the Close answered it: the server's run returns, its work done.
    /// server_thread.join().unwrap()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn shutdown(&self) {
        self.loops.shutdown();
    }

    /// Starts a drain, for a restart behind a balancer: `GET /healthz` answers 503 at
    /// once (the balancer sends no one new), upgrades and streams are refused with
    /// 503, and the open connections are closed with 1012 "service restart" one by
    /// one, spread evenly over `over` (streams end the same way), so that their
    /// clients reconnect to the other nodes gradually rather than all in one second.
    /// Then the server shuts down as [`shutdown`](Self::shutdown) does. A shutdown
    /// asked for meanwhile closes what is left at once, with 1001.
    ///
    /// ```
    /// use rfc6455::{CloseCode, Event};
    /// use std::time::Duration;
    /// # use rfc6455::server::{Accept, Handler, Refusal, Server, ServerConfig};
    /// # struct App;
    /// # impl Handler for App {
    /// #     type Data = ();
    /// #     fn upgrade(&mut self, _: &rfc6455::handshake::server::Request) -> Result<Accept<()>, Refusal> {
    /// #         Ok(Accept::new(()))
    /// #     }
    /// # }
    /// # let server = Server::bind("127.0.0.1:0".parse().unwrap(), ServerConfig::default())?;
    /// # let (addr, handle) = (server.local_addr()?, server.handle());
    /// # let server_thread = std::thread::spawn(move || server.run(App));
    ///
    /// let mut ws = rfc6455::blocking::connect(&format!("ws://{addr}/"))?;
    /// handle.drain(Duration::from_millis(100));
    /// // 1012: the service is restarting; come back (elsewhere) now (RFC 6455 §7.4.1).
    /// let Event::Close(Some(close)) = ws.read()? else { panic!("no Close") };
    /// assert_eq!(close.code, CloseCode::SERVICE_RESTART);
    /// server_thread.join().unwrap()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn drain(&self, over: std::time::Duration) {
        self.loops.drain(over);
    }

    /// Posts a frame to a connection's loop, which sends it on its next turn, after
    /// what its mailbox already holds. True when posted (the connection may still be
    /// gone by then); false for a full mailbox (the loop has fallen behind: it closes
    /// that connection with 1013 when it turns again, rather than let it miss the
    /// frame unknowingly) or an id of no loop of this server.
    ///
    /// ```
    /// use rfc6455::server::{Accept, ConnId, Ctx, Handler, Refusal, SharedFrame};
    /// use std::sync::mpsc;
    /// # use rfc6455::server::{Server, ServerConfig};
    ///
    /// /// Tells the application's other threads who connected.
    /// struct Announce(mpsc::Sender<ConnId>);
    /// impl Handler for Announce {
    ///     type Data = ();
    /// #   fn upgrade(&mut self, _: &rfc6455::handshake::server::Request) -> Result<Accept<()>, Refusal> {
    /// #       Ok(Accept::new(()))
    /// #   }
    ///     fn open(&mut self, _ctx: &mut Ctx<'_, ()>, id: ConnId) {
    ///         self.0.send(id).unwrap();
    ///     }
    /// }
    /// # let server = Server::bind("127.0.0.1:0".parse().unwrap(), ServerConfig::default())?;
    /// # let (addr, handle, (tx, opened)) = (server.local_addr()?, server.handle(), mpsc::channel());
    /// # let server_thread = std::thread::spawn(move || server.run(Announce(tx)));
    /// let (mut a, mut b) = (rfc6455::blocking::connect(&format!("ws://{addr}/"))?,
    ///                       rfc6455::blocking::connect(&format!("ws://{addr}/"))?);
    /// let ids = [opened.recv()?, opened.recv()?];
    /// // One frame, encoded once, for every connection it is posted to.
    /// let frame = SharedFrame::text("to both");
    /// assert!(ids.iter().all(|id| handle.send_shared(*id, &frame)));
    /// assert_eq!(a.read()?, rfc6455::Event::Text("to both".into()));
    /// assert_eq!(b.read()?, rfc6455::Event::Text("to both".into()));
    /// # drop((a, b));
    /// # handle.shutdown();
    /// # server_thread.join().unwrap()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_shared(&self, id: ConnId, frame: &SharedFrame) -> bool {
        self.post(id, Mail::Shared(id, frame.clone()))
    }

    /// Posts bytes for a stream to its loop (see [`Ctx::send_stream`] and
    /// [`send_shared`](Self::send_shared)).
    ///
    /// ```
    /// # use rfc6455::server::{Accept, ConnId, Ctx, Handler, HttpRequest, HttpResponse, Refusal, Reply};
    /// # use std::sync::{mpsc, Arc};
    /// # use rfc6455::server::{Server, ServerConfig};
    /// # use std::io::{Read, Write};
    /// /// Opens a Server-Sent Events stream for every plain request, and says whose.
    /// struct Events(mpsc::Sender<ConnId>);
    /// impl Handler for Events {
    ///     type Data = ();
    /// #   fn upgrade(&mut self, _: &rfc6455::handshake::server::Request) -> Result<Accept<()>, Refusal> {
    /// #       Err(404.into())
    /// #   }
    ///     fn request(&mut self, _: &mut Ctx<'_, ()>, id: ConnId, _: &HttpRequest) -> Option<Reply<()>> {
    ///         self.0.send(id).unwrap();
    ///         let head = HttpResponse::with_type(200, "text/event-stream", Vec::new());
    ///         Some(Reply::Stream { head, data: () })
    ///     }
    /// }
    /// # let server = Server::bind("127.0.0.1:0".parse().unwrap(), ServerConfig::default())?;
    /// # let (addr, handle, (tx, opened)) = (server.local_addr()?, server.handle(), mpsc::channel());
    /// # let server_thread = std::thread::spawn(move || server.run(Events(tx)));
    /// let mut sse = std::net::TcpStream::connect(addr)?;
    /// sse.write_all(b"GET /events HTTP/1.1\r\nHost: a\r\n\r\n")?;
    /// let event: Arc<[u8]> = Arc::from(&b"data: hello\n\n"[..]);
    /// assert!(handle.send_stream(opened.recv()?, &event));
    /// # let (mut seen, mut buf) = (Vec::new(), [0; 512]);
    /// # while !seen.ends_with(b"data: hello\n\n") {
    /// #     let n = sse.read(&mut buf)?;
    /// #     assert!(n > 0, "the stream ended");
    /// #     seen.extend_from_slice(&buf[..n]);
    /// # }
    /// # drop(sse);
    /// # handle.shutdown();
    /// # server_thread.join().unwrap()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_stream(&self, id: ConnId, bytes: &Arc<[u8]>) -> bool {
        self.post(id, Mail::Stream(id, bytes.clone()))
    }

    /// Posts a text message to a connection's loop (see [`send_shared`](Self::send_shared)).
    ///
    /// ```
    /// use rfc6455::server::{Accept, ConnId, Ctx, Handler, Refusal};
    /// use std::sync::mpsc;
    /// # use rfc6455::server::{Server, ServerConfig};
    ///
    /// /// Tells the application's other threads who connected.
    /// struct Announce(mpsc::Sender<ConnId>);
    /// impl Handler for Announce {
    ///     type Data = ();
    /// #   fn upgrade(&mut self, _: &rfc6455::handshake::server::Request) -> Result<Accept<()>, Refusal> {
    /// #       Ok(Accept::new(()))
    /// #   }
    ///     fn open(&mut self, _ctx: &mut Ctx<'_, ()>, id: ConnId) {
    ///         self.0.send(id).unwrap();
    ///     }
    /// }
    /// # let server = Server::bind("127.0.0.1:0".parse().unwrap(), ServerConfig::default())?;
    /// # let (addr, handle, (tx, opened)) = (server.local_addr()?, server.handle(), mpsc::channel());
    /// # let server_thread = std::thread::spawn(move || server.run(Announce(tx)));
    /// let mut ws = rfc6455::blocking::connect(&format!("ws://{addr}/"))?;
    /// let id = opened.recv()?;
    /// assert!(handle.send_text(id, "from another thread")); // posted to id's loop
    /// assert_eq!(ws.read()?, rfc6455::Event::Text("from another thread".into()));
    /// # drop(ws);
    /// # handle.shutdown();
    /// # server_thread.join().unwrap()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_text(&self, id: ConnId, text: &str) -> bool {
        self.post(
            id,
            Mail::Data(id, MessageKind::Text, text.as_bytes().to_vec()),
        )
    }

    /// Posts a binary message to a connection's loop (see
    /// [`send_shared`](Self::send_shared) and [`Ctx::send_binary`]).
    ///
    /// ```
    /// use rfc6455::server::{Accept, ConnId, Ctx, Handler, Refusal};
    /// use std::sync::mpsc;
    /// # use rfc6455::server::{Server, ServerConfig};
    ///
    /// /// Tells the application's other threads who connected.
    /// struct Announce(mpsc::Sender<ConnId>);
    /// impl Handler for Announce {
    ///     type Data = ();
    /// #   fn upgrade(&mut self, _: &rfc6455::handshake::server::Request) -> Result<Accept<()>, Refusal> {
    /// #       Ok(Accept::new(()))
    /// #   }
    ///     fn open(&mut self, _ctx: &mut Ctx<'_, ()>, id: ConnId) {
    ///         self.0.send(id).unwrap();
    ///     }
    /// }
    /// # let server = Server::bind("127.0.0.1:0".parse().unwrap(), ServerConfig::default())?;
    /// # let (addr, handle, (tx, opened)) = (server.local_addr()?, server.handle(), mpsc::channel());
    /// # let server_thread = std::thread::spawn(move || server.run(Announce(tx)));
    /// let mut ws = rfc6455::blocking::connect(&format!("ws://{addr}/"))?;
    /// let id = opened.recv()?;
    /// // E.g. a thread that renders images for the clients.
    /// assert!(handle.send_binary(id, &[0x89, b'P', b'N', b'G']));
    /// assert_eq!(ws.read()?, rfc6455::Event::Binary(vec![0x89, b'P', b'N', b'G']));
    /// # drop(ws);
    /// # handle.shutdown();
    /// # server_thread.join().unwrap()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_binary(&self, id: ConnId, data: &[u8]) -> bool {
        self.post(id, Mail::Data(id, MessageKind::Binary, data.to_vec()))
    }

    /// Posts a close to a connection's loop, which starts the closing handshake with
    /// it (RFC 6455 §7.1.2; a stream ends once what it was sent is written), as
    /// [`Ctx::close`] does. True when posted (see [`send_shared`](Self::send_shared)).
    ///
    /// ```
    /// use rfc6455::server::{Accept, ConnId, Ctx, Handler, Refusal};
    /// use rfc6455::{CloseCode, CloseFrame, Event};
    /// use std::sync::mpsc;
    /// # use rfc6455::server::{Server, ServerConfig};
    ///
    /// /// Tells the application's other threads who connected.
    /// struct Announce(mpsc::Sender<ConnId>);
    /// impl Handler for Announce {
    ///     type Data = ();
    /// #   fn upgrade(&mut self, _: &rfc6455::handshake::server::Request) -> Result<Accept<()>, Refusal> {
    /// #       Ok(Accept::new(()))
    /// #   }
    ///     fn open(&mut self, _ctx: &mut Ctx<'_, ()>, id: ConnId) {
    ///         self.0.send(id).unwrap();
    ///     }
    /// }
    /// # let server = Server::bind("127.0.0.1:0".parse().unwrap(), ServerConfig::default())?;
    /// # let (addr, handle, (tx, opened)) = (server.local_addr()?, server.handle(), mpsc::channel());
    /// # let server_thread = std::thread::spawn(move || server.run(Announce(tx)));
    /// let mut ws = rfc6455::blocking::connect(&format!("ws://{addr}/"))?;
    /// let id = opened.recv()?;
    /// // E.g. an administrator's thread that ends a session.
    /// assert!(handle.close(id, CloseCode::POLICY_VIOLATION, "session revoked"));
    /// let close = CloseFrame { code: CloseCode::POLICY_VIOLATION, reason: "session revoked".into() };
    /// assert_eq!(ws.read()?, Event::Close(Some(close))); // 1008 (RFC 6455 §7.4.1)
    /// # drop(ws);
    /// # handle.shutdown();
    /// # server_thread.join().unwrap()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn close(&self, id: ConnId, code: CloseCode, reason: &str) -> bool {
        self.post(id, Mail::Close(id, code, reason.to_string()))
    }

    /// Posts `mail` to the loop of `id`; false for an id of no loop of this server
    /// or a full mailbox.
    fn post(&self, id: ConnId, mail: Mail) -> bool {
        id.worker < self.loops.count() && self.loops.post(id.worker, mail)
    }
}

/// Where a frame can be queued for a connection: a callback's [`Ctx`] on the loop, or a
/// [`Handle`] from any other thread. Code that fans messages out (e.g.
/// [`rooms::broadcast`]) takes either.
///
/// ```
/// use rfc6455::server::{ConnId, Outbox, SharedFrame};
///
/// fn announce(out: &mut impl Outbox, members: &[ConnId], text: &str) -> usize {
///     let frame = SharedFrame::text(text);
///     members.iter().filter(|id| out.send_shared(**id, &frame)).count()
/// }
/// let server = rfc6455::server::Server::bind(
///     "127.0.0.1:0".parse().unwrap(),
///     rfc6455::server::ServerConfig::default(),
/// )?;
/// assert_eq!(announce(&mut server.handle(), &[], "hi"), 0);
/// # Ok::<(), std::io::Error>(())
/// ```
pub trait Outbox {
    /// Queues a frame encoded once for many connections; false if it was not taken.
    ///
    /// ```
    /// use rfc6455::server::{ConnId, Outbox, Refusal, SharedFrame};
    /// use rfc6455::Event;
    /// # use rfc6455::server::{Accept, Ctx, Handler, Server, ServerConfig};
    ///
    /// /// Tells everyone how many are online: one encoding, whatever their number.
    /// fn announce(out: &mut impl Outbox, everyone: &[ConnId]) -> usize {
    ///     let frame = SharedFrame::text(&format!("{} online", everyone.len()));
    ///     everyone.iter().filter(|id| out.send_shared(**id, &frame)).count()
    /// }
    /// // Called by `Handler::open` with `ctx` and `ctx.connections()`, as anyone joins:
    /// # struct Lobby;
    /// # impl Handler for Lobby {
    /// #   type Data = ();
    /// #   fn upgrade(&mut self, _: &rfc6455::handshake::server::Request) -> Result<Accept<()>, Refusal> {
    /// #       Ok(Accept::new(()))
    /// #   }
    /// #   fn open(&mut self, ctx: &mut Ctx<'_, ()>, _id: ConnId) {
    /// #       let everyone = ctx.connections();
    /// #       assert_eq!(announce(ctx, &everyone), everyone.len());
    /// #   }
    /// # }
    /// # let server = Server::bind("127.0.0.1:0".parse().unwrap(), ServerConfig::default())?;
    /// # let (url, handle) = (format!("ws://{}/", server.local_addr()?), server.handle());
    /// # let server_thread = std::thread::spawn(move || server.run(Lobby));
    /// let mut first = rfc6455::blocking::connect(&url)?;
    /// assert_eq!(first.read()?, Event::Text("1 online".into()));
    /// let mut second = rfc6455::blocking::connect(&url)?;
    /// assert_eq!(first.read()?, Event::Text("2 online".into()));
    /// assert_eq!(second.read()?, Event::Text("2 online".into()));
    /// # drop((first, second));
    /// # handle.shutdown();
    /// # server_thread.join().unwrap()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn send_shared(&mut self, id: ConnId, frame: &SharedFrame) -> bool;
    /// Queues a text message; false if it was not taken.
    ///
    /// ```
    /// use rfc6455::server::{ConnId, Ctx, Handler, Outbox, Refusal};
    /// # use rfc6455::server::{Accept, Server, ServerConfig};
    ///
    /// /// Greets a newcomer; whether from a callback (its `Ctx`) or another thread
    /// /// (a `Handle`) is the caller's business.
    /// fn welcome(out: &mut impl Outbox, id: ConnId) -> bool {
    ///     out.send_text(id, "welcome")
    /// }
    /// struct Greeter;
    /// impl Handler for Greeter {
    ///     type Data = ();
    /// #   fn upgrade(&mut self, _: &rfc6455::handshake::server::Request) -> Result<Accept<()>, Refusal> {
    /// #       Ok(Accept::new(()))
    /// #   }
    ///     fn open(&mut self, ctx: &mut Ctx<'_, ()>, id: ConnId) {
    ///         assert!(welcome(ctx, id));
    ///     }
    /// }
    /// # let server = Server::bind("127.0.0.1:0".parse().unwrap(), ServerConfig::default())?;
    /// # let (addr, handle) = (server.local_addr()?, server.handle());
    /// # let server_thread = std::thread::spawn(move || server.run(Greeter));
    /// let mut ws = rfc6455::blocking::connect(&format!("ws://{addr}/"))?;
    /// assert_eq!(ws.read()?, rfc6455::Event::Text("welcome".into()));
    /// # drop(ws);
    /// # handle.shutdown();
    /// # server_thread.join().unwrap()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn send_text(&mut self, id: ConnId, text: &str) -> bool;
    /// Queues bytes for a stream ([`Reply::Stream`]); false if they were not taken.
    ///
    /// ```
    /// use rfc6455::server::{ConnId, Outbox, Refusal};
    /// use std::sync::Arc;
    /// # use rfc6455::server::{Accept, Ctx, Handler, HttpRequest, HttpResponse, Reply};
    /// # use rfc6455::server::{Server, ServerConfig};
    /// # use std::io::{Read, Write};
    /// # struct Events(std::sync::mpsc::Sender<ConnId>);
    /// # impl Handler for Events {
    /// #     type Data = ();
    /// #     fn upgrade(&mut self, _: &rfc6455::handshake::server::Request) -> Result<Accept<()>, Refusal> {
    /// #         Err(404.into())
    /// #     }
    /// #     fn request(&mut self, _: &mut Ctx<'_, ()>, id: ConnId, _: &HttpRequest) -> Option<Reply<()>> {
    /// #         self.0.send(id).unwrap();
    /// #         let head = HttpResponse::with_type(200, "text/event-stream", Vec::new());
    /// #         Some(Reply::Stream { head, data: () })
    /// #     }
    /// # }
    ///
    /// /// One Server-Sent Event for many streams: one buffer, shared by all of them.
    /// fn publish(out: &mut impl Outbox, streams: &[ConnId], data: &str) -> usize {
    ///     let event: Arc<[u8]> = format!("data: {data}\n\n").into_bytes().into();
    ///     streams.iter().filter(|id| out.send_stream(**id, &event)).count()
    /// }
    /// # let server = Server::bind("127.0.0.1:0".parse().unwrap(), ServerConfig::default())?;
    /// # let (addr, mut handle, (tx, opened)) = (server.local_addr()?, server.handle(), std::sync::mpsc::channel());
    /// # let server_thread = std::thread::spawn(move || server.run(Events(tx)));
    /// # let mut sse = std::net::TcpStream::connect(addr)?;
    /// # sse.write_all(b"GET /events HTTP/1.1\r\nHost: a\r\n\r\n")?;
    /// let streams = [opened.recv()?]; // opened by Handler::request (Reply::Stream)
    /// assert_eq!(publish(&mut handle, &streams, "hello"), 1);
    /// # let (mut seen, mut buf) = (Vec::new(), [0; 512]);
    /// # while !seen.ends_with(b"data: hello\n\n") {
    /// #     let n = sse.read(&mut buf)?;
    /// #     assert!(n > 0, "the stream ended");
    /// #     seen.extend_from_slice(&buf[..n]);
    /// # }
    /// # drop(sse);
    /// # handle.shutdown();
    /// # server_thread.join().unwrap()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn send_stream(&mut self, id: ConnId, bytes: &Arc<[u8]>) -> bool;
}

impl<D> Outbox for Ctx<'_, D> {
    fn send_shared(&mut self, id: ConnId, frame: &SharedFrame) -> bool {
        Ctx::send_shared(self, id, frame)
    }
    fn send_text(&mut self, id: ConnId, text: &str) -> bool {
        Ctx::send_text(self, id, text)
    }
    fn send_stream(&mut self, id: ConnId, bytes: &Arc<[u8]>) -> bool {
        Ctx::send_stream(self, id, bytes)
    }
}

impl Outbox for Handle {
    fn send_shared(&mut self, id: ConnId, frame: &SharedFrame) -> bool {
        Handle::send_shared(self, id, frame)
    }
    fn send_text(&mut self, id: ConnId, text: &str) -> bool {
        Handle::send_text(self, id, text)
    }
    fn send_stream(&mut self, id: ConnId, bytes: &Arc<[u8]>) -> bool {
        Handle::send_stream(self, id, bytes)
    }
}

/// One loop's poll and, if it accepts connections itself, its listener.
struct Seed {
    poll: Poll,
    listener: Option<TcpListener>,
}

/// The event-loop server: [`ServerConfig::threads`] loops, each on its own thread.
///
/// Besides WebSocket upgrades it answers plain HTTP on the same port; `GET /healthz`
/// it answers itself (see [`Handler::health`]).
///
/// ```
/// use rfc6455::server::{Refusal, Server, ServerConfig};
/// use std::io::{Read, Write};
/// # use rfc6455::server::{Accept, Handler};
/// # struct App;
/// # impl Handler for App {
/// #     type Data = ();
/// #     fn upgrade(&mut self, _: &rfc6455::handshake::server::Request) -> Result<Accept<()>, Refusal> {
/// #         Ok(Accept::new(()))
/// #     }
/// # }
///
/// let server = Server::bind("127.0.0.1:0".parse().unwrap(), ServerConfig::default())?;
/// let (addr, handle) = (server.local_addr()?, server.handle());
/// let server_thread = std::thread::spawn(move || server.run(App));
///
/// let mut http = std::net::TcpStream::connect(addr)?;
/// http.write_all(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")?;
/// let mut response = String::new();
/// http.read_to_string(&mut response)?; // the server closes after its answer
/// assert!(response.starts_with("HTTP/1.1 200 OK\r\n") && response.ends_with("\r\n\r\nok\n"));
/// handle.shutdown();
/// server_thread.join().unwrap()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Server {
    seeds: Vec<Seed>,
    local_addr: SocketAddr,
    config: ServerConfig,
    loops: Arc<Loops>,
}

/// A listening socket that shares its address with the other loops' (`SO_REUSEPORT`).
#[cfg(unix)]
fn reuse_port_listener(addr: SocketAddr) -> io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(TcpListener::from_std(socket.into()))
}

impl Server {
    /// Binds `addr` (for every loop). Run it with [`run`](Self::run) (one loop) or
    /// [`run_with`](Self::run_with).
    ///
    /// ```
    /// use rfc6455::server::{Server, ServerConfig};
    ///
    /// let server = Server::bind("127.0.0.1:0".parse().unwrap(), ServerConfig::default())?;
    /// let addr = server.local_addr()?;
    /// // The port is taken while the server lives: a second one cannot bind it.
    /// let taken = Server::bind(addr, ServerConfig::default()).err().unwrap();
    /// assert_eq!(taken.kind(), std::io::ErrorKind::AddrInUse);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn bind(addr: SocketAddr, config: ServerConfig) -> io::Result<Server> {
        let threads = config.threads.max(1);
        let mut seeds = Vec::with_capacity(threads);
        let mut wakers = Vec::with_capacity(threads);
        for _ in 0..threads {
            let poll = Poll::new()?;
            wakers.push(Waker::new(poll.registry(), WAKER)?);
            seeds.push(Seed {
                poll,
                listener: None,
            });
        }
        let mut listeners = Vec::new();
        #[cfg(unix)]
        if threads > 1 && config.balance == Balance::ReusePort {
            // The first socket picks the port (when `addr` has port 0); the others
            // join it there.
            let first = reuse_port_listener(addr)?;
            let bound = first.local_addr()?;
            listeners.push(first);
            for _ in 1..threads {
                listeners.push(reuse_port_listener(bound)?);
            }
        }
        if listeners.is_empty() {
            listeners.push(TcpListener::bind(addr)?);
        }
        let local_addr = listeners[0].local_addr()?;
        for (seed, mut listener) in seeds.iter_mut().zip(listeners) {
            seed.poll
                .registry()
                .register(&mut listener, LISTENER, Interest::READABLE)?;
            seed.listener = Some(listener);
        }
        // A mailbox holds at most what 16 connections may queue: only a loop that
        // stopped turning fills it.
        let mailbox_limit = config.max_queued_output.saturating_mul(16);
        Ok(Server {
            seeds,
            local_addr,
            config,
            loops: Arc::new(Loops::new(wakers, mailbox_limit)),
        })
    }

    /// The address bound (useful after binding port 0).
    ///
    /// ```
    /// use rfc6455::server::{Server, ServerConfig};
    ///
    /// let server = Server::bind("127.0.0.1:0".parse().unwrap(), ServerConfig::default())?;
    /// let addr = server.local_addr()?;
    /// assert!(addr.ip().is_loopback());
    /// assert_ne!(addr.port(), 0); // the free port the system picked
    /// // Listening already: the kernel queues a client until `run` accepts it.
    /// std::net::TcpStream::connect(addr)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local_addr)
    }

    /// A handle to shut the server down from another thread.
    ///
    /// ```
    /// use rfc6455::server::{Refusal, Server, ServerConfig};
    /// # use rfc6455::server::{Accept, Handler};
    /// # struct App;
    /// # impl Handler for App {
    /// #     type Data = ();
    /// #     fn upgrade(&mut self, _: &rfc6455::handshake::server::Request) -> Result<Accept<()>, Refusal> {
    /// #         Ok(Accept::new(()))
    /// #     }
    /// # }
    ///
    /// let server = Server::bind("127.0.0.1:0".parse().unwrap(), ServerConfig::default())?;
    /// let (addr, handle) = (server.local_addr()?, server.handle()); // before `run` takes it
    /// let server_thread = std::thread::spawn(move || server.run(App));
    /// let mut ws = rfc6455::blocking::connect(&format!("ws://{addr}/"))?;
    /// handle.shutdown();
    /// // Every connection gets Close 1001 "going away" (RFC 6455 §7.4.1), then `run` returns.
    /// match ws.read()? {
    ///     rfc6455::Event::Close(Some(frame)) => assert_eq!(frame.code.0, 1001),
    ///     other => panic!("{other:?}"),
    /// }
    /// server_thread.join().unwrap()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn handle(&self) -> Handle {
        Handle {
            loops: self.loops.clone(),
        }
    }

    /// Runs one loop on this thread until [`Handle::shutdown`] completes. With
    /// [`ServerConfig::threads`] above 1, use [`run_with`](Self::run_with), which makes
    /// a handler for each loop.
    ///
    /// ```
    /// use rfc6455::server::{Refusal, Server, ServerConfig};
    /// use rfc6455::Event;
    /// # use rfc6455::server::{Accept, ConnId, Ctx, Handler, Received};
    /// # struct Echo;
    /// # impl Handler for Echo {
    /// #   type Data = ();
    /// #   fn upgrade(&mut self, _: &rfc6455::handshake::server::Request) -> Result<Accept<()>, Refusal> {
    /// #       Ok(Accept::new(()))
    /// #   }
    /// #   fn message(&mut self, ctx: &mut Ctx<'_, ()>, id: ConnId, message: Received<'_>) {
    /// #       ctx.send(id, message);
    /// #   }
    /// # }
    ///
    /// // `Echo`: the handler of the module's example.
    /// let server = Server::bind("127.0.0.1:0".parse().unwrap(), ServerConfig::default())?;
    /// let (addr, handle) = (server.local_addr()?, server.handle());
    /// let server_thread = std::thread::spawn(move || server.run(Echo)); // until shutdown
    /// let mut ws = rfc6455::blocking::connect(&format!("ws://{addr}/"))?;
    /// ws.send_binary(&[1, 2, 3])?;
    /// assert_eq!(ws.read()?, Event::Binary(vec![1, 2, 3]));
    /// # drop(ws);
    /// # handle.shutdown();
    /// # server_thread.join().unwrap()?;
    ///
    /// // Two loops need two handlers: `run` refuses, `run_with` makes them.
    /// let config = ServerConfig { threads: 2, ..ServerConfig::default() };
    /// let two_loops = Server::bind("127.0.0.1:0".parse().unwrap(), config)?;
    /// assert_eq!(two_loops.run(Echo).unwrap_err().kind(), std::io::ErrorKind::InvalidInput);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn run<H: Handler>(self, handler: H) -> io::Result<()> {
        if self.seeds.len() != 1 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a server with several threads needs a handler per loop: use Server::run_with",
            ));
        }
        let seed = self.seeds.into_iter().next().expect("one loop");
        run_loop(0, seed, self.config, self.loops, handler)
    }

    /// Runs [`ServerConfig::threads`] loops until [`Handle::shutdown`] completes: loop 0
    /// on this thread, the others on threads of their own. `make_handler(i)` makes loop
    /// `i`'s handler, on that loop's thread; handlers that must agree on something (a
    /// chat's rooms) share it through an `Arc`. A send to a connection of another loop
    /// is handed to that loop (see [`Ctx::send`]). If a loop fails or panics, the others
    /// shut down too.
    ///
    /// ```
    /// use rfc6455::server::{Refusal, Server, ServerConfig};
    /// # use rfc6455::server::{Accept, Ctx, ConnId, Handler, Received};
    /// # use rfc6455::handshake::server::Request;
    /// # struct Echo;
    /// # impl Handler for Echo {
    /// #     type Data = ();
    /// #     fn upgrade(&mut self, _request: &Request) -> Result<Accept<()>, Refusal> {
    /// #         Ok(Accept::new(()))
    /// #     }
    /// #     fn message(&mut self, ctx: &mut Ctx<'_, ()>, id: ConnId, message: Received<'_>) {
    /// #         ctx.send(id, message);
    /// #     }
    /// # }
    ///
    /// let config = ServerConfig { threads: 4, ..ServerConfig::default() };
    /// let server = Server::bind("127.0.0.1:0".parse().unwrap(), config)?;
    /// let (addr, handle) = (server.local_addr()?, server.handle());
    /// // Loop 0 runs on the calling thread (here one of its own), loops 1 to 3 on
    /// // theirs, each with a handler of its own: `Echo`, as in the module's example.
    /// let server_thread = std::thread::spawn(move || server.run_with(|_loop_index| Echo));
    /// let mut ws = rfc6455::blocking::connect(&format!("ws://{addr}/"))?;
    /// ws.send_text("hello")?;
    /// assert_eq!(ws.read()?, rfc6455::Event::Text("hello".into()));
    /// # drop(ws);
    /// handle.shutdown(); // every loop
    /// server_thread.join().unwrap()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn run_with<H, F>(self, mut make_handler: F) -> io::Result<()>
    where
        H: Handler,
        F: FnMut(usize) -> H + Send,
    {
        let Server {
            seeds,
            config,
            loops,
            ..
        } = self;
        let make_handler = std::sync::Mutex::new(&mut make_handler);
        let run = |worker: usize, seed: Seed| -> io::Result<()> {
            let handler = (make_handler.lock().unwrap_or_else(|p| p.into_inner()))(worker);
            run_loop(worker, seed, config.clone(), loops.clone(), handler)
        };
        std::thread::scope(|scope| {
            let mut seeds = seeds.into_iter().enumerate();
            let (_, first) = seeds.next().expect("at least one loop");
            let mut threads = Vec::new();
            let mut result = Ok(());
            for (worker, seed) in seeds {
                let run = &run;
                match std::thread::Builder::new()
                    .name(format!("rfc6455-loop-{worker}"))
                    .spawn_scoped(scope, move || run(worker, seed))
                {
                    Ok(thread) => threads.push(thread),
                    Err(e) => {
                        loops.shutdown();
                        result = Err(e);
                        break;
                    }
                }
            }
            if result.is_ok() {
                result = run(0, first);
            }
            for thread in threads {
                match thread.join() {
                    Ok(r) => result = result.and(r),
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
            result
        })
    }
}

/// Runs loop `worker` on this thread. However it ends (done, failed, panicked), the
/// other loops stop too.
fn run_loop<H: Handler>(
    worker: usize,
    seed: Seed,
    config: ServerConfig,
    loops: Arc<Loops>,
    handler: H,
) -> io::Result<()> {
    struct StopAll(Arc<Loops>);
    impl Drop for StopAll {
        fn drop(&mut self) {
            self.0.shutdown();
        }
    }
    let _stop_all = StopAll(loops.clone());
    Loop::new(worker, seed.poll, seed.listener, config, loops, handler).run()
}
