//! The server's limits and timers.

use crate::Config;
use std::time::Duration;

/// What to do with a connection whose queued output is over the limit.
///
/// ```
/// use rfc6455::server::{ServerConfig, SlowConsumer};
///
/// assert_eq!(ServerConfig::default().slow_consumer, SlowConsumer::Close);
/// // A price feed: a reader that falls behind may skip prices, it is not cut off.
/// let feed = ServerConfig { slow_consumer: SlowConsumer::DropMessages, ..ServerConfig::default() };
/// assert_eq!(feed.max_queued_output, 4 << 20); // the limit, per connection
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlowConsumer {
    /// Close it with 1008 (policy violation): memory stays bounded and the client
    /// learns why. The default.
    Close,
    /// Drop messages for it until its queue drains below the limit.
    DropMessages,
}

/// Limits and timers of a [`Server`](super::Server).
///
/// ```
/// use rfc6455::server::ServerConfig;
/// use std::time::Duration;
///
/// let config = ServerConfig { ping_interval: Some(Duration::from_secs(10)), ..ServerConfig::default() };
/// assert_eq!(config.max_connections, 10_000);
/// ```
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Limits of each WebSocket connection (frame and message sizes: 1009 beyond), and
    /// permessage-deflate (on by default, with the memory-flat [`DeflateConfig`]
    /// defaults).
    ///
    /// [`DeflateConfig`]: crate::deflate::DeflateConfig
    pub connection: Config,
    /// More connections than this: upgrades get 503. Default 10 000.
    pub max_connections: usize,
    /// The longest request head accepted (431 beyond). Default 16 KiB.
    pub max_head: usize,
    /// The longest body of a plain HTTP request (`Content-Length`; 413 beyond, and
    /// 411 for a body without a length, e.g. chunked). Default 64 KiB.
    pub max_body: usize,
    /// A client that has not finished its request head by then is dropped (slowloris).
    /// Default 10 s.
    pub handshake_timeout: Duration,
    /// Send a ping after this long without one. Default 25 s; `None`: no heartbeat.
    pub ping_interval: Option<Duration>,
    /// Close the connection when nothing (pong or anything else) arrives this long
    /// after a ping: the peer vanished without a FIN. Default 20 s.
    pub ping_timeout: Duration,
    /// Drop the TCP connection when the peer does not answer our Close (or close its
    /// end) within this time. Default 5 s.
    pub close_timeout: Duration,
    /// The most output queued for one connection. Default 4 MiB.
    pub max_queued_output: usize,
    /// What happens to a connection over `max_queued_output`.
    pub slow_consumer: SlowConsumer,
    /// The most output queued for all connections together, all loops: a send that
    /// would pass it is refused as a send to a slow consumer is (`slow_consumer`
    /// applies to the connection it was for), so that many slow readers together
    /// cannot take the host's memory. Default 1 GiB.
    pub max_total_queued_output: usize,
    /// Backpressure: while a connection has more than this unsent (its own frames,
    /// shared frames, an HTTP head or a stream's bytes), it is not read, so a peer
    /// that does not read cannot make the server produce more for it (a ping flood
    /// queues at most this much of pongs). Reading resumes when half of it is written.
    /// Default 256 KiB.
    pub pause_reading_above: usize,
    /// Queued output that has not shrunk for this long ends the connection (1008
    /// "write timeout" for a WebSocket; a stream or HTTP response is dropped): a peer
    /// that stopped reading holds no memory beyond it. Default 30 s.
    pub write_timeout: Duration,
    /// `SO_SNDBUF` of every accepted socket: the kernel's share of memory for one
    /// connection's unsent bytes (Linux doubles it and stops autotuning, which
    /// otherwise grows it to `tcp_wmem`'s maximum, 4 MiB by default, for each peer
    /// that does not read). Default 256 KiB; `None`: the kernel's autotuning.
    pub socket_send_buffer: Option<usize>,
    /// Connections that have not finished their request (head, body, TLS handshake),
    /// all loops together; a connection accepted beyond it is closed at once, so
    /// half-open connections cannot take every file descriptor. Default 1024.
    pub max_handshaking: usize,
    /// Connections from one IP address, in any phase, all loops together; beyond it
    /// a new one is closed at once. Default `None` (no limit): many users may share
    /// one address behind a NAT or a proxy, so only a deployment knows its number.
    pub max_connections_per_ip: Option<usize>,
    /// Streams ([`Reply::Stream`](super::Reply::Stream), e.g. Server-Sent Events) open
    /// at once, all loops together (503 beyond). They count in `max_connections`
    /// too; this keeps some of it for WebSockets. Default `None`: half of
    /// `max_connections` (at least 1).
    pub max_streams: Option<usize>,
    /// Messages per second a connection may send (token bucket, burst of the same
    /// size); over it, close 1008. Pings and pongs count too. Default `None`: no
    /// limit.
    pub max_messages_per_second: Option<u32>,
    /// How often [`Handler::tick`](super::Handler::tick) runs. Default 1 s.
    pub tick_interval: Duration,
    /// How long a graceful shutdown waits for the peers' Close frames. Default 5 s.
    pub shutdown_timeout: Duration,
    /// How many event loops, each on its own thread, serve connections (run them with
    /// [`Server::run_with`](super::Server::run_with)). Default 1; the command line's
    /// `--threads` defaults to the number of cores.
    pub threads: usize,
    /// How connections are spread over the loops when there are several.
    pub balance: Balance,
    /// After a turn that handled events, a loop keeps polling without sleeping for up
    /// to this long before it blocks: what arrives meanwhile is read without waking a
    /// sleeping thread (the wakeup is the largest part of a round trip on a VM). It
    /// costs up to a core per loop while traffic flows, nothing when idle. Default
    /// `None`: sleep at once.
    pub busy_poll: Option<Duration>,
    /// Serve TLS (`wss://`, HTTPS) with this configuration (feature `tls`; make one
    /// with [`tls::server_config`](crate::tls::server_config)). Every connection
    /// then starts with a TLS handshake, which `handshake_timeout` covers. Default
    /// `None`: plain TCP.
    #[cfg(feature = "tls")]
    pub tls: Option<std::sync::Arc<rustls::ServerConfig>>,
}

impl ServerConfig {
    /// The most streams open at once: [`max_streams`](Self::max_streams), or half of
    /// `max_connections`.
    ///
    /// ```
    /// use rfc6455::server::ServerConfig;
    ///
    /// let config = ServerConfig { max_connections: 300, ..ServerConfig::default() };
    /// assert_eq!(config.stream_limit(), 150);
    /// ```
    pub fn stream_limit(&self) -> usize {
        self.max_streams
            .unwrap_or((self.max_connections / 2).max(1))
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            // permessage-deflate on: browsers offer it on every connection.
            connection: Config {
                deflate: Some(crate::deflate::DeflateConfig::default()),
                ..Config::default()
            },
            max_connections: 10_000,
            max_head: 16 * 1024,
            max_body: 64 * 1024,
            handshake_timeout: Duration::from_secs(10),
            ping_interval: Some(Duration::from_secs(25)),
            ping_timeout: Duration::from_secs(20),
            close_timeout: Duration::from_secs(5),
            max_queued_output: 4 << 20,
            slow_consumer: SlowConsumer::Close,
            max_total_queued_output: 1 << 30,
            pause_reading_above: 256 * 1024,
            write_timeout: Duration::from_secs(30),
            socket_send_buffer: Some(256 * 1024),
            max_handshaking: 1024,
            max_connections_per_ip: None,
            max_streams: None,
            max_messages_per_second: None,
            tick_interval: Duration::from_secs(1),
            shutdown_timeout: Duration::from_secs(5),
            threads: 1,
            balance: Balance::LeastConnections,
            busy_poll: None,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

/// How a server with several loops spreads connections over them.
///
/// Measured on this repository's load generator (see docs/rooms-server.md, "Every core"):
/// `LeastConnections` gives every loop its share of connections even when there are
/// few of them, which the kernel's hash does not.
///
/// ```
/// use rfc6455::server::{Balance, ServerConfig};
///
/// let config = ServerConfig { threads: 4, balance: Balance::ReusePort, ..ServerConfig::default() };
/// assert_eq!(ServerConfig::default().balance, Balance::LeastConnections);
/// # let _ = config;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Balance {
    /// Loop 0 accepts every connection and hands it to the loop with the fewest
    /// connections (ties: the lowest index). Exact by count, at the price of one
    /// hand-over (a mailbox push and a wake-up) per connection.
    LeastConnections,
    /// Each loop has its own listening socket on the same address (`SO_REUSEPORT`);
    /// the kernel picks one by a hash of the connection's addresses and ports. No
    /// hand-over, but the split is only even on average, and another process of the
    /// same user can bind the same port and take a share of the connections.
    ReusePort,
}
