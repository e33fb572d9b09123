//! The application's side of the server: the [`Handler`] trait and what its
//! callbacks are given and return.

use super::{Ctx, HttpRequest, HttpResponse, Stats};
use crate::handshake::server::Request;
use crate::CloseCode;

/// A connection's identity, stable for its lifetime: the loop it lives on (see
/// [`ServerConfig::threads`](super::ServerConfig::threads)), its slab key, and a
/// generation, so that a stale id never reaches a later connection in the same slot.
/// Displayed as `#slot.generation@loop`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    pub(super) worker: usize,
    pub(super) slot: usize,
    pub(super) generation: u64,
}

impl ConnId {
    /// The index of the event loop the connection lives on (0 with one loop).
    pub fn worker(&self) -> usize {
        self.worker
    }
}

impl std::fmt::Display for ConnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}.{}@{}", self.slot, self.generation, self.worker)
    }
}

/// A complete message from a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A text message.
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
}

/// A complete message from a client, lent to [`Handler::received`] for the length of
/// the call: the loop reads every message into one reused buffer, so a handler that
/// looks at a message and answers it allocates nothing per message.
///
/// ```
/// use rfc6455::server::{Message, Received};
///
/// let lent = Received::Text("hi");
/// assert_eq!(lent.as_bytes(), b"hi");
/// assert_eq!(lent.to_message(), Message::Text("hi".into())); // to keep it
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received<'a> {
    /// A text message.
    Text(&'a str),
    /// A binary message.
    Binary(&'a [u8]),
}

impl Received<'_> {
    /// The payload's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Received::Text(text) => text.as_bytes(),
            Received::Binary(data) => data,
        }
    }

    /// An owned copy.
    pub fn to_message(&self) -> Message {
        match self {
            Received::Text(text) => Message::Text((*text).to_owned()),
            Received::Binary(data) => Message::Binary(data.to_vec()),
        }
    }
}

/// The handler's yes to an upgrade: the subprotocol chosen and the connection's data.
#[derive(Debug)]
pub struct Accept<D> {
    /// One of the subprotocols the client offered, or `None`.
    pub protocol: Option<String>,
    /// Per-connection data, reachable through [`Ctx::data`].
    pub data: D,
}

impl<D> Accept<D> {
    /// Accepts without a subprotocol.
    pub fn new(data: D) -> Self {
        Accept {
            protocol: None,
            data,
        }
    }
}

/// The handler's answer to a plain HTTP request (see [`Handler::request`]).
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
pub trait Handler {
    /// Data kept with each connection.
    type Data;

    /// A valid upgrade request arrived (RFC 6455 §4.2.1): accept it, or refuse with an
    /// HTTP status (401, 403, 404…), before anything else is sent.
    fn upgrade(&mut self, request: &Request) -> Result<Accept<Self::Data>, u16>;

    /// The 101 was sent: the connection is open.
    fn open(&mut self, _ctx: &mut Ctx<'_, Self::Data>, _id: ConnId) {}

    /// A complete message arrived, owned. Called by the default
    /// [`received`](Self::received); a handler implements one of the two.
    fn message(&mut self, _ctx: &mut Ctx<'_, Self::Data>, _id: ConnId, _message: Message) {}

    /// A complete message arrived, lent for the length of the call (see
    /// [`Received`]); the default makes it owned and calls [`message`](Self::message).
    ///
    /// ```
    /// use rfc6455::handshake::server::Request;
    /// use rfc6455::server::{Accept, ConnId, Ctx, Handler, Received};
    ///
    /// /// Echoes every message without an allocation per message.
    /// struct Echo;
    ///
    /// impl Handler for Echo {
    ///     type Data = ();
    ///     fn upgrade(&mut self, _request: &Request) -> Result<Accept<()>, u16> {
    ///         Ok(Accept::new(()))
    ///     }
    ///     fn received(&mut self, ctx: &mut Ctx<'_, ()>, id: ConnId, message: Received<'_>) {
    ///         match message {
    ///             Received::Text(text) => ctx.send_text(id, text),
    ///             Received::Binary(data) => ctx.send_binary(id, data),
    ///         };
    ///     }
    /// }
    /// ```
    fn received(&mut self, ctx: &mut Ctx<'_, Self::Data>, id: ConnId, message: Received<'_>) {
        self.message(ctx, id, message.to_message());
    }

    /// The connection ended; its data is handed back.
    fn close(
        &mut self,
        _ctx: &mut Ctx<'_, Self::Data>,
        _id: ConnId,
        _data: Self::Data,
        _info: CloseInfo,
    ) {
    }

    /// Runs every [`ServerConfig::tick_interval`](super::ServerConfig::tick_interval).
    fn tick(&mut self, _ctx: &mut Ctx<'_, Self::Data>) {}

    /// A plain HTTP request that is not an upgrade (and not `GET /healthz`, which the
    /// server answers itself) and that [`request`](Self::request) left unanswered:
    /// answer it (404 included), or `None` to treat the path
    /// as a WebSocket endpoint: a `GET` then gets `426 Upgrade Required`
    /// ([`HttpResponse::upgrade_required`]), other methods 405. `stats` are the
    /// server's counters now (e.g. for a `/metrics` page).
    fn http(&mut self, _request: &HttpRequest, _stats: &Stats) -> Option<HttpResponse> {
        None
    }

    /// A plain HTTP request (not an upgrade, not `GET /healthz`), with its body if it
    /// had one (at most [`ServerConfig::max_body`](super::ServerConfig::max_body)
    /// bytes), as connection `id`: answer it, open a stream on it ([`Reply::Stream`]),
    /// or `None` (the default) to let [`http`](Self::http) answer. Unlike `http`, this
    /// may send to other connections through `ctx` (e.g. a message posted over HTTP).
    ///
    /// ```
    /// use rfc6455::handshake::server::Request;
    /// use rfc6455::server::{Accept, ConnId, Ctx, Handler, HttpRequest, HttpResponse, Reply};
    ///
    /// /// Streams a tick every second to whoever asks for `/ticks`.
    /// struct Ticks(Vec<ConnId>);
    ///
    /// impl Handler for Ticks {
    ///     type Data = ();
    ///     fn upgrade(&mut self, _request: &Request) -> Result<Accept<()>, u16> {
    ///         Err(404)
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
    fn health(&mut self) -> Result<(), String> {
        Ok(())
    }
}
