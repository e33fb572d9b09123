//! The server's counters.

/// Counters kept by the server, readable from the handler via [`Ctx::stats`](super::Ctx::stats).
///
/// ```
/// use rfc6455::server::Stats;
///
/// /// A `/metrics` page in Prometheus' text format (see `Ctx::totals`).
/// fn metrics(stats: &Stats) -> String {
///     format!("ws_open {}\nws_messages_in_total {}\n", stats.open, stats.messages_in)
/// }
/// let stats = Stats { open: 2, messages_in: 10, ..Stats::default() };
/// assert_eq!(metrics(&stats), "ws_open 2\nws_messages_in_total 10\n");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// WebSocket connections open now.
    pub open: usize,
    /// Streams open now ([`Reply::Stream`](super::Reply::Stream), e.g. Server-Sent
    /// Events).
    pub streams: usize,
    /// Messages received and sent.
    pub messages_in: u64,
    /// Messages queued for sending.
    pub messages_out: u64,
    /// Payload bytes received.
    pub bytes_in: u64,
    /// Payload bytes queued for sending.
    pub bytes_out: u64,
    /// Upgrades refused, by status.
    pub rejected: Vec<(u16, u64)>,
    /// Messages dropped, or connections closed, for being slow consumers.
    pub slow_consumer_events: u64,
    /// Sends from another thread or loop ([`Handle`](super::Handle) or a
    /// [`Ctx`](super::Ctx) of another loop) that this loop's full mailbox refused:
    /// the loop had fallen behind. The connection each was for is closed with 1013
    /// "try again later" (it reconnects and catches up instead of silently missing a
    /// message), or, with [`SlowConsumer::DropMessages`](super::SlowConsumer), only
    /// counted.
    pub mailbox_overflows: u64,
    /// Connections closed as soon as they were accepted, over
    /// [`max_handshaking`](super::ServerConfig::max_handshaking) or
    /// [`max_connections_per_ip`](super::ServerConfig::max_connections_per_ip).
    pub refused_at_accept: u64,
    /// Connections ended because their queued output did not shrink for
    /// [`write_timeout`](super::ServerConfig::write_timeout).
    pub write_timeouts: u64,
    /// Times a connection stopped being read because its unsent output was over
    /// [`pause_reading_above`](super::ServerConfig::pause_reading_above).
    pub read_pauses: u64,
    /// Connections dropped because their TLS failed: a bad record, a handshake that
    /// went wrong, plain HTTP sent to the TLS port.
    pub tls_failures: u64,
    /// Connections still in their handshake, all loops (in
    /// [`Ctx::totals`](super::Ctx::totals); 0 in a loop's own counters).
    pub handshaking: usize,
    /// WebSocket connections open on each event loop, in [`Ctx::totals`](super::Ctx::totals) (empty in a
    /// loop's own counters).
    pub open_per_loop: Vec<usize>,
}

impl Stats {
    pub(super) fn count_rejection(&mut self, status: u16) {
        self.count_rejections(status, 1);
    }

    fn count_rejections(&mut self, status: u16, count: u64) {
        match self.rejected.iter_mut().find(|(s, _)| *s == status) {
            Some((_, n)) => *n += count,
            None => self.rejected.push((status, count)),
        }
    }

    /// Adds another loop's counters to these (the process's totals).
    pub(super) fn add(&mut self, other: &Stats) {
        self.open += other.open;
        self.streams += other.streams;
        self.messages_in += other.messages_in;
        self.messages_out += other.messages_out;
        self.bytes_in += other.bytes_in;
        self.bytes_out += other.bytes_out;
        self.slow_consumer_events += other.slow_consumer_events;
        self.mailbox_overflows += other.mailbox_overflows;
        self.tls_failures += other.tls_failures;
        self.refused_at_accept += other.refused_at_accept;
        self.write_timeouts += other.write_timeouts;
        self.read_pauses += other.read_pauses;
        for &(status, count) in &other.rejected {
            self.count_rejections(status, count);
        }
    }
}
