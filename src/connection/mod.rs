//! The connection state machine (RFC 6455 §5, §6, §7), for both roles, without I/O.
//!
//! A [`Connection`] is made of parts that own their rules:
//!
//! - [`read`] — bytes → frames → messages: the input buffer, UTF-8 as it arrives,
//!   inflating (RFC 7692). It only parses.
//! - [`write`] — messages → frames: masking, deflating, the output queue.
//! - [`closing`] — the closing handshake, one enum that carries its data.
//! - [`timers`] — the heartbeat and the close timeout, kept without a clock.
//! - [`trace`] — the frame log behind `--trace`.
//!
//! This file joins them: what a received frame asks of the send path (a Pong, the
//! echo of a Close, the Close that fails the connection) is done here, in
//! `next_ready` and `fail`, and nowhere else.
//!
//! # The API's grammar
//!
//! In the manner of quinn-proto, every public method is one of four kinds:
//!
//! - **getters** say how things stand and change nothing: [`state`](Connection::state),
//!   [`is_closed`](Connection::is_closed), [`role`](Connection::role),
//!   [`config`](Connection::config), [`deflate`](Connection::deflate),
//!   [`buffered_input`](Connection::buffered_input),
//!   [`can_send_data`](Connection::can_send_data).
//! - **`handle_*` and input** give the connection what happened outside it: bytes
//!   ([`receive`](Connection::receive), or [`input_buffer`](Connection::input_buffer)
//!   then [`commit_input`](Connection::commit_input) to read into it), bytes
//!   written ([`consume_output`](Connection::consume_output)), the time
//!   ([`handle_timeout`](Connection::handle_timeout)).
//! - **commands** ask it to send: `send_*`, [`close`](Connection::close).
//! - **`poll_*` and `next_*`** take out what it produced: events
//!   ([`next_event`](Connection::next_event) owned,
//!   [`next_message`](Connection::next_message) lent,
//!   [`next_message_into`](Connection::next_message_into) swapped into a buffer,
//!   [`poll_next`](Connection::poll_next) parsed ahead), bytes to write
//!   ([`pending_output`](Connection::pending_output)), and when to wake it next
//!   ([`poll_timeout`](Connection::poll_timeout)).
//!
//! It owns no socket, thread or clock: a driver loops "read → `receive` → `next_*` →
//! write `pending_output` → sleep until `poll_timeout`".

mod closing;
mod config;
mod message;
mod read;
mod timers;
mod trace;
mod write;

#[cfg(test)]
mod tests;

pub use closing::State;
pub use config::Config;
pub use message::{Event, MessageKind, MessageRef};
pub use trace::TracedFrame;

use crate::close::{truncate_utf8, CloseCode, MAX_CLOSE_REASON};
use crate::deflate::Negotiated;
use crate::error::{ProtocolError, SendError};
use crate::frame::{OpCode, Role};
use closing::Closing;
use read::{ReadSide, Ready};
use std::sync::Arc;
use std::time::{Duration, Instant};
use timers::{Beat, Deadline, Heartbeat};
use trace::Trace;
use write::WriteSide;

/// The sans-IO WebSocket connection, after the opening handshake.
///
/// ```
/// use rfc6455::{Connection, Event, Role};
///
/// let mut client = Connection::new(Role::Client);
/// let mut server = Connection::new(Role::Server);
///
/// client.send_text("Hello").unwrap();
/// server.receive(client.pending_output());
/// client.consume_output(client.pending_output().len());
/// assert_eq!(server.next_event(), Ok(Some(Event::Text("Hello".into()))));
/// assert_eq!(server.next_event(), Ok(None)); // nothing more yet
///
/// // RFC 6455 §5.7: the server's unmasked reply, byte for byte.
/// server.send_text("Hello").unwrap();
/// assert_eq!(server.pending_output(), [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
/// ```
#[derive(Debug)]
pub struct Connection {
    /// Shared: a server's connections all have the same (see
    /// [`with_config`](Connection::with_config)); one of them that changes its own
    /// (`set_close_timeout`) gets a copy.
    config: Arc<Config>,
    read: ReadSide,
    write: WriteSide,
    closing: Closing,
    /// Boxed: most connections have no heartbeat of their own (an event loop keeps
    /// thousands of connections in one table).
    heartbeat: Option<Box<Heartbeat>>,
    /// A frame was parsed since the heartbeat last looked: set on every frame (one
    /// store, no branch, on the path every frame takes) and handed to the heartbeat
    /// when the driver tells the time.
    heard_from_peer: bool,
    trace: Trace,
}

impl Connection {
    /// A connection in the Open state with the default [`Config`].
    ///
    /// ```
    /// use rfc6455::{Config, Connection, Role, State};
    ///
    /// // The opening handshake (RFC 6455 §4) is done before a `Connection` exists.
    /// let conn = Connection::new(Role::Server);
    /// assert_eq!(conn.state(), State::Open);
    /// assert_eq!(conn.config(), &Config::default());
    /// assert_eq!(conn.deflate(), None); // no permessage-deflate
    /// ```
    pub fn new(role: Role) -> Self {
        Self::with_config(role, Config::default())
    }

    /// A connection in the Open state.
    ///
    /// `config` may be an `Arc<Config>`: connections made with clones of one share
    /// it, instead of carrying a copy each (a server's thousands of connections).
    ///
    /// ```
    /// use rfc6455::{CloseCode, Config, Connection, Role};
    /// use std::sync::Arc;
    ///
    /// let config = Arc::new(Config { max_message_size: 4, ..Config::default() });
    /// let mut server = Connection::with_config(Role::Server, config.clone());
    /// // A 5-byte message is over the limit: "message too big", 1009 (RFC 6455 §7.4.1).
    /// server.receive(&[0x82, 0x85, 0, 0, 0, 0, 1, 2, 3, 4, 5]);
    /// let err = server.next_event().unwrap_err();
    /// assert_eq!(err.close_code(), CloseCode::MESSAGE_TOO_BIG);
    /// let other = Connection::with_config(Role::Server, config); // the same Config
    /// assert_eq!(other.config().max_message_size, 4);
    /// ```
    pub fn with_config(role: Role, config: impl Into<Arc<Config>>) -> Self {
        Self::with_deflate(role, config, None)
    }

    /// A connection in the Open state with permessage-deflate as negotiated in the
    /// opening handshake (RFC 7692; see [`crate::deflate`]), or without it (`None`).
    /// Text and binary messages of at least the threshold are then sent compressed,
    /// and compressed messages are inflated, their inflated size counting against
    /// [`Config::max_message_size`].
    ///
    /// ```
    /// use rfc6455::deflate::{negotiate, DeflateConfig};
    /// use rfc6455::extensions::parse;
    /// use rfc6455::{Config, Connection, Event, Role};
    ///
    /// let offer = parse(&["permessage-deflate"]);
    /// let (agreed, _answer) = negotiate(&DeflateConfig::default(), &offer).unwrap();
    /// let mut server = Connection::with_deflate(Role::Server, Config::default(), Some(agreed));
    /// // RFC 7692 §7.2.3.1: "Hello" compressed, in one masked frame with RSV1 set.
    /// let payload = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
    /// let mut frame = vec![0xc1, 0x80 | 7, 0, 0, 0, 0];
    /// frame.extend_from_slice(&payload);
    /// server.receive(&frame);
    /// assert_eq!(server.next_event(), Ok(Some(Event::Text("Hello".into()))));
    /// ```
    pub fn with_deflate(
        role: Role,
        config: impl Into<Arc<Config>>,
        deflate: Option<Negotiated>,
    ) -> Self {
        let config = config.into();
        Connection {
            read: ReadSide::new(role, &config, deflate.as_ref()),
            write: WriteSide::new(role, deflate),
            closing: Closing::Open,
            heartbeat: Heartbeat::new(config.ping_interval, config.pong_timeout).map(Box::new),
            heard_from_peer: false,
            trace: Trace::new(config.trace),
            config,
        }
    }

    // ---- getters -----------------------------------------------------------------

    /// permessage-deflate as negotiated, if it was.
    ///
    /// ```
    /// use rfc6455::deflate::Negotiated;
    /// use rfc6455::{Config, Connection, Role};
    ///
    /// assert_eq!(Connection::new(Role::Server).deflate(), None);
    /// // What a bare `permessage-deflate` offer and answer agree (RFC 7692 §7.1).
    /// let agreed = Negotiated::default();
    /// let conn = Connection::with_deflate(Role::Server, Config::default(), Some(agreed));
    /// assert_eq!(conn.deflate(), Some(&agreed));
    /// ```
    pub fn deflate(&self) -> Option<&Negotiated> {
        self.write.negotiated()
    }

    /// This end's role.
    ///
    /// ```
    /// use rfc6455::{Connection, Role};
    ///
    /// // A driver asks, e.g. to know who closes the TCP connection first (RFC 6455 §7.1.1).
    /// let conn = Connection::new(Role::Client);
    /// assert_eq!(conn.role(), Role::Client);
    /// ```
    pub fn role(&self) -> Role {
        self.read.role()
    }

    /// The configuration.
    ///
    /// ```
    /// use rfc6455::{Config, Connection, Role};
    ///
    /// let config = Config { auto_pong: false, ..Config::default() };
    /// let conn = Connection::with_config(Role::Server, config);
    /// assert!(!conn.config().auto_pong); // pings are the application's to answer
    /// assert_eq!(conn.config().max_frame_size, 16 << 20);
    /// ```
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Where the closing handshake stands.
    ///
    /// ```
    /// use rfc6455::{Connection, Event, Role, State};
    ///
    /// let mut server = Connection::new(Role::Server);
    /// // The client closes first, with no status code (RFC 6455 §5.5.1).
    /// server.receive(&[0x88, 0x80, 0, 0, 0, 0]);
    /// assert_eq!(server.next_event(), Ok(Some(Event::Close(None))));
    /// // The reply is queued with the event: both Close frames are exchanged.
    /// assert_eq!(server.state(), State::Closed);
    /// assert_eq!(server.pending_output(), [0x88, 0x00]);
    /// ```
    pub fn state(&self) -> State {
        self.closing.state()
    }

    /// True once both Close frames are exchanged or the connection failed.
    ///
    /// ```
    /// use rfc6455::{Connection, Role};
    ///
    /// let mut client = Connection::new(Role::Client);
    /// // A masked frame from a server fails the connection (RFC 6455 §5.1).
    /// client.receive(&[0x81, 0x80, 0, 0, 0, 0]);
    /// assert!(client.next_event().is_err());
    /// assert!(client.is_closed()); // write the queued Close 1002, then drop the transport
    /// ```
    pub fn is_closed(&self) -> bool {
        self.closing.is_closed()
    }

    /// The number of received bytes not yet interpreted.
    ///
    /// ```
    /// use rfc6455::{Connection, Role};
    ///
    /// let mut server = Connection::new(Role::Server);
    /// // 3 bytes of a 6-byte masked header (RFC 6455 §5.2): not yet a frame.
    /// server.receive(&[0x81, 0x85, 0x37]);
    /// assert_eq!(server.next_event(), Ok(None));
    /// assert_eq!(server.buffered_input(), 3);
    /// ```
    pub fn buffered_input(&self) -> usize {
        self.read.buffered()
    }

    /// True when a data message may be sent now: no Close sent and no fragmented
    /// message unfinished. Drivers that queue pre-encoded frames next to this
    /// connection's output (e.g. a broadcast encoded once) ask this first.
    ///
    /// ```
    /// use rfc6455::{Connection, MessageKind, Role};
    ///
    /// let mut server = Connection::new(Role::Server);
    /// server.send_fragment(MessageKind::Text, b"Hel", false).unwrap();
    /// // Nothing may come between a message's fragments but control frames (RFC 6455 §5.4).
    /// assert!(!server.can_send_data());
    /// server.send_fragment(MessageKind::Text, b"lo", true).unwrap();
    /// assert!(server.can_send_data());
    /// ```
    pub fn can_send_data(&self) -> bool {
        self.closing.may_send() && !self.write.mid_message()
    }

    // ---- input -------------------------------------------------------------------

    /// Adds received bytes. Nothing is interpreted until [`next_event`](Self::next_event).
    /// Bytes received after the connection closed are discarded.
    ///
    /// Bytes that continue a data frame already being read (a frame larger than what
    /// arrived with its header) skip the input buffer: they are unmasked straight
    /// from `data` into the message, one pass instead of a copy and then a second.
    /// Where the caller already holds the bytes (a TLS session's plaintext, a test),
    /// `receive` is therefore cheaper for large frames than
    /// [`input_buffer`](Self::input_buffer), which suits a read from a socket.
    ///
    /// ```
    /// use rfc6455::{Connection, Event, Role};
    ///
    /// let mut client = Connection::new(Role::Client);
    /// // RFC 6455 §5.7: a fragmented unmasked text message, arriving one byte at a time.
    /// for byte in [0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f] {
    ///     client.receive(&[byte]);
    /// }
    /// assert_eq!(client.next_event(), Ok(Some(Event::Text("Hello".into()))));
    /// ```
    pub fn receive(&mut self, data: &[u8]) {
        if self.closing.is_closed() {
            return;
        }
        self.read.receive(data, &mut self.trace);
    }

    /// Space for at least `min` more received bytes, to read into directly; follow with
    /// [`commit_input`](Self::commit_input).
    ///
    /// ```
    /// use rfc6455::{Connection, Event, Role};
    ///
    /// let mut conn = Connection::new(Role::Client);
    /// let frame = [0x81, 0x02, b'h', b'i'];
    /// let space = conn.input_buffer(4096);
    /// space[..4].copy_from_slice(&frame); // e.g. `stream.read(space)`
    /// conn.commit_input(4);
    /// assert_eq!(conn.next_event(), Ok(Some(Event::Text("hi".into()))));
    /// ```
    pub fn input_buffer(&mut self, min: usize) -> &mut [u8] {
        self.read.input_buffer(min)
    }

    /// Marks `n` bytes written into [`input_buffer`](Self::input_buffer) as received.
    ///
    /// # Panics
    /// If `n` exceeds the space that `input_buffer` returned.
    ///
    /// ```
    /// use rfc6455::{Connection, Event, Role};
    ///
    /// let mut client = Connection::new(Role::Client);
    /// let space = client.input_buffer(16);
    /// space[..3].copy_from_slice(&[0x82, 0x01, 0xff]); // as if `stream.read(space)` gave 3
    /// client.commit_input(3);
    /// assert_eq!(client.buffered_input(), 3); // received, not yet interpreted
    /// assert_eq!(client.next_event(), Ok(Some(Event::Binary(vec![0xff]))));
    /// ```
    pub fn commit_input(&mut self, n: usize) {
        if !self.closing.is_closed() {
            self.read.commit(n);
        }
    }

    /// Frees the input and output buffers when they hold nothing and are larger than
    /// a few KiB, so that an idle connection keeps almost no memory. An event loop
    /// holding many connections calls it when one goes quiet. Returns how many bytes
    /// of buffer capacity it gave back (compression state not counted).
    ///
    /// ```
    /// use rfc6455::{Connection, Role};
    ///
    /// let mut conn = Connection::new(Role::Server);
    /// conn.input_buffer(64 * 1024);
    /// assert!(conn.release_idle_buffers() >= 64 * 1024);
    /// assert_eq!(conn.buffered_input(), 0);
    /// ```
    pub fn release_idle_buffers(&mut self) -> usize {
        const KEEP: usize = 4096;
        let before = self.read.capacity() + self.write.capacity();
        self.read.release_idle(KEEP);
        self.write.release_idle(KEEP);
        before.saturating_sub(self.read.capacity() + self.write.capacity())
    }

    /// The frames received and sent since the last call, when [`Config::trace`] is on.
    ///
    /// ```
    /// use rfc6455::{Config, Connection, OpCode, Role};
    ///
    /// let mut client = Connection::with_config(Role::Client, Config { trace: true, ..Config::default() });
    /// client.send_ping(b"").unwrap();
    /// let trace = client.take_trace();
    /// assert!(trace[0].outgoing);
    /// assert_eq!(trace[0].header.opcode, OpCode::Ping);
    /// assert!(trace[0].header.masking_key.is_some()); // a client masks (RFC 6455 §5.3)
    /// assert!(client.take_trace().is_empty()); // taken: the next call starts afresh
    /// ```
    pub fn take_trace(&mut self) -> Vec<TracedFrame> {
        self.trace.take()
    }

    // ---- events out --------------------------------------------------------------

    /// Interprets buffered bytes up to the next event, handed out owned.
    ///
    /// `Ok(None)`: more bytes are needed (or the connection is closed). `Err`: the peer
    /// broke the protocol; a Close frame with [`ProtocolError::close_code`] is queued
    /// (unless one was already sent), the connection is [`State::Closed`], and the
    /// transport should be closed once the output is written (RFC 6455 §7.1.7).
    ///
    /// Each message is copied out of the input buffer into its own allocation (a
    /// message assembled from pieces is moved, not copied). Where that matters,
    /// [`next_message`](Self::next_message) lends the payload instead.
    ///
    /// ```
    /// use rfc6455::{Connection, Event, ProtocolError, Role};
    ///
    /// let mut server = Connection::new(Role::Server);
    /// // RFC 6455 §5.7's masked "Hello", then an unmasked frame, which a server rejects (§5.1).
    /// server.receive(&[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58, 0x81, 0x00]);
    /// assert_eq!(server.next_event(), Ok(Some(Event::Text("Hello".into())))); // sent first, delivered first
    /// assert_eq!(server.next_event(), Err(ProtocolError::UnmaskedClientFrame));
    /// let close = server.pending_output(); // queued: FIN + Close, code 1002, the reason
    /// assert_eq!(close[0], 0x88);
    /// assert_eq!(close[2..4], [0x03, 0xea]);
    /// assert_eq!(server.next_event(), Ok(None)); // nothing more is read
    /// ```
    pub fn next_event(&mut self) -> Result<Option<Event>, ProtocolError> {
        let Some(ready) = self.next_ready()? else {
            return Ok(None);
        };
        let event = match ready {
            Ready::InInput(kind) => {
                let data = self.read.span();
                match kind {
                    MessageKind::Binary => Event::Binary(data.to_vec()),
                    // Checked when parsed; a `&str` again by simdutf8, faster than
                    // `String::from_utf8`.
                    MessageKind::Text => match simdutf8::basic::from_utf8(data) {
                        Ok(text) => Event::Text(text.to_owned()),
                        Err(_) => return Err(self.fail(ProtocolError::InvalidUtf8)),
                    },
                }
            }
            Ready::Assembled(kind) | Ready::Finished(kind) => {
                let mut data = Vec::new();
                self.read.swap_assembled(ready, &mut data);
                match kind {
                    MessageKind::Binary => Event::Binary(data),
                    // Checked piece by piece as it arrived (and complete): this
                    // cannot fail, but a String is only made by checking.
                    MessageKind::Text => match String::from_utf8(data) {
                        Ok(text) => Event::Text(text),
                        Err(_) => return Err(self.fail(ProtocolError::InvalidUtf8)),
                    },
                }
            }
            Ready::Ping => Event::Ping(self.read.span().to_vec()),
            Ready::Pong => Event::Pong(self.read.span().to_vec()),
            Ready::Close => Event::Close(self.read.take_close()),
        };
        Ok(Some(event))
    }

    /// Interprets buffered bytes up to the next event, lent: the payload stays in the
    /// connection's buffers — unmasked in place in the input buffer when the whole
    /// frame was at hand, else in a buffer reused from message to message — until the
    /// next call. Receiving then costs no allocation and, for a frame that arrived
    /// whole, no copy. Errors and `Ok(None)` as for [`next_event`](Self::next_event);
    /// both may be used on one connection.
    ///
    /// ```
    /// use rfc6455::{Connection, MessageRef, Role};
    ///
    /// let mut server = Connection::new(Role::Server);
    /// // RFC 6455 §5.7: a masked "Hello", then a masked ping.
    /// server.receive(&[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]);
    /// server.receive(&[0x89, 0x80, 1, 2, 3, 4]);
    /// assert_eq!(server.next_message(), Ok(Some(MessageRef::Text("Hello"))));
    /// assert_eq!(server.next_message(), Ok(Some(MessageRef::Ping(&[]))));
    /// assert_eq!(server.next_message(), Ok(None));
    /// ```
    #[inline]
    pub fn next_message(&mut self) -> Result<Option<MessageRef<'_>>, ProtocolError> {
        let Some(ready) = self.next_ready()? else {
            return Ok(None);
        };
        // Text was checked when it was parsed; it is made a `&str` by checking it
        // again (simdutf8, tens of GB/s on ASCII): safe Rust has no other way.
        let text =
            |bytes| simdutf8::basic::from_utf8(bytes).map_err(|_| ProtocolError::InvalidUtf8);
        Ok(Some(match ready {
            Ready::InInput(MessageKind::Binary) => MessageRef::Binary(self.read.span()),
            Ready::InInput(MessageKind::Text) => MessageRef::Text(text(self.read.span())?),
            Ready::Assembled(MessageKind::Binary) | Ready::Finished(MessageKind::Binary) => {
                MessageRef::Binary(self.read.assembled(ready))
            }
            Ready::Assembled(MessageKind::Text) | Ready::Finished(MessageKind::Text) => {
                MessageRef::Text(text(self.read.assembled(ready))?)
            }
            Ready::Ping => MessageRef::Ping(self.read.span()),
            Ready::Pong => MessageRef::Pong(self.read.span()),
            Ready::Close => MessageRef::Close(self.read.take_close()),
        }))
    }

    /// [`next_message`](Self::next_message), with the payload placed in the caller's
    /// `buf` (its contents replaced) rather than lent from the connection: what it
    /// returns borrows `buf` only, so a driver may hand the message on — text
    /// already a `&str`, checked no more — while it uses the connection again (to
    /// send the answer, say). A payload assembled from pieces is swapped in — no
    /// copy, and `buf`'s old memory becomes the connection's next assembly buffer;
    /// one that arrived whole is copied once, as is a Ping's or Pong's.
    ///
    /// ```
    /// use rfc6455::{Connection, MessageRef, Role};
    ///
    /// let mut client = Connection::new(Role::Client);
    /// let mut buf = Vec::new();
    /// client.receive(&[0x02, 0x01, 1, 0x80, 0x01, 2]); // binary in two fragments
    /// let message = client.next_message_into(&mut buf);
    /// client.send_binary(b"answered while the message is held").unwrap();
    /// assert_eq!(message, Ok(Some(MessageRef::Binary(&[1, 2]))));
    /// ```
    pub fn next_message_into<'b>(
        &mut self,
        buf: &'b mut Vec<u8>,
    ) -> Result<Option<MessageRef<'b>>, ProtocolError> {
        let Some(ready) = self.next_ready()? else {
            return Ok(None);
        };
        let kind = match ready {
            Ready::InInput(kind) => {
                buf.clear();
                buf.extend_from_slice(self.read.span());
                kind
            }
            Ready::Assembled(kind) | Ready::Finished(kind) => {
                self.read.swap_assembled(ready, buf);
                kind
            }
            Ready::Ping | Ready::Pong => {
                buf.clear();
                buf.extend_from_slice(self.read.span());
                let payload: &'b [u8] = buf;
                return Ok(Some(match ready {
                    Ready::Ping => MessageRef::Ping(payload),
                    _ => MessageRef::Pong(payload),
                }));
            }
            Ready::Close => return Ok(Some(MessageRef::Close(self.read.take_close()))),
        };
        let data: &'b [u8] = buf;
        Ok(Some(match kind {
            MessageKind::Binary => MessageRef::Binary(data),
            // Checked when parsed; a `&str` again as in `next_message`.
            MessageKind::Text => MessageRef::Text(
                simdutf8::basic::from_utf8(data).map_err(|_| ProtocolError::InvalidUtf8)?,
            ),
        }))
    }

    /// Parses up to the next event without handing it out: `Ok(true)` when the next
    /// [`next_event`](Self::next_event) or [`next_message`](Self::next_message) will
    /// return one at once. A driver that lends messages waits with it (its read loop
    /// cannot hold a lent message while it reads more), then flushes the replies, then
    /// takes the message. Errors as for `next_event`.
    ///
    /// ```
    /// use rfc6455::{Connection, MessageRef, Role};
    ///
    /// let mut client = Connection::new(Role::Client);
    /// client.receive(&[0x81, 0x02, b'h']);
    /// assert_eq!(client.poll_next(), Ok(false)); // half a frame
    /// client.receive(b"i");
    /// assert_eq!(client.poll_next(), Ok(true));
    /// client.receive(&[0x89, 0x00]); // more bytes may arrive meanwhile
    /// assert_eq!(client.next_message(), Ok(Some(MessageRef::Text("hi"))));
    /// ```
    pub fn poll_next(&mut self) -> Result<bool, ProtocolError> {
        match self.next_ready()? {
            Some(ready) => {
                self.read.put_back(ready);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    // ---- bytes out ---------------------------------------------------------------

    /// Bytes waiting to be written to the transport, in order.
    ///
    /// ```
    /// use rfc6455::{Connection, Role};
    ///
    /// let mut client = Connection::new(Role::Client);
    /// client.send_text("Hi").unwrap();
    /// let out = client.pending_output();
    /// // RFC 6455 §5.2: FIN + text, MASK + length 2, the 4-byte key, the masked payload.
    /// assert_eq!(out[..2], [0x81, 0x82]);
    /// assert_eq!(out.len(), 2 + 4 + 2);
    /// ```
    pub fn pending_output(&self) -> &[u8] {
        self.write.pending()
    }

    /// Marks the first `n` bytes of [`pending_output`](Self::pending_output) as written.
    ///
    /// # Panics
    /// If `n` exceeds the pending output.
    ///
    /// ```
    /// use rfc6455::{Connection, Role};
    ///
    /// let mut server = Connection::new(Role::Server);
    /// server.send_binary(&[1, 2, 3]).unwrap();
    /// // The transport took 2 of the 5 bytes: the rest waits, in order.
    /// server.consume_output(2);
    /// assert_eq!(server.pending_output(), [1, 2, 3]);
    /// server.consume_output(3);
    /// assert!(server.pending_output().is_empty());
    /// ```
    pub fn consume_output(&mut self, n: usize) {
        self.write.consume(n);
    }

    // ---- commands ----------------------------------------------------------------

    /// Sends a text message in one frame.
    ///
    /// ```
    /// use rfc6455::{Connection, Role};
    ///
    /// let mut server = Connection::new(Role::Server);
    /// server.send_text("€").unwrap();
    /// // The length counts UTF-8 bytes, not characters (RFC 6455 §5.2, §5.6).
    /// assert_eq!(server.pending_output(), [0x81, 0x03, 0xe2, 0x82, 0xac]);
    /// ```
    pub fn send_text(&mut self, text: &str) -> Result<(), SendError> {
        self.send_message(MessageKind::Text, text.as_bytes())
    }

    /// Sends a binary message in one frame.
    ///
    /// ```
    /// use rfc6455::{Connection, Role};
    ///
    /// let mut server = Connection::new(Role::Server);
    /// server.send_binary(&[0; 256]).unwrap();
    /// // RFC 6455 §5.7: a 256-byte binary message in a single unmasked frame (16-bit length).
    /// assert_eq!(server.pending_output()[..4], [0x82, 0x7e, 0x01, 0x00]);
    /// assert_eq!(server.pending_output().len(), 4 + 256);
    /// ```
    pub fn send_binary(&mut self, data: &[u8]) -> Result<(), SendError> {
        self.send_message(MessageKind::Binary, data)
    }

    /// Sends a whole message of `kind` in one frame, compressed when permessage-deflate
    /// is on and the message reaches its threshold. A text payload must be UTF-8: as
    /// with [`send_fragment`](Self::send_fragment), it is not checked again (use
    /// [`send_text`](Self::send_text) to have the type system check it).
    ///
    /// ```
    /// use rfc6455::{Connection, MessageKind, Role};
    ///
    /// let mut server = Connection::new(Role::Server);
    /// server.send_message(MessageKind::Binary, &[1, 2, 3]).unwrap();
    /// assert_eq!(server.pending_output(), [0x82, 0x03, 1, 2, 3]);
    /// ```
    pub fn send_message(&mut self, kind: MessageKind, payload: &[u8]) -> Result<(), SendError> {
        self.check_may_send()?;
        self.write.message(kind, payload, &mut self.trace)
    }

    /// Sends a whole message as prepared by the caller: `compressed` means the payload
    /// is already DEFLATE data as RFC 7692 §7.2.1 makes it (raw, sync-flushed, the
    /// `00 00 ff ff` tail removed), sent with RSV1; otherwise it goes uncompressed.
    ///
    /// A precompressed message lets many connections share one compressor (an event
    /// loop's), which is only correct when this end starts every message with an
    /// empty window: it needs permessage-deflate with
    /// [`Negotiated::local_no_context_takeover`](crate::deflate::Negotiated).
    ///
    /// ```
    /// use rfc6455::deflate::Negotiated;
    /// use rfc6455::{Config, Connection, MessageKind, Role, SendError};
    ///
    /// let agreed = Negotiated {
    ///     local_no_context_takeover: true,
    ///     remote_no_context_takeover: true,
    ///     local_max_window_bits: 15,
    ///     remote_max_window_bits: 15,
    ///     level: 6,
    ///     threshold: 64,
    /// };
    /// let mut server = Connection::with_deflate(Role::Server, Config::default(), Some(agreed));
    /// // RFC 7692 §7.2.3.1: "Hello", compressed elsewhere.
    /// let hello = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
    /// server.send_prepared(MessageKind::Text, &hello, true).unwrap();
    /// assert_eq!(server.pending_output()[..2], [0xc1, 0x07]);
    ///
    /// let mut plain = Connection::new(Role::Server);
    /// assert_eq!(plain.send_prepared(MessageKind::Text, &hello, true), Err(SendError::CompressionNotAgreed));
    /// ```
    pub fn send_prepared(
        &mut self,
        kind: MessageKind,
        payload: &[u8],
        compressed: bool,
    ) -> Result<(), SendError> {
        self.check_may_send()?;
        self.write
            .prepared(kind, payload, compressed, &mut self.trace)
    }

    /// Sends one fragment of a message (RFC 6455 §5.4): the first call gives the
    /// message's kind, later ones must repeat it, and `fin` ends the message. Control
    /// frames may be sent between fragments.
    ///
    /// ```
    /// use rfc6455::{Connection, MessageKind, Role};
    ///
    /// // RFC 6455 §5.7: a fragmented unmasked text message, "Hel" then "lo".
    /// let mut server = Connection::new(Role::Server);
    /// server.send_fragment(MessageKind::Text, b"Hel", false).unwrap();
    /// server.send_fragment(MessageKind::Text, b"lo", true).unwrap();
    /// assert_eq!(server.pending_output(), [0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f]);
    /// ```
    pub fn send_fragment(
        &mut self,
        kind: MessageKind,
        payload: &[u8],
        fin: bool,
    ) -> Result<(), SendError> {
        self.check_may_send()?;
        self.write.fragment(kind, payload, fin, &mut self.trace)
    }

    /// Sends a ping (RFC 6455 §5.5.2); the payload is at most 125 bytes.
    ///
    /// ```
    /// use rfc6455::{Connection, Role, SendError};
    ///
    /// let mut server = Connection::new(Role::Server);
    /// server.send_ping(b"Hello").unwrap();
    /// // RFC 6455 §5.7: an unmasked Ping carrying "Hello".
    /// assert_eq!(server.pending_output(), [0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
    /// assert_eq!(server.send_ping(&[0; 126]), Err(SendError::ControlPayloadTooLong(126)));
    /// ```
    pub fn send_ping(&mut self, payload: &[u8]) -> Result<(), SendError> {
        self.check_may_send()?;
        self.write.control(OpCode::Ping, payload, &mut self.trace)
    }

    /// Sends a pong (RFC 6455 §5.5.3): as a reply when `auto_pong` is off, or
    /// unsolicited, as a one-way heartbeat.
    ///
    /// ```
    /// use rfc6455::{Config, Connection, Event, Role};
    ///
    /// let config = Config { auto_pong: false, ..Config::default() };
    /// let mut server = Connection::with_config(Role::Server, config);
    /// server.receive(&[0x89, 0x82, 0, 0, 0, 0, b'h', b'i']); // a client's ping "hi"
    /// let Ok(Some(Event::Ping(payload))) = server.next_event() else { panic!() };
    /// assert!(server.pending_output().is_empty()); // no automatic reply
    /// // RFC 6455 §5.5.3: the Pong carries the Ping's payload.
    /// server.send_pong(&payload).unwrap();
    /// assert_eq!(server.pending_output(), [0x8a, 0x02, b'h', b'i']);
    /// ```
    pub fn send_pong(&mut self, payload: &[u8]) -> Result<(), SendError> {
        self.check_may_send()?;
        self.write.control(OpCode::Pong, payload, &mut self.trace)
    }

    /// Starts the closing handshake (RFC 6455 §7.1.2): sends a Close with `code` and
    /// `reason` (at most 123 bytes). The connection keeps receiving until the peer's
    /// Close arrives.
    ///
    /// ```
    /// use rfc6455::{CloseCode, Connection, Role, SendError, State};
    ///
    /// let mut server = Connection::new(Role::Server);
    /// server.close(CloseCode::NORMAL, "bye").unwrap();
    /// // RFC 6455 §5.5.1: the code in network byte order, then the UTF-8 reason.
    /// assert_eq!(server.pending_output(), [0x88, 0x05, 0x03, 0xe8, b'b', b'y', b'e']);
    /// assert_eq!(server.state(), State::Closing);
    /// // 1006 is only reported locally, never sent (§7.4.1).
    /// let err = Connection::new(Role::Server).close(CloseCode::ABNORMAL_CLOSURE, "");
    /// assert_eq!(err, Err(SendError::InvalidCloseCode(1006)));
    /// ```
    pub fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), SendError> {
        self.check_may_send()?;
        if !code.is_valid_on_wire() {
            return Err(SendError::InvalidCloseCode(code.0));
        }
        if reason.len() > MAX_CLOSE_REASON {
            return Err(SendError::ControlPayloadTooLong(2 + reason.len()));
        }
        self.write.close(code, reason, &mut self.trace);
        self.closing = Closing::Sent {
            timeout: Deadline::after(self.config.close_timeout),
        };
        // No heartbeat during the closing handshake: the close timeout bounds it.
        self.heartbeat = None;
        Ok(())
    }

    // ---- time --------------------------------------------------------------------

    /// When the connection next needs [`handle_timeout`](Self::handle_timeout): the
    /// earliest of the next heartbeat Ping, the deadline for its Pong, and the close
    /// timeout; `None` when no timer runs.
    ///
    /// The core has no clock, so `now` is the driver's: a timer started by a call
    /// that knows no time (a Close sent by [`close`](Self::close)) counts from the
    /// first `poll_timeout` or `handle_timeout` after it — call this after every
    /// turn that may have sent something.
    ///
    /// ```
    /// use rfc6455::{CloseCode, Config, Connection, Role, State};
    /// use std::time::{Duration, Instant};
    ///
    /// let config = Config { close_timeout: Some(Duration::from_secs(5)), ..Config::default() };
    /// let mut server = Connection::with_config(Role::Server, config);
    /// let t0 = Instant::now(); // a fake clock would do as well: no time passes here
    /// assert_eq!(server.poll_timeout(t0), None); // no heartbeat configured
    /// server.close(CloseCode::NORMAL, "").unwrap();
    /// // RFC 6455 §7.1.1: the peer's Close is awaited, but not for ever.
    /// assert_eq!(server.poll_timeout(t0), Some(t0 + Duration::from_secs(5)));
    /// server.handle_timeout(t0 + Duration::from_secs(5));
    /// assert_eq!(server.state(), State::Closed); // drop the transport
    /// assert_eq!(server.poll_timeout(t0), None);
    /// ```
    pub fn poll_timeout(&mut self, now: Instant) -> Option<Instant> {
        self.fix_deadlines(now);
        let closing = match self.closing {
            Closing::Sent { timeout } => timeout.at(),
            _ => None,
        };
        timers::earliest(closing, self.heartbeat.as_ref().and_then(|h| h.next()))
    }

    /// Does what is due at `now`: past the close timeout the connection is
    /// [`State::Closed`] (the driver drops the transport); past the Pong deadline it
    /// sends Close 1008 "ping timeout"; at the heartbeat interval it sends a Ping. Then
    /// write [`pending_output`](Self::pending_output) and ask
    /// [`poll_timeout`](Self::poll_timeout) again. Calling it early does nothing.
    ///
    /// ```
    /// use rfc6455::{Config, Connection, Event, Role, State};
    /// use std::time::{Duration, Instant};
    ///
    /// let second = Duration::from_secs(1);
    /// let config = Config { ping_interval: Some(10 * second), pong_timeout: 3 * second, ..Config::default() };
    /// let mut server = Connection::with_config(Role::Server, config);
    /// let t0 = Instant::now();
    /// assert_eq!(server.poll_timeout(t0), Some(t0 + 10 * second));
    /// server.handle_timeout(t0 + 10 * second);
    /// assert_eq!(server.pending_output(), [0x89, 0x00]); // RFC 6455 §5.5.2: a Ping
    /// server.consume_output(2);
    /// assert_eq!(server.poll_timeout(t0), Some(t0 + 13 * second)); // its Pong is due
    /// // No Pong in 3 s: the peer is gone. Close 1008 (§7.4.1), "ping timeout".
    /// server.handle_timeout(t0 + 13 * second);
    /// assert_eq!(server.state(), State::Closing);
    /// assert_eq!(server.pending_output()[2..4], [0x03, 0xf0]);
    /// ```
    pub fn handle_timeout(&mut self, now: Instant) {
        self.fix_deadlines(now);
        if let Closing::Sent { timeout } = self.closing {
            if timeout.passed(now) {
                self.closing = Closing::Closed;
                self.read.finish();
            }
            return;
        }
        let Some(heartbeat) = self.heartbeat.as_mut() else {
            return;
        };
        match heartbeat.check(now) {
            Beat::Quiet => {}
            Beat::Ping => {
                if self.closing.may_send() {
                    heartbeat.pinged(now);
                    let _ = self.write.control(OpCode::Ping, &[], &mut self.trace);
                }
            }
            Beat::PongOverdue => {
                let _ = self.close(CloseCode::POLICY_VIOLATION, "ping timeout");
                self.fix_deadlines(now);
            }
        }
    }

    /// Sets the close timeout (see [`Config::close_timeout`]) from now on; a closing
    /// handshake under way restarts its wait with it at the next call that tells the
    /// time.
    ///
    /// ```
    /// use rfc6455::{CloseCode, Connection, Role};
    /// use std::time::{Duration, Instant};
    ///
    /// let mut client = Connection::new(Role::Client);
    /// client.set_close_timeout(None); // wait for the server's Close as long as it takes
    /// client.close(CloseCode::NORMAL, "").unwrap();
    /// assert_eq!(client.poll_timeout(Instant::now()), None);
    /// assert_eq!(client.config().close_timeout, None);
    /// ```
    pub fn set_close_timeout(&mut self, timeout: Option<Duration>) {
        Arc::make_mut(&mut self.config).close_timeout = timeout;
        if let Closing::Sent { .. } = self.closing {
            self.closing = Closing::Sent {
                timeout: Deadline::after(timeout),
            };
        }
    }

    fn fix_deadlines(&mut self, now: Instant) {
        if let Closing::Sent { timeout } = &mut self.closing {
            timeout.fix(now);
        }
        if let Some(heartbeat) = &mut self.heartbeat {
            if std::mem::take(&mut self.heard_from_peer) {
                heartbeat.heard_from_peer();
            }
            heartbeat.fix(now);
        }
    }

    // ---- where the two sides meet ------------------------------------------------

    /// Parses up to the next event and does what a control frame asks of the send
    /// path; fails the connection on a protocol error.
    #[inline]
    fn next_ready(&mut self) -> Result<Option<Ready>, ProtocolError> {
        if let Some(ready) = self.read.take_ready() {
            return Ok(Some(ready));
        }
        if self.closing.is_closed() {
            return Ok(None);
        }
        match self.read.parse(&mut self.trace) {
            Ok(Some(ready)) => {
                self.heard_from_peer = true;
                if matches!(ready, Ready::Ping | Ready::Pong | Ready::Close) {
                    self.on_control(ready);
                }
                Ok(Some(ready))
            }
            Ok(None) => Ok(None),
            Err(err) => Err(self.fail(err)),
        }
    }

    /// A control frame, just parsed: a Ping is answered (RFC 6455 §5.5.2), a Close is
    /// echoed if this end has not sent one (§5.5.1) and ends the reading.
    #[cold]
    fn on_control(&mut self, ready: Ready) {
        match ready {
            Ready::Ping if self.config.auto_pong && self.closing.may_send() => {
                self.write.answer_ping(self.read.span(), &mut self.trace);
            }
            Ready::Close => {
                if self.closing.may_send() {
                    let code = self.read.peek_close_code();
                    self.write.echo_close(code, &mut self.trace);
                }
                self.end();
            }
            _ => {}
        }
    }

    /// Fails the connection (RFC 6455 §7.1.7): queue a Close with the error's code unless
    /// one was sent, and stop reading.
    fn fail(&mut self, err: ProtocolError) -> ProtocolError {
        if self.closing.may_send() {
            let reason = err.to_string();
            let reason = truncate_utf8(&reason, MAX_CLOSE_REASON);
            self.write.close(err.close_code(), reason, &mut self.trace);
        }
        self.end();
        err
    }

    /// Enters Closed: everything received from now on is ignored.
    fn end(&mut self) {
        self.closing = Closing::Closed;
        self.heartbeat = None;
        self.read.finish();
    }

    fn check_may_send(&self) -> Result<(), SendError> {
        if self.closing.may_send() {
            Ok(())
        } else {
            Err(SendError::Closing)
        }
    }
}
