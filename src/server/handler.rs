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

    /// A complete message arrived.
    fn message(&mut self, _ctx: &mut Ctx<'_, Self::Data>, _id: ConnId, _message: Message) {}

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
    /// server answers itself): answer it (404 included), or `None` to treat the path
    /// as a WebSocket endpoint: a `GET` then gets `426 Upgrade Required`
    /// ([`HttpResponse::upgrade_required`]), other methods 405. `stats` are the
    /// server's counters now (e.g. for a `/metrics` page).
    fn http(&mut self, _request: &HttpRequest, _stats: &Stats) -> Option<HttpResponse> {
        None
    }

    /// Whether the application can serve now, for `GET /healthz`: `Err(reason)` makes
    /// it answer `503` with the reason (e.g. a database it needs is unreachable), so
    /// that a load balancer sends new clients elsewhere. Connections stay open.
    fn health(&mut self) -> Result<(), String> {
        Ok(())
    }
}
