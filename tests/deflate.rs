//! permessage-deflate (RFC 7692): the examples of §7.2.3 byte for byte, the
//! negotiation of §5 and §7.1 as a table, the RSV1 rules of §6, and invalid data.

use rfc6455::deflate::{accept_response, negotiate, offer, AnswerError, DeflateConfig, Negotiated};
use rfc6455::extensions::parse;
use rfc6455::{CloseCode, Config, Connection, Event, ProtocolError, Role};

/// What both ends agree when neither limits anything: context takeover both ways.
fn takeover() -> Negotiated {
    Negotiated {
        threshold: 0,
        ..Negotiated::default()
    }
}

fn client_with(negotiated: Negotiated) -> Connection {
    Connection::with_deflate(Role::Client, Config::default(), Some(negotiated))
}

fn events(conn: &mut Connection) -> Vec<Result<Event, ProtocolError>> {
    let mut out = Vec::new();
    loop {
        match conn.next_event() {
            Ok(Some(event)) => out.push(Ok(event)),
            Ok(None) => return out,
            Err(e) => {
                out.push(Err(e));
                return out;
            }
        }
    }
}

fn hello() -> Result<Event, ProtocolError> {
    Ok(Event::Text("Hello".into()))
}

#[test]
fn section_7_2_3_1_a_message_compressed_in_one_frame_and_in_two() {
    let mut client = client_with(takeover());
    client.receive(&[0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
    assert_eq!(events(&mut client), [hello()]);

    let mut client = client_with(takeover());
    client.receive(&[0x41, 0x03, 0xf2, 0x48, 0xcd]);
    client.receive(&[0x80, 0x04, 0xc9, 0xc9, 0x07, 0x00]);
    assert_eq!(events(&mut client), [hello()]);
}

#[test]
fn section_7_2_3_2_the_second_message_refers_to_the_first() {
    let mut client = client_with(takeover());
    client.receive(&[0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
    client.receive(&[0xc1, 0x05, 0xf2, 0x00, 0x11, 0x00, 0x00]);
    assert_eq!(events(&mut client), [hello(), hello()]);

    // And this end produces exactly those bytes, given the same context takeover.
    let mut server = Connection::with_deflate(Role::Server, Config::default(), Some(takeover()));
    server.send_text("Hello").unwrap();
    server.send_text("Hello").unwrap();
    assert_eq!(
        server.pending_output(),
        [
            0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, //
            0xc1, 0x05, 0xf2, 0x00, 0x11, 0x00, 0x00,
        ]
    );

    // Without context takeover the second message is compressed on its own again.
    let mut fresh = Connection::with_deflate(
        Role::Server,
        Config::default(),
        Some(Negotiated {
            local_no_context_takeover: true,
            ..takeover()
        }),
    );
    let text = "Hello, Hello, Hello, Hello";
    fresh.send_text(text).unwrap();
    let once = fresh.pending_output().to_vec();
    assert_eq!(once[0], 0xc1, "compressed: RSV1 set");
    assert!(once.len() < 2 + text.len());
    fresh.send_text(text).unwrap();
    assert_eq!(fresh.pending_output(), [&once[..], &once[..]].concat());
    // A message that does not shrink goes uncompressed there.
    let mut fresh2 = Connection::with_deflate(
        Role::Server,
        Config::default(),
        Some(Negotiated {
            local_no_context_takeover: true,
            ..takeover()
        }),
    );
    fresh2.send_text("Hello").unwrap();
    assert_eq!(
        fresh2.pending_output(),
        [0x81, 0x05, b'H', b'e', b'l', b'l', b'o']
    );
}

#[test]
fn section_7_2_3_3_to_5_stored_blocks_bfinal_and_two_blocks() {
    // A DEFLATE block with no compression.
    let mut client = client_with(takeover());
    client.receive(&[
        0xc1, 0x0b, 0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
    ]);
    // A DEFLATE block with BFINAL set: the next message starts a new stream.
    client.receive(&[0xc1, 0x08, 0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00]);
    client.receive(&[0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
    // Two DEFLATE blocks in one message.
    client.receive(&[
        0xc1, 0x0d, 0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00,
    ]);
    assert_eq!(events(&mut client), [hello(), hello(), hello(), hello()]);
}

#[test]
fn section_7_2_3_6_an_empty_last_fragment() {
    // The first fragment ends with a whole sync flush (only the message's end loses
    // its tail); the last is the single byte 0x00, which with the appended tail is an
    // empty stored block.
    let mut client = client_with(takeover());
    client.receive(&[
        0x41, 0x0b, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00, 0x00, 0xff, 0xff,
    ]);
    client.receive(&[0x80, 0x01, 0x00]);
    assert_eq!(events(&mut client), [hello()]);
}

/// Found by the property test: the second of two empty messages under context
/// takeover compresses to nothing at all (zlib has nothing left to flush), which is a
/// valid compressed empty message, and must not trip the flush's check.
#[test]
fn empty_messages_under_context_takeover_round_trip() {
    let mut server = Connection::with_deflate(Role::Server, Config::default(), Some(takeover()));
    let mut client = client_with(takeover());
    for text in ["", "", "after", ""] {
        server.send_text(text).unwrap();
    }
    let bytes = server.pending_output().to_vec();
    client.receive(&bytes);
    let texts = ["", "", "after", ""].map(|t| Ok(Event::Text(t.into())));
    assert_eq!(events(&mut client), texts);
}

#[test]
fn a_message_not_compressed_and_small_messages_go_uncompressed() {
    let mut client = client_with(takeover());
    client.receive(&[0x81, 0x05, b'H', b'e', b'l', b'l', b'o']);
    assert_eq!(events(&mut client), [hello()]);
    // Below the threshold: plain frame, RSV1 clear.
    let mut server = Connection::with_deflate(
        Role::Server,
        Config::default(),
        Some(Negotiated {
            threshold: 64,
            ..takeover()
        }),
    );
    server.send_text("Hello").unwrap();
    assert_eq!(
        server.pending_output(),
        [0x81, 0x05, b'H', b'e', b'l', b'l', b'o']
    );
}

#[test]
fn rsv1_belongs_on_the_first_frame_of_a_data_message_only() {
    let cases: [(&[u8], ProtocolError); 3] = [
        // RSV1 on a ping (RFC 7692 §6.1).
        (&[0xc9, 0x00], ProtocolError::CompressedControlFrame),
        // RSV1 on a continuation frame.
        (
            &[
                0x41, 0x03, 0xf2, 0x48, 0xcd, 0xc0, 0x04, 0xc9, 0xc9, 0x07, 0x00,
            ],
            ProtocolError::CompressedContinuation,
        ),
        // Not DEFLATE data (BTYPE 11 is reserved).
        (&[0xc1, 0x02, 0xff, 0xff], ProtocolError::InvalidDeflateData),
    ];
    for (bytes, expected) in cases {
        let mut client = client_with(takeover());
        client.receive(bytes);
        let got = events(&mut client).pop().unwrap();
        assert_eq!(got, Err(expected.clone()), "{bytes:02x?}");
        let code = expected.close_code();
        assert_eq!(
            code,
            if expected == ProtocolError::InvalidDeflateData {
                CloseCode::INVALID_PAYLOAD
            } else {
                CloseCode::PROTOCOL_ERROR
            }
        );
        // The Close frame with that code is queued.
        assert_eq!(client.pending_output()[0] & 0x0f, 0x8);
    }
    // Without the extension, RSV1 is just a reserved bit (RFC 6455 §5.2).
    let mut plain = Connection::new(Role::Client);
    plain.receive(&[0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
    assert_eq!(
        events(&mut plain).pop().unwrap(),
        Err(ProtocolError::ReservedBitsSet(0b100))
    );
}

#[test]
fn inflated_text_is_checked_as_it_inflates() {
    // A server compresses invalid UTF-8 (a lone 0xff) as a text message.
    let mut sender = Connection::with_deflate(Role::Server, Config::default(), Some(takeover()));
    sender.send_binary(&[b'a', 0xff, b'b']).unwrap();
    let mut wire = sender.pending_output().to_vec();
    wire[0] = 0xc1; // the same payload, as text
    let mut client = client_with(takeover());
    client.receive(&wire);
    let err = events(&mut client).pop().unwrap().unwrap_err();
    assert_eq!(err, ProtocolError::InvalidUtf8);
    assert_eq!(err.close_code(), CloseCode::INVALID_PAYLOAD);
}

#[test]
fn the_inflated_size_counts_against_the_message_limit() {
    let payload = vec![b'a'; 10_000];
    let mut sender = Connection::with_deflate(Role::Server, Config::default(), Some(takeover()));
    sender.send_binary(&payload).unwrap();
    let wire = sender.pending_output().to_vec();
    assert!(wire.len() < 200, "10,000 equal bytes compress well");
    for (max, ok) in [(10_000, true), (9_999, false)] {
        let config = Config {
            max_message_size: max,
            ..Config::default()
        };
        let mut client = Connection::with_deflate(Role::Client, config, Some(takeover()));
        client.receive(&wire);
        let got = events(&mut client).pop().unwrap();
        if ok {
            assert_eq!(got, Ok(Event::Binary(payload.clone())));
        } else {
            let err = got.unwrap_err();
            assert_eq!(err.close_code(), CloseCode::MESSAGE_TOO_BIG);
            assert!(matches!(err, ProtocolError::MessageTooBig { len, .. } if len <= 10_000));
        }
    }
}

/// The server's answer to each offer, or its refusal (None).
#[test]
fn negotiation_offers_and_answers() {
    let memory_flat = DeflateConfig::default();
    let takeover = DeflateConfig {
        no_context_takeover: false,
        request_no_context_takeover: false,
        ..DeflateConfig::default()
    };
    let limited = DeflateConfig {
        request_max_window_bits: Some(10),
        ..takeover.clone()
    };
    let cases: &[(&DeflateConfig, &[&str], Option<&str>)] = &[
        (&takeover, &["permessage-deflate"], Some("permessage-deflate")),
        (
            &memory_flat,
            &["permessage-deflate"],
            Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover"),
        ),
        // Chromium's offer; parameters in any case; quoted values.
        (
            &takeover,
            &["permessage-deflate; client_max_window_bits"],
            Some("permessage-deflate"),
        ),
        (
            &takeover,
            &["PerMessage-Deflate; Server_No_Context_Takeover; SERVER_MAX_WINDOW_BITS=\"10\""],
            Some("permessage-deflate; server_no_context_takeover; server_max_window_bits=10"),
        ),
        (
            &takeover,
            &["permessage-deflate; client_max_window_bits=12"],
            Some("permessage-deflate; client_max_window_bits=12"),
        ),
        (
            &limited,
            &["permessage-deflate; client_max_window_bits"],
            Some("permessage-deflate; client_max_window_bits=10"),
        ),
        (
            &limited,
            &["permessage-deflate; client_max_window_bits=9"],
            Some("permessage-deflate; client_max_window_bits=9"),
        ),
        // client_max_window_bits is answered only to an offer that has it.
        (&limited, &["permessage-deflate"], Some("permessage-deflate")),
        // Invalid offers are declined; a later valid one is taken.
        (&takeover, &["permessage-deflate; mystery"], None),
        (&takeover, &["permessage-deflate; server_max_window_bits=7"], None),
        (&takeover, &["permessage-deflate; server_max_window_bits=16"], None),
        (&takeover, &["permessage-deflate; server_max_window_bits=010"], None),
        (&takeover, &["permessage-deflate; server_max_window_bits"], None),
        (&takeover, &["permessage-deflate; client_no_context_takeover=1"], None),
        (
            &takeover,
            &["permessage-deflate; client_no_context_takeover; client_no_context_takeover"],
            None,
        ),
        (&takeover, &["permessage-deflate; x=\"a b\""], None),
        (
            &takeover,
            &[
                "permessage-deflate; server_max_window_bits=99, permessage-deflate; client_no_context_takeover",
            ],
            Some("permessage-deflate; client_no_context_takeover"),
        ),
        // Several header lines are one list; other extensions are passed over.
        (
            &takeover,
            &["x-webkit-deflate-frame", "permessage-deflate; server_max_window_bits=15"],
            Some("permessage-deflate; server_max_window_bits=15"),
        ),
        (&takeover, &["x-webkit-deflate-frame"], None),
    ];
    for (config, offers, expected) in cases {
        let got = negotiate(config, &parse(offers)).map(|(_, answer)| answer);
        assert_eq!(got.as_deref(), *expected, "offers {offers:?}");
    }
}

#[test]
fn negotiation_outcomes_seen_from_each_end() {
    let config = DeflateConfig::default();
    let (server_side, answer) = negotiate(&config, &parse(&[&offer(&config)])).unwrap();
    let client_side = accept_response(&config, &parse(&[&answer]))
        .unwrap()
        .unwrap();
    assert!(server_side.local_no_context_takeover && server_side.remote_no_context_takeover);
    assert!(client_side.local_no_context_takeover && client_side.remote_no_context_takeover);
    // A server limited to a window of 8 accepts, and then sends uncompressed.
    let (agreed, answer) = negotiate(
        &config,
        &parse(&["permessage-deflate; server_max_window_bits=8"]),
    )
    .unwrap();
    assert_eq!(answer, "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=8");
    let mut server = Connection::with_deflate(
        Role::Server,
        Config::default(),
        Some(Negotiated {
            threshold: 0,
            ..agreed
        }),
    );
    server.send_text("Hello").unwrap();
    assert_eq!(
        server.pending_output()[0],
        0x81,
        "RSV1 clear: not compressed"
    );
}

/// The client's verdict on each answer to its offer.
#[test]
fn answers_the_client_accepts_or_refuses() {
    let config = DeflateConfig {
        request_max_window_bits: Some(12),
        ..DeflateConfig::default()
    };
    let ok: &[&str] = &[
        "permessage-deflate; server_no_context_takeover; server_max_window_bits=12",
        "permessage-deflate; server_no_context_takeover; server_max_window_bits=9; client_max_window_bits=10",
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=12",
    ];
    for answer in ok {
        assert!(
            matches!(accept_response(&config, &parse(&[answer])), Ok(Some(_))),
            "{answer}"
        );
    }
    assert_eq!(accept_response(&config, &parse(&[])), Ok(None));
    let refused: &[&str] = &[
        // Not offered.
        "x-webkit-deflate-frame",
        // Our server_no_context_takeover request not honoured.
        "permessage-deflate; server_max_window_bits=12",
        // A larger window than offered; none where one was offered.
        "permessage-deflate; server_no_context_takeover; server_max_window_bits=13",
        "permessage-deflate; server_no_context_takeover",
        // client_max_window_bits without a value; unknown or repeated parameters.
        "permessage-deflate; server_no_context_takeover; server_max_window_bits=12; client_max_window_bits",
        "permessage-deflate; server_no_context_takeover; server_max_window_bits=12; zip",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover; server_max_window_bits=12",
        // Twice.
        "permessage-deflate; server_no_context_takeover; server_max_window_bits=12, permessage-deflate",
    ];
    for answer in refused {
        assert!(
            accept_response(&config, &parse(&[answer])).is_err(),
            "{answer}"
        );
    }
    assert!(matches!(
        accept_response(&config, &parse(&["x-other"])),
        Err(AnswerError::NotOffered(_))
    ));
}
