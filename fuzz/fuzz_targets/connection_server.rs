//! A server-role connection after a valid handshake, fed arbitrary bytes in arbitrary
//! chunk sizes. Input layout: byte 0 = how many chunk-size bytes follow (mod 8), then
//! those bytes, then the stream. The invariants (well-formed output masked iff client,
//! nothing after our Close, at most one Close, legal close codes, bounded buffering
//! and message sizes) are in `tests/support/invariants.rs`, shared with proptest.
#![no_main]

#[path = "../../tests/support/invariants.rs"]
mod invariants;

use libfuzzer_sys::fuzz_target;
use rfc6455::handshake::server::Request;
use rfc6455::handshake::HeadReader;
use rfc6455::{Config, Role};

const REQUEST: &[u8] = b"GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

fuzz_target!(|data: &[u8]| {
    let (chunks, stream) = invariants::split_input(data);
    // The frames may arrive in the same read as the request head.
    let mut head = HeadReader::new(16 * 1024);
    let mut first = REQUEST.to_vec();
    first.extend_from_slice(stream);
    let head_len = head.push(&first).unwrap().unwrap();
    Request::parse(&head.buffer()[..head_len]).unwrap();
    let rest = head.take_rest();
    let config = Config {
        max_frame_size: 4096,
        max_message_size: 16 * 1024,
        ..Config::default()
    };
    invariants::drive(Role::Server, &config, &rest, &chunks);
});
