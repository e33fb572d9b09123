//! What a handler callback can do ([`Ctx`]) and the server's counters ([`Stats`]).

use super::config::{ServerConfig, SlowConsumer};
use super::conn::{Conn, Phase};
use super::id::ConnId;
use super::loops::{Loops, Mail};
use super::message::Received;
use super::shared::SharedFrame;
use super::shared::{BroadcastCompressor, Variant};
use super::stats::Stats;
use crate::{CloseCode, MessageKind};
use slab::Slab;
use std::sync::Arc;
use std::time::Instant;

/// The connection `id` names, if it is still the one in its slot of this loop. A free
/// function, so that callers can hold it and another field of `Ctx` (the compressor)
/// at once.
fn conn_of<D>(conns: &mut Slab<Conn<D>>, id: ConnId) -> Option<&mut Conn<D>> {
    match conns.get_mut(id.slot) {
        Some(conn) if conn.is(id) => Some(conn),
        _ => None,
    }
}

/// A send refused for a budget, with the bytes queued that it would have gone over.
enum Over {
    /// The connection's own queued output ([`ServerConfig::max_queued_output`]).
    Connection(usize),
    /// Everything queued on every loop ([`ServerConfig::max_total_queued_output`]).
    Server(usize),
}

/// Whether `bytes` more would go over a budget: the connection's own, which has
/// `queued` bytes queued, or the process's, which has `total` (this loop's now, the
/// other loops' as of their last turn).
fn over_budget(config: &ServerConfig, queued: usize, total: usize, bytes: usize) -> Option<Over> {
    if queued + bytes > config.max_queued_output {
        return Some(Over::Connection(queued));
    }
    (total + bytes > config.max_total_queued_output).then_some(Over::Server(total))
}

/// What a handler callback can do: send to and close any connection, reach its data.
///
/// With several loops ([`ServerConfig::threads`]), a send or close for a connection of
/// another loop is handed to that loop, which applies it in the order it was made; the
/// call then returns true if that loop took it, and the output limit and the
/// slow-consumer policy apply when it arrives. A loop applies what others sent it
/// before each send of its own, so sends made in an order that the handlers agree on
/// (under one lock) reach every connection in that order.
///
/// ```
/// use rfc6455::server::{ConnId, Ctx, Handler, Received, Refusal};
/// use rfc6455::Event;
/// # use rfc6455::server::{Accept, Server, ServerConfig};
///
/// /// Forwards every message to everyone else: a callback may send to any connection.
/// struct Relay;
/// impl Handler for Relay {
///     type Data = ();
/// #   fn upgrade(&mut self, _: &rfc6455::handshake::server::Request) -> Result<Accept<()>, Refusal> {
/// #       Ok(Accept::new(()))
/// #   }
///     fn message(&mut self, ctx: &mut Ctx<'_, ()>, from: ConnId, message: Received<'_>) {
///         for id in ctx.connections().into_iter().filter(|id| *id != from) {
///             ctx.send(id, message);
///         }
///     }
/// }
/// # let server = Server::bind("127.0.0.1:0".parse().unwrap(), ServerConfig::default())?;
/// # let (addr, handle) = (server.local_addr()?, server.handle());
/// # let url = format!("ws://{addr}/");
/// # let server_thread = std::thread::spawn(move || server.run(Relay));
/// let (mut alice, mut bob) = (rfc6455::blocking::connect(&url)?, rfc6455::blocking::connect(&url)?);
/// bob.send_text("hi alice")?;
/// assert_eq!(alice.read()?, Event::Text("hi alice".into()));
/// # drop((alice, bob));
/// # handle.shutdown();
/// # server_thread.join().unwrap()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Ctx<'a, D> {
    /// The loop this callback runs on.
    pub(super) worker: usize,
    pub(super) loops: &'a Loops,
    pub(super) conns: &'a mut Slab<Conn<D>>,
    pub(super) config: &'a ServerConfig,
    pub(super) stats: &'a mut Stats,
    /// Connections whose output changed, to flush after the callback.
    pub(super) touched: &'a mut Vec<usize>,
    /// Compresses broadcasts once for the connections that share parameters.
    pub(super) compressor: &'a mut BroadcastCompressor,
    /// This loop's queued output, all connections (for `max_total_queued_output`).
    pub(super) queued: &'a mut usize,
}

impl<D> Ctx<'_, D> {
    /// Applies what the other loops (or a `Handle`) sent to this loop's connections.
    /// Before each send of its own, so that sends keep the order they were made in
    /// (see [`Ctx`]).
    pub(super) fn deliver_mail(&mut self) {
        let delivery = self.loops.take_mail(self.worker);
        for mail in delivery.mail {
            match mail {
                Mail::Shared(id, frame) => {
                    self.local_send_shared(id, &frame);
                }
                Mail::Data(id, kind, payload) => {
                    self.local_send_data(id, kind, &payload);
                }
                Mail::Close(id, code, reason) => self.local_close(id, code, &reason),
                Mail::Stream(id, bytes) => {
                    self.local_send_stream(id, bytes);
                }
            }
        }
        self.stats.mailbox_overflows += delivery.refused;
        for id in delivery.overflowed {
            if self.config.slow_consumer == SlowConsumer::Close {
                log::info!("{id}: a message for it was refused (this loop fell behind), closing");
                self.local_close(id, CloseCode::TRY_AGAIN_LATER, "server overloaded");
            }
        }
    }

    /// Sends a message to a connection: a lent one ([`Received`], as a handler is
    /// given) or an owned one (`&`[`Message`](super::Message)). Returns false when the
    /// connection is gone or closing, or the message was dropped because the
    /// connection is a slow consumer.
    ///
    /// ```
    /// use rfc6455::server::{ConnId, Ctx, Handler, Message, Received, Refusal};
    /// use rfc6455::Event;
    /// # use rfc6455::server::{Accept, Server, ServerConfig};
    ///
    /// /// Echoes every message, and sends the first one again after each.
    /// struct Echo(Option<Message>);
    /// impl Handler for Echo {
    ///     type Data = ();
    /// #   fn upgrade(&mut self, _: &rfc6455::handshake::server::Request) -> Result<Accept<()>, Refusal> {
    /// #       Ok(Accept::new(()))
    /// #   }
    ///     fn message(&mut self, ctx: &mut Ctx<'_, ()>, id: ConnId, message: Received<'_>) {
    ///         assert!(ctx.send(id, message)); // back as it came: text as text
    ///         let first = self.0.get_or_insert_with(|| message.to_message());
    ///         ctx.send(id, &*first);
    ///     }
    /// }
    /// # let server = Server::bind("127.0.0.1:0".parse().unwrap(), ServerConfig::default())?;
    /// # let (addr, handle) = (server.local_addr()?, server.handle());
    /// # let url = format!("ws://{addr}/");
    /// # let server_thread = std::thread::spawn(move || server.run(Echo(None)));
    /// let mut ws = rfc6455::blocking::connect(&url)?;
    /// ws.send_text("héllo")?;
    /// assert_eq!(ws.read()?, Event::Text("héllo".into()));
    /// assert_eq!(ws.read()?, Event::Text("héllo".into()));
    /// ws.send_binary(&[0xff, 0x00])?;
    /// assert_eq!(ws.read()?, Event::Binary(vec![0xff, 0x00]));
    /// assert_eq!(ws.read()?, Event::Text("héllo".into()));
    /// # drop(ws);
    /// # handle.shutdown();
    /// # server_thread.join().unwrap()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send<'m>(&mut self, id: ConnId, message: impl Into<Received<'m>>) -> bool {
        match message.into() {
            Received::Text(text) => self.send_data(id, MessageKind::Text, text.as_bytes()),
            Received::Binary(data) => self.send_data(id, MessageKind::Binary, data),
        }
    }

    /// Sends a text message (see [`send`](Self::send)).
    ///
    /// ```
    /// use rfc6455::server::{ConnId, Ctx, Handler, Received, Refusal};
    /// use rfc6455::Event;
    /// # use rfc6455::server::{Accept, Server, ServerConfig};
    ///
    /// struct Shout;
    /// impl Handler for Shout {
    ///     type Data = ();
    /// #   fn upgrade(&mut self, _: &rfc6455::handshake::server::Request) -> Result<Accept<()>, Refusal> {
    /// #       Ok(Accept::new(()))
    /// #   }
    ///     fn message(&mut self, ctx: &mut Ctx<'_, ()>, id: ConnId, message: Received<'_>) {
    ///         if let Received::Text(text) = message {
    ///             ctx.send_text(id, &text.to_uppercase());
    ///         }
    ///     }
    /// }
    /// # let server = Server::bind("127.0.0.1:0".parse().unwrap(), ServerConfig::default())?;
    /// # let (addr, handle) = (server.local_addr()?, server.handle());
    /// # let url = format!("ws://{addr}/");
    /// # let server_thread = std::thread::spawn(move || server.run(Shout));
    /// let mut ws = rfc6455::blocking::connect(&url)?;
    /// ws.send_text("hello")?;
    /// assert_eq!(ws.read()?, Event::Text("HELLO".into()));
    /// # drop(ws);
    /// # handle.shutdown();
    /// # server_thread.join().unwrap()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_text(&mut self, id: ConnId, text: &str) -> bool {
        self.send_data(id, MessageKind::Text, text.as_bytes())
    }

    /// Sends a binary message (see [`send`](Self::send)).
    ///
    /// ```
    /// use rfc6455::server::{ConnId, Ctx, Handler, Received, Refusal};
    /// use rfc6455::Event;
    /// # use rfc6455::server::{Accept, Server, ServerConfig};
    ///
    /// /// Answers a text with its length in bytes, as a big-endian u32.
    /// struct Measure;
    /// impl Handler for Measure {
    ///     type Data = ();
    /// #   fn upgrade(&mut self, _: &rfc6455::handshake::server::Request) -> Result<Accept<()>, Refusal> {
    /// #       Ok(Accept::new(()))
    /// #   }
    ///     fn message(&mut self, ctx: &mut Ctx<'_, ()>, id: ConnId, message: Received<'_>) {
    ///         ctx.send_binary(id, &(message.as_bytes().len() as u32).to_be_bytes());
    ///     }
    /// }
    /// # let server = Server::bind("127.0.0.1:0".parse().unwrap(), ServerConfig::default())?;
    /// # let (addr, handle) = (server.local_addr()?, server.handle());
    /// # let url = format!("ws://{addr}/");
    /// # let server_thread = std::thread::spawn(move || server.run(Measure));
    /// let mut ws = rfc6455::blocking::connect(&url)?;
    /// ws.send_text("héllo")?; // text is UTF-8 on the wire (RFC 6455 §5.6): é takes two bytes
    /// assert_eq!(ws.read()?, Event::Binary(vec![0, 0, 0, 6]));
    /// # drop(ws);
    /// # handle.shutdown();
    /// # server_thread.join().unwrap()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_binary(&mut self, id: ConnId, data: &[u8]) -> bool {
        self.send_data(id, MessageKind::Binary, data)
    }

    /// A send refused for a budget: the slow-consumer policy applies to `id` (the
    /// message is dropped, or the connection closed with 1008). False.
    fn refuse(&mut self, id: ConnId, over: Over) -> bool {
        self.stats.slow_consumer_events += 1;
        let (reason, detail) = match over {
            Over::Connection(queued) => ("slow consumer", format!("{queued} bytes queued")),
            Over::Server(total) => (
                "server output budget",
                format!("{total} bytes queued in all, max_total_queued_output"),
            ),
        };
        match self.config.slow_consumer {
            SlowConsumer::DropMessages => {
                log::debug!("{id}: {reason}, message dropped ({detail})");
            }
            SlowConsumer::Close => {
                log::info!("{id}: {reason}, closing ({detail})");
                self.local_close(id, CloseCode::POLICY_VIOLATION, reason);
            }
        }
        false
    }

    fn send_data(&mut self, id: ConnId, kind: MessageKind, payload: &[u8]) -> bool {
        if id.worker != self.worker {
            return self
                .loops
                .post(id.worker, Mail::Data(id, kind, payload.to_vec()));
        }
        if self.loops.has_mail(self.worker) {
            self.deliver_mail();
        }
        self.local_send_data(id, kind, payload)
    }

    /// Queues a whole message for a connection of this loop that can take data now,
    /// within the budgets (counted in this loop's queued output).
    fn local_send_data(&mut self, id: ConnId, kind: MessageKind, payload: &[u8]) -> bool {
        let total = *self.queued + self.loops.queued_elsewhere(self.worker);
        let Some((ws, queued)) = conn_of(self.conns, id).and_then(Conn::sendable) else {
            return false;
        };
        if let Some(over) = over_budget(self.config, queued, total, payload.len()) {
            return self.refuse(id, over);
        }
        *self.queued += payload.len();
        // One whole message. Without context takeover it is compressed by the loop's
        // compressor (the connection keeps none); with it, by the connection's own.
        // Text came in as a `&str` (see `send_text`), so it is not validated again.
        let sent = match ws.deflate().copied() {
            Some(deflate) if deflate.local_no_context_takeover => {
                if self.compressor.compress_for(&deflate, payload) {
                    ws.send_prepared(kind, &self.compressor.scratch, true)
                } else {
                    ws.send_prepared(kind, payload, false)
                }
            }
            _ => ws.send_message(kind, payload),
        };
        if sent.is_err() {
            return false;
        }
        self.stats.messages_out += 1;
        self.stats.bytes_out += payload.len() as u64;
        self.touched.push(id.slot);
        true
    }

    /// Queues a frame encoded once for many connections (see [`SharedFrame`]): the
    /// bytes are shared, not copied per recipient. Returns false when the connection
    /// is gone, closing, or over its output limit (then the slow-consumer policy
    /// applies).
    ///
    /// ```
    /// # use rfc6455::server::{ConnId, Ctx, Handler, Received, Refusal, SharedFrame};
    /// # use rfc6455::Event;
    /// # use rfc6455::server::{Accept, Server, ServerConfig};
    /// /// Sends every message to everyone, its frame encoded once for all of them.
    /// struct Everyone;
    /// impl Handler for Everyone {
    /// #   type Data = ();
    /// #   fn upgrade(&mut self, _: &rfc6455::handshake::server::Request) -> Result<Accept<()>, Refusal> {
    /// #       Ok(Accept::new(()))
    /// #   }
    ///     fn message(&mut self, ctx: &mut Ctx<'_, ()>, _from: ConnId, message: Received<'_>) {
    ///         let Received::Text(text) = message else { return };
    ///         let frame = SharedFrame::text(text);
    ///         for id in ctx.connections() {
    ///             ctx.send_shared(id, &frame);
    ///         }
    ///     }
    /// }
    /// # let server = Server::bind("127.0.0.1:0".parse().unwrap(), ServerConfig::default())?;
    /// # let (addr, handle) = (server.local_addr()?, server.handle());
    /// # let url = format!("ws://{addr}/");
    /// # let server_thread = std::thread::spawn(move || server.run(Everyone));
    /// let (mut alice, mut bob) = (rfc6455::blocking::connect(&url)?, rfc6455::blocking::connect(&url)?);
    /// alice.send_text("hello")?;
    /// assert_eq!(alice.read()?, Event::Text("hello".into()));
    /// assert_eq!(bob.read()?, Event::Text("hello".into()));
    /// # drop((alice, bob));
    /// # handle.shutdown();
    /// # server_thread.join().unwrap()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_shared(&mut self, id: ConnId, frame: &SharedFrame) -> bool {
        if id.worker != self.worker {
            return self.loops.post(id.worker, Mail::Shared(id, frame.clone()));
        }
        if self.loops.has_mail(self.worker) {
            self.deliver_mail();
        }
        self.local_send_shared(id, frame)
    }

    fn local_send_shared(&mut self, id: ConnId, frame: &SharedFrame) -> bool {
        let total = *self.queued + self.loops.queued_elsewhere(self.worker);
        let Some(conn) = conn_of(self.conns, id) else {
            return false;
        };
        let Some((ws, queued)) = conn.sendable() else {
            return false;
        };
        let len = frame.bytes().len();
        if let Some(over) = over_budget(self.config, queued, total, len) {
            return self.refuse(id, over);
        }
        *self.queued += len;
        let bytes = match ws.deflate() {
            None => frame.bytes.clone(),
            Some(deflate) => match frame.variant(deflate, self.compressor) {
                Variant::Shared(bytes) => bytes,
                // Compressed by the connection itself, after what it queued before.
                Variant::Own(kind, bytes, header_len) => {
                    if ws.send_message(kind, &bytes[header_len..]).is_err() {
                        return false;
                    }
                    self.stats.messages_out += 1;
                    self.stats.bytes_out += frame.payload_len() as u64;
                    self.touched.push(id.slot);
                    return true;
                }
            },
        };
        // After what the connection queued before, its own frames included.
        conn.queue_shared(bytes);
        self.stats.messages_out += 1;
        self.stats.bytes_out += frame.payload_len() as u64;
        self.touched.push(id.slot);
        true
    }

    /// Queues bytes for a stream ([`Reply::Stream`](super::Reply::Stream)), after
    /// what it was sent before; shared by reference, so that one event costs one
    /// buffer for any number of streams. Returns false when `id` is not an open
    /// stream, or it is over its output limit (then the slow-consumer policy applies:
    /// [`SlowConsumer::Close`] ends the stream at once, dropping what it had queued).
    ///
    /// ```
    /// # use rfc6455::server::{ConnId, Ctx, Handler, HttpRequest, HttpResponse, Refusal, Reply};
    /// # use std::sync::Arc;
    /// # use std::time::Duration;
    /// # use rfc6455::server::{Accept, Server, ServerConfig};
    /// # use std::io::{Read, Write};
    /// /// A Server-Sent Events feed: `request` opens a stream for `GET /ticks` (a
    /// /// `Reply::Stream`) and keeps its id; every tick, one event for all the streams.
    /// struct Ticks(Vec<ConnId>);
    /// impl Handler for Ticks {
    /// #   type Data = ();
    /// #   fn upgrade(&mut self, _: &rfc6455::handshake::server::Request) -> Result<Accept<()>, Refusal> {
    /// #       Err(404.into())
    /// #   }
    /// #   fn request(&mut self, _: &mut Ctx<'_, ()>, id: ConnId, _: &HttpRequest) -> Option<Reply<()>> {
    /// #       self.0.push(id);
    /// #       let head = HttpResponse::with_type(200, "text/event-stream", Vec::new());
    /// #       Some(Reply::Stream { head, data: () })
    /// #   }
    ///     fn tick(&mut self, ctx: &mut Ctx<'_, ()>) {
    ///         let event: Arc<[u8]> = Arc::from(&b"data: tick\n\n"[..]);
    ///         self.0.retain(|id| ctx.send_stream(*id, &event)); // false: the stream ended
    ///     }
    /// }
    /// # let config = ServerConfig { tick_interval: Duration::from_millis(10), ..ServerConfig::default() };
    /// # let server = Server::bind("127.0.0.1:0".parse().unwrap(), config)?;
    /// # let (addr, handle) = (server.local_addr()?, server.handle());
    /// # let url = format!("ws://{addr}/");
    /// # let server_thread = std::thread::spawn(move || server.run(Ticks(Vec::new())));
    /// let mut sse = std::net::TcpStream::connect(addr)?;
    /// sse.write_all(b"GET /ticks HTTP/1.1\r\nHost: a\r\n\r\n")?;
    /// # fn read_until(stream: &mut impl Read, end: &str) -> std::io::Result<String> {
    /// #     let (mut seen, mut buf) = (Vec::new(), [0; 512]);
    /// #     while !seen.ends_with(end.as_bytes()) {
    /// #         let n = stream.read(&mut buf)?;
    /// #         assert!(n > 0, "the stream ended");
    /// #         seen.extend_from_slice(&buf[..n]);
    /// #     }
    /// #     Ok(String::from_utf8_lossy(&seen).into_owned())
    /// # }
    /// let seen = read_until(&mut sse, "data: tick\n\n")?; // the head, then the first tick
    /// assert!(seen.starts_with("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"));
    /// # drop(sse);
    /// # handle.shutdown();
    /// # server_thread.join().unwrap()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_stream(&mut self, id: ConnId, bytes: &Arc<[u8]>) -> bool {
        if id.worker != self.worker {
            return self.loops.post(id.worker, Mail::Stream(id, bytes.clone()));
        }
        if self.loops.has_mail(self.worker) {
            self.deliver_mail();
        }
        self.local_send_stream(id, bytes.clone())
    }

    fn local_send_stream(&mut self, id: ConnId, bytes: Arc<[u8]>) -> bool {
        let total = *self.queued + self.loops.queued_elsewhere(self.worker);
        let Some(conn) = conn_of(self.conns, id) else {
            return false;
        };
        if !conn.is_stream() || conn.our_close.is_some() {
            return false;
        }
        let queued = conn.stream_unsent();
        match over_budget(self.config, queued, total, bytes.len()) {
            None => {}
            Some(Over::Connection(queued)) => {
                self.stats.slow_consumer_events += 1;
                match self.config.slow_consumer {
                    SlowConsumer::DropMessages => {
                        log::debug!("{id}: slow stream reader, bytes dropped ({queued} queued)");
                    }
                    SlowConsumer::Close => {
                        log::info!("{id}: slow stream reader, ending it ({queued} bytes queued)");
                        conn.discard_output();
                        self.local_close(id, CloseCode::POLICY_VIOLATION, "slow consumer");
                    }
                }
                return false;
            }
            Some(over) => return self.refuse(id, over),
        }
        *self.queued += bytes.len();
        self.stats.messages_out += 1;
        self.stats.bytes_out += bytes.len() as u64;
        conn.queue_shared(bytes);
        self.touched.push(id.slot);
        true
    }

    /// Starts the closing handshake with a connection (RFC 6455 §7.1.2); a stream
    /// ends once what it was sent is written.
    ///
    /// ```
    /// use rfc6455::server::{ConnId, Ctx, Handler, Received, Refusal};
    /// use rfc6455::{CloseCode, CloseFrame, Event};
    /// # use rfc6455::server::{Accept, Server, ServerConfig};
    ///
    /// struct Bouncer;
    /// impl Handler for Bouncer {
    ///     type Data = ();
    /// #   fn upgrade(&mut self, _: &rfc6455::handshake::server::Request) -> Result<Accept<()>, Refusal> {
    /// #       Ok(Accept::new(()))
    /// #   }
    ///     fn message(&mut self, ctx: &mut Ctx<'_, ()>, id: ConnId, message: Received<'_>) {
    ///         if message == Received::Text("bye") {
    ///             ctx.close(id, CloseCode::NORMAL, "see you");
    ///         }
    ///     }
    /// }
    /// # let server = Server::bind("127.0.0.1:0".parse().unwrap(), ServerConfig::default())?;
    /// # let (addr, handle) = (server.local_addr()?, server.handle());
    /// # let url = format!("ws://{addr}/");
    /// # let server_thread = std::thread::spawn(move || server.run(Bouncer));
    /// let mut ws = rfc6455::blocking::connect(&url)?;
    /// ws.send_text("bye")?;
    /// let close = CloseFrame { code: CloseCode::NORMAL, reason: "see you".into() };
    /// assert_eq!(ws.read()?, Event::Close(Some(close))); // RFC 6455 §5.5.1
    /// # drop(ws);
    /// # handle.shutdown();
    /// # server_thread.join().unwrap()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn close(&mut self, id: ConnId, code: CloseCode, reason: &str) {
        if id.worker != self.worker {
            self.loops
                .post(id.worker, Mail::Close(id, code, reason.to_string()));
            return;
        }
        if self.loops.has_mail(self.worker) {
            self.deliver_mail();
        }
        self.local_close(id, code, reason);
    }

    fn local_close(&mut self, id: ConnId, code: CloseCode, reason: &str) {
        let close_timeout = self.config.close_timeout;
        let Some(conn) = conn_of(self.conns, id) else {
            return;
        };
        match &mut conn.phase {
            Phase::Open { ws, .. } => {
                let reason = crate::close::truncate_utf8(reason, crate::close::MAX_CLOSE_REASON);
                if ws.close(code, reason).is_ok() {
                    // The close timeout is the core's; the loop schedules it.
                    conn.our_close = Some(Box::new((code, reason.to_string())));
                    self.touched.push(id.slot);
                }
            }
            Phase::Stream { .. } if conn.our_close.is_none() => {
                conn.our_close = Some(Box::new((code, reason.to_string())));
                conn.close_deadline = Some(Instant::now() + close_timeout);
                self.touched.push(id.slot);
            }
            _ => {}
        }
    }

    /// The data attached to a connection at accept time (connections of this loop).
    ///
    /// ```
    /// # use rfc6455::handshake::server::Request;
    /// # use rfc6455::server::{Accept, ConnId, Ctx, Handler, Received, Refusal};
    /// # use rfc6455::Event;
    /// # use rfc6455::server::{Server, ServerConfig};
    /// struct Chat;
    /// impl Handler for Chat {
    ///     type Data = String;
    ///     fn upgrade(&mut self, request: &Request) -> Result<Accept<String>, Refusal> {
    ///         Ok(Accept::new(request.query().unwrap_or("anonymous").to_string()))
    ///     }
    ///     fn message(&mut self, ctx: &mut Ctx<'_, String>, id: ConnId, message: Received<'_>) {
    ///         let Received::Text(text) = message else { return };
    ///         let line = format!("{}: {text}", ctx.data(id).unwrap()); // its name, from `upgrade`
    ///         ctx.send_text(id, &line);
    ///     }
    /// }
    /// # let server = Server::bind("127.0.0.1:0".parse().unwrap(), ServerConfig::default())?;
    /// # let (addr, handle) = (server.local_addr()?, server.handle());
    /// # let url = format!("ws://{addr}/");
    /// # let server_thread = std::thread::spawn(move || server.run(Chat));
    /// let mut ws = rfc6455::blocking::connect(&format!("ws://{addr}/chat?alice"))?;
    /// ws.send_text("hi")?;
    /// assert_eq!(ws.read()?, Event::Text("alice: hi".into()));
    /// # drop(ws);
    /// # handle.shutdown();
    /// # server_thread.join().unwrap()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn data(&mut self, id: ConnId) -> Option<&mut D> {
        conn_of(self.conns, id)?.data()
    }

    /// Every open connection of this loop.
    ///
    /// ```
    /// use rfc6455::server::{ConnId, Ctx, Handler, Refusal};
    /// use rfc6455::Event;
    /// # use rfc6455::server::{Accept, Server, ServerConfig};
    ///
    /// struct Lobby;
    /// impl Handler for Lobby {
    ///     type Data = ();
    /// #   fn upgrade(&mut self, _: &rfc6455::handshake::server::Request) -> Result<Accept<()>, Refusal> {
    /// #       Ok(Accept::new(()))
    /// #   }
    ///     fn open(&mut self, ctx: &mut Ctx<'_, ()>, id: ConnId) {
    ///         let online = ctx.connections().len(); // the newcomer included
    ///         ctx.send_text(id, &format!("{online} online"));
    ///     }
    /// }
    /// # let server = Server::bind("127.0.0.1:0".parse().unwrap(), ServerConfig::default())?;
    /// # let (addr, handle) = (server.local_addr()?, server.handle());
    /// # let url = format!("ws://{addr}/");
    /// # let server_thread = std::thread::spawn(move || server.run(Lobby));
    /// let mut alice = rfc6455::blocking::connect(&url)?;
    /// assert_eq!(alice.read()?, Event::Text("1 online".into()));
    /// let mut bob = rfc6455::blocking::connect(&url)?;
    /// assert_eq!(bob.read()?, Event::Text("2 online".into()));
    /// # drop((alice, bob));
    /// # handle.shutdown();
    /// # server_thread.join().unwrap()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn connections(&self) -> Vec<ConnId> {
        self.conns
            .iter()
            .filter(|(_, c)| c.is_open())
            .map(|(slot, c)| c.id(slot))
            .collect()
    }

    /// This loop's counters.
    ///
    /// ```
    /// use rfc6455::server::{ConnId, Ctx, Handler, Received, Refusal};
    /// use rfc6455::Event;
    /// # use rfc6455::server::{Accept, Server, ServerConfig};
    ///
    /// struct Counter;
    /// impl Handler for Counter {
    ///     type Data = ();
    /// #   fn upgrade(&mut self, _: &rfc6455::handshake::server::Request) -> Result<Accept<()>, Refusal> {
    /// #       Ok(Accept::new(()))
    /// #   }
    ///     fn message(&mut self, ctx: &mut Ctx<'_, ()>, id: ConnId, _: Received<'_>) {
    ///         let stats = ctx.stats();
    ///         let line = format!("{} in, {} bytes", stats.messages_in, stats.bytes_in);
    ///         ctx.send_text(id, &line);
    ///     }
    /// }
    /// # let server = Server::bind("127.0.0.1:0".parse().unwrap(), ServerConfig::default())?;
    /// # let (addr, handle) = (server.local_addr()?, server.handle());
    /// # let url = format!("ws://{addr}/");
    /// # let server_thread = std::thread::spawn(move || server.run(Counter));
    /// let mut ws = rfc6455::blocking::connect(&url)?;
    /// ws.send_text("abc")?;
    /// assert_eq!(ws.read()?, Event::Text("1 in, 3 bytes".into())); // payload bytes
    /// # drop(ws);
    /// # handle.shutdown();
    /// # server_thread.join().unwrap()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stats(&self) -> &Stats {
        self.stats
    }

    /// The whole server's counters: this loop's now, the other loops' as of the end of
    /// their last turn, and the connections in their handshake and open per loop
    /// (e.g. for a `/metrics` page).
    ///
    /// ```
    /// use rfc6455::server::{ConnId, Ctx, Handler, HttpRequest, HttpResponse, Refusal, Reply};
    /// # use std::io::{Read, Write};
    /// # use rfc6455::server::{Accept, Server, ServerConfig};
    ///
    /// struct Metrics;
    /// impl Handler for Metrics {
    ///     type Data = ();
    /// #   fn upgrade(&mut self, _: &rfc6455::handshake::server::Request) -> Result<Accept<()>, Refusal> {
    /// #       Ok(Accept::new(()))
    /// #   }
    ///     fn request(&mut self, ctx: &mut Ctx<'_, ()>, _: ConnId, request: &HttpRequest) -> Option<Reply<()>> {
    ///         let page = format!("ws_open {}\n", ctx.totals().open);
    ///         (request.path() == "/metrics").then(|| Reply::Response(HttpResponse::text(200, &page)))
    ///     }
    /// }
    /// # let server = Server::bind("127.0.0.1:0".parse().unwrap(), ServerConfig::default())?;
    /// # let (addr, handle) = (server.local_addr()?, server.handle());
    /// # let url = format!("ws://{addr}/");
    /// # let server_thread = std::thread::spawn(move || server.run(Metrics));
    /// let ws = rfc6455::blocking::connect(&url)?; // one WebSocket open
    /// let mut http = std::net::TcpStream::connect(addr)?;
    /// http.write_all(b"GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n")?;
    /// let mut response = String::new();
    /// http.read_to_string(&mut response)?;
    /// assert!(response.starts_with("HTTP/1.1 200 OK\r\n") && response.ends_with("\r\n\r\nws_open 1\n"));
    /// # drop(ws);
    /// # handle.shutdown();
    /// # server_thread.join().unwrap()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn totals(&self) -> Stats {
        self.loops.totals(self.worker, self.stats)
    }
}
