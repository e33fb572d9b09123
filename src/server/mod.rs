//! A single-threaded `mio` event-loop server that drives the sans-IO [`Connection`]:
//! many connections on one thread, no async runtime, no thread per connection.
//!
//! The application is a [`Handler`]: it decides upgrades (authentication, Origin checks,
//! subprotocols) before the 101, and hears about opens, messages, closes and a periodic
//! tick. Every callback gets a [`Ctx`] through which it can send to any connection,
//! close one, and reach the data it attached at accept time.
//!
//! The loop: accept until `WouldBlock`; read until `WouldBlock`; feed the connection;
//! write while output is pending, with WRITABLE interest registered only then. Every
//! buffer is bounded: request heads by [`ServerConfig::max_head`], messages by the
//! [`Config`] limits, queued output by [`ServerConfig::max_queued_output`] (a slow
//! consumer is closed with 1008 or loses messages, per [`SlowConsumer`]). Timers
//! (handshake timeout, heartbeat pings, pong and close timeouts) live in one deadline
//! heap checked each turn of the loop.
//!
//! ```no_run
//! use rfc6455::server::{Accept, Ctx, ConnId, Handler, Message, Server, ServerConfig};
//! use rfc6455::handshake::server::Request;
//!
//! struct Echo;
//!
//! impl Handler for Echo {
//!     type Data = ();
//!     fn upgrade(&mut self, _request: &Request) -> Result<Accept<()>, u16> {
//!         Ok(Accept::new(()))
//!     }
//!     fn message(&mut self, ctx: &mut Ctx<'_, ()>, id: ConnId, message: Message) {
//!         ctx.send(id, &message);
//!     }
//! }
//!
//! let server = Server::bind("127.0.0.1:9001".parse().unwrap(), ServerConfig::default())?;
//! let handle = server.handle(); // shutdown from another thread: handle.shutdown()
//! server.run(Echo)?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Where things are: `config.rs` ([`ServerConfig`]), `handler.rs` (the [`Handler`]
//! trait and its types), `ctx.rs` ([`Ctx`], [`Stats`]), `shared.rs` ([`SharedFrame`]),
//! `conn.rs` (one connection's state), `event_loop.rs` (the loop: poll, accept, timers,
//! shutdown), `upgrade.rs` (request heads: 101, HTTP answers, rejections), `wire.rs`
//! (reading, frames to callbacks, writing), `http.rs`, `timers.rs`, `rooms.rs`.

mod config;
mod conn;
mod ctx;
mod event_loop;
mod handler;
mod http;
pub mod rooms;
mod shared;
mod timers;
mod upgrade;
mod wire;

pub use config::{ServerConfig, SlowConsumer};
pub use ctx::{Ctx, Stats};
pub use handler::{Accept, CloseInfo, ConnId, Handler, Message};
pub use http::{HttpRequest, HttpResponse};
pub use shared::SharedFrame;

use event_loop::Loop;
use mio::net::TcpListener;
use mio::{Interest, Poll, Token, Waker};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

const LISTENER: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX - 2);
/// How much is read from a socket at a time.
const READ_CHUNK: usize = 64 * 1024;

/// Shuts a running [`Server`] down from another thread.
#[derive(Debug, Clone)]
pub struct Handle {
    waker: Arc<Waker>,
    stop: Arc<AtomicBool>,
}

impl Handle {
    /// Starts a graceful shutdown: stop accepting, send Close 1001 "going away" to every
    /// connection, wait for their Close frames up to [`ServerConfig::shutdown_timeout`],
    /// then return from [`Server::run`].
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.waker.wake();
    }
}

/// The event-loop server.
pub struct Server {
    poll: Poll,
    listener: TcpListener,
    config: ServerConfig,
    waker: Arc<Waker>,
    stop: Arc<AtomicBool>,
}

impl Server {
    /// Binds `addr`. Run it with [`run`](Self::run).
    pub fn bind(addr: SocketAddr, config: ServerConfig) -> io::Result<Server> {
        let poll = Poll::new()?;
        let mut listener = TcpListener::bind(addr)?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        Ok(Server {
            poll,
            listener,
            config,
            waker,
            stop: Arc::new(AtomicBool::new(false)),
        })
    }

    /// The address bound (useful after binding port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// A handle to shut the server down from another thread.
    pub fn handle(&self) -> Handle {
        Handle {
            waker: self.waker.clone(),
            stop: self.stop.clone(),
        }
    }

    /// Runs the loop until [`Handle::shutdown`] completes.
    pub fn run<H: Handler>(self, handler: H) -> io::Result<()> {
        Loop::new(self.poll, self.listener, self.config, self.stop, handler).run()
    }
}
