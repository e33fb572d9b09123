//! For people learning the wire protocol: not needed to speak WebSocket, there to see it.
//!
//! - [`guide`]: a tour of the wire format in seven stops, from the opening handshake to
//!   the closing one, each with the RFC section it follows and a command to try.
//! - [`inspect`]: bytes in, a bit-by-bit account of every frame out, with every rule the
//!   bytes break (what `rfc6455 decode` prints).
//! - [`tap`]: one direction of a live conversation read frame by frame as it passes, in
//!   bounded memory (what `rfc6455 tap` prints).
//!
//! ```
//! // A masked "Hello" from a client (RFC 6455 §5.7), explained.
//! let bytes = rfc6455::learn::inspect::parse_hex("81 85 37 fa 21 3d 7f 9f 4d 51 58").unwrap();
//! let report = rfc6455::learn::inspect::inspect(&bytes, None);
//! assert!(report.contains("37 fa 21 3d  masking key"));
//! assert!(report.contains("unmasked: \"Hello\""));
//! ```

pub mod guide;
pub mod inspect;
mod stream;
pub mod tap;
