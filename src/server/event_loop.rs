//! The event loop itself: one turn is poll, handle readiness (accept, read, write),
//! flush what callbacks queued, fire due timers, tick. The HTTP side of a connection is
//! in `upgrade.rs`, moving bytes and frames in `wire.rs`.

use super::conn::{Conn, Phase};
use super::loops::Loops;
use super::shared::BroadcastCompressor;
use super::socket::Socket;
use super::timers::Timers;
use super::{Balance, ConnId, Ctx, Handler, ServerConfig, Stats, LISTENER, READ_CHUNK, WAKER};
use crate::handshake::HeadReader;
use crate::CloseCode;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;
use std::collections::VecDeque;
use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Everything the loop owns. A connection's slab key is its mio `Token`; the
/// generation makes a [`ConnId`] of a closed connection miss the slot's next tenant.
pub(super) struct Loop<H: Handler> {
    /// This loop's index among the server's loops.
    pub(super) worker: usize,
    pub(super) poll: Poll,
    /// `None` once a shutdown began, or when another loop accepts for this one.
    pub(super) listener: Option<TcpListener>,
    pub(super) config: ServerConfig,
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
    /// Where idle connections read into (see `read`).
    pub(super) scratch: Vec<u8>,
    /// Connections with output queued during this turn of the loop.
    pub(super) dirty: Vec<usize>,
    /// Connections a handler callback sent to (reused from call to call).
    pub(super) touched: Vec<usize>,
    /// The message being handed to the handler, out of its connection (which the
    /// handler's `Ctx` may write to meanwhile): swapped with the connection's
    /// assembly buffer, or copied when it arrived whole; reused from message to
    /// message.
    pub(super) message_in: Vec<u8>,
    /// Compresses broadcasts once (see `SharedFrame`).
    pub(super) compressor: BroadcastCompressor,
    /// Connections to read on the next turn without waiting for an event: their
    /// reading resumed (output drained), or they used their turn's read budget with
    /// bytes left (edge-triggered readiness would not report those again).
    pub(super) read_again: Vec<usize>,
    /// One log line a second for failing accepts and for refused connections.
    pub(super) accept_errors: super::LogLimiter,
    pub(super) refusals: super::LogLimiter,
    /// Connections dropped since the allocator last gave memory back (see
    /// `release_idle_buffers`).
    pub(super) dropped_since_trim: usize,
    /// Output queued on this loop's connections: counted up as sends are admitted,
    /// down as writes go out, and recounted exactly every tick (frames a connection
    /// queues by itself, pongs and closes, are small and counted then).
    pub(super) queued: usize,
}

impl<H: Handler> Loop<H> {
    pub(super) fn new(
        worker: usize,
        poll: Poll,
        listener: Option<TcpListener>,
        config: ServerConfig,
        loops: Arc<Loops>,
        handler: H,
    ) -> Self {
        Loop {
            worker,
            poll,
            listener,
            config,
            loops,
            conns: Slab::new(),
            timers: Timers::default(),
            next_generation: 0,
            stats: Stats::default(),
            handler,
            shutdown_deadline: None,
            scratch: vec![0; READ_CHUNK],
            dirty: Vec::new(),
            touched: Vec::new(),
            message_in: Vec::new(),
            compressor: BroadcastCompressor::default(),
            read_again: Vec::new(),
            accept_errors: super::LogLimiter::default(),
            refusals: super::LogLimiter::default(),
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
                        let readable = event.is_readable();
                        self.ready(slot, readable, event.is_writable(), ended)
                    }
                }
            }
            self.deliver_mail();
            self.flush_dirty();
            self.read_again();
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
            self.deliver_mail();
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

    pub(super) fn begin_shutdown(&mut self) {
        log::info!("shutting down: closing {} connections", self.conns.len());
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        self.shutdown_deadline = Some(Instant::now() + self.config.shutdown_timeout);
        let ids: Vec<ConnId> = self.conns.iter().map(|(slot, c)| c.id(slot)).collect();
        self.with_ctx(|_, ctx| {
            for id in ids {
                ctx.close(id, CloseCode::GOING_AWAY, "server shutting down");
            }
        });
        let handshaking: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| matches!(c.phase, Phase::Handshake(_) | Phase::Body { .. }))
            .map(|(s, _)| s)
            .collect();
        for slot in handshaking {
            self.drop_conn(slot);
        }
    }

    pub(super) fn accept(&mut self) -> io::Result<()> {
        let hand_over = self.config.balance == Balance::LeastConnections && self.loops.count() > 1;
        loop {
            let Some(listener) = &self.listener else {
                return Ok(());
            };
            let (stream, peer) = match listener.accept() {
                Ok(pair) => pair,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // Out of file descriptors and the like: log (once a second at
                // most: every attempt fails alike), keep serving the others.
                Err(e) => {
                    if let Some(suppressed) = self.accept_errors.allow(Instant::now()) {
                        log::warn!("accept failed: {e} ({suppressed} more since the last line)");
                    }
                    return Ok(());
                }
            };
            log::debug!("accepted {peer}");
            let stream = if hand_over {
                match self.loops.hand_over(self.worker, stream) {
                    Some(mine) => mine,
                    None => continue,
                }
            } else {
                stream
            };
            self.loops.loaded(self.worker);
            self.register(stream);
        }
    }

    /// Registers the sockets another loop accepted for this one.
    fn adopt_handed_over(&mut self) {
        for stream in self.loops.take_adopted(self.worker) {
            if self.shutdown_deadline.is_some() {
                // Shutting down: no new connections.
                self.loops.unloaded(self.worker);
                continue;
            }
            self.register(stream);
        }
    }

    /// A new TCP connection (already counted in this loop's load): admitted (see
    /// [`Admission`](super::admission::Admission)), it waits for its request head;
    /// refused, or if it cannot be registered, it is closed and the loop serves on.
    fn register(&mut self, stream: TcpStream) {
        let Ok(peer) = stream.peer_addr() else {
            // Reset before we got to it.
            self.loops.unloaded(self.worker);
            return;
        };
        let peer = peer.ip();
        if let Err(refusal) = self.loops.admission.enter(peer, &self.config) {
            self.stats.refused_at_accept += 1;
            if let Some(suppressed) = self.refusals.allow(Instant::now()) {
                log::warn!("connection from {peer} closed at once: {refusal} ({suppressed} more since the last line)");
            }
            self.loops.unloaded(self.worker);
            return;
        }
        let _ = stream.set_nodelay(true);
        if let Some(size) = self.config.socket_send_buffer {
            let _ = socket2::SockRef::from(&stream).set_send_buffer_size(size);
        }
        let mut socket = match Socket::new(stream, &self.config) {
            Ok(socket) => socket,
            // rustls refused to start a session with this configuration: this
            // connection goes, the loop serves on.
            Err(e) => {
                log::warn!("TLS session not started: {e}");
                self.stats.tls_failures += 1;
                self.loops.admission.handshake_over();
                self.loops.admission.leave(peer, &self.config);
                self.loops.unloaded(self.worker);
                return;
            }
        };
        let entry = self.conns.vacant_entry();
        let slot = entry.key();
        if let Err(e) = self
            .poll
            .registry()
            .register(socket.tcp(), Token(slot), Interest::READABLE)
        {
            log::warn!("connection from {peer} not registered, closed: {e}");
            self.loops.admission.handshake_over();
            self.loops.admission.leave(peer, &self.config);
            self.loops.unloaded(self.worker);
            return;
        }
        self.next_generation += 1;
        let now = Instant::now();
        let deadline = now + self.config.handshake_timeout;
        entry.insert(Conn {
            socket,
            worker: self.worker,
            generation: self.next_generation,
            phase: Phase::Handshake(HeadReader::new(self.config.max_head)),
            raw_output: Vec::new(),
            shared: VecDeque::new(),
            registered: (true, false),
            handshake_deadline: Some(deadline),
            next_ping: None,
            pong_deadline: None,
            close_deadline: None,
            tokens: f64::from(self.config.max_messages_per_second.unwrap_or(0)),
            refilled: now,
            our_close: None,
            peer_close: None,
            shut: false,
            read_since_tick: 0,
            peer,
            handshaking: true,
            read_paused: false,
            write_progress: now,
            write_timer: false,
        });
        self.timers.schedule(deadline, slot);
        log::debug!("slot {slot} on loop {}", self.worker);
    }

    /// The connection finished its request (an upgrade, a stream or a response is
    /// under way) or went: it no longer counts in `max_handshaking`.
    pub(super) fn handshake_over(&mut self, slot: usize) {
        if let Some(conn) = self.conns.get_mut(slot) {
            if std::mem::take(&mut conn.handshaking) {
                self.loops.admission.handshake_over();
            }
        }
    }

    pub(super) fn ready(&mut self, slot: usize, readable: bool, writable: bool, ended: bool) {
        if !self.conns.contains(slot) {
            return;
        }
        if readable || ended {
            self.read(slot, ended);
        }
        if writable && self.conns.contains(slot) {
            self.flush(slot);
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
        if conn.pong_deadline.is_some_and(|d| now >= d) {
            log::info!("{id}: no pong within the timeout, closing");
            conn.pong_deadline = None;
            conn.next_ping = None;
            self.with_ctx(|_, ctx| ctx.close(id, CloseCode::POLICY_VIOLATION, "ping timeout"));
            return;
        }
        if conn.next_ping.is_some_and(|d| now >= d) {
            if let Phase::Open { ws, .. } = &mut conn.phase {
                if ws.send_ping(b"").is_ok() {
                    let pong_deadline = now + self.config.ping_timeout;
                    conn.pong_deadline.get_or_insert(pong_deadline);
                    let next = now + self.config.ping_interval.unwrap_or(Duration::MAX / 4);
                    conn.next_ping = Some(next);
                    let soonest = (*conn.pong_deadline.as_ref().unwrap()).min(next);
                    self.timers.schedule(soonest, slot);
                    self.flush(slot);
                }
            }
        }
    }

    /// Frees the buffers of connections that saw no traffic since the last tick, so an
    /// idle connection holds almost no memory, while a busy one keeps its buffers
    /// (freeing and faulting in large buffers per message costs more than the copies).
    /// After freeing 1 MiB or more (or dropping many connections), the freed memory
    /// goes back to the system: otherwise a burst leaves the process at its peak.
    pub(super) fn release_idle_buffers(&mut self) {
        let mut freed = 0;
        for (_, conn) in self.conns.iter_mut() {
            if let Phase::Open { ws, .. } = &mut conn.phase {
                if conn.read_since_tick < READ_CHUNK {
                    freed += ws.release_idle_buffers();
                }
            }
            conn.read_since_tick = 0;
        }
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
        for &slot in &touched {
            if let Some(conn) = self.conns.get(slot) {
                if let Some(deadline) = conn.close_deadline {
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

    /// Writes the output of every connection that got some during this turn.
    pub(super) fn flush_dirty(&mut self) {
        while !self.dirty.is_empty() {
            let mut dirty = std::mem::take(&mut self.dirty);
            dirty.sort_unstable();
            dirty.dedup();
            for slot in dirty {
                self.flush(slot);
            }
        }
    }

    /// The connection is over (EOF, error, timeout): tell the handler, drop it.
    pub(super) fn drop_conn(&mut self, slot: usize) {
        if !self.conns.contains(slot) {
            return;
        }
        if matches!(
            self.conns[slot].phase,
            Phase::Open { .. } | Phase::Stream { .. }
        ) {
            self.report_close(slot);
        }
        self.handshake_over(slot);
        let mut conn = self.conns.remove(slot);
        self.queued = self.queued.saturating_sub(conn.unsent());
        self.dropped_since_trim += 1;
        self.loops.admission.leave(conn.peer, &self.config);
        self.loops.unloaded(self.worker);
        let _ = self.poll.registry().deregister(conn.socket.tcp());
    }

    /// Applies what the other loops sent to this one's connections.
    pub(super) fn deliver_mail(&mut self) {
        // With one loop too: a `Handle` posts from threads that are not loops. An empty
        // mailbox costs one atomic load.
        self.with_ctx(|_, ctx| ctx.deliver_mail());
    }
}
