//! Unit tests of the connection's parts working together.

use super::write::PONG_BACKLOG;
use super::*;

fn agreed(no_context_takeover: bool) -> Negotiated {
    Negotiated {
        local_no_context_takeover: no_context_takeover,
        remote_no_context_takeover: no_context_takeover,
        threshold: 0,
        ..Negotiated::default()
    }
}

/// Compression state exists only while it is needed: allocated by the first
/// compressed message each way, and freed when the connection goes idle, unless
/// context takeover obliges it to be kept (RFC 7692 §7.1.1).
#[test]
fn compression_state_is_freed_when_idle_unless_context_is_taken_over() {
    for no_context_takeover in [true, false] {
        let mut client =
            Connection::with_deflate(Role::Client, Config::default(), Some(agreed(true)));
        client.send_text(&"compressible ".repeat(20)).unwrap();
        let frame = client.pending_output().to_vec();
        let mut server = Connection::with_deflate(
            Role::Server,
            Config::default(),
            Some(agreed(no_context_takeover)),
        );
        let state = |conn: &Connection| {
            (
                conn.write.deflater_holds_state(),
                conn.read.inflater_holds_state(),
            )
        };
        assert_eq!(state(&server), (false, false), "nothing before a message");
        server.receive(&frame);
        assert!(matches!(server.next_event(), Ok(Some(Event::Text(_)))));
        server
            .send_text(&"a reply that compresses ".repeat(10))
            .unwrap();
        assert_eq!(state(&server), (true, true));
        let pending = server.pending_output().len();
        server.consume_output(pending);
        server.release_idle_buffers();
        let kept = !no_context_takeover;
        assert_eq!(state(&server), (kept, kept));
        assert!(server.read.input_capacity() <= 4096);
    }
}

/// A message parsed by `poll_next` keeps its bytes while more input arrives, even
/// when the buffer is compacted to make room.
#[test]
fn a_polled_message_survives_more_input() {
    let mut client = Connection::new(Role::Server);
    client.send_binary(&[7; 100]).unwrap();
    client.send_text("second").unwrap();
    client.send_ping(b"p").unwrap();
    let wire = client.pending_output().to_vec();
    let first_len = 2 + 100;
    for role_end in [first_len + 3, first_len + 8] {
        let mut conn = Connection::new(Role::Client);
        conn.receive(&wire[..role_end]);
        assert_eq!(conn.poll_next(), Ok(true));
        assert_eq!(
            conn.poll_next(),
            Ok(true),
            "polling again keeps the same message"
        );
        // Room for far more than the buffer holds: the unread bytes move to the front.
        let rest = &wire[role_end..];
        let space = conn.input_buffer(1 << 16);
        space[..rest.len()].copy_from_slice(rest);
        conn.commit_input(rest.len());
        assert_eq!(conn.next_message(), Ok(Some(MessageRef::Binary(&[7; 100]))));
        assert_eq!(conn.next_message(), Ok(Some(MessageRef::Text("second"))));
        assert_eq!(conn.poll_next(), Ok(true));
        conn.receive(&[0x81, 0x01]);
        assert_eq!(conn.next_event(), Ok(Some(Event::Ping(b"p".to_vec()))));
        assert_eq!(conn.poll_next(), Ok(false));
    }
}

/// A masked client frame, its bytes and its payload.
fn client_frame(kind: MessageKind, payload: &[u8]) -> Vec<u8> {
    let mut client = Connection::new(Role::Client);
    client.send_message(kind, payload).unwrap();
    client.pending_output().to_vec()
}

/// Once a large frame's header is read, `receive` puts the rest of its payload
/// straight into the message (nothing waits in the input buffer), and what follows
/// the frame in the same call goes to the input buffer as usual.
#[test]
fn receive_unmasks_a_frame_in_progress_straight_into_the_message() {
    let payload: Vec<u8> = (0..100_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    let mut wire = client_frame(MessageKind::Binary, &payload);
    wire.extend(client_frame(MessageKind::Text, "after".as_bytes()));
    let mut server = Connection::new(Role::Server);
    server.receive(&wire[..5000]);
    assert_eq!(server.next_event(), Ok(None), "the frame goes on");
    let mut at = 5000;
    while at < wire.len() {
        let end = (at + 7001).min(wire.len());
        server.receive(&wire[at..end]);
        at = end;
        if at < wire.len() - 11 {
            assert_eq!(server.buffered_input(), 0, "at {at}: nothing buffered");
        }
    }
    assert!(server.buffered_input() > 0, "the next frame is buffered");
    assert_eq!(server.state(), State::Open);
    assert_eq!(server.next_event(), Ok(Some(Event::Binary(payload))));
    assert_eq!(server.next_event(), Ok(Some(Event::Text("after".into()))));
    assert_eq!(server.next_event(), Ok(None));
}

/// Bad text met by `receive`'s direct path is left for the input buffer's path, so
/// that the error comes from the next call, as it would through `input_buffer`.
#[test]
fn bad_text_continued_by_receive_fails_at_the_next_call() {
    let mut text = "é".repeat(20_000).into_bytes();
    let bad_at = text.len() - 3_000;
    text[bad_at] = 0xff;
    // Valid bytes, except one; and valid bytes ending halfway through a character.
    let cases = [
        (client_frame(MessageKind::Text, &text), 30_000),
        (
            client_frame(
                MessageKind::Text,
                &"é".repeat(20_000).into_bytes()[..39_999],
            ),
            35_000,
        ),
    ];
    for (wire, split) in cases {
        let mut server = Connection::new(Role::Server);
        server.receive(&wire[..split]);
        assert_eq!(server.next_event(), Ok(None));
        server.receive(&wire[split..]);
        assert_eq!(server.state(), State::Open, "nothing interpreted yet");
        assert!(server.pending_output().is_empty());
        assert_eq!(server.next_event(), Err(ProtocolError::InvalidUtf8));
        assert_eq!(server.state(), State::Closed);
    }
}

/// An event parsed but not yet handed out (by `poll_next`, or a message that
/// `receive` finished) keeps its bytes through `release_idle_buffers`.
#[test]
fn a_message_waiting_to_be_handed_out_survives_release_idle_buffers() {
    let payload = vec![9u8; 20_000];
    let wire = client_frame(MessageKind::Binary, &payload);
    // Whole in the input buffer, parsed by poll_next.
    let mut server = Connection::new(Role::Server);
    server.receive(&wire);
    assert_eq!(server.poll_next(), Ok(true));
    server.release_idle_buffers();
    assert_eq!(
        server.next_message(),
        Ok(Some(MessageRef::Binary(&payload)))
    );
    // Finished by receive's direct path, in the assembly buffer.
    let mut server = Connection::new(Role::Server);
    server.receive(&wire[..100]);
    assert_eq!(server.next_event(), Ok(None));
    server.receive(&wire[100..]);
    server.release_idle_buffers();
    assert_eq!(
        server.next_message(),
        Ok(Some(MessageRef::Binary(&payload)))
    );
}

/// Large frames in 64 KiB pieces: each piece ends one message and starts the
/// next, which `receive` assembles while the finished one waits to be handed out
/// — through every receive API, each message intact and in order.
#[test]
fn back_to_back_large_frames_in_pieces_arrive_whole_through_every_api() {
    let messages: Vec<Vec<u8>> = (0..6u8)
        .map(|m| {
            (0..70_000 + m as usize * 999)
                .map(|i| (i as u8) ^ m)
                .collect()
        })
        .collect();
    let wire: Vec<u8> = messages
        .iter()
        .flat_map(|m| client_frame(MessageKind::Binary, m))
        .collect();
    for api in 0..3 {
        let mut server = Connection::new(Role::Server);
        let mut got = Vec::new();
        let mut reused = Vec::new();
        for piece in wire.chunks(64 * 1024) {
            server.receive(piece);
            loop {
                let message = match api {
                    0 => match server.next_event().unwrap() {
                        Some(Event::Binary(data)) => data,
                        other => break assert_eq!(other, None),
                    },
                    1 => match server.next_message().unwrap() {
                        Some(MessageRef::Binary(data)) => data.to_vec(),
                        other => break assert_eq!(other, None),
                    },
                    _ => match server.next_message_into(&mut reused).unwrap() {
                        Some(MessageRef::Binary(data)) => data.to_vec(),
                        other => break assert_eq!(other, None),
                    },
                };
                got.push(message);
            }
        }
        assert!(got == messages, "api {api}: {} messages", got.len());
    }
}

/// A control frame that `receive` gets in pieces waits whole in the input buffer,
/// its header there once.
#[test]
fn a_ping_in_small_pieces_is_answered_once_whole() {
    let mut peer = Connection::new(Role::Server);
    peer.send_ping(&[5; 24]).unwrap();
    let wire = peer.pending_output().to_vec();
    let mut client = Connection::new(Role::Client);
    for piece in wire.chunks(6) {
        client.receive(piece);
        if client.buffered_input() < wire.len() {
            assert_eq!(client.next_event(), Ok(None));
        }
    }
    assert_eq!(client.next_event(), Ok(Some(Event::Ping(vec![5; 24]))));
    assert_eq!(client.next_event(), Ok(None));
}

/// Masked pings from a client, as the server reads them.
fn pings(payloads: &[&[u8]]) -> Vec<u8> {
    let mut client = Connection::new(Role::Client);
    for payload in payloads {
        client.send_ping(payload).unwrap();
    }
    client.pending_output().to_vec()
}

#[test]
fn a_ping_flood_queues_a_bounded_backlog_ending_with_the_latest_pong() {
    let mut server = Connection::new(Role::Server);
    let many: Vec<Vec<u8>> = (0..1000u32).map(|i| i.to_be_bytes().to_vec()).collect();
    let refs: Vec<&[u8]> = many.iter().map(Vec::as_slice).collect();
    server.receive(&pings(&refs));
    while server.next_event().unwrap().is_some() {}
    let out = server.pending_output();
    assert!(out.len() <= PONG_BACKLOG + 6, "{} bytes queued", out.len());
    // RFC 6455 §5.5.3: the latest ping is answered.
    assert_eq!(&out[out.len() - 6..], &[0x8A, 4, 0, 0, 0x03, 0xE7]);
}

#[test]
fn ten_pings_at_once_get_ten_pongs() {
    let mut server = Connection::new(Role::Server);
    let payloads: Vec<[u8; 1]> = (0..10u8).map(|i| [i]).collect();
    let refs: Vec<&[u8]> = payloads.iter().map(|p| &p[..]).collect();
    server.receive(&pings(&refs));
    while server.next_event().unwrap().is_some() {}
    let expected: Vec<u8> = (0..10u8).flat_map(|i| [0x8A, 1, i]).collect();
    assert_eq!(server.pending_output(), &expected[..]);
}

#[test]
fn only_a_trailing_wholly_unsent_pong_is_replaced() {
    let big = vec![7u8; PONG_BACKLOG + 1];
    let mut header = vec![0x82, 126];
    header.extend_from_slice(&(big.len() as u16).to_be_bytes());
    let answered = |between: bool| {
        let mut server = Connection::new(Role::Server);
        server.send_binary(&big).unwrap();
        server.receive(&pings(&[b"one"]));
        while server.next_event().unwrap().is_some() {}
        if between {
            server.send_text("hi").unwrap();
        }
        server.receive(&pings(&[b"two"]));
        while server.next_event().unwrap().is_some() {}
        server.pending_output()[header.len() + big.len()..].to_vec()
    };
    assert_eq!(answered(false), [&[0x8A, 3][..], b"two"].concat());
    let kept = [
        &[0x8A, 3][..],
        b"one",
        &[0x81, 2],
        b"hi",
        &[0x8A, 3],
        b"two",
    ]
    .concat();
    assert_eq!(answered(true), kept, "a Pong followed by a message stays");
}

#[test]
fn an_unfinished_frame_keeps_only_its_bytes_when_idle() {
    let mut client = Connection::new(Role::Client);
    client.send_text(&"x".repeat(30_000)).unwrap();
    let wire = client.pending_output().to_vec();
    let mut server = Connection::new(Role::Server);
    let space = server.input_buffer(64 * 1024);
    space[..5].copy_from_slice(&wire[..5]);
    server.commit_input(5);
    assert_eq!(server.next_event(), Ok(None));
    server.release_idle_buffers();
    assert!(
        server.read.input_capacity() < 4096,
        "{}",
        server.read.input_capacity()
    );
    server.receive(&wire[5..]);
    assert_eq!(
        server.next_event(),
        Ok(Some(Event::Text("x".repeat(30_000))))
    );
}

// ---- time in the core, with a fake clock: no test sleeps -------------------------

const SECOND: std::time::Duration = std::time::Duration::from_secs(1);

fn heartbeat_server(interval: u32, pong_timeout: u32) -> Connection {
    let config = Config {
        ping_interval: Some(interval * SECOND),
        pong_timeout: pong_timeout * SECOND,
        close_timeout: Some(5 * SECOND),
        ..Config::default()
    };
    Connection::with_config(Role::Server, config)
}

fn drain(conn: &mut Connection) -> Vec<u8> {
    let out = conn.pending_output().to_vec();
    conn.consume_output(out.len());
    out
}

/// A peer that answers every heartbeat Ping stays open, ping after ping.
#[test]
fn a_peer_that_answers_the_heartbeat_stays_open() {
    let t0 = std::time::Instant::now();
    let mut server = heartbeat_server(10, 3);
    let mut client = Connection::new(Role::Client);
    assert_eq!(server.poll_timeout(t0), Some(t0 + 10 * SECOND));
    for beat in 1..=5u32 {
        let now = t0 + 10 * beat * SECOND;
        server.handle_timeout(now - SECOND); // early: nothing
        assert!(server.pending_output().is_empty());
        server.handle_timeout(now);
        client.receive(&drain(&mut server));
        assert_eq!(client.next_event(), Ok(Some(Event::Ping(Vec::new()))));
        assert_eq!(server.poll_timeout(now), Some(now + 3 * SECOND));
        server.receive(&drain(&mut client)); // the client's automatic Pong
        assert_eq!(server.next_event(), Ok(Some(Event::Pong(Vec::new()))));
        assert_eq!(server.poll_timeout(now), Some(now + 10 * SECOND));
    }
    assert_eq!(server.state(), State::Open);
}

/// No Pong within the timeout: Close 1008 "ping timeout", then the close timeout
/// bounds the wait for the peer's Close; past it the connection is Closed.
#[test]
fn a_silent_peer_is_closed_with_1008_and_then_given_up_on() {
    let t0 = std::time::Instant::now();
    let mut server = heartbeat_server(10, 3);
    server.poll_timeout(t0);
    server.handle_timeout(t0 + 10 * SECOND);
    assert_eq!(drain(&mut server), [0x89, 0x00]);
    server.handle_timeout(t0 + 13 * SECOND);
    let close = drain(&mut server);
    assert_eq!(close[..4], [0x88, 14, 0x03, 0xf0]);
    assert_eq!(&close[4..], b"ping timeout");
    assert_eq!(server.state(), State::Closing);
    assert_eq!(
        server.poll_timeout(t0 + 13 * SECOND),
        Some(t0 + 18 * SECOND)
    );
    server.handle_timeout(t0 + 18 * SECOND);
    assert_eq!(server.state(), State::Closed);
    assert_eq!(server.poll_timeout(t0 + 18 * SECOND), None);
    assert!(server.pending_output().is_empty(), "nothing more is sent");
}

/// The peer's Close within the timeout ends the handshake cleanly and stops every
/// timer; a Close the peer starts stops the heartbeat too.
#[test]
fn a_close_answered_in_time_stops_the_timers() {
    let t0 = std::time::Instant::now();
    let mut server = heartbeat_server(10, 3);
    server.close(CloseCode::NORMAL, "").unwrap();
    assert_eq!(
        server.poll_timeout(t0),
        Some(t0 + 5 * SECOND),
        "no pings while closing"
    );
    server.receive(&[0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8]);
    assert!(matches!(
        server.next_event(),
        Ok(Some(Event::Close(Some(_))))
    ));
    assert_eq!(server.state(), State::Closed);
    assert_eq!(server.poll_timeout(t0), None);

    let mut server = heartbeat_server(10, 3);
    server.poll_timeout(t0);
    server.receive(&[0x88, 0x80, 0, 0, 0, 0]);
    assert!(matches!(server.next_event(), Ok(Some(Event::Close(None)))));
    assert_eq!(server.poll_timeout(t0), None);
    server.handle_timeout(t0 + 100 * SECOND);
    assert_eq!(drain(&mut server), [0x88, 0x00], "only the echo");
}

/// Without a close timeout the peer's Close is awaited for ever; a failed connection
/// keeps no timer.
#[test]
fn no_close_timeout_waits_for_ever_and_a_failure_keeps_no_timer() {
    let t0 = std::time::Instant::now();
    let config = Config {
        close_timeout: None,
        ..Config::default()
    };
    let mut server = Connection::with_config(Role::Server, config);
    server.close(CloseCode::NORMAL, "").unwrap();
    assert_eq!(server.poll_timeout(t0), None);
    server.handle_timeout(t0 + 1_000_000 * SECOND);
    assert_eq!(server.state(), State::Closing);

    let mut server = heartbeat_server(10, 3);
    server.receive(&[0x81, 0x00]); // unmasked: fails (RFC 6455 §5.1)
    assert!(server.next_event().is_err());
    assert_eq!(server.poll_timeout(t0), None);
}

/// Any frame from the peer shows it is there, not only its Pong: a peer that sends
/// messages but answers pings late is not closed.
#[test]
fn any_frame_from_the_peer_answers_the_heartbeat() {
    let t0 = std::time::Instant::now();
    let mut server = heartbeat_server(10, 3);
    server.poll_timeout(t0);
    server.handle_timeout(t0 + 10 * SECOND);
    drain(&mut server);
    server.receive(&[0x82, 0x80, 0, 0, 0, 0]); // an empty binary message
    assert_eq!(server.next_event(), Ok(Some(Event::Binary(Vec::new()))));
    server.handle_timeout(t0 + 13 * SECOND);
    assert_eq!(server.state(), State::Open);
    assert_eq!(
        server.poll_timeout(t0 + 13 * SECOND),
        Some(t0 + 20 * SECOND)
    );
}
