//! The server's limits and timers.

use super::Balance;
use crate::Config;
use std::time::Duration;

/// What to do with a connection whose queued output is over the limit.
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
    /// Messages per second a connection may send (token bucket, burst of the same
    /// size); over it, close 1008. Default `None`: no limit.
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
