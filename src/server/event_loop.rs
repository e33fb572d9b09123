//! The event loop: one turn is poll, handle readiness (accept, read, write), end the
//! handler's turn, flush what callbacks queued, fire due timers, tick.
//!
//! A message's way through it, all in this file: `run` polls, `read` takes what the
//! socket has into the connection ([`Conn::read`]), `messages` hands each complete
//! message to the handler, whose [`Ctx`] queues the answer; at the end of the turn
//! `flush` writes everything queued for the connection with one gathered write
//! ([`Conn::write`]).
//!
//! The way in — accepting a connection, reading its request head and answering it
//! with a 101, a plain HTTP response or a stream — is `accept.rs`, in a second
//! `impl Loop`: a concept of its own (HTTP, admission), off the path of messages,
//! and together the two would make one file of over a thousand lines.

use super::config::ServerConfig;
use super::conn::{Arrived, Conn, Phase, Rate, Reading, READ_CHUNK};
use super::ctx::Ctx;
use super::handler::{CloseInfo, Handler};
use super::id::ConnId;
use super::loops::Loops;
use super::message::Received;
use super::shared::BroadcastCompressor;
use super::stats::Stats;
use super::timers::Timers;
use crate::{CloseCode, MessageRef, State};
use mio::net::TcpListener;
use mio::{Events, Poll, Token};
use slab::Slab;
use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Everything the loop owns. A connection's slab key is its mio `Token`; the
/// generation makes a [`ConnId`](super::ConnId) of a closed connection miss the slot's
/// next tenant.
pub(super) struct Loop<H: Handler> {
    /// This loop's index among the server's loops.
    pub(super) worker: usize,
    pub(super) poll: Poll,
    /// `None` once a shutdown began, or when another loop accepts for this one.
    pub(super) listener: Option<TcpListener>,
    pub(super) config: ServerConfig,
    /// What every WebSocket connection of the loop is given (`config.connection`
    /// with the server's heartbeat and close timeout), shared by them all.
    pub(super) connection_config: Arc<crate::Config>,
    /// What the loops share: the stop flag a [`Handle`](super::Handle) sets, the
    /// mailboxes, the process-wide counts.
    pub(super) loops: Arc<Loops>,
    pub(super) conns: Slab<Conn<H::Data>>,
    /// Every connection's next deadline (handshake, ping, pong, close), one heap.
    pub(super) timers: Timers,
    pub(super) next_generation: u64,
    pub(super) stats: Stats,
    pub(super) handler: H,
    /// When a graceful shutdown stops waiting for the peers' Close frames.
    pub(super) shutdown_deadline: Option<Instant>,
    /// This loop's drain, once it started one.
    drain: Option<super::drain::Drain>,
    /// Where quiet connections and request heads are read into (see `Conn::read`).
    scratch: Vec<u8>,
    /// Connections with output queued during this turn of the loop.
    pub(super) dirty: Vec<usize>,
    /// Connections a handler callback sent to (reused from call to call).
    touched: Vec<usize>,
    /// The message being handed to the handler, out of its connection (which the
    /// handler's `Ctx` may write to meanwhile): swapped with the connection's
    /// assembly buffer, or copied when it arrived whole; reused from message to
    /// message.
    message_in: Vec<u8>,
    /// Compresses broadcasts once (see `SharedFrame`).
    compressor: BroadcastCompressor,
    /// Connections to read on the next turn without waiting for an event: their
    /// reading resumed (output drained), or they used their turn's read budget with
    /// bytes left (edge-triggered readiness would not report those again).
    read_again: Vec<usize>,
    /// One log line a second for failing accepts and for refused connections.
    pub(super) accept_errors: super::log_limit::LogLimiter,
    pub(super) refusals: super::log_limit::LogLimiter,
    /// Connections dropped since the allocator last gave memory back (see
    /// `release_idle_buffers`).
    dropped_since_trim: usize,
    /// Output queued on this loop's connections: counted up as sends are admitted,
    /// down as writes go out, and recounted exactly every tick (frames a connection
    /// queues by itself, pongs and closes, are small and counted then).
    queued: usize,
}

/// How much one connection is read in a turn of the loop before the others' turn.
/// The poll tokens of the listening socket and of the waker (connections are their
/// slab keys).
pub(super) const LISTENER: Token = Token(usize::MAX - 1);
pub(super) const WAKER: Token = Token(usize::MAX - 2);

const READ_BUDGET: usize = 64 * 1024;

impl<H: Handler> Loop<H> {
    pub(super) fn new(
        worker: usize,
        poll: Poll,
        listener: Option<TcpListener>,
        config: ServerConfig,
        loops: Arc<Loops>,
        handler: H,
    ) -> Self {
        // The heartbeat and the close timeout are the core's: the loop asks when to
        // wake (`Conn::next_deadline`) and calls `handle_timeout` (`on_timer`).
        let connection_config = Arc::new(crate::Config {
            ping_interval: config.ping_interval,
            pong_timeout: config.ping_timeout,
            close_timeout: Some(config.close_timeout),
            ..config.connection.clone()
        });
        Loop {
            worker,
            poll,
            listener,
            connection_config,
            config,
            loops,
            conns: Slab::new(),
            timers: Timers::default(),
            next_generation: 0,
            stats: Stats::default(),
            handler,
            shutdown_deadline: None,
            drain: None,
            scratch: vec![0; READ_CHUNK],
            dirty: Vec::new(),
            touched: Vec::new(),
            message_in: Vec::new(),
            compressor: BroadcastCompressor::default(),
            read_again: Vec::new(),
            accept_errors: super::log_limit::LogLimiter::default(),
            refusals: super::log_limit::LogLimiter::default(),
            dropped_since_trim: 0,
            queued: 0,
        }
    }

    pub(super) fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        let mut next_tick = Instant::now() + self.config.tick_interval;
        // Until when to poll without sleeping (`busy_poll`), after the last events.
        let mut spin_until: Option<Instant> = None;
        loop {
            let now = Instant::now();
            let mut wake = next_tick;
            if let Some(t) = self.timers.next() {
                wake = wake.min(t);
            }
            if let Some(t) = self.shutdown_deadline {
                wake = wake.min(t);
            }
            if let Some(t) = self.drain.as_ref().and_then(|d| d.next_at()) {
                wake = wake.min(t);
            }
            let mut timeout = wake.saturating_duration_since(now);
            if spin_until.is_some_and(|until| now < until) || !self.read_again.is_empty() {
                timeout = Duration::ZERO;
            }
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            if !events.is_empty() {
                spin_until = self.config.busy_poll.map(|spin| Instant::now() + spin);
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept()?,
                    WAKER => self.adopt_handed_over(),
                    Token(slot) => {
                        // The peer's FIN (or an error) came with this readiness: read
                        // to the end, whatever a read returns.
                        let ended = event.is_read_closed() || event.is_error();
                        if event.is_readable() || ended {
                            self.read(slot, ended);
                        }
                        if event.is_writable() {
                            self.flush(slot);
                        }
                    }
                }
            }
            if self.loops.has_mail(self.worker) {
                self.deliver_mail();
            }
            self.flush_dirty();
            self.read_again();
            if self.shutdown_deadline.is_none() {
                self.keep_draining();
            }
            if self.loops.stop.load(Ordering::SeqCst) && self.shutdown_deadline.is_none() {
                self.begin_shutdown();
            }
            let now = Instant::now();
            for slot in self.timers.due(now) {
                self.on_timer(slot, now);
            }
            if now >= next_tick {
                next_tick = now + self.config.tick_interval;
                self.with_ctx(|handler, ctx| handler.tick(ctx));
                self.release_idle_buffers();
                self.queued = self.conns.iter().map(|(_, c)| c.unsent()).sum();
            }
            if self.loops.has_mail(self.worker) {
                self.deliver_mail();
            }
            self.flush_dirty();
            if self.loops.count() > 1 {
                self.loops.publish(self.worker, &self.stats);
                self.loops.set_queued(self.worker, self.queued);
            }
            if let Some(deadline) = self.shutdown_deadline {
                if self.conns.is_empty() || now >= deadline {
                    log::info!(
                        "shutdown complete ({} connections dropped)",
                        self.conns.len()
                    );
                    let slots: Vec<usize> = self.conns.iter().map(|(s, _)| s).collect();
                    for slot in slots {
                        self.drop_conn(slot);
                    }
                    return Ok(());
                }
            }
        }
    }

    /// Reads what the socket has, and acts on it. Readiness is edge-triggered: a plain
    /// socket is read until a read returns less than it asked for (the kernel's buffer
    /// is then empty, and bytes arriving later raise a new event), which saves the
    /// read that would only say `WouldBlock`; unless the peer's FIN came with the event
    /// (`ended`), which no later event would announce again: then until `WouldBlock`
    /// or EOF.
    fn read(&mut self, slot: usize, ended: bool) {
        // Fairness: a peer that writes as fast as we read gets READ_BUDGET a turn.
        let mut budget = READ_BUDGET;
        loop {
            let Some(conn) = self.conns.get_mut(slot) else {
                return;
            };
            let result = conn.read(&mut self.scratch);
            if self.config.connection.trace {
                // Once per connection, as soon as its TLS handshake is over.
                if let Some(session) = conn.take_tls_description() {
                    log::info!(target: "rfc6455::trace", "slot {slot} TLS {session}");
                }
            }
            let read = match result {
                Ok(read) => read,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // A TLS handshake answer that did not fit in the socket goes out
                    // when it is writable (`flush` registers for that).
                    if conn.has_transport_output() {
                        self.dirty.push(slot);
                    }
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // A TLS failure (bad record, wrong version, plain HTTP to the TLS
                // port): one line, the connection goes, the others are not affected.
                Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                    log::info!("slot {slot}: {e}");
                    self.stats.tls_failures += 1;
                    return self.drop_conn(slot);
                }
                Err(e) => {
                    log::debug!("slot {slot}: read error: {e}");
                    return self.drop_conn(slot);
                }
            };
            if read.n == 0 {
                // The peer half-closed, perhaps right after its Close (a browser tab
                // going away does). A Close is answered (RFC 6455 §5.5.1), and a
                // half-closed connection still carries the answer: what is pending
                // goes out, as far as the socket takes it, before the end.
                if let Err(e) = conn.write() {
                    log::debug!("slot {slot}: write after the peer's FIN: {e}");
                }
                return self.drop_conn(slot);
            }
            match read.arrived {
                Arrived::Frames => self.messages(slot),
                Arrived::Head(head) => self.after_head(slot, head),
                Arrived::Request(request) => self.answer_http(slot, request),
                Arrived::Nothing => {}
            }
            if self.pause_if_backed_up(slot) || (read.drained && !ended) {
                return;
            }
            budget = budget.saturating_sub(read.n);
            if budget == 0 {
                self.read_again.push(slot);
                return;
            }
        }
    }

    /// Takes every event the connection has, and answers them: each message goes to
    /// the handler, in the loop's reused buffer (`next_message_into`: swapped in when
    /// it was assembled from pieces, copied when it arrived whole), because the
    /// handler's `Ctx` may write to the connection while it looks at the message: no
    /// allocation per message. Pings, the peer's Close and protocol errors the
    /// connection answers itself; they are noted here for the close report.
    pub(super) fn messages(&mut self, slot: usize) {
        loop {
            let Some(conn) = self.conns.get_mut(slot) else {
                return;
            };
            let Phase::Open { ws, .. } = &mut conn.phase else {
                return;
            };
            // Taken out for the call, then put back with its capacity: the message
            // borrows it (not the connection), and the handler borrows the loop
            // through its `Ctx`.
            let mut data = std::mem::take(&mut self.message_in);
            let message = match ws.next_message_into(&mut data) {
                Ok(None) => None,
                // The text is the core's `&str`: checked once, not again here.
                Ok(Some(MessageRef::Text(text))) => Some(Some(Received::Text(text))),
                Ok(Some(MessageRef::Binary(bytes))) => Some(Some(Received::Binary(bytes))),
                // Control frames cost a token of the rate limit too: a peer may not
                // make us answer pings faster than it may send messages.
                // Over the limit, the connection is closed; what follows is still
                // parsed (and so consumed), for the peer's Close.
                Ok(Some(MessageRef::Ping(_) | MessageRef::Pong(_))) => {
                    if conn.count_message(self.config.max_messages_per_second) == Rate::Over {
                        let id = conn.id(slot);
                        self.over_rate(id);
                    }
                    Some(None)
                }
                Ok(Some(MessageRef::Close(frame))) => {
                    let (code, reason) = frame
                        .map(|f| (f.code, f.reason))
                        .unwrap_or((CloseCode::NO_STATUS_RECEIVED, String::new()));
                    conn.peer_close = Some(Box::new((code, reason)));
                    Some(None)
                }
                Err(err) => {
                    log::info!(
                        "{}: protocol error, closing with {}: {err}",
                        conn.id(slot),
                        err.close_code().0
                    );
                    conn.our_close = Some(Box::new((err.close_code(), err.to_string())));
                    Some(None)
                }
            };
            // `None`: nothing more for now; `Some(None)`: an event answered above.
            let Some(message) = message else {
                self.message_in = data;
                break;
            };
            if let Some(message) = message {
                self.deliver(slot, message);
            }
            // One large message does not pin its size to the loop.
            if data.capacity() <= 1 << 20 {
                self.message_in = data;
            }
        }
        self.dirty.push(slot);
    }

    /// A message for the handler, within the rate limit (else the connection is closed
    /// with 1008 and the message dropped).
    fn deliver(&mut self, slot: usize, message: Received<'_>) {
        let Some(conn) = self.conns.get_mut(slot) else {
            return;
        };
        let id = conn.id(slot);
        self.stats.messages_in += 1;
        self.stats.bytes_in += message.as_bytes().len() as u64;
        match conn.count_message(self.config.max_messages_per_second) {
            Rate::Within => self.with_ctx(|handler, ctx| handler.message(ctx, id, message)),
            Rate::Closing => {}
            Rate::Over => self.over_rate(id),
        }
    }

    /// The connection sent more than `max_messages_per_second`: it is closed with 1008.
    fn over_rate(&mut self, id: ConnId) {
        let rate = self.config.max_messages_per_second.unwrap_or_default();
        log::info!("{id}: over {rate} messages/s, closing");
        self.with_ctx(|_, ctx| ctx.close(id, CloseCode::POLICY_VIOLATION, "rate limit"));
    }

    /// Backpressure: stops reading a connection whose unsent output is over
    /// `pause_reading_above` (`flush` drops its READABLE interest and resumes it once
    /// half is written). True if it is paused (or gone).
    fn pause_if_backed_up(&mut self, slot: usize) -> bool {
        let Some(conn) = self.conns.get_mut(slot) else {
            return true;
        };
        match conn.pause_reading_above(self.config.pause_reading_above) {
            Reading::On => false,
            Reading::Paused => true,
            Reading::PausedNow => {
                self.stats.read_pauses += 1;
                log::debug!(
                    "slot {slot}: {} bytes unsent, not read until they drain",
                    conn.unsent()
                );
                self.dirty.push(slot);
                true
            }
        }
    }

    /// Reads the connections put aside for this turn (`read_again`): bytes that
    /// arrived while one was paused raise no new edge-triggered event (and a TLS
    /// session may hold decrypted bytes already); one that used its read budget may
    /// have more. Those that use their budget again wait for the next turn, so every
    /// other connection is served in between.
    fn read_again(&mut self) {
        let slots = std::mem::take(&mut self.read_again);
        for slot in slots {
            if self.conns.get(slot).is_some_and(|c| !c.is_read_paused()) {
                // Until `WouldBlock` or EOF, not only to a short read: the peer's
                // FIN may have come with the event whose reading was put aside, and
                // no later event would report it again.
                self.read(slot, true);
            }
        }
        self.flush_dirty();
    }

    /// Lets the handler finish its turn ([`Handler::end_turn`]), then writes the output
    /// of every connection that got some during this turn. A connection that ended on
    /// a write had `close` called there: the handler ends its turn once more then.
    fn flush_dirty(&mut self) {
        self.with_ctx(|handler, ctx| handler.end_turn(ctx));
        let open = self.conns.len();
        self.write_dirty();
        if self.conns.len() < open {
            self.with_ctx(|handler, ctx| handler.end_turn(ctx));
            self.write_dirty();
        }
    }

    fn write_dirty(&mut self) {
        while !self.dirty.is_empty() {
            let mut dirty = std::mem::take(&mut self.dirty);
            dirty.sort_unstable();
            dirty.dedup();
            for slot in dirty {
                self.flush(slot);
            }
        }
    }

    /// Writes pending output until done or `WouldBlock`; registers WRITABLE interest
    /// only while output is left. Ends the connection once it is closed and flushed.
    pub(super) fn flush(&mut self, slot: usize) {
        let Some(conn) = self.conns.get_mut(slot) else {
            return;
        };
        if self.config.connection.trace {
            log_trace(conn, slot);
        }
        let written = match conn.write() {
            Ok(written) => written,
            Err(e) => {
                log::debug!("slot {slot}: write error: {e}");
                return self.drop_conn(slot);
            }
        };
        if conn.is_shut() {
            return;
        }
        let has_output = written.left;
        let unsent = conn.unsent();
        let before = unsent + written.bytes;
        self.queued = self.queued.saturating_sub(written.bytes);
        // The write timeout's clock: it starts when output is left after a write,
        // restarts whenever the output shrinks, and stops when it is all written.
        let now = Instant::now();
        if unsent == 0 {
            conn.write_timer = false;
        } else if !conn.write_timer {
            conn.write_progress = now;
            conn.write_timer = true;
            self.timers.schedule(now + self.config.write_timeout, slot);
        } else if unsent < before {
            conn.write_progress = now;
        }
        if conn.resume_reading(unsent, self.config.pause_reading_above) {
            self.read_again.push(slot);
        }
        // Read while not paused; write while output is left (a paused connection
        // has output, so the interest is never empty).
        let wanted = (!conn.is_read_paused() || !has_output, has_output);
        if let Err(e) = conn.register(self.poll.registry(), slot, wanted) {
            log::debug!("slot {slot}: reregister failed: {e}");
            return self.drop_conn(slot);
        }
        // Everything written and nothing more to say: the server closes the TCP
        // connection first (RFC 6455 §7.1.1), then reads until the peer's EOF.
        if conn.is_finished() && !has_output {
            conn.shut_down();
            let deadline = Instant::now() + self.config.close_timeout;
            conn.close_deadline = Some(deadline);
            self.timers.schedule(deadline, slot);
            if conn.is_open() || conn.is_stream() {
                self.report_close(slot);
            }
        }
    }

    /// Queued output did not shrink for `write_timeout`: the peer stopped reading.
    /// The connection goes at once (a Close could not reach it), with its memory.
    fn write_timed_out(&mut self, slot: usize) {
        let conn = &mut self.conns[slot];
        log::info!(
            "{}: {} bytes unsent for {:?}, dropped",
            conn.id(slot),
            conn.unsent(),
            self.config.write_timeout
        );
        self.stats.write_timeouts += 1;
        if conn.our_close.is_none() {
            conn.our_close = Some(Box::new((
                CloseCode::POLICY_VIOLATION,
                "write timeout".into(),
            )));
        }
        self.drop_conn(slot);
    }

    /// The connection is over (EOF, error, timeout): tell the handler, drop it.
    pub(super) fn drop_conn(&mut self, slot: usize) {
        if !self.conns.contains(slot) {
            return;
        }
        self.report_close(slot);
        self.handshake_over(slot);
        let mut conn = self.conns.remove(slot);
        self.queued = self.queued.saturating_sub(conn.unsent());
        self.dropped_since_trim += 1;
        self.loops.admission.leave(conn.peer(), &self.config);
        self.loops.unloaded(self.worker);
        conn.deregister(self.poll.registry());
    }

    /// Tells the handler how a WebSocket connection or a stream ended (once), leaving
    /// the socket to drain.
    fn report_close(&mut self, slot: usize) {
        let conn = &mut self.conns[slot];
        let id = conn.id(slot);
        let (data, clean, ended) = match conn.end_phase() {
            // The peer's Close arrived, and the connection answers every Close it
            // receives: both Close frames were exchanged.
            Phase::Open { data, .. } => {
                self.stats.open -= 1;
                (data, conn.peer_close.is_some(), "closed")
            }
            // A stream ended by the handler (or a shutdown) ends cleanly; else its
            // peer went away.
            Phase::Stream { data } => {
                self.stats.streams -= 1;
                self.loops.admission.stream_closed();
                (data, conn.our_close.is_some(), "stream ended")
            }
            _ => return,
        };
        let (code, reason) = conn
            .peer_close
            .take()
            .or_else(|| conn.our_close.take())
            .map_or((CloseCode::ABNORMAL_CLOSURE, String::new()), |close| *close);
        self.loops.closed();
        log::info!(
            "{id}: {ended} with {} ({})",
            code.0,
            if clean { "clean" } else { "not clean" }
        );
        let info = CloseInfo {
            code,
            reason,
            clean,
        };
        self.with_ctx(|handler, ctx| handler.close(ctx, id, data, info));
    }

    /// A drain asked for: started on the first turn after (the connections open
    /// then, in slot order), then the closes whose turn came, then the shutdown once
    /// the period is over.
    fn keep_draining(&mut self) {
        let now = Instant::now();
        if self.drain.is_none() {
            let Some(over) = self.loops.draining() else {
                return;
            };
            let open: Vec<ConnId> = (self.conns.iter())
                .filter(|(_, c)| !c.in_request())
                .map(|(slot, c)| c.id(slot))
                .collect();
            log::info!("draining: closing {} connections over {over:?}", open.len());
            let start = self.loops.drain_start().unwrap_or(now);
            self.drain = Some(super::drain::Drain::new(open, start, over));
        }
        let Some(drain) = self.drain.as_mut() else {
            return;
        };
        let due = drain.due(now);
        // Over at the end of the period, or as soon as no loop has anyone left (the
        // schedule may still name connections that went by themselves).
        let over = drain.is_over(now) || self.loops.open_now() == 0;
        if !due.is_empty() {
            self.with_ctx(|_, ctx| {
                for id in due {
                    ctx.close(id, CloseCode::SERVICE_RESTART, "service restart");
                }
            });
        }
        if over {
            self.begin_shutdown();
        }
    }

    pub(super) fn begin_shutdown(&mut self) {
        log::info!("shutting down: closing {} connections", self.conns.len());
        // A drain under way is over: its times no longer wake the loop.
        self.drain = None;
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        self.shutdown_deadline = Some(Instant::now() + self.config.shutdown_timeout);
        let ids: Vec<_> = self.conns.iter().map(|(slot, c)| c.id(slot)).collect();
        self.with_ctx(|_, ctx| {
            for id in ids {
                ctx.close(id, CloseCode::GOING_AWAY, "server shutting down");
            }
        });
        let handshaking: Vec<usize> = (self.conns.iter())
            .filter(|(_, c)| c.in_request())
            .map(|(s, _)| s)
            .collect();
        for slot in handshaking {
            self.drop_conn(slot);
        }
    }

    pub(super) fn on_timer(&mut self, slot: usize, now: Instant) {
        let Some(conn) = self.conns.get_mut(slot) else {
            return;
        };
        if conn.handshake_deadline.is_some_and(|d| now >= d) {
            log::info!("slot {slot}: handshake timeout");
            self.stats.count_rejection(408);
            return self.drop_conn(slot);
        }
        if conn.close_deadline.is_some_and(|d| now >= d) {
            log::debug!("slot {slot}: close timeout");
            return self.drop_conn(slot);
        }
        let id = conn.id(slot);
        if conn.write_timer {
            conn.write_timer = false;
            if conn.unsent() > 0 {
                let due = conn.write_progress + self.config.write_timeout;
                if now < due {
                    conn.write_timer = true;
                    self.timers.schedule(due, slot);
                } else {
                    return self.write_timed_out(slot);
                }
            }
        }
        // The WebSocket's timers are the core's: it pings, closes a silent peer with
        // 1008, and gives up on a Close not answered in time.
        let Phase::Open { ws, .. } = &mut conn.phase else {
            return;
        };
        let before = ws.state();
        ws.handle_timeout(now);
        match (before, ws.state()) {
            (State::Closing, State::Closed) => {
                log::debug!("{id}: close timeout");
                return self.drop_conn(slot);
            }
            (State::Open, State::Closing) => {
                log::info!("{id}: no pong within the timeout, closing");
                conn.our_close = Some(Box::new((
                    CloseCode::POLICY_VIOLATION,
                    "ping timeout".into(),
                )));
            }
            _ => {}
        }
        let has_output = !ws.pending_output().is_empty();
        if let Some(at) = conn.next_deadline(now) {
            self.timers.schedule(at, slot);
        }
        if has_output {
            self.flush(slot);
        }
    }

    /// Frees the buffers of connections that saw no traffic since the last tick, so an
    /// idle connection holds almost no memory, while a busy one keeps its buffers
    /// (freeing and faulting in large buffers per message costs more than the copies).
    /// After freeing 1 MiB or more (or dropping many connections), the freed memory
    /// goes back to the system: otherwise a burst leaves the process at its peak.
    fn release_idle_buffers(&mut self) {
        let freed: usize = (self.conns.iter_mut())
            .map(|(_, conn)| conn.release_idle_buffers())
            .sum();
        if freed >= 1 << 20 || self.dropped_since_trim >= 256 {
            super::trim::return_freed_memory();
            self.dropped_since_trim = 0;
        }
    }

    /// Runs a handler callback with a context, then flushes what it sent.
    pub(super) fn with_ctx(&mut self, f: impl FnOnce(&mut H, &mut Ctx<'_, H::Data>)) {
        let mut touched = std::mem::take(&mut self.touched);
        let mut ctx = Ctx {
            worker: self.worker,
            loops: &self.loops,
            conns: &mut self.conns,
            config: &self.config,
            stats: &mut self.stats,
            touched: &mut touched,
            compressor: &mut self.compressor,
            queued: &mut self.queued,
        };
        f(&mut self.handler, &mut ctx);
        // A Close sent starts a timer (the core's, or a stream's own).
        let now = Instant::now();
        for &slot in &touched {
            if let Some(conn) = self.conns.get_mut(slot) {
                if let Some(deadline) = conn.next_deadline(now) {
                    self.timers.schedule(deadline, slot);
                }
            }
        }
        // Written at the end of this turn of the loop: every message queued for a
        // connection meanwhile goes out in one write.
        self.dirty.extend_from_slice(&touched);
        touched.clear();
        self.touched = touched;
    }

    /// Applies what the other loops (or a `Handle`) sent to this one's connections:
    /// with one loop too, for a `Handle` posts from threads that are not loops.
    fn deliver_mail(&mut self) {
        self.with_ctx(|_, ctx| ctx.deliver_mail());
    }
}

/// Logs the frames a connection received and sent since the last call (`--trace`).
fn log_trace<D>(conn: &mut Conn<D>, slot: usize) {
    let id = conn.id(slot);
    if let Some(ws) = conn.ws() {
        for frame in ws.take_trace() {
            log::info!(target: "rfc6455::trace", "{id} {frame}");
        }
    }
}
