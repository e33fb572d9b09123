//! # A guided tour of the WebSocket wire protocol
//!
//! Seven stops, from the HTTP request that opens a connection to the frame that closes it,
//! and then a real browser's conversation on the wire.
//! Each one names the section of [RFC 6455] it follows and gives a command to try it:
//! `cargo run -- decode|encode|accept ...` runs the learning tools of the `rfc6455` binary,
//! and `cargo run --example ...` runs the crate's examples.
//!
//! [RFC 6455]: https://www.rfc-editor.org/rfc/rfc6455
//!
//! ## 1. The opening handshake (§4)
//!
//! A WebSocket starts as an HTTP/1.1 `GET` that asks to switch protocols:
//!
//! ```text
//! GET /chat HTTP/1.1
//! Host: server.example.com
//! Upgrade: websocket
//! Connection: Upgrade
//! Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==
//! Sec-WebSocket-Version: 13
//! ```
//!
//! The key is 16 random bytes in base64. The server proves it understood the request —
//! that it is not an HTTP server fooled into answering — by hashing the key with a fixed
//! GUID and returning the result in `101 Switching Protocols`:
//!
//! ```text
//! $ cargo run -- accept dGhlIHNhbXBsZSBub25jZQ==
//! RFC 6455 §4.2.2: Sec-WebSocket-Accept = base64(SHA-1(key + GUID))
//! 1. key:          dGhlIHNhbXBsZSBub25jZQ==
//! 2. + GUID:       dGhlIHNhbXBsZSBub25jZQ==258EAFA5-E914-47DA-95CA-C5AB0DC85B11
//! 3. SHA-1:        b3 7a 4f 2c c0 62 4f 16 90 f6 46 06 cf 38 59 45 b2 be c4 ea
//! 4. base64:       s3pPLMBiTxaQ9kYGzzhZRbK+xOo=
//! Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=
//! ```
//!
//! In code: [`handshake::server::Request::parse`](crate::handshake::server::Request::parse)
//! validates a request and [`accept`](crate::handshake::server::Request::accept) writes
//! the 101; the client checks it with
//! [`ClientHandshake::validate`](crate::handshake::client::ClientHandshake::validate).
//! After the blank line that ends the 101, the same TCP connection carries frames.
//!
//! ```
//! use rfc6455::handshake::server::Request;
//!
//! let request = Request::parse(b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\n\
//!     Upgrade: websocket\r\nConnection: Upgrade\r\n\
//!     Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").unwrap();
//! let response = String::from_utf8(request.accept(None)).unwrap();
//! assert!(response.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
//! ```
//!
//! ## 2. A frame, bit by bit (§5.2)
//!
//! Every message travels in frames. The smallest header is two bytes:
//!
//! ```text
//!  0                   1
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5
//! +-+-+-+-+-------+-+-------------+
//! |F|R|R|R| opcode|M| Payload len |   then: 0, 2 or 8 bytes of extended length,
//! |I|S|S|S|  (4)  |A|     (7)     |         4 bytes of masking key if MASK=1,
//! |N|V|V|V|       |S|             |         and the payload.
//! | |1|2|3|       |K|             |
//! +-+-+-+-+-------+-+-------------+
//! ```
//!
//! ```text
//! $ cargo run -- decode 81 05 48 65 6c 6c 6f
//! frame 1 at byte 0:
//!   81  10000001  FIN=1 RSV1=0 RSV2=0 RSV3=0 opcode=0x1 text
//!   05  00000101  MASK=0 payload length 5 (7-bit length)
//!   a whole message, 5 payload bytes
//!   unmasked: "Hello"
//! 7 bytes, 1 frame, 0 violations
//! ```
//!
//! FIN says this frame ends a message. RSV1–3 are for extensions and must be 0 unless
//! one was negotiated (permessage-deflate uses RSV1). The opcode says what the payload
//! is: 0x1 text, 0x2 binary, 0x0 continuation; 0x8 close, 0x9 ping, 0xA pong; the rest
//! are reserved. The length takes 7 bits up to 125; 126 means "the next 2 bytes hold it",
//! 127 "the next 8". The shortest form must be used:
//!
//! ```text
//! $ cargo run -- encode --binary "$(printf '00%.0s' $(seq 256))"   # 82 7e 01 00 ...
//! $ cargo run -- decode 82 7e 00 05                                # ✗ not minimal
//! ```
//!
//! In code: [`FrameHeader::parse`](crate::frame::FrameHeader::parse) and
//! [`FrameHeader::encode`](crate::frame::FrameHeader::encode).
//!
//! ## 3. Masking, and why (§5.3, §10.3)
//!
//! Every frame from a client is masked: XORed with a 4-byte key chosen at random for
//! that frame and sent in the header. Frames from a server are not. Masking is not
//! encryption — the key is right there. It exists because of proxies: if a script could
//! choose the exact bytes a browser sends, it could write something that an old,
//! confused intermediary mistakes for an HTTP request and caches (the attack of §10.3).
//! With a fresh unpredictable key per frame, the script no longer controls the bytes
//! on the wire. A server must close a connection that sends it an unmasked frame, and a
//! client one that sends it a masked frame.
//!
//! ```text
//! $ cargo run -- encode --text Hello --mask 37fa213d
//! 81 85 37 fa 21 3d 7f 9f 4d 51 58
//! ...
//!   37 fa 21 3d  masking key
//!   payload, masked: 7f 9f 4d 51 58
//!   unmasked: "Hello"
//! ```
//!
//! Byte *i* of the payload is XORed with byte *i* mod 4 of the key;
//! [`apply_mask`](crate::mask::apply_mask) does it a machine word at a time and carries
//! the key's phase across reads.
//!
//! ## 4. Fragmentation (§5.4)
//!
//! A message may be split into frames: the first carries the opcode (text or binary) and
//! FIN=0, the following ones opcode 0x0 (continuation), and the last FIN=1. A sender
//! that does not know a message's length up front can stream it this way.
//!
//! ```text
//! $ cargo run -- encode --text Hello --fragment 3
//! 01 03 48 65 6c 80 02 6c 6f
//! ```
//!
//! Text must be valid UTF-8 as a whole, but a fragment may end in the middle of a
//! character, so the check runs across fragments:
//! [`Utf8Validator`](crate::utf8::Utf8Validator) fails at the first byte that cannot
//! be part of valid text (§8.1), without waiting for the end of the message.
//!
//! ## 5. Control frames: ping and pong (§5.5)
//!
//! Close, ping and pong are control frames: at most 125 bytes of payload and never
//! fragmented, so they can be slipped between the fragments of a long message. A ping
//! asks for a pong with the same payload; an unsolicited pong is a one-way heartbeat.
//!
//! ```text
//! $ cargo run -- decode 01 03 48 65 6c 89 00 80 02 6c 6f    # a ping between two fragments
//! $ cargo run -- decode 89 7e 00 7e                         # ✗ control frame over 125 bytes
//! ```
//!
//! A [`Connection`](crate::Connection) answers pings by itself unless
//! [`Config::auto_pong`](crate::Config::auto_pong) is off.
//!
//! ## 6. Closing (§5.5.1, §7)
//!
//! Either side sends a Close frame: empty, or a 2-byte status code and a UTF-8 reason.
//! The other side answers with a Close (echoing the code), and then the server closes
//! the TCP connection — the server first, so that it, not the client, holds the
//! TIME_WAIT state (§7.1.1). After sending a Close, an endpoint sends no more data.
//!
//! ```text
//! $ cargo run -- encode --close 1000 --reason bye
//! 88 05 03 e8 62 79 65
//! ...
//!   close code 1000 (normal closure)
//!   reason "bye"
//! $ cargo run -- decode 88 02 03 ed                         # ✗ 1005 is never sent
//! ```
//!
//! When a peer breaks a rule, the connection is failed (§7.1.7) with a Close whose code
//! says why: 1002 for a protocol error, 1007 for invalid UTF-8, 1009 for a message over
//! the limit. [`ProtocolError::close_code`](crate::ProtocolError::close_code) picks it.
//!
//! ## 7. A real browser on the wire: `rfc6455 tap`
//!
//! Devtools show a browser's messages, not its frames. The tap sits between the browser
//! and the server, relays every byte as it is, and prints each frame as it passes:
//!
//! ```text
//! $ cargo run --release -- serve                                                  # terminal 1
//! $ cargo run --release -- tap --listen 127.0.0.1:9000 --upstream ws://127.0.0.1:9001  # terminal 2
//! ```
//!
//! Open `http://127.0.0.1:9000/` in Chromium (the page itself comes through the tap),
//! say hello, join a room, close the tab. What crossed (captured 2026-11-24, abridged):
//!
//! ```text
//! #3           Sec-WebSocket-Key: BcbjfDAreOu1OEjCB7IxYA==
//! #3           Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits
//! #3 +0.001s ← response head, 231 bytes
//! #3           HTTP/1.1 101 Switching Protocols
//! ...
//! #3           ✓ Sec-WebSocket-Accept = base64(SHA-1(key + GUID)) (RFC 6455 §4.2.2)
//! #3           · permessage-deflate agreed: messages with RSV1 are shown inflated (RFC 7692)
//! #3 +0.002s → FIN=1 text (0x1) len=37 (7-bit) RSV=100 mask=42e9409b deflate: message 37 -> 38 bytes "{\"type\":\"hello\",\"name\":\"alice\",\"id\":1}"
//! #3 +0.003s ← FIN=1 text (0x1) len=36 (7-bit) unmasked "{\"id\":1,\"name\":\"alice\",\"type\":\"ack\"}"
//! #3 +0.018s → FIN=1 text (0x1) len=37 (7-bit) RSV=100 mask=391c51ef deflate: message 37 -> 37 bytes "{\"type\":\"join\",\"room\":\"lobby\",\"id\":2}"
//! ...
//! #3 +2.237s → FIN=1 close (0x8) len=2 (7-bit) mask=e1a0d0f0 code=1001 (going away)
//! #3 +2.238s ← FIN=1 close (0x8) len=2 (7-bit) unmasked code=1001 (going away)
//! ```
//!
//! Everything of the six stops is there: the key and its accept value (stop 1); a fresh
//! masking key on every frame from the browser and none from the server (stop 3); RSV1
//! set by the extension the two agreed on, each message inflated from what was sent
//! (RFC 7692); and Close 1001 "going away" when the tab goes (stop 6), answered with the
//! same code. Chromium sends its FIN right after its Close, without waiting for the
//! answer: the server answers on the half-closed connection all the same.
//!
//! A violation is printed under its frame with its section and still relayed, so the
//! tap also shows how a server reacts to one:
//!
//! ```text
//! #1 +0.000s → FIN=1 text (0x1) len=2 (7-bit) unmasked "hi"
//! #1           ✗ unmasked frame from a client (RFC 6455 §5.1)
//! #1 +0.001s ← FIN=1 close (0x8) len=47 (7-bit) unmasked code=1002 (protocol error) "unmasked frame from a client (RFC 6455 §5.1)"
//! ```
//!
//! The same reader is a library type, [`FrameTap`](crate::learn::tap::FrameTap).
//!
//! ## All together
//!
//! ```text
//! $ cargo run --release -- echo --addr 127.0.0.1:9001 --trace     # terminal 1
//! $ cargo run --release -- client ws://127.0.0.1:9001/ --trace    # terminal 2: type lines
//! ```
//!
//! The same conversation, sans I/O: a client connection's output is a server
//! connection's input.
//!
//! ```
//! use rfc6455::{CloseCode, Connection, Event, Role};
//!
//! let mut client = Connection::new(Role::Client);
//! let mut server = Connection::new(Role::Server);
//! client.send_text("Hello").unwrap();
//! client.close(CloseCode::NORMAL, "bye").unwrap();
//! server.receive(client.pending_output());
//! assert_eq!(server.next_event(), Ok(Some(Event::Text("Hello".into()))));
//! assert!(matches!(server.next_event(), Ok(Some(Event::Close(Some(_))))));
//! // The server echoed the Close: the handshake is complete on its side.
//! client.receive(server.pending_output());
//! assert!(matches!(client.next_event(), Ok(Some(Event::Close(Some(_))))));
//! assert!(client.is_closed() && server.is_closed());
//! ```
