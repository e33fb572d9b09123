//! A client-role connection after a valid handshake, fed arbitrary bytes in arbitrary
//! chunk sizes; the same input layout and invariants as `connection_server`.
#![no_main]

#[path = "../../tests/support/invariants.rs"]
mod invariants;

use libfuzzer_sys::fuzz_target;
use rfc6455::handshake::client::{ClientHandshake, WsUrl};
use rfc6455::handshake::HeadReader;
use rfc6455::{Config, Role};

const RESPONSE: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";

fuzz_target!(|data: &[u8]| {
    let (chunks, stream) = invariants::split_input(data);
    let url = WsUrl::parse("ws://example.com/chat").unwrap();
    let (client, _) = ClientHandshake::with_key("dGhlIHNhbXBsZSBub25jZQ==".into(), &url, &[], &[]);
    // The server's first frames may arrive in the same read as its 101.
    let mut head = HeadReader::new(16 * 1024);
    let mut first = RESPONSE.to_vec();
    first.extend_from_slice(stream);
    let head_len = head.push(&first).unwrap().unwrap();
    client.validate(&head.buffer()[..head_len]).unwrap();
    let rest = head.take_rest();
    let config = Config {
        max_frame_size: 4096,
        max_message_size: 16 * 1024,
        ..Config::default()
    };
    invariants::drive(Role::Client, &config, &rest, &chunks);
});
