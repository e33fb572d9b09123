//! A connection's limits and behaviour, fixed when it is made.

use crate::deflate::DeflateConfig;
use std::time::Duration;

/// Buffers larger than this are released when they empty, so that one big message
/// does not pin its memory to an idle connection (the read and write sides' policy).
pub(super) const RETAINED_BUFFER: usize = 1024 * 1024;

/// Limits and behaviour of a connection.
///
/// ```
/// use rfc6455::Config;
/// use std::time::Duration;
///
/// let config = Config { max_message_size: 1 << 20, ..Config::default() };
/// assert_eq!(config.max_frame_size, 16 << 20);
/// assert!(config.auto_pong);
/// assert_eq!(config.close_timeout, Some(Duration::from_secs(5)));
/// assert_eq!(config.ping_interval, None); // no heartbeat unless asked for
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The largest frame payload accepted; a header announcing more fails the connection
    /// with 1009 at once (RFC 6455 §10.4). Default 16 MiB.
    pub max_frame_size: usize,
    /// The largest message accepted, all fragments together; 1009 beyond. Default 64 MiB.
    pub max_message_size: usize,
    /// Answer every ping with a pong carrying its payload (RFC 6455 §5.5.2). Default on.
    /// Pings are reported as events either way.
    pub auto_pong: bool,
    /// RSV bits (`0b0RRR`, RSV1 high) that negotiated extensions define; any other RSV
    /// bit fails the connection (RFC 6455 §5.2). Default 0: no extensions.
    pub allowed_rsv: u8,
    /// Record every frame received and sent, for [`Connection::take_trace`](crate::Connection::take_trace) (the
    /// `--trace` of the command line tools). Default off.
    pub trace: bool,
    /// permessage-deflate (RFC 7692) for the drivers to offer (client) or accept
    /// (server) in the opening handshake; `None`: not offered, offers declined.
    /// Default `None` here; the event-loop server's default turns it on. What was
    /// agreed is given to [`Connection::with_deflate`](crate::Connection::with_deflate).
    pub deflate: Option<DeflateConfig>,
    /// Send a Ping after this long without one — a heartbeat, so that a peer that
    /// vanished without a FIN is noticed (RFC 6455 §5.5.2 allows a Ping at any time).
    /// Default `None`: no heartbeat. Timers run only for a driver that asks
    /// [`Connection::poll_timeout`](crate::Connection::poll_timeout) and calls [`Connection::handle_timeout`](crate::Connection::handle_timeout).
    pub ping_interval: Option<Duration>,
    /// How long a heartbeat Ping may wait for the peer's Pong — or any other frame, which
    /// shows it is there as well: past it the connection is closed with 1008 "ping
    /// timeout". Default 20 s; used only with `ping_interval`.
    pub pong_timeout: Duration,
    /// How long to wait for the peer's Close after sending ours (RFC 6455 §7.1.1
    /// leaves it to the endpoint): past it the connection is [`State::Closed`] without
    /// it. Default 5 s; `None`: as long as it takes.
    ///
    /// [`State::Closed`]: crate::State::Closed
    pub close_timeout: Option<Duration>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_frame_size: 16 << 20,
            max_message_size: 64 << 20,
            auto_pong: true,
            allowed_rsv: 0,
            trace: false,
            deflate: None,
            ping_interval: None,
            pong_timeout: Duration::from_secs(20),
            close_timeout: Some(Duration::from_secs(5)),
        }
    }
}
