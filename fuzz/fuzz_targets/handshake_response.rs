//! Arbitrary bytes as the server's response (RFC 6455 §4.1): the client's validator
//! never panics, and accepts only a 101 that carries the right Sec-WebSocket-Accept.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rfc6455::handshake::client::{ClientHandshake, WsUrl};

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &[u8] = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

fuzz_target!(|data: &[u8]| {
    let url = WsUrl::parse("ws://example.com/chat").unwrap();
    let (client, _) = ClientHandshake::with_key(KEY.into(), &url, &["chat", "superchat"], &[]);
    if let Ok(accepted) = client.validate(data) {
        // httparse skips empty lines before the status line (RFC 9112 §2.2 robustness).
        let start = data
            .iter()
            .position(|b| !matches!(b, b'\r' | b'\n'))
            .unwrap();
        let status_line = &data[start..];
        assert!(
            status_line.starts_with(b"HTTP/1.1 101") || status_line.starts_with(b"HTTP/1.0 101")
        );
        assert!(data.windows(ACCEPT.len()).any(|w| w == ACCEPT));
        if let Some(p) = accepted.protocol {
            assert!(p == "chat" || p == "superchat");
        }
    }
});
