//! Input that breaks the protocol, shared by the tests that send it over plain TCP
//! (`e2e.rs`) and inside TLS (`tls.rs`).

/// Frames a client must not send, each after a valid opening handshake, with the close
/// code the server must answer (RFC 6455 §7.4.1).
pub fn frame_violations() -> Vec<(&'static [u8], u16)> {
    vec![
        // An unmasked frame from a client (§5.1).
        (&[0x81, 0x02, b'h', b'i'], 1002),
        // RSV1 without an extension (§5.2).
        (&[0xc1, 0x80, 1, 2, 3, 4], 1002),
        // Reserved opcodes, data and control (§5.2).
        (&[0x83, 0x80, 1, 2, 3, 4], 1002),
        (&[0x8b, 0x80, 1, 2, 3, 4], 1002),
        // A ping of 126 bytes (§5.5): the header alone is enough.
        (&[0x89, 0xfe, 0x00, 0x7e, 1, 2, 3, 4], 1002),
        // A fragmented ping (§5.5).
        (&[0x09, 0x80, 1, 2, 3, 4], 1002),
        // A 64-bit length with its top bit set (§5.2).
        (&[0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4], 1002),
        // A continuation of nothing (§5.4).
        (&[0x80, 0x80, 1, 2, 3, 4], 1002),
        // A new text frame inside a fragmented message (§5.4).
        (&[0x01, 0x80, 1, 2, 3, 4, 0x81, 0x80, 1, 2, 3, 4], 1002),
        // A Close of one byte; a Close with code 1005, which is never sent (§5.5.1, §7.4).
        (&[0x88, 0x81, 0, 0, 0, 0, 0x03], 1002),
        (&[0x88, 0x82, 0, 0, 0, 0, 0x03, 0xed], 1002),
        // Invalid UTF-8 in a text frame, and in a close reason (§8.1).
        (&[0x81, 0x81, 0, 0, 0, 0, 0xff], 1007),
        (&[0x88, 0x83, 0, 0, 0, 0, 0x03, 0xe8, 0xff], 1007),
        // A frame announcing 2^62 bytes, with no payload following: 1009 at once.
        (&[0x82, 0xff, 0x40, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4], 1009),
    ]
}

/// Request heads that are not valid upgrades, with the status each must get.
pub fn malformed_handshakes() -> Vec<(String, &'static str)> {
    let valid = "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    let huge = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    vec![
        ("GET / HTTP/1.1\r\nHost: x\r\n\r\n".into(), "400"),
        (valid.replace("GET", "POST"), "405"),
        (valid.replace("HTTP/1.1", "HTTP/1.0"), "505"),
        (valid.replace("Host: x\r\n", ""), "400"),
        (valid.replace("websocket", "h2c"), "400"),
        (
            valid.replace("Connection: Upgrade", "Connection: close"),
            "400",
        ),
        (valid.replace("dGhlIHNhbXBsZSBub25jZQ==", "c2hvcnQ="), "400"),
        (valid.replace("Version: 13", "Version: 8"), "426"),
        (huge, "431"),
        ("\x16\x03\x01 not http at all\r\n\r\n".into(), "400"),
    ]
}
