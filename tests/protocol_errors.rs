//! Every way a peer can break RFC 6455 §5–§7, the error it gets, and the Close frame
//! (with the right status code) that is queued before the connection is dropped.

use rfc6455::frame::FrameHeader;
use rfc6455::{
    CloseCode, CloseFrame, Config, Connection, Event, OpCode, ProtocolError, Role, SendError, State,
};

/// Builds one frame as `role` would send it: masked (with a fixed key) iff client.
fn frame(sender: Role, fin: bool, rsv: u8, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let key = [0x12, 0x34, 0x56, 0x78];
    let header = FrameHeader {
        fin,
        rsv,
        opcode: OpCode::from_bits(opcode),
        masking_key: (sender == Role::Client).then_some(key),
        payload_len: payload.len() as u64,
    };
    let (head, n) = header.encode();
    let mut out = head[..n].to_vec();
    out.extend(payload.iter().enumerate().map(|(i, b)| match sender {
        Role::Client => b ^ key[i % 4],
        Role::Server => *b,
    }));
    out
}

fn peer_of(role: Role) -> Role {
    match role {
        Role::Client => Role::Server,
        Role::Server => Role::Client,
    }
}

/// Feeds `input` to a fresh `role` connection; returns the events before the error,
/// the error, and the Close frame it queued, decoded by a peer.
fn fail(role: Role, config: Config, input: &[u8]) -> (Vec<Event>, ProtocolError, CloseFrame) {
    let mut conn = Connection::with_config(role, config);
    conn.receive(input);
    let mut events = Vec::new();
    let err = loop {
        match conn.next_event() {
            Ok(Some(event)) => events.push(event),
            Ok(None) => panic!("no error for {input:02x?}; events {events:?}"),
            Err(err) => break err,
        }
    };
    assert_eq!(conn.state(), State::Closed);
    assert_eq!(conn.next_event(), Ok(None), "nothing after a failure");

    let mut peer = Connection::new(peer_of(role));
    peer.receive(conn.pending_output());
    let close = loop {
        match peer.next_event().expect("our own output is valid") {
            Some(Event::Close(Some(frame))) => break frame,
            Some(other) => assert!(
                matches!(other, Event::Pong(_)),
                "unexpected {other:?} before the Close"
            ),
            None => panic!("no Close frame queued"),
        }
    };
    assert_eq!(close.code, err.close_code());
    (events, err, close)
}

fn fail_default(role: Role, input: &[u8]) -> (ProtocolError, CloseCode) {
    let (_, err, close) = fail(role, Config::default(), input);
    (err, close.code)
}

const PROTOCOL: CloseCode = CloseCode::PROTOCOL_ERROR;

#[test]
fn reserved_bits_without_an_extension_are_1002() {
    for rsv in 1..8u8 {
        for role in [Role::Client, Role::Server] {
            let input = frame(peer_of(role), true, rsv, 0x1, b"hi");
            assert_eq!(
                fail_default(role, &input),
                (ProtocolError::ReservedBitsSet(rsv), PROTOCOL)
            );
        }
    }
}

#[test]
fn rsv_bits_claimed_by_an_extension_are_allowed() {
    let config = Config {
        allowed_rsv: 0b100,
        ..Config::default()
    };
    let mut server = Connection::with_config(Role::Server, config.clone());
    server.receive(&frame(Role::Client, true, 0b100, 0x2, b"x"));
    assert_eq!(server.next_event(), Ok(Some(Event::Binary(b"x".to_vec()))));
    // ...but only those bits.
    let input = frame(Role::Client, true, 0b010, 0x2, b"x");
    let (_, err, _) = fail(Role::Server, config, &input);
    assert_eq!(err, ProtocolError::ReservedBitsSet(0b010));
}

#[test]
fn reserved_opcodes_are_1002() {
    for opcode in (0x3..=0x7).chain(0xb..=0xf) {
        let input = frame(Role::Client, true, 0, opcode, b"");
        assert_eq!(
            fail_default(Role::Server, &input),
            (ProtocolError::ReservedOpcode(opcode), PROTOCOL)
        );
    }
}

#[test]
fn masking_direction_is_enforced() {
    // RFC 6455 §5.1: a server closes on an unmasked frame, a client on a masked one.
    let unmasked = frame(Role::Server, true, 0, 0x1, b"hi");
    assert_eq!(
        fail_default(Role::Server, &unmasked),
        (ProtocolError::UnmaskedClientFrame, PROTOCOL)
    );
    let masked = frame(Role::Client, true, 0, 0x1, b"hi");
    assert_eq!(
        fail_default(Role::Client, &masked),
        (ProtocolError::MaskedServerFrame, PROTOCOL)
    );
}

#[test]
fn control_frames_over_125_bytes_or_fragmented_are_1002() {
    for opcode in [0x8, 0x9, 0xa] {
        let input = frame(Role::Client, true, 0, opcode, &[b'a'; 126]);
        assert_eq!(
            fail_default(Role::Server, &input),
            (ProtocolError::ControlFrameTooLong(126), PROTOCOL)
        );
        let input = frame(Role::Client, false, 0, opcode, b"");
        assert_eq!(
            fail_default(Role::Server, &input),
            (ProtocolError::FragmentedControlFrame, PROTOCOL)
        );
    }
    // 125 bytes is the limit, inclusive.
    let mut server = Connection::new(Role::Server);
    server.receive(&frame(Role::Client, true, 0, 0x9, &[b'a'; 125]));
    assert_eq!(server.next_event(), Ok(Some(Event::Ping(vec![b'a'; 125]))));
}

#[test]
fn a_64_bit_length_with_the_top_bit_set_is_1002() {
    let input = [0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4];
    assert_eq!(
        fail_default(Role::Server, &input),
        (ProtocolError::PayloadLengthMsbSet, PROTOCOL)
    );
}

#[test]
fn non_minimal_lengths_are_1002() {
    // RFC 6455 §5.2: "the minimal number of bytes MUST be used to encode the length".
    let sixteen = [0x82, 0xfe, 0x00, 0x05, 1, 2, 3, 4];
    let sixty_four = [0x82, 0xff, 0, 0, 0, 0, 0, 0, 0x00, 0x05, 1, 2, 3, 4];
    for input in [&sixteen[..], &sixty_four[..]] {
        assert_eq!(
            fail_default(Role::Server, input),
            (ProtocolError::NonMinimalLength, PROTOCOL)
        );
    }
}

#[test]
fn fragmentation_order_is_enforced() {
    let input = frame(Role::Client, true, 0, 0x0, b"lost");
    assert_eq!(
        fail_default(Role::Server, &input),
        (ProtocolError::UnexpectedContinuation, PROTOCOL)
    );
    let mut input = frame(Role::Client, false, 0, 0x1, b"first");
    input.extend(frame(Role::Client, true, 0, 0x2, b"second"));
    assert_eq!(
        fail_default(Role::Server, &input),
        (ProtocolError::ExpectedContinuation, PROTOCOL)
    );
}

#[test]
fn control_frames_may_interleave_with_fragments() {
    let mut input = frame(Role::Client, false, 0, 0x1, b"Hel");
    input.extend(frame(Role::Client, true, 0, 0x9, b"ping"));
    input.extend(frame(Role::Client, false, 0, 0x0, b""));
    input.extend(frame(Role::Client, true, 0, 0xa, b"pong"));
    input.extend(frame(Role::Client, true, 0, 0x0, b"lo"));
    let mut server = Connection::new(Role::Server);
    server.receive(&input);
    assert_eq!(server.next_event(), Ok(Some(Event::Ping(b"ping".to_vec()))));
    assert_eq!(server.next_event(), Ok(Some(Event::Pong(b"pong".to_vec()))));
    assert_eq!(server.next_event(), Ok(Some(Event::Text("Hello".into()))));
    assert_eq!(server.next_event(), Ok(None));
    assert_eq!(
        server.pending_output(),
        [0x8a, 0x04, b'p', b'i', b'n', b'g']
    );
}

#[test]
fn messages_before_a_bad_frame_are_delivered_first() {
    let mut input = frame(Role::Client, true, 0, 0x1, b"kept");
    input.extend(frame(Role::Client, true, 0, 0x3, b""));
    let (events, err, _) = fail(Role::Server, Config::default(), &input);
    assert_eq!(events, [Event::Text("kept".into())]);
    assert_eq!(err, ProtocolError::ReservedOpcode(3));
}

#[test]
fn invalid_utf8_fails_fast_with_1007() {
    // The first fragment already holds a byte that can never be UTF-8: the error comes
    // before the message ends (and before the rest of the frame arrives).
    let whole = frame(Role::Client, false, 0, 0x1, b"ok \xff and more");
    let mut server = Connection::new(Role::Server);
    server.receive(&whole[..whole.len() - 5]);
    assert_eq!(server.next_event(), Err(ProtocolError::InvalidUtf8));
    assert_eq!(server.state(), State::Closed);

    // A code point split across fragments is fine...
    let euro = "€".as_bytes();
    let mut input = frame(Role::Client, false, 0, 0x1, &euro[..1]);
    input.extend(frame(Role::Client, false, 0, 0x0, &euro[1..2]));
    input.extend(frame(Role::Client, true, 0, 0x0, &euro[2..]));
    let mut server = Connection::new(Role::Server);
    server.receive(&input);
    assert_eq!(server.next_event(), Ok(Some(Event::Text("€".into()))));

    // ...a message that ends inside one is not.
    let input = frame(Role::Client, true, 0, 0x1, &euro[..2]);
    assert_eq!(
        fail_default(Role::Server, &input),
        (ProtocolError::InvalidUtf8, CloseCode::INVALID_PAYLOAD)
    );
    // Surrogates and overlong forms are invalid (RFC 3629).
    for bad in [&b"\xed\xa0\x80"[..], b"\xc0\xaf", b"\xf4\x90\x80\x80"] {
        let input = frame(Role::Client, true, 0, 0x1, bad);
        assert_eq!(
            fail_default(Role::Server, &input).1,
            CloseCode::INVALID_PAYLOAD
        );
    }
}

#[test]
fn an_oversized_frame_fails_from_its_header_alone_with_1009() {
    let config = Config {
        max_frame_size: 1000,
        ..Config::default()
    };
    // Only the header arrives: 2^62 bytes announced. No waiting, no allocation.
    let header = [0x82, 0xff, 0x40, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4];
    let (_, err, close) = fail(Role::Server, config.clone(), &header);
    assert_eq!(
        err,
        ProtocolError::FrameTooBig {
            len: 1 << 62,
            max: 1000
        }
    );
    assert_eq!(close.code, CloseCode::MESSAGE_TOO_BIG);

    // The limit is inclusive.
    let mut server = Connection::with_config(Role::Server, config.clone());
    server.receive(&frame(Role::Client, true, 0, 0x2, &[7; 1000]));
    assert_eq!(server.next_event(), Ok(Some(Event::Binary(vec![7; 1000]))));
    let input = frame(Role::Client, true, 0, 0x2, &[7; 1001]);
    assert_eq!(
        fail(Role::Server, config, &input[..20]).2.code,
        CloseCode::MESSAGE_TOO_BIG
    );
}

#[test]
fn an_oversized_message_fails_at_the_fragment_that_exceeds_it() {
    let config = Config {
        max_message_size: 10,
        ..Config::default()
    };
    let mut input = frame(Role::Client, false, 0, 0x2, &[1; 6]);
    input.extend(frame(Role::Client, false, 0, 0x0, &[2; 4]));
    let mut too_much = frame(Role::Client, true, 0, 0x0, &[3; 1]);
    too_much.truncate(6); // the header is enough to know
    input.extend(too_much);
    let (_, err, close) = fail(Role::Server, config, &input);
    assert_eq!(err, ProtocolError::MessageTooBig { len: 11, max: 10 });
    assert_eq!(close.code, CloseCode::MESSAGE_TOO_BIG);
}

#[test]
fn close_payload_rules() {
    // RFC 6455 §5.5.1: empty, or a 2-byte code and a UTF-8 reason.
    let input = frame(Role::Client, true, 0, 0x8, &[0x03]);
    assert_eq!(
        fail_default(Role::Server, &input),
        (ProtocolError::CloseFrameOneByte, PROTOCOL)
    );
    let input = frame(Role::Client, true, 0, 0x8, b"\x03\xe8\xff");
    assert_eq!(
        fail_default(Role::Server, &input),
        (
            ProtocolError::InvalidCloseReason,
            CloseCode::INVALID_PAYLOAD
        )
    );
}

#[test]
fn every_close_code_is_classified() {
    // RFC 6455 §7.4: 1000–1003, 1007–1014 (IANA), 3000–4999; nothing else on the wire.
    for code in (0..=1100u16)
        .chain(2990..=3010)
        .chain(4990..=5010)
        .chain([65535])
    {
        let valid = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999);
        let input = frame(Role::Client, true, 0, 0x8, &code.to_be_bytes());
        let mut server = Connection::new(Role::Server);
        server.receive(&input);
        let result = server.next_event();
        if valid {
            assert_eq!(
                result,
                Ok(Some(Event::Close(Some(CloseFrame {
                    code: CloseCode(code),
                    reason: String::new()
                })))),
                "code {code}"
            );
            // Echoed (RFC 6455 §5.5.1).
            let mut echo = vec![0x88, 0x02];
            echo.extend(code.to_be_bytes());
            assert_eq!(server.pending_output(), echo, "code {code}");
        } else {
            assert_eq!(
                result,
                Err(ProtocolError::InvalidCloseCode(code)),
                "code {code}"
            );
            assert_eq!(server.pending_output()[2..4], 1002u16.to_be_bytes());
        }
    }
}

#[test]
fn after_our_close_only_control_frames_may_be_sent() {
    let mut conn = Connection::new(Role::Server);
    conn.close(CloseCode::GOING_AWAY, "restart").unwrap();
    assert_eq!(conn.state(), State::Closing);
    assert_eq!(conn.send_text("late"), Err(SendError::Closing));
    assert_eq!(conn.send_binary(b"late"), Err(SendError::Closing));
    assert_eq!(conn.close(CloseCode::NORMAL, ""), Err(SendError::Closing));
    // Data from the peer is still delivered until its Close arrives.
    conn.receive(&frame(Role::Client, true, 0, 0x1, b"in flight"));
    assert_eq!(conn.next_event(), Ok(Some(Event::Text("in flight".into()))));
    conn.receive(&frame(Role::Client, true, 0, 0x8, &1001u16.to_be_bytes()));
    assert!(matches!(conn.next_event(), Ok(Some(Event::Close(_)))));
    assert_eq!(conn.state(), State::Closed);
    // Exactly one Close went out: ours.
    let out = conn.pending_output();
    assert_eq!(out[..4], [0x88, 9, 0x03, 0xe9]);
    assert_eq!(out.len(), 2 + 9);
}

#[test]
fn bad_arguments_to_send_are_refused() {
    let mut conn = Connection::new(Role::Client);
    assert_eq!(
        conn.send_ping(&[0; 126]),
        Err(SendError::ControlPayloadTooLong(126))
    );
    assert_eq!(
        conn.close(CloseCode(1005), ""),
        Err(SendError::InvalidCloseCode(1005))
    );
    assert_eq!(
        conn.close(CloseCode::NORMAL, &"x".repeat(124)),
        Err(SendError::ControlPayloadTooLong(126))
    );
    assert!(conn.pending_output().is_empty());
}

#[test]
fn input_after_the_close_is_ignored() {
    let mut conn = Connection::new(Role::Server);
    let mut input = frame(Role::Client, true, 0, 0x8, b"");
    input.extend(frame(Role::Client, true, 0, 0x1, b"after close"));
    conn.receive(&input);
    assert_eq!(conn.next_event(), Ok(Some(Event::Close(None))));
    assert_eq!(conn.next_event(), Ok(None));
    conn.receive(&frame(Role::Client, true, 0, 0x1, b"more"));
    assert_eq!(conn.buffered_input(), 0);
    assert_eq!(conn.next_event(), Ok(None));
}

#[test]
fn automatic_pongs_can_be_turned_off() {
    let config = Config {
        auto_pong: false,
        ..Config::default()
    };
    let mut conn = Connection::with_config(Role::Server, config);
    conn.receive(&frame(Role::Client, true, 0, 0x9, b"p"));
    assert_eq!(conn.next_event(), Ok(Some(Event::Ping(b"p".to_vec()))));
    assert!(conn.pending_output().is_empty());
    conn.send_pong(b"p").unwrap();
    assert_eq!(conn.pending_output(), [0x8a, 0x01, b'p']);
}

#[test]
fn error_messages_cite_the_rfc() {
    let err = fail_default(Role::Server, &frame(Role::Client, true, 0, 0x3, b"")).0;
    assert!(err.to_string().contains("RFC 6455 §5.2"), "{err}");
}
