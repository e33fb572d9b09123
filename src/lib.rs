//! A sans-IO implementation of the WebSocket protocol, [RFC 6455], with blocking
//! drivers on top.
//!
//! One way in for each task:
//!
//! - **connect** (a client): [`blocking::connect`], `ws://` and, with the `tls` feature,
//!   `wss://`;
//! - **accept** (a blocking server, a thread per connection): [`blocking::accept`];
//! - **serve** (an event loop, many connections per thread): `server::Server` with a
//!   `server::Handler` (feature `server`, on by default);
//! - **your own I/O**: the sans-IO [`Connection`], with [`handshake`] for the opening
//!   handshake — under your own mio loop, tokio or hyper (see `examples/`).
//!
//! Each layer uses only the ones below it; the README's "Layers" section is the map of
//! the files. New to the protocol? [`learn::guide`] is a tour of the wire format, step by
//! step.
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

// Safe Rust, but for two small blocks allowed where they stand: `mask::extend_unmasked`
// (a benchmark pays for it) and `server::trim` (glibc's malloc_trim).
#![deny(unsafe_code)]
#![deny(missing_docs)]
// docs.rs (and `RUSTDOCFLAGS="--cfg docsrs" cargo +nightly doc`): which feature an item needs.
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod blocking;
mod close;
mod connection;
pub mod deflate;
mod error;
pub mod extensions;
pub mod frame;
pub mod handshake;
pub mod learn;
pub mod mask;
mod random;
pub mod rules;
#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "tls")]
pub mod tls;
pub mod utf8;

pub use close::{CloseCode, CloseFrame, CloseFrameError, MAX_CLOSE_REASON};
pub use connection::{Config, Connection, Event, MessageKind, MessageRef, State, TracedFrame};
pub use error::{ProtocolError, SendError};
pub use frame::{OpCode, Role};
pub use handshake::accept_key;

/// The README's examples, compiled and run as doctests (one is the event loop's).
#[cfg(all(doctest, feature = "server"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// The examples of docs/library.md, compiled and run as doctests (they use `tls` and
/// `http`).
#[cfg(all(doctest, feature = "tls", feature = "http"))]
#[doc = include_str!("../docs/library.md")]
pub struct LibraryDoctests;
