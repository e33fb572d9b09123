//! Properties over arbitrary input (proptest): the same invariants the fuzz targets
//! check, so that `cargo test` on stable covers them.

mod support;

use proptest::prelude::*;
use rfc6455::deflate::Negotiated;
use rfc6455::frame::{FrameHeader, Parsed};
use rfc6455::mask::apply_mask;
use rfc6455::utf8::Utf8Validator;
use rfc6455::{Config, Connection, Event, MessageKind, OpCode, Role};
use support::invariants::{check_output, check_output_with, drive, drive_both_apis, drive_with};

fn small_config() -> Config {
    Config {
        max_frame_size: 300,
        max_message_size: 1000,
        ..Config::default()
    }
}

fn any_header() -> impl Strategy<Value = FrameHeader> {
    (
        any::<bool>(),
        0u8..8,
        0u8..16,
        proptest::option::of(any::<[u8; 4]>()),
        prop_oneof![0u64..=125, 126u64..=65535, 65536u64..=(u64::MAX >> 1)],
    )
        .prop_map(|(fin, rsv, opcode, masking_key, payload_len)| FrameHeader {
            fin,
            rsv,
            opcode: OpCode::from_bits(opcode),
            masking_key,
            payload_len,
        })
}

/// Bytes that are often, but not always, UTF-8, with multi-byte sequences.
fn mostly_text() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        any::<String>().prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 0..64),
        (any::<String>(), any::<u8>(), any::<usize>()).prop_map(|(s, b, at)| {
            let mut bytes = s.into_bytes();
            let at = if bytes.is_empty() {
                0
            } else {
                at % bytes.len()
            };
            bytes.insert(at, b);
            bytes
        }),
    ]
}

#[derive(Debug, Clone)]
enum Message {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
}

fn any_message() -> impl Strategy<Value = (Message, Vec<usize>)> {
    let message = prop_oneof![
        any::<String>().prop_map(Message::Text),
        proptest::collection::vec(any::<u8>(), 0..2000).prop_map(Message::Binary),
        proptest::collection::vec(any::<u8>(), 0..=125).prop_map(Message::Ping),
    ];
    // Fragment sizes: empty means one frame.
    (message, proptest::collection::vec(0usize..50, 0..4))
}

/// Sends `messages` from a `role` connection, fragmenting at the given sizes.
fn send_all(conn: &mut Connection, messages: &[(Message, Vec<usize>)]) -> Vec<Event> {
    let mut expected = Vec::new();
    for (message, fragments) in messages {
        let (kind, bytes) = match message {
            Message::Ping(p) => {
                conn.send_ping(p).unwrap();
                expected.push(Event::Ping(p.clone()));
                continue;
            }
            Message::Text(t) => (MessageKind::Text, t.as_bytes()),
            Message::Binary(b) => (MessageKind::Binary, &b[..]),
        };
        let mut rest = bytes;
        for &size in fragments {
            let (piece, tail) = rest.split_at(size.min(rest.len()));
            conn.send_fragment(kind, piece, false).unwrap();
            rest = tail;
        }
        conn.send_fragment(kind, rest, true).unwrap();
        expected.push(match message {
            Message::Text(t) => Event::Text(t.clone()),
            Message::Binary(b) => Event::Binary(b.clone()),
            Message::Ping(_) => unreachable!(),
        });
    }
    expected
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn a_header_round_trips(header in any_header()) {
        let (bytes, len) = header.encode();
        prop_assert_eq!(len, header.encoded_len());
        prop_assert_eq!(FrameHeader::parse(&bytes[..len]), Ok(Parsed::Complete(header, len)));
        // Any prefix is incomplete and says how much is missing.
        for cut in 0..len {
            match FrameHeader::parse(&bytes[..cut]) {
                Ok(Parsed::Incomplete(missing)) => prop_assert!(cut + missing <= len),
                other => prop_assert!(false, "prefix {} gave {:?}", cut, other),
            }
        }
    }

    #[test]
    fn a_parsed_header_re_encodes_to_its_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..20)) {
        if let Ok(Parsed::Complete(header, len)) = FrameHeader::parse(&bytes) {
            let (encoded, encoded_len) = header.encode();
            prop_assert_eq!(&encoded[..encoded_len], &bytes[..len]);
        }
    }

    #[test]
    fn incremental_utf8_agrees_with_std(bytes in mostly_text(), splits in proptest::collection::vec(any::<usize>(), 0..5)) {
        let mut cuts: Vec<usize> = splits.iter().map(|s| s % (bytes.len() + 1)).collect();
        cuts.sort_unstable();
        let mut validator = Utf8Validator::new();
        let mut start = 0;
        let mut failed_at = None;
        for &cut in cuts.iter().chain([&bytes.len()]) {
            if validator.feed(&bytes[start..cut]).is_err() {
                failed_at = Some((start, cut));
                break;
            }
            start = cut;
        }
        match std::str::from_utf8(&bytes) {
            Ok(_) => {
                prop_assert_eq!(failed_at, None);
                prop_assert!(validator.is_complete());
            }
            Err(e) => match e.error_len() {
                // Fail fast: the failing piece holds the byte that proves the sequence
                // at `valid_up_to` bad (its first byte, or the one after its valid prefix).
                Some(error_len) => {
                    let (piece_start, piece_end) = failed_at.expect("invalid bytes were accepted");
                    prop_assert!(piece_end > e.valid_up_to());
                    prop_assert!(piece_start <= e.valid_up_to() + error_len);
                }
                // Only an unfinished sequence at the end: caught by is_complete.
                None => prop_assert!(failed_at.is_none() && !validator.is_complete()),
            },
        }
    }

    #[test]
    fn masking_in_pieces_equals_masking_at_once(
        data in proptest::collection::vec(any::<u8>(), 0..300),
        key in any::<[u8; 4]>(),
        cut in any::<usize>(),
    ) {
        let mut whole = data.clone();
        apply_mask(&mut whole, key, 0);
        let expected: Vec<u8> = data.iter().enumerate().map(|(i, b)| b ^ key[i % 4]).collect();
        prop_assert_eq!(&whole, &expected);
        let cut = cut % (data.len() + 1);
        let mut pieces = data.clone();
        let (a, b) = pieces.split_at_mut(cut);
        apply_mask(a, key, 0);
        apply_mask(b, key, cut);
        prop_assert_eq!(&pieces, &expected);
        // An involution: masking again restores the payload (RFC 6455 §5.3).
        apply_mask(&mut pieces, key, 0);
        prop_assert_eq!(pieces, data);
    }

    #[test]
    fn messages_round_trip_through_any_chunking(
        messages in proptest::collection::vec(any_message(), 0..8),
        chunks in proptest::collection::vec(0usize..100, 0..8),
        client_sends in any::<bool>(),
    ) {
        let (sender_role, receiver_role) = roles(client_sends);
        let mut sender = Connection::new(sender_role);
        let expected = send_all(&mut sender, &messages);
        let wire = sender.pending_output().to_vec();
        check_output(sender_role, &wire);
        let observed = drive(receiver_role, &Config::default(), &wire, &chunks);
        prop_assert!(!observed.failed);
        prop_assert_eq!(observed.events, expected);
    }

    #[test]
    fn both_receive_apis_give_the_same_messages_through_any_chunking(
        messages in proptest::collection::vec(any_message(), 0..8),
        chunks in proptest::collection::vec(0usize..100, 0..8),
        lend in proptest::collection::vec(0u8..3, 0..4),
        client_sends in any::<bool>(),
    ) {
        let (sender_role, receiver_role) = roles(client_sends);
        let mut sender = Connection::new(sender_role);
        let expected = send_all(&mut sender, &messages);
        let wire = sender.pending_output().to_vec();
        let observed = drive_both_apis(receiver_role, &Config::default(), None, &wire, &chunks, &lend);
        prop_assert!(!observed.failed);
        prop_assert_eq!(observed.events, expected);
    }

    #[test]
    fn both_receive_apis_agree_on_arbitrary_and_corrupted_bytes(
        messages in proptest::collection::vec(any_message(), 0..4),
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..3),
        noise in proptest::collection::vec(any::<u8>(), 0..200),
        chunks in proptest::collection::vec(0usize..64, 0..8),
        lend in proptest::collection::vec(0u8..3, 0..4),
        server in any::<bool>(),
    ) {
        let (sender_role, receiver_role) = roles(server);
        let mut sender = Connection::new(sender_role);
        send_all(&mut sender, &messages);
        let mut wire = sender.pending_output().to_vec();
        for (at, xor) in flips {
            if !wire.is_empty() {
                let at = at % wire.len();
                wire[at] ^= xor;
            }
        }
        wire.extend_from_slice(&noise);
        drive_both_apis(receiver_role, &small_config(), None, &wire, &chunks, &lend);
    }

    #[test]
    fn arbitrary_bytes_to_a_server_keep_every_invariant(
        input in proptest::collection::vec(any::<u8>(), 0..600),
        chunks in proptest::collection::vec(0usize..64, 0..8),
    ) {
        drive(Role::Server, &small_config(), &input, &chunks);
    }

    #[test]
    fn arbitrary_bytes_to_a_client_keep_every_invariant(
        input in proptest::collection::vec(any::<u8>(), 0..600),
        chunks in proptest::collection::vec(0usize..64, 0..8),
    ) {
        drive(Role::Client, &small_config(), &input, &chunks);
    }

    #[test]
    fn corrupted_valid_traffic_keeps_every_invariant(
        messages in proptest::collection::vec(any_message(), 1..6),
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4),
        chunks in proptest::collection::vec(0usize..64, 0..8),
    ) {
        // Mostly-valid input reaches deeper states than random bytes do.
        let mut sender = Connection::new(Role::Client);
        send_all(&mut sender, &messages);
        let mut wire = sender.pending_output().to_vec();
        for (at, xor) in flips {
            let at = at % wire.len();
            wire[at] ^= xor;
        }
        drive(Role::Server, &small_config(), &wire, &chunks);
    }
}

/// Who sends and who receives: the client (masked frames) or the server.
fn roles(client_sends: bool) -> (Role, Role) {
    if client_sends {
        (Role::Client, Role::Server)
    } else {
        (Role::Server, Role::Client)
    }
}

/// Re-frames `wire` (whole frames from one sender) so that every data frame's payload
/// is split at `sizes`: the first piece keeps the opcode and RSV bits, the rest become
/// continuations without RSV1 (RFC 7692 §6.1), masked afresh for a client.
fn refragment(wire: &[u8], role: Role, sizes: &[usize]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = wire;
    let fragmenting = !sizes.is_empty();
    let mut sizes = sizes.iter().cycle();
    while !rest.is_empty() {
        let Ok(Parsed::Complete(header, len)) = FrameHeader::parse(rest) else {
            panic!("our own output parses");
        };
        let end = len + header.payload_len as usize;
        let mut payload = rest[len..end].to_vec();
        if let Some(key) = header.masking_key {
            apply_mask(&mut payload, key, 0);
        }
        rest = &rest[end..];
        let mut pieces: Vec<&[u8]> = Vec::new();
        let mut left = &payload[..];
        if header.opcode.is_control() || !fragmenting {
            pieces.push(left);
        } else {
            loop {
                let size = (*sizes.next().unwrap()).min(left.len());
                let (piece, tail) = left.split_at(size);
                pieces.push(piece);
                left = tail;
                if left.is_empty() {
                    break;
                }
            }
        }
        for (i, piece) in pieces.iter().enumerate() {
            let masking_key = (role == Role::Client).then_some([1, 2, 3, 4]);
            let piece_header = FrameHeader {
                fin: i + 1 == pieces.len() && header.fin,
                rsv: if i == 0 { header.rsv } else { 0 },
                opcode: if i == 0 {
                    header.opcode
                } else {
                    OpCode::Continuation
                },
                masking_key,
                payload_len: piece.len() as u64,
            };
            let (head, head_len) = piece_header.encode();
            out.extend_from_slice(&head[..head_len]);
            let start = out.len();
            out.extend_from_slice(piece);
            if let Some(key) = masking_key {
                apply_mask(&mut out[start..], key, 0);
            }
        }
    }
    out
}

/// Text that compresses (repeated words), or any text, or any bytes.
/// Sends text and binary messages; returns the events a receiver should get.
fn send_data(sender: &mut Connection, messages: &[Message]) -> Vec<Event> {
    let mut expected = Vec::new();
    for message in messages {
        match message {
            Message::Text(t) => {
                sender.send_text(t).unwrap();
                expected.push(Event::Text(t.clone()));
            }
            Message::Binary(b) => {
                sender.send_binary(b).unwrap();
                expected.push(Event::Binary(b.clone()));
            }
            Message::Ping(_) => unreachable!("data messages only"),
        }
    }
    expected
}

fn compressible_message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (proptest::collection::vec("[a-c ]{1,8}", 0..60))
            .prop_map(|words| Message::Text(words.concat())),
        any::<String>().prop_map(Message::Text),
        proptest::collection::vec(any::<u8>(), 0..3000).prop_map(Message::Binary),
        proptest::collection::vec(0u8..4, 0..3000).prop_map(Message::Binary),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// permessage-deflate: whatever the messages, the context takeover on either side,
    /// the threshold, the fragmentation of the compressed frames and the chunking of
    /// the input, the receiver gets exactly the messages sent, and both ends keep
    /// every invariant.
    #[test]
    fn compressed_messages_round_trip_through_any_fragmentation_and_chunking(
        messages in proptest::collection::vec(compressible_message(), 1..8),
        no_context_takeover in any::<bool>(),
        window_bits in 9u8..=15,
        threshold in 0usize..100,
        fragment_sizes in proptest::collection::vec(1usize..40, 0..4),
        chunks in proptest::collection::vec(0usize..100, 0..8),
        client_sends in any::<bool>(),
    ) {
        let (sender_role, receiver_role) = roles(client_sends);
        // What the sender agreed is what the receiver agreed, seen from the other end.
        let sending = Negotiated {
            local_no_context_takeover: no_context_takeover,
            remote_no_context_takeover: no_context_takeover,
            local_max_window_bits: window_bits,
            remote_max_window_bits: window_bits,
            level: 6,
            threshold,
        };
        let mut sender = Connection::with_deflate(sender_role, Config::default(), Some(sending));
        let expected = send_data(&mut sender, &messages);
        let wire = refragment(sender.pending_output(), sender_role, &fragment_sizes);
        check_output_with(sender_role, &wire, true);
        // Read every way: owned, and lent, into a buffer, polled (in turn).
        let lend = [0, 1, 2];
        let observed = drive_both_apis(receiver_role, &Config::default(), Some(sending), &wire, &chunks, &lend);
        prop_assert!(!observed.failed);
        prop_assert_eq!(observed.events, expected);
    }

    /// Arbitrary bytes to a connection with deflate negotiated: every invariant holds.
    #[test]
    fn arbitrary_bytes_with_deflate_keep_every_invariant(
        input in proptest::collection::vec(any::<u8>(), 0..600),
        chunks in proptest::collection::vec(0usize..64, 0..8),
        server in any::<bool>(),
    ) {
        let agreed = Negotiated {
            threshold: 0,
            ..Negotiated::default()
        };
        let role = if server { Role::Server } else { Role::Client };
        drive_with(role, &small_config(), Some(agreed), &input, &chunks);
    }
}

#[test]
fn a_message_over_the_limit_is_refused_whatever_the_fragmentation() {
    let config = small_config();
    for fragments in [vec![], vec![500], vec![100, 100, 100, 100, 100, 100]] {
        let mut sender = Connection::new(Role::Client);
        send_all(
            &mut sender,
            &[(Message::Binary(vec![0; 1001]), fragments.clone())],
        );
        let observed = drive(Role::Server, &config, sender.pending_output(), &[7]);
        assert!(observed.failed, "fragments {fragments:?}");
        assert!(observed.events.is_empty());
    }
}

/// A valid upgrade request, for mutation.
const VALID_REQUEST: &[u8] = b"GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
Sec-WebSocket-Protocol: chat\r\n\r\n";

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The mirror of fuzz/handshake_request: a rejection always carries an error
    /// status and a response saying it; an acceptance yields a 101 the client accepts.
    #[test]
    fn any_request_is_accepted_or_refused_with_a_status(
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
        truncate in any::<bool>(),
        cut in any::<usize>(),
    ) {
        use rfc6455::handshake::client::{ClientHandshake, WsUrl};
        use rfc6455::handshake::server::Request;
        let mut head = VALID_REQUEST.to_vec();
        for (at, byte) in edits {
            let at = at % head.len();
            head[at] = byte;
        }
        if truncate {
            head.truncate(cut % (head.len() + 1));
        }
        match Request::parse(&head) {
            Ok(request) => {
                let url = WsUrl::parse("ws://example.com/").unwrap();
                let offered: Vec<&str> = request.protocols().iter().map(String::as_str).collect();
                let (client, _) = ClientHandshake::with_key(request.key().to_string(), &url, &offered, &[]);
                let response = request.accept(offered.first().copied());
                prop_assert!(client.validate(&response).is_ok());
            }
            Err(err) => {
                let status = err.status();
                prop_assert!((400..600).contains(&status));
                let response = err.response();
                let status_line = format!("HTTP/1.1 {status} ");
                prop_assert!(response.starts_with(status_line.as_bytes()));
            }
        }
    }

    /// The mirror of fuzz/handshake_response: only a 101 with the right accept passes.
    #[test]
    fn any_response_is_validated_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        use rfc6455::handshake::client::{ClientHandshake, WsUrl};
        let url = WsUrl::parse("ws://example.com/").unwrap();
        let (client, _) = ClientHandshake::with_key("dGhlIHNhbXBsZSBub25jZQ==".into(), &url, &[], &[]);
        prop_assert!(client.validate(&bytes).is_err() || bytes.windows(28).any(|w| w == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
    }

    /// The frame inspector reads any bytes without panicking and counts what it saw.
    #[test]
    fn the_inspector_describes_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let report = rfc6455::learn::inspect::inspect(&bytes, None);
        let summary = format!("{} byte", bytes.len());
        prop_assert!(report.lines().last().unwrap().starts_with(&summary));
    }
}

/// The messages a [`FrameTap`](rfc6455::learn::tap::FrameTap) saw in `wire`, fed in pieces of
/// the sizes in `chunks` (cycled; 0 = the rest), from its previews (kept whole) and the
/// inflated ones; and every violation it reported.
fn tapped(sender: Role, deflate: bool, wire: &[u8], chunks: &[usize]) -> (Vec<Event>, Vec<String>) {
    use rfc6455::learn::tap::{FrameTap, TapEvent};
    let mut tap = FrameTap::new(sender, 1 << 20);
    if deflate {
        tap.enable_deflate();
    }
    let mut events = Vec::new();
    let mut rest = wire;
    let mut sizes = chunks.iter().cycle();
    while !rest.is_empty() {
        let size = match sizes.next() {
            Some(0) | None => rest.len(),
            Some(n) => (*n).min(rest.len()),
        };
        tap.feed(&rest[..size], &mut events);
        rest = &rest[size..];
    }
    let (mut messages, mut violations, mut data) = (Vec::new(), Vec::new(), Vec::new());
    for event in events {
        let TapEvent::Frame(frame) = event else {
            violations.push(format!("{event:?}"));
            continue;
        };
        violations.extend(frame.violations.iter().map(|v| v.to_string()));
        data.extend(&frame.preview);
        if let Some(inflated) = &frame.inflated {
            data = inflated.preview.clone();
        }
        if frame.header.fin && frame.message.is_some() {
            let payload = std::mem::take(&mut data);
            messages.push(match frame.message {
                Some(OpCode::Text) => Event::Text(String::from_utf8(payload).unwrap()),
                _ => Event::Binary(payload),
            });
        }
    }
    (messages, violations)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// `rfc6455 tap` reads what a Connection sends — compressed or not, however it is
    /// fragmented and however the bytes are cut — as exactly those messages, and finds
    /// nothing wrong with it.
    #[test]
    fn the_tap_reads_exactly_what_a_connection_sends(
        messages in proptest::collection::vec(compressible_message(), 1..6),
        deflate in any::<bool>(),
        no_context_takeover in any::<bool>(),
        fragment_sizes in proptest::collection::vec(1usize..40, 0..4),
        chunks in proptest::collection::vec(0usize..100, 0..8),
        client_sends in any::<bool>(),
    ) {
        let role = if client_sends { Role::Client } else { Role::Server };
        let agreed = deflate.then_some(Negotiated {
            local_no_context_takeover: no_context_takeover,
            remote_no_context_takeover: no_context_takeover,
            threshold: 0,
            ..Negotiated::default()
        });
        let mut sender = Connection::with_deflate(role, Config::default(), agreed);
        let expected = send_data(&mut sender, &messages);
        let wire = refragment(sender.pending_output(), role, &fragment_sizes);
        let (seen, violations) = tapped(role, deflate, &wire, &chunks);
        prop_assert!(violations.is_empty(), "{:?}", violations);
        prop_assert_eq!(seen, expected);
    }
}

/// Inputs the `tap` fuzz target found: a compressed text message whose DEFLATE data
/// turns bad after some invalid UTF-8 came out. Fed at once, the error hid that
/// output; fed in pieces, it was reported first. Now only "not DEFLATE data" counts,
/// however the bytes are cut.
#[test]
fn tap_regressions_found_by_fuzzing() {
    use rfc6455::learn::tap::FrameTap;
    for hex in [
        "4305c10882f348cdc9c9c1070000",
        "4205c18b37fa213d37ff21c7c8171717171717171717171717171717171717171717171717171717\
         171717171717171717b204515b9521",
    ] {
        let data = rfc6455::learn::inspect::parse_hex(hex).unwrap();
        let (config, cut, stream) = (data[0], data[1], &data[2..]);
        let sender = if config & 1 == 0 {
            Role::Client
        } else {
            Role::Server
        };
        let tap = || {
            let mut tap = FrameTap::new(sender, usize::from(config >> 2));
            tap.enable_deflate();
            tap
        };
        let (mut whole, mut at_once) = (tap(), Vec::new());
        whole.feed(stream, &mut at_once);
        let (mut pieces, mut in_pieces) = (tap(), Vec::new());
        for piece in stream.chunks(usize::from(cut)) {
            pieces.feed(piece, &mut in_pieces);
        }
        assert_eq!(at_once, in_pieces);
        let rfc6455::learn::tap::TapEvent::Frame(first) = &at_once[0] else {
            panic!("{at_once:?}")
        };
        assert_eq!(
            first.violations,
            [rfc6455::learn::tap::Violation::Protocol(
                rfc6455::ProtocolError::InvalidDeflateData
            )]
        );
    }
}
