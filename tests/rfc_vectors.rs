//! The byte-exact examples of RFC 6455, decoded and encoded by both roles.

use rfc6455::frame::{FrameHeader, Parsed};
use rfc6455::handshake::client::{ClientHandshake, WsUrl};
use rfc6455::handshake::server::Request;
use rfc6455::{
    accept_key, CloseCode, CloseFrame, Connection, Event, MessageKind, MessageRef, OpCode, Role,
};

/// RFC 6455 §5.7: "A single-frame masked text message" ("Hello", key 37 fa 21 3d).
const MASKED_HELLO: [u8; 11] = [
    0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
];
/// RFC 6455 §5.7: "A single-frame unmasked text message".
const UNMASKED_HELLO: [u8; 7] = [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
/// RFC 6455 §5.7: "A fragmented unmasked text message" ("Hel" + "lo").
const FRAGMENTED_HELLO: [u8; 9] = [0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f];
/// RFC 6455 §5.7: "Unmasked Ping request and masked Ping response" (body "Hello").
const UNMASKED_PING: [u8; 7] = [0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
const MASKED_PONG: [u8; 11] = [
    0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
];

fn events(conn: &mut Connection) -> Vec<Event> {
    let mut out = Vec::new();
    while let Some(event) = conn.next_event().expect("valid input") {
        out.push(event);
    }
    out
}

#[test]
fn single_frame_masked_text_reaches_the_server() {
    let mut server = Connection::new(Role::Server);
    server.receive(&MASKED_HELLO);
    assert_eq!(events(&mut server), [Event::Text("Hello".into())]);
}

#[test]
fn single_frame_unmasked_text_reaches_the_client() {
    let mut client = Connection::new(Role::Client);
    client.receive(&UNMASKED_HELLO);
    assert_eq!(events(&mut client), [Event::Text("Hello".into())]);
}

#[test]
fn the_server_encodes_the_unmasked_examples_byte_for_byte() {
    let mut server = Connection::new(Role::Server);
    server.send_text("Hello").unwrap();
    assert_eq!(server.pending_output(), UNMASKED_HELLO);
    server.consume_output(UNMASKED_HELLO.len());

    server
        .send_fragment(MessageKind::Text, b"Hel", false)
        .unwrap();
    server
        .send_fragment(MessageKind::Text, b"lo", true)
        .unwrap();
    assert_eq!(server.pending_output(), FRAGMENTED_HELLO);
    server.consume_output(FRAGMENTED_HELLO.len());

    server.send_ping(b"Hello").unwrap();
    assert_eq!(server.pending_output(), UNMASKED_PING);
}

#[test]
fn fragmented_text_is_reassembled() {
    let mut client = Connection::new(Role::Client);
    client.receive(&FRAGMENTED_HELLO);
    assert_eq!(events(&mut client), [Event::Text("Hello".into())]);
}

#[test]
fn every_split_of_every_example_gives_the_same_events() {
    let cases: [(&[u8], Role, Event); 4] = [
        (&MASKED_HELLO, Role::Server, Event::Text("Hello".into())),
        (&UNMASKED_HELLO, Role::Client, Event::Text("Hello".into())),
        (&FRAGMENTED_HELLO, Role::Client, Event::Text("Hello".into())),
        (&MASKED_PONG, Role::Server, Event::Pong(b"Hello".to_vec())),
    ];
    for (bytes, role, expected) in cases {
        for split in 0..=bytes.len() {
            let mut conn = Connection::new(role);
            conn.receive(&bytes[..split]);
            let mut got = events(&mut conn);
            conn.receive(&bytes[split..]);
            got.extend(events(&mut conn));
            assert_eq!(got, std::slice::from_ref(&expected), "split at {split}");
        }
    }
}

/// The lent API (`next_message`) gives the same as the owned one for every example,
/// split anywhere; a whole frame is lent from where it arrived.
#[test]
fn every_split_of_every_example_is_lent_the_same() {
    let cases: [(&[u8], Role, MessageRef<'static>); 5] = [
        (&MASKED_HELLO, Role::Server, MessageRef::Text("Hello")),
        (&UNMASKED_HELLO, Role::Client, MessageRef::Text("Hello")),
        (&FRAGMENTED_HELLO, Role::Client, MessageRef::Text("Hello")),
        (&UNMASKED_PING, Role::Client, MessageRef::Ping(b"Hello")),
        (&MASKED_PONG, Role::Server, MessageRef::Pong(b"Hello")),
    ];
    for (bytes, role, expected) in cases {
        for split in 0..=bytes.len() {
            let mut conn = Connection::new(role);
            conn.receive(&bytes[..split]);
            let mut got = Vec::new();
            while let Some(message) = conn.next_message().expect("valid input") {
                got.push(Event::from(message));
            }
            conn.receive(&bytes[split..]);
            while let Some(message) = conn.next_message().expect("valid input") {
                assert_eq!(message, expected, "split at {split}");
                got.push(Event::from(message));
            }
            assert_eq!(got, [Event::from(expected.clone())], "split at {split}");
        }
    }
}

#[test]
fn a_ping_is_answered_with_a_masked_pong_carrying_its_body() {
    let mut client = Connection::new(Role::Client);
    client.receive(&UNMASKED_PING);
    assert_eq!(events(&mut client), [Event::Ping(b"Hello".to_vec())]);
    // The key is random, so check the structure and unmask with the key that was used.
    let pong = client.pending_output().to_vec();
    assert_eq!(pong.len(), MASKED_PONG.len());
    assert_eq!(pong[..2], MASKED_PONG[..2]);
    let key = [pong[2], pong[3], pong[4], pong[5]];
    let body: Vec<u8> = pong[6..]
        .iter()
        .enumerate()
        .map(|(i, b)| b ^ key[i % 4])
        .collect();
    assert_eq!(body, b"Hello");
}

#[test]
fn the_masked_pong_example_unmasks_to_hello() {
    let mut server = Connection::new(Role::Server);
    server.receive(&MASKED_PONG);
    assert_eq!(events(&mut server), [Event::Pong(b"Hello".to_vec())]);
}

#[test]
fn length_encodings_of_section_5_7() {
    // "256 bytes binary message in a single unmasked frame": 0x82 0x7E 0x0100.
    let mut frame = vec![0x82, 0x7e, 0x01, 0x00];
    frame.extend(std::iter::repeat_n(0xab, 256));
    let mut client = Connection::new(Role::Client);
    client.receive(&frame);
    assert_eq!(events(&mut client), [Event::Binary(vec![0xab; 256])]);

    // "64KiB binary message in a single unmasked frame": 0x82 0x7F 0x0000000000010000.
    let mut frame = vec![0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0];
    frame.extend(std::iter::repeat_n(0xcd, 65536));
    client.receive(&frame);
    assert_eq!(events(&mut client), [Event::Binary(vec![0xcd; 65536])]);

    // And the encoder picks the same encodings.
    let mut server = Connection::new(Role::Server);
    server.send_binary(&[0xab; 256]).unwrap();
    assert_eq!(server.pending_output()[..4], [0x82, 0x7e, 0x01, 0x00]);
    server.consume_output(server.pending_output().len());
    server.send_binary(&[0xcd; 65536]).unwrap();
    assert_eq!(
        server.pending_output()[..10],
        [0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0]
    );
}

#[test]
fn length_boundaries_use_the_minimal_encoding() {
    // RFC 6455 §5.2: 0–125 in 7 bits, 126–65535 in 16 bits, more in 64 bits.
    for (len, header_len) in [
        (0u64, 2),
        (125, 2),
        (126, 4),
        (65535, 4),
        (65536, 10),
        (u64::MAX >> 1, 10),
    ] {
        let header = FrameHeader {
            fin: true,
            rsv: 0,
            opcode: OpCode::Binary,
            masking_key: None,
            payload_len: len,
        };
        let (bytes, n) = header.encode();
        assert_eq!(n, header_len, "length {len}");
        assert_eq!(
            FrameHeader::parse(&bytes[..n]),
            Ok(Parsed::Complete(header, n))
        );
    }
}

#[test]
fn the_accept_key_of_section_1_3() {
    assert_eq!(
        accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );
}

#[test]
fn the_handshake_of_section_1_2_end_to_end() {
    let url = WsUrl::parse("ws://server.example.com/chat").unwrap();
    let (handshake, request) = ClientHandshake::with_key(
        "dGhlIHNhbXBsZSBub25jZQ==".into(),
        &url,
        &["chat", "superchat"],
        &[("Origin", "http://example.com")],
    );
    let request_text = String::from_utf8(request.clone()).unwrap();
    assert!(request_text.starts_with("GET /chat HTTP/1.1\r\nHost: server.example.com\r\n"));

    let parsed = Request::parse(&request).unwrap();
    assert_eq!(parsed.path(), "/chat");
    assert_eq!(parsed.origin(), Some("http://example.com"));
    assert_eq!(parsed.protocols(), ["chat", "superchat"]);

    let response = parsed.accept(Some("chat"));
    let response_text = String::from_utf8(response.clone()).unwrap();
    assert!(response_text.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
    let accepted = handshake.validate(&response).unwrap();
    assert_eq!(accepted.protocol.as_deref(), Some("chat"));
}

#[test]
fn a_close_is_echoed_with_its_code_and_closes_the_connection() {
    // RFC 6455 §5.5.1: the endpoint that receives a Close replies with a Close,
    // "typically echoing the status code it received".
    let mut client = Connection::new(Role::Client);
    client.receive(&[0x88, 0x05, 0x03, 0xe8, b'b', b'y', b'e']);
    assert_eq!(
        events(&mut client).as_slice(),
        [Event::Close(Some(CloseFrame {
            code: CloseCode::NORMAL,
            reason: "bye".into()
        }))]
    );
    let reply = client.pending_output();
    assert_eq!(reply[..2], [0x88, 0x82]); // FIN + Close, masked, 2 bytes
    let key = [reply[2], reply[3], reply[4], reply[5]];
    assert_eq!([reply[6] ^ key[0], reply[7] ^ key[1]], [0x03, 0xe8]);
    assert!(client.is_closed());
}

#[test]
fn an_empty_close_is_answered_with_an_empty_close() {
    let mut server = Connection::new(Role::Server);
    server.receive(&[0x88, 0x80, 1, 2, 3, 4]);
    assert_eq!(events(&mut server), [Event::Close(None)]);
    assert_eq!(server.pending_output(), [0x88, 0x00]);
}
