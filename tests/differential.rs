//! What the differential fuzz targets (`fuzz/fuzz_targets/diff_*.rs`) found, as tests: one
//! input per known class of disagreement with tungstenite (`fuzz/differences.rs`, shared
//! with the targets), showing both verdicts; the inputs where we were wrong, now agreeing;
//! and a check that the classifier does not excuse an arbitrary disagreement.

#[path = "../fuzz/differences.rs"]
mod differences;

use differences::{
    classify_frame, classify_handshake, our_handshake, same_verdict, their_handshake, Frame,
    FrameDifference, HandshakeDifference, HandshakeVerdict, Ours, Outcome, Theirs,
};
use rfc6455::handshake::HeadReader;
use rfc6455::{Config, Role};

const MAX_FRAME: usize = 1024;
const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A client frame: masked with `KEY`, length written as given after the first byte.
fn masked(first: u8, length: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    out.extend_from_slice(length);
    out[1] |= 0x80;
    out.extend_from_slice(&KEY);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ KEY[i % 4]));
    out
}

/// Both sides' outcomes for `bytes` sent to a server.
fn both(bytes: &[u8]) -> (Vec<Outcome>, Vec<Outcome>, Ours) {
    let config = Config {
        max_frame_size: MAX_FRAME,
        max_message_size: 4 * MAX_FRAME,
        ..Config::default()
    };
    let mut ours = Ours::new(Role::Server, config);
    let mut theirs = Theirs::new(Role::Server, MAX_FRAME, 4 * MAX_FRAME);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    ours.feed(bytes, &mut a);
    theirs.feed(bytes, &mut b);
    (a, b, ours)
}

fn frame(first: u8, declared: u64, whole: bool, payload: &[u8]) -> Frame {
    Frame {
        first,
        declared,
        msb_set: declared >> 63 == 1,
        non_minimal: false,
        over_limit: declared > MAX_FRAME as u64,
        whole,
        payload: payload.to_vec(),
    }
}

#[test]
fn each_known_frame_difference_shows_both_verdicts() {
    type Case = (Vec<u8>, Frame, Vec<Outcome>, Vec<Outcome>, FrameDifference);
    let msb = [&[127u8][..], &(5u64 | 1 << 63).to_be_bytes()].concat();
    let mut non_minimal = frame(0x82, 5, true, b"hello");
    non_minimal.non_minimal = true;
    let cases: Vec<Case> = vec![
        (
            // An unmasked client frame, cut short: we fail at its header (§5.1).
            b"\x81\x05He".to_vec(),
            frame(0x81, 5, false, b"Hello"),
            vec![Outcome::Fail(1002)],
            vec![],
            FrameDifference::EarlyVerdict,
        ),
        (
            masked(0x82, &msb, b""),
            frame(0x82, 5 | 1 << 63, false, b""),
            vec![Outcome::Fail(1002)],
            vec![Outcome::Fail(1009)],
            FrameDifference::LengthMsbSet,
        ),
        (
            masked(0x82, &[126, 0, 5], b"hello"),
            non_minimal,
            vec![Outcome::Fail(1002)],
            vec![Outcome::Binary(b"hello".to_vec())],
            FrameDifference::NonMinimalLength,
        ),
        (
            masked(0x88, &[2], &1005u16.to_be_bytes()),
            frame(0x88, 2, true, &1005u16.to_be_bytes()),
            vec![Outcome::Fail(1002)],
            vec![Outcome::Close(Some((1002, b"Protocol violation".to_vec())))],
            FrameDifference::InvalidCloseCode,
        ),
        (
            // Unmasked (§5.1) and over the frame limit (§10.4).
            [&[0x82, 126][..], &2000u16.to_be_bytes()].concat(),
            frame(0x82, 2000, false, &[]),
            vec![Outcome::Fail(1002)],
            vec![Outcome::Fail(1009)],
            FrameDifference::TwoViolationsInHeader,
        ),
        (
            masked(0x88, &[3], &[0x03, 0xed, 0xff]),
            frame(0x88, 3, true, &[0x03, 0xed, 0xff]),
            vec![Outcome::Fail(1002)],
            vec![Outcome::Fail(1007)],
            FrameDifference::TwoViolationsInClose,
        ),
    ];
    for (bytes, frame, want_ours, want_theirs, class) in cases {
        let (a, b, ours) = both(&bytes);
        assert_eq!((&a, &b), (&want_ours, &want_theirs), "{class:?}");
        assert_eq!(
            classify_frame(&frame, &a, &b, ours.error.as_ref()),
            Some(class)
        );
    }
}

#[test]
fn both_sides_agree_on_the_rfc_examples() {
    // RFC 6455 §5.7: a masked "Hello", fragmented "Hel" + "lo", a masked ping.
    let stream = [
        masked(0x81, &[5], b"Hello"),
        masked(0x01, &[3], b"Hel"),
        masked(0x80, &[2], b"lo"),
        masked(0x89, &[5], b"Hello"),
        masked(0x88, &[2], &1000u16.to_be_bytes()),
    ]
    .concat();
    let (a, b, _) = both(&stream);
    let hello = Outcome::Text(b"Hello".to_vec());
    let want = vec![
        hello.clone(),
        hello,
        Outcome::Ping(b"Hello".to_vec()),
        Outcome::Close(Some((1000, Vec::new()))),
    ];
    assert_eq!(a, want);
    assert_eq!(b, want);
}

#[test]
fn the_classifier_excuses_no_other_disagreement() {
    let text = |s: &[u8]| vec![Outcome::Text(s.to_vec())];
    let f = frame(0x81, 5, true, b"Hello");
    // Different content, a message against a failure, a failure class swapped.
    assert_eq!(
        classify_frame(&f, &text(b"Hello"), &text(b"Hellp"), None),
        None
    );
    assert_eq!(
        classify_frame(&f, &text(b"Hello"), &[Outcome::Fail(1007)], None),
        None
    );
    let invalid = rfc6455::ProtocolError::InvalidUtf8;
    assert_eq!(
        classify_frame(
            &f,
            &[Outcome::Fail(1007)],
            &[Outcome::Fail(1002)],
            Some(&invalid)
        ),
        None
    );
    // A valid request tungstenite refused would be a finding too.
    let head = request(&[]);
    assert!(same_verdict(&our_handshake(&head), &their_handshake(&head)));
    assert_eq!(
        classify_handshake(
            &head,
            &our_handshake(&head),
            &HandshakeVerdict::Reject(tungstenite::Error::AlreadyClosed)
        ),
        None
    );
}

/// The valid request of RFC 6455 §1.3 with `changes` applied: (header, value) replaces
/// that header, `None` removes it; new names are appended.
fn request(changes: &[(&str, Option<&str>)]) -> Vec<u8> {
    request_line("GET /chat HTTP/1.1", changes)
}

fn request_line(line: &str, changes: &[(&str, Option<&str>)]) -> Vec<u8> {
    let mut headers: Vec<(String, String)> = [
        ("Host", "server.example.com"),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("Sec-WebSocket-Version", "13"),
    ]
    .iter()
    .map(|(n, v)| (n.to_string(), v.to_string()))
    .collect();
    for (name, value) in changes {
        match (headers.iter().position(|(n, _)| n == name), value) {
            (Some(i), Some(v)) => headers[i].1 = v.to_string(),
            (Some(i), None) => {
                headers.remove(i);
            }
            (None, Some(v)) => headers.push((name.to_string(), v.to_string())),
            (None, None) => {}
        }
    }
    let mut head = format!("{line}\r\n");
    for (n, v) in headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("\r\n");
    head.into_bytes()
}

#[test]
fn each_known_handshake_difference_shows_both_verdicts() {
    use HandshakeDifference::*;
    // A head with `extra` header lines (each ending CRLF) before its blank line.
    let append = |mut head: Vec<u8>, extra: &str| {
        head.truncate(head.len() - 2);
        head.extend_from_slice(extra.as_bytes());
        head.extend_from_slice(b"\r\n");
        head
    };
    let with_line = |extra: &str| append(request(&[]), extra);
    let many: String = (0..70).map(|i| format!("X-{i}: {i}\r\n")).collect();
    let cases: Vec<(Vec<u8>, HandshakeDifference)> = vec![
        (request(&[("Host", None)]), MissingHost),
        (
            request(&[("Sec-WebSocket-Key", Some("c2hvcnQ="))]),
            KeyNotSixteenBytes,
        ),
        (
            with_line("Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\n"),
            RepeatedHeader,
        ),
        (
            request(&[("Connection", Some("keep-alive Upgrade"))]),
            ConnectionNotAList,
        ),
        (
            append(
                request(&[("Connection", Some("keep-alive"))]),
                "Connection: Upgrade\r\n",
            ),
            ListOverSeveralLines,
        ),
        (request(&[("Upgrade", Some("websocket, h2c"))]), UpgradeList),
        (
            request(&[("Connection", Some("Upgrade, caf\u{e9}"))]),
            HeaderValueNotAscii,
        ),
        (request_line("GET * HTTP/1.1", &[]), TargetNotAResourceName),
        (request_line("GET /cha`t HTTP/1.1", &[]), TargetCharacters),
        (with_line(&many), HeaderLimit),
    ];
    for (head, class) in cases {
        let (ours, theirs) = (our_handshake(&head), their_handshake(&head));
        assert!(
            !same_verdict(&ours, &theirs),
            "{class:?}: both {ours:?} on {}",
            String::from_utf8_lossy(&head)
        );
        assert_eq!(
            classify_handshake(&head, &ours, &theirs),
            Some(class),
            "{}: ours {ours:?}, theirs {theirs:?}",
            String::from_utf8_lossy(&head)
        );
    }
}

/// The three heads on which `diff_handshake` found us wrong now get tungstenite's verdict.
#[test]
fn the_heads_we_read_wrong_now_agree() {
    // Empty lines before the request line (RFC 7230 §3.5): both accept.
    let mut leading = b"\r\n\n".to_vec();
    leading.extend_from_slice(&request(&[]));
    let mut reader = HeadReader::new(4096);
    let len = reader.push(&leading).unwrap().unwrap();
    assert_eq!(len, leading.len());
    let (ours, theirs) = (
        our_handshake(&leading[..len]),
        their_handshake(&leading[..len]),
    );
    assert!(matches!(ours, HandshakeVerdict::Accept(_)), "{ours:?}");
    assert!(same_verdict(&ours, &theirs), "{ours:?} {theirs:?}");

    // A target that names no resource: both refuse.
    let head = request_line("GET 15/chat HTTP/1.1", &[]);
    assert!(matches!(our_handshake(&head), HandshakeVerdict::Reject(_)));
    assert!(matches!(
        their_handshake(&head),
        HandshakeVerdict::Reject(_)
    ));

    // A head that ends at "\n\r\n": read up to there, the rest is not part of it.
    let mut head = request(&[]);
    head.truncate(head.len() - 2);
    head.extend_from_slice(b"X-Last:\n\r\n");
    let mut stream = head.clone();
    stream.extend_from_slice(b"junk\r\n\r\n");
    let mut reader = HeadReader::new(4096);
    assert_eq!(reader.push(&stream), Ok(Some(head.len())));
    let (ours, theirs) = (our_handshake(&head), their_handshake(&head));
    assert!(matches!(ours, HandshakeVerdict::Accept(_)), "{ours:?}");
    assert!(same_verdict(&ours, &theirs), "{ours:?} {theirs:?}");
}
