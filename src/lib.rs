//! A sans-IO implementation of the WebSocket protocol, [RFC 6455], with blocking
//! drivers on top.
//!
//! The crate is layered the way the RFC is. Each layer only uses the ones below it:
//!
//! ```text
//!   server::{Server, Handler}          mio event loop (feature `server`): timers, heartbeats,
//!   server::rooms                      backpressure, limits, shutdown; rooms and broadcasts
//!   blocking::{connect, accept}        blocking drivers: a stream per thread
//!   ─────────────────────────────────────────────────────────────────────────  sans-IO below
//!   handshake::{server, client}        §4   HTTP Upgrade request / 101 response
//!   extensions                         §9.1 the Sec-WebSocket-Extensions header
//!   deflate                            RFC 7692 permessage-deflate: negotiation, codec
//!   Connection                         §5–§7 bytes in → events out, sends → bytes out
//!     ├─ frame   FrameHeader, OpCode   §5.2 the header bits
//!     ├─ mask    apply_mask            §5.3 client-to-server masking
//!     ├─ utf8    Utf8Validator         §8.1 fail-fast incremental UTF-8
//!     └─ close   CloseCode, CloseFrame §5.5.1, §7.4 close payloads and codes
//!   inspect                            annotated frame reports (`rfc6455 decode`)
//! ```
//!
//! New to the protocol? The [`guide`] is a tour of the wire format, step by step.
//!
//! The core never touches a socket, a thread or a clock: feed it bytes, take events and
//! bytes to write. That makes it easy to drive from any event loop and to test and fuzz
//! byte by byte.
//!
//! ```
//! use rfc6455::{CloseCode, Connection, Event, Role};
//!
//! let mut server = Connection::new(Role::Server);
//! // A masked "Hello" from a client (RFC 6455 §5.7), arriving in two reads.
//! server.receive(&[0x81, 0x85, 0x37, 0xfa, 0x21]);
//! assert_eq!(server.next_event(), Ok(None));
//! server.receive(&[0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]);
//! assert_eq!(server.next_event(), Ok(Some(Event::Text("Hello".into()))));
//!
//! // A frame with a reserved opcode fails the connection with 1002.
//! server.receive(&[0x83, 0x80, 0, 0, 0, 0]);
//! let err = server.next_event().unwrap_err();
//! assert_eq!(err.close_code(), CloseCode::PROTOCOL_ERROR);
//! let close = server.pending_output();
//! assert_eq!(close[0], 0x88); // FIN + Close
//! assert_eq!(close[2..4], [0x03, 0xea]); // status code 1002, then the reason
//! ```
//!
//! [RFC 6455]: https://www.rfc-editor.org/rfc/rfc6455

// Safe Rust, but for one line that a benchmark pays for: `mask::extend_unmasked`.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod blocking;
pub mod close;
pub mod connection;
pub mod deflate;
pub mod error;
pub mod extensions;
pub mod frame;
pub mod guide;
pub mod handshake;
pub mod inspect;
pub mod mask;
mod random;
#[cfg(feature = "server")]
pub mod server;
pub mod tap;
#[cfg(feature = "tls")]
pub mod tls;
pub mod utf8;

pub use close::{CloseCode, CloseFrame};
pub use connection::{
    Config, Connection, Event, MessageKind, MessageRef, Role, State, TracedFrame,
};
pub use error::{ProtocolError, SendError};
pub use frame::OpCode;
pub use handshake::accept_key;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
