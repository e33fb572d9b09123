//! Bytes and frames: reading a connection into its `Connection`, taking the events
//! out, and writing its output (HTTP head, shared frames, own frames) in order.

use super::conn::{Conn, Phase};
use super::event_loop::Loop;
#[cfg(feature = "tls")]
use super::socket::Socket;
use super::{CloseInfo, ConnId, Handler, Received, READ_CHUNK};
use crate::{CloseCode, MessageKind, MessageRef, State};
use mio::{Interest, Token};
use std::io::{self, IoSlice};
use std::time::Instant;

impl<H: Handler> Loop<H> {
    /// Reads what the socket has. Readiness is edge-triggered: a plain socket is read
    /// until a read returns less than it asked for (the kernel's buffer is then empty,
    /// and bytes arriving later raise a new event), which saves the read that would
    /// only say `WouldBlock`; unless the peer's FIN came with the event (`ended`),
    /// which no later event would announce again: then until `WouldBlock` or EOF.
    pub(super) fn read(&mut self, slot: usize, ended: bool) {
        let mut buf = [0u8; 4096];
        // Fairness: a peer that writes as fast as we read gets READ_BUDGET a turn.
        let mut budget = READ_BUDGET;
        loop {
            let Some(conn) = self.conns.get_mut(slot) else {
                return;
            };
            let busy = conn.read_since_tick >= READ_CHUNK;
            let plain = conn.socket.is_plain();
            let mut asked = buf.len();
            let result = match (&mut conn.phase, &mut conn.socket) {
                // Head and body bytes (or, while closing or streaming, bytes to
                // discard) go through `buf`.
                (
                    Phase::Handshake(_)
                    | Phase::Body { .. }
                    | Phase::Closing
                    | Phase::Stream { .. },
                    socket,
                ) => socket.read(&mut buf),
                // Decrypted bytes are handed over from the TLS session's buffer.
                #[cfg(feature = "tls")]
                (Phase::Open { ws, .. }, Socket::Tls(tls)) => tls.receive_into(ws),
                // A busy connection (a chunk's worth since the last tick, so its
                // buffer is kept) reads straight into its input buffer: the payload is
                // copied once, from there into the message. A quiet one reads into the
                // loop's scratch buffer and keeps only what arrived, so that idle
                // connections, and ones that send a frame's first bytes and stop,
                // hold no read buffer of their own.
                (Phase::Open { ws, .. }, socket) if busy => {
                    let space = ws.input_buffer(READ_CHUNK);
                    asked = space.len();
                    let result = socket.read(space);
                    if let Ok(n) = result {
                        ws.commit_input(n);
                    }
                    result
                }
                (Phase::Open { ws, .. }, socket) => {
                    asked = self.scratch.len();
                    let result = socket.read(&mut self.scratch);
                    if let Ok(n) = result {
                        ws.receive(&self.scratch[..n]);
                    }
                    result
                }
            };
            if self.config.connection.trace {
                // Once per connection, as soon as its TLS handshake is over.
                if let Some(session) = self.conns[slot].socket.take_description() {
                    log::info!(target: "rfc6455::trace", "slot {slot} TLS {session}");
                }
            }
            match result {
                Ok(0) => {
                    // The peer half-closed, perhaps right after its Close (a browser
                    // tab going away does). A Close is answered (RFC 6455 §5.5.1), and
                    // a half-closed connection still carries the answer: what is
                    // pending goes out, as far as the socket takes it, before the end.
                    if let Err(e) = self.write_pending(slot) {
                        log::debug!("slot {slot}: write after the peer's FIN: {e}");
                    }
                    return self.drop_conn(slot);
                }
                Ok(n) => {
                    if let Some(conn) = self.conns.get_mut(slot) {
                        conn.read_since_tick = conn.read_since_tick.saturating_add(n);
                    }
                    self.on_read(slot, n, &buf);
                    if self.pause_if_backed_up(slot) {
                        return;
                    }
                    if plain && n < asked && !ended {
                        return;
                    }
                    budget = budget.saturating_sub(n);
                    if budget == 0 {
                        self.read_again.push(slot);
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // A TLS handshake answer that did not fit in the socket goes out
                    // when it is writable (`flush` registers for that).
                    if self.conns[slot].socket.has_transport_output() {
                        self.dirty.push(slot);
                    }
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
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
            }
        }
    }

    /// Hands `n` bytes just read to the connection's phase.
    fn on_read(&mut self, slot: usize, n: usize, buf: &[u8]) {
        let Some(conn) = self.conns.get_mut(slot) else {
            return;
        };
        match &mut conn.phase {
            Phase::Handshake(head) => {
                let pushed = head.push(&buf[..n]);
                self.after_head(slot, pushed);
            }
            Phase::Body { .. } => self.push_body(slot, &buf[..n]),
            Phase::Open { .. } => self.process(slot),
            // A stream's client has nothing to say (a second, pipelined request is
            // not served).
            Phase::Closing | Phase::Stream { .. } => {}
        }
    }

    /// Takes every event the connection has, and answers them. Each message goes into
    /// the loop's reused buffer (`next_message_into`: swapped in when it was assembled
    /// from pieces, copied when it arrived whole), because the handler's `Ctx` may
    /// write to the connection while it looks at the message: no allocation per
    /// message.
    pub(super) fn process(&mut self, slot: usize) {
        loop {
            let Some(conn) = self.conns.get_mut(slot) else {
                return;
            };
            let id = conn.id(slot);
            let Phase::Open { ws, .. } = &mut conn.phase else {
                return;
            };
            let message = ws.next_message_into(&mut self.message_in);
            // Any frame from the peer shows it is alive (RFC 6455 §5.5.2 heartbeat).
            if matches!(message, Ok(Some(_))) {
                conn.pong_deadline = None;
            }
            let kind = match message {
                Ok(None) => break,
                Ok(Some(MessageRef::Text(_))) => MessageKind::Text,
                Ok(Some(MessageRef::Binary(_))) => MessageKind::Binary,
                // Control frames cost a token of the rate limit too: a peer may not
                // make us answer pings faster than it may send messages.
                // Over the limit, the connection is closed; what follows is still
                // parsed (and so consumed), for the peer's Close.
                Ok(Some(MessageRef::Ping(_) | MessageRef::Pong(_))) => {
                    self.within_rate(id);
                    continue;
                }
                Ok(Some(MessageRef::Close(frame))) => {
                    let (code, reason) = frame
                        .map(|f| (f.code, f.reason))
                        .unwrap_or((CloseCode::NO_STATUS_RECEIVED, String::new()));
                    conn.peer_close = Some((code, reason));
                    continue;
                }
                Err(err) => {
                    log::info!(
                        "{id}: protocol error, closing with {}: {err}",
                        err.close_code().0
                    );
                    conn.our_close = Some((err.close_code(), err.to_string()));
                    continue;
                }
            };
            self.on_message(id, kind);
        }
        self.dirty.push(slot);
    }

    /// Hands the message in `message_in` to the handler.
    pub(super) fn on_message(&mut self, id: ConnId, kind: MessageKind) {
        self.stats.messages_in += 1;
        self.stats.bytes_in += self.message_in.len() as u64;
        if !self.within_rate(id) {
            return;
        }
        // Taken out for the call (the handler borrows the loop through its `Ctx`),
        // then put back with its capacity.
        let data = std::mem::take(&mut self.message_in);
        self.with_ctx(|handler, ctx| {
            let message = match kind {
                MessageKind::Binary => Some(Received::Binary(&data)),
                // Checked by the connection; a `&str` again (simdutf8).
                MessageKind::Text => simdutf8::basic::from_utf8(&data).ok().map(Received::Text),
            };
            if let Some(message) = message {
                handler.message(ctx, id, message);
            }
        });
        // One large message does not pin its size to the loop.
        if data.capacity() <= 1 << 20 {
            self.message_in = data;
        }
    }

    /// Takes a token of the connection's rate limit (a token bucket with a burst of
    /// one second's worth); none left: it is closed with 1008 and false returned.
    fn within_rate(&mut self, id: ConnId) -> bool {
        let Some(rate) = self.config.max_messages_per_second else {
            return true;
        };
        let conn = &mut self.conns[id.slot];
        if conn.our_close.is_some() {
            // Closed already (for this or another reason): nothing more to count.
            return false;
        }
        let now = Instant::now();
        let refill = now.duration_since(conn.refilled).as_secs_f64() * f64::from(rate);
        conn.tokens = (conn.tokens + refill).min(f64::from(rate));
        conn.refilled = now;
        if conn.tokens < 1.0 {
            log::info!("{id}: over {rate} messages/s, closing");
            self.with_ctx(|_, ctx| ctx.close(id, CloseCode::POLICY_VIOLATION, "rate limit"));
            return false;
        }
        conn.tokens -= 1.0;
        true
    }

    /// Backpressure: stops reading a connection whose unsent output is over
    /// `pause_reading_above` (`flush` drops its READABLE interest and resumes it once
    /// half is written). True if it is paused.
    fn pause_if_backed_up(&mut self, slot: usize) -> bool {
        let Some(conn) = self.conns.get_mut(slot) else {
            return true;
        };
        if !conn.read_paused && conn.unsent() > self.config.pause_reading_above {
            conn.read_paused = true;
            self.stats.read_pauses += 1;
            log::debug!(
                "slot {slot}: {} bytes unsent, not read until they drain",
                conn.unsent()
            );
            self.dirty.push(slot);
        }
        conn.read_paused
    }

    /// Reads the connections put aside for this turn (`read_again`): bytes that
    /// arrived while one was paused raise no new edge-triggered event (and a TLS
    /// session may hold decrypted bytes already); one that used its read budget may
    /// have more. Those that use their budget again wait for the next turn, so every
    /// other connection is served in between.
    pub(super) fn read_again(&mut self) {
        let slots = std::mem::take(&mut self.read_again);
        for slot in slots {
            if self.conns.get(slot).is_some_and(|c| !c.read_paused) {
                // Until `WouldBlock` or EOF, not only to a short read: the peer's
                // FIN may have come with the event whose reading was put aside, and
                // no later event would report it again.
                self.read(slot, true);
            }
        }
        self.flush_dirty();
    }

    /// Queued output did not shrink for `write_timeout`: the peer stopped reading.
    /// The connection goes at once (a Close could not reach it), with its memory.
    pub(super) fn write_timed_out(&mut self, slot: usize) {
        let conn = &mut self.conns[slot];
        log::info!(
            "{}: {} bytes unsent for {:?}, dropped",
            conn.id(slot),
            conn.unsent(),
            self.config.write_timeout
        );
        self.stats.write_timeouts += 1;
        if conn.our_close.is_none() {
            conn.our_close = Some((CloseCode::POLICY_VIOLATION, "write timeout".into()));
        }
        self.drop_conn(slot);
    }

    /// Tells the handler how the connection ended (once), leaving the socket to drain.
    pub(super) fn report_close(&mut self, slot: usize) {
        let conn = &mut self.conns[slot];
        let id = conn.id(slot);
        let phase = std::mem::replace(&mut conn.phase, Phase::Closing);
        let (data, clean, ended) = match phase {
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
            .clone()
            .or_else(|| conn.our_close.clone())
            .unwrap_or((CloseCode::ABNORMAL_CLOSURE, String::new()));
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

    /// Writes pending output until done or `WouldBlock`; registers WRITABLE interest
    /// only while output is left. Ends the connection once it is closed and flushed.
    pub(super) fn flush(&mut self, slot: usize) {
        if self.config.connection.trace {
            self.log_trace(slot);
        }
        let Some(before) = self.conns.get(slot).map(Conn::unsent) else {
            return;
        };
        let has_output = match self.write_pending(slot) {
            Ok(has_output) => has_output,
            Err(e) => {
                log::debug!("slot {slot}: write error: {e}");
                return self.drop_conn(slot);
            }
        };
        let Some(conn) = self.conns.get_mut(slot) else {
            return;
        };
        if conn.shut {
            return;
        }
        let unsent = conn.unsent();
        self.queued = self.queued.saturating_sub(before.saturating_sub(unsent));
        self.watch_progress(slot, before, unsent);
        let conn = &mut self.conns[slot];
        if conn.read_paused && unsent <= self.config.pause_reading_above / 2 {
            conn.read_paused = false;
            self.read_again.push(slot);
        }
        // Read while not paused; write while output is left (a paused connection
        // has output, so the interest is never empty).
        let wanted = (!conn.read_paused || !has_output, has_output);
        if wanted != conn.registered {
            let interest = match wanted {
                (true, true) => Interest::READABLE | Interest::WRITABLE,
                (false, _) => Interest::WRITABLE,
                (true, false) => Interest::READABLE,
            };
            if let Err(e) =
                self.poll
                    .registry()
                    .reregister(conn.socket.tcp(), Token(slot), interest)
            {
                log::debug!("slot {slot}: reregister failed: {e}");
                return self.drop_conn(slot);
            }
            conn.registered = wanted;
        }
        // Everything written and nothing more to say: the server closes the TCP
        // connection first (RFC 6455 §7.1.1), then reads until the peer's EOF.
        let done = match &conn.phase {
            Phase::Closing => true,
            Phase::Open { ws, .. } => ws.state() == State::Closed,
            Phase::Stream { .. } => conn.our_close.is_some(),
            Phase::Handshake(_) | Phase::Body { .. } => false,
        };
        if done && !has_output {
            conn.socket.shutdown_write();
            conn.shut = true;
            let deadline = Instant::now() + self.config.close_timeout;
            conn.close_deadline = Some(deadline);
            self.timers.schedule(deadline, slot);
            if matches!(conn.phase, Phase::Open { .. } | Phase::Stream { .. }) {
                self.report_close(slot);
            }
        }
    }

    /// Keeps the write timeout's clock: it starts when output is left after a write,
    /// restarts whenever the output shrinks, and stops when it is all written.
    fn watch_progress(&mut self, slot: usize, before: usize, unsent: usize) {
        let conn = &mut self.conns[slot];
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
    }

    /// Logs the frames a connection received and sent since the last call (`--trace`).
    pub(super) fn log_trace(&mut self, slot: usize) {
        let Some(conn) = self.conns.get_mut(slot) else {
            return;
        };
        let id = conn.id(slot);
        if let Phase::Open { ws, .. } = &mut conn.phase {
            for frame in ws.take_trace() {
                log::info!(target: "rfc6455::trace", "{id} {frame}");
            }
        }
    }

    /// Writes what is pending; returns whether output is left.
    pub(super) fn write_pending(&mut self, slot: usize) -> io::Result<bool> {
        let Some(conn) = self.conns.get_mut(slot) else {
            return Ok(false);
        };
        loop {
            if conn.shut {
                return Ok(has_output(conn));
            }
            match write_gathered(conn) {
                Ok(true) => {}
                // Ours is all written; TLS may still hold records of it.
                Ok(false) => return conn.socket.flush_transport(),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// Whether the connection has bytes of its own waiting: HTTP head, shared frames or
/// WebSocket frames.
fn has_output<D>(conn: &Conn<D>) -> bool {
    let own = match &conn.phase {
        Phase::Open { ws, .. } => !ws.pending_output().is_empty(),
        _ => false,
    };
    !conn.raw_output.is_empty() || !conn.shared.is_empty() || own
}

/// How much one connection is read in a turn of the loop before the others' turn.
const READ_BUDGET: usize = 64 * 1024;

/// How many buffers one `writev` gathers: a connection's HTTP head, its queued
/// shared frames (a burst of broadcasts), then its own output.
const GATHER: usize = 64;

/// Writes what a connection has queued, in order — the HTTP head (or a stream's
/// replay), shared frames, then its own frames — with one vectored write, and drops
/// what was written; false when nothing was queued. A 64-byte broadcast queued 200
/// times during one turn goes out in 4 system calls instead of 200.
fn write_gathered<D>(conn: &mut Conn<D>) -> io::Result<bool> {
    let mut slices = [IoSlice::new(&[]); GATHER];
    let mut count = 0;
    let own: &[u8] = match &conn.phase {
        Phase::Open { ws, .. } => ws.pending_output(),
        _ => &[],
    };
    let shared = conn
        .shared
        .iter()
        .map(|(chunk, written)| &chunk[*written..]);
    let queued = std::iter::once(&conn.raw_output[..])
        .chain(shared)
        .chain([own]);
    for bytes in queued.filter(|b| !b.is_empty()) {
        if count == GATHER {
            break;
        }
        slices[count] = IoSlice::new(bytes);
        count += 1;
    }
    if count == 0 {
        return Ok(false);
    }
    let mut n = match conn.socket.write_vectored(&slices[..count])? {
        0 => return Err(io::ErrorKind::WriteZero.into()),
        n => n,
    };
    if !conn.raw_output.is_empty() {
        let taken = n.min(conn.raw_output.len());
        if taken == conn.raw_output.len() {
            // Done with it: its memory too (a stream's replay may be big).
            conn.raw_output = Vec::new();
        } else {
            conn.raw_output.drain(..taken);
        }
        n -= taken;
    }
    while let Some((chunk, written)) = conn.shared.front_mut() {
        let left = chunk.len() - *written;
        if n < left {
            *written += n;
            return Ok(true);
        }
        n -= left;
        conn.shared.pop_front();
    }
    if let Phase::Open { ws, .. } = &mut conn.phase {
        ws.consume_output(n);
    }
    Ok(true)
}
