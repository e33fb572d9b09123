//! Invariants of a connection's behaviour under arbitrary input, shared by the proptest
//! properties (`tests/props.rs`) and the fuzz targets (`fuzz/fuzz_targets/`).
//!
//! The checks look only at what a peer could see — the bytes a connection sends — and at
//! its public state, so they hold for any correct implementation.

#![allow(dead_code)]

use rfc6455::deflate::Negotiated;
use rfc6455::frame::{FrameHeader, Parsed};
use rfc6455::rules::{FrameClass, FrameRules, InProgress};
use rfc6455::{CloseFrame, Config, Connection, Event, OpCode, Role, State};

/// What one connection did with one input.
#[derive(Debug, Default)]
pub struct Observed {
    pub events: Vec<Event>,
    pub failed: bool,
}

/// Feeds `input` to a fresh `role` connection in the given chunk sizes (cycled; a
/// chunk size of 0 counts as 1), draining events after each chunk, and checks every
/// invariant. Panics with a description if one breaks.
pub fn drive(role: Role, config: &Config, input: &[u8], chunks: &[usize]) -> Observed {
    drive_with(role, config, None, input, chunks)
}

/// `input` cut into pieces of the `chunks` sizes, cycled (0 counts as 1; no sizes:
/// one piece).
fn in_chunks<'a>(input: &'a [u8], chunks: &'a [usize]) -> impl Iterator<Item = &'a [u8]> {
    let mut rest = input;
    let mut sizes = chunks.iter().cycle();
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let size = match sizes.next() {
            Some(size) => (*size).clamp(1, rest.len()),
            None => rest.len(),
        };
        let (chunk, tail) = rest.split_at(size);
        rest = tail;
        Some(chunk)
    })
}

/// [`drive`] with permessage-deflate negotiated (RFC 7692).
pub fn drive_with(
    role: Role,
    config: &Config,
    deflate: Option<Negotiated>,
    input: &[u8],
    chunks: &[usize],
) -> Observed {
    let mut conn = Connection::with_deflate(role, config.clone(), deflate);
    let mut observed = Observed::default();
    let mut output = Vec::new();
    for chunk in in_chunks(input, chunks) {
        conn.receive(chunk);
        loop {
            match conn.next_event() {
                Ok(Some(event)) => {
                    check_event(&event, config);
                    observed.events.push(event);
                }
                Ok(None) => break,
                Err(err) => {
                    assert!(!observed.failed, "a second error after the first");
                    assert_eq!(conn.state(), State::Closed);
                    let code = err.close_code().0;
                    assert!(matches!(code, 1002 | 1007 | 1009), "illegal code {code}");
                    // The error names its rule and section for whoever reads the log.
                    assert!(!err.to_string().is_empty() && err.rfc_section().starts_with('§'));
                    observed.failed = true;
                }
            }
        }
        // Memory stays bounded: at most one unfinished control frame or header waits
        // in the input buffer; data payloads are moved out as they arrive.
        assert!(
            conn.buffered_input() <= 14 + 125,
            "{} bytes left buffered",
            conn.buffered_input()
        );
        output.extend_from_slice(conn.pending_output());
        conn.consume_output(conn.pending_output().len());
    }
    check_output_with(role, &output, deflate.is_some());
    observed
}

fn check_event(event: &Event, config: &Config) {
    match event {
        Event::Text(text) => assert!(text.len() <= config.max_message_size),
        Event::Binary(data) => assert!(data.len() <= config.max_message_size),
        Event::Ping(p) | Event::Pong(p) => assert!(p.len() <= 125),
        Event::Close(Some(frame)) => {
            assert!(frame.code.is_valid_on_wire());
            assert!(!frame.code.meaning().is_empty() && !frame.code.to_string().is_empty());
        }
        Event::Close(None) => {}
    }
}

/// Checks that `output`, everything a `role` connection sent, is a well-formed
/// sequence of complete frames: masked iff sent by a client, control frames short
/// and unfragmented, at most one Close, which is the last frame, with a legal payload.
pub fn check_output(role: Role, output: &[u8]) {
    check_output_with(role, output, false)
}

/// [`check_output`] for a connection with permessage-deflate: RSV1 may be set, on the
/// first frame of a data message only (RFC 7692 §6.1).
pub fn check_output_with(role: Role, output: &[u8], deflate: bool) {
    let receiver = match role {
        Role::Client => Role::Server,
        Role::Server => Role::Client,
    };
    // The rules a receiver holds our frames to (RFC 6455 §5, RFC 7692 §6.1), message
    // order included.
    let rules = FrameRules::new(receiver).deflate(deflate);
    let mut rest = output;
    let mut closed = false;
    let mut in_progress = None;
    while !rest.is_empty() {
        assert!(!closed, "a frame after our Close");
        let (header, len) = match FrameHeader::parse(rest) {
            Ok(Parsed::Complete(header, len)) => (header, len),
            other => panic!("our output does not parse: {other:?}"),
        };
        let class = rules
            .check(&header, in_progress)
            .expect("our frame breaks a rule");
        let total = len + header.payload_len as usize;
        assert!(total <= rest.len(), "our output ends inside a frame");
        let mut payload = rest[len..total].to_vec();
        if let Some(key) = header.masking_key {
            rfc6455::mask::apply_mask(&mut payload, key, 0);
        }
        match class {
            FrameClass::Control if header.opcode == OpCode::Close => {
                CloseFrame::parse(&payload).expect("our Close payload is legal");
                closed = true;
            }
            FrameClass::Control => {}
            FrameClass::Start { compressed, .. } => {
                in_progress = (!header.fin).then_some(InProgress { compressed, len: 0 });
            }
            FrameClass::Continuation if header.fin => in_progress = None,
            FrameClass::Continuation => {}
        }
        rest = &rest[total..];
    }
}

/// Splits a fuzz input for the connection targets: byte 0 = how many chunk-size bytes
/// follow (mod 8), then those sizes, then the stream.
pub fn split_input(data: &[u8]) -> (Vec<usize>, &[u8]) {
    let Some((&n, rest)) = data.split_first() else {
        return (Vec::new(), data);
    };
    let n = (n as usize % 8).min(rest.len());
    let (sizes, stream) = rest.split_at(n);
    (sizes.iter().map(|&s| s as usize).collect(), stream)
}

/// Feeds `input` to two fresh `role` connections in the same chunks: one read through
/// the owned [`Connection::next_event`], the other, call by call as `lend` (cycled)
/// says, through the lent [`Connection::next_message`] (0), into a reused buffer with
/// [`Connection::next_message_into`] (1), or polled with [`Connection::poll_next`] and
/// taken with `next_event` (2) — all may be used on one connection. Both must give the same
/// events, the same error at the same point, and send the same frames (compared
/// unmasked: a client's masking keys are random). Returns what the owned one observed,
/// after [`drive_with`]'s invariants.
pub fn drive_both_apis(
    role: Role,
    config: &Config,
    deflate: Option<Negotiated>,
    input: &[u8],
    chunks: &[usize],
    lend: &[u8],
) -> Observed {
    let mut owned = Connection::with_deflate(role, config.clone(), deflate);
    let mut lent = Connection::with_deflate(role, config.clone(), deflate);
    let (mut owned_out, mut lent_out) = (Vec::new(), Vec::new());
    let mut lend = lend.iter().copied().cycle();
    let mut calls = 0;
    let mut reused = Vec::new();
    for chunk in in_chunks(input, chunks) {
        owned.receive(chunk);
        // The lent side reads into the connection's own buffer, as drivers do.
        let space = lent.input_buffer(chunk.len());
        space[..chunk.len()].copy_from_slice(chunk);
        lent.commit_input(chunk.len());
        loop {
            calls += 1;
            let expected = owned.next_event();
            let mode = lend.next().unwrap_or(0) % 3;
            let got = if mode < 2 {
                let message = if mode == 0 {
                    lent.next_message()
                } else {
                    lent.next_message_into(&mut reused)
                };
                message.map(|m| {
                    if let Some(message) = &m {
                        check_lent(message, config);
                    }
                    m.map(Event::from)
                })
            } else {
                // Polled first, as the blocking driver does, then taken owned.
                let polled = lent.poll_next();
                let event = lent.next_event();
                match polled {
                    Ok(true) => assert!(matches!(event, Ok(Some(_)))),
                    Ok(false) => assert_eq!(event, Ok(None)),
                    Err(err) => {
                        assert_eq!(event, Ok(None), "nothing after a failure");
                        assert_eq!(Err(err.clone()), expected);
                        break;
                    }
                }
                event
            };
            assert_eq!(got, expected, "call {calls}: the receive APIs disagree");
            assert_eq!(lent.state(), owned.state());
            if !matches!(expected, Ok(Some(_))) {
                break;
            }
        }
        // Once both have parsed all they can. (Between events, `receive` may already
        // have read the header of the frame after a finished message, and taken its
        // payload: it holds fewer bytes uninterpreted than the input buffer's path.)
        assert_eq!(lent.buffered_input(), owned.buffered_input());
        owned_out.extend_from_slice(owned.pending_output());
        owned.consume_output(owned.pending_output().len());
        lent_out.extend_from_slice(lent.pending_output());
        lent.consume_output(lent.pending_output().len());
    }
    assert_eq!(unmasked_frames(&lent_out), unmasked_frames(&owned_out));
    drive_with(role, config, deflate, input, chunks)
}

fn check_lent(message: &rfc6455::MessageRef<'_>, config: &Config) {
    use rfc6455::MessageRef;
    match message {
        MessageRef::Text(text) => assert!(text.len() <= config.max_message_size),
        MessageRef::Binary(data) => assert!(data.len() <= config.max_message_size),
        MessageRef::Ping(p) | MessageRef::Pong(p) => assert!(p.len() <= 125),
        MessageRef::Close(_) => {}
    }
}

/// The frames of a sender's `output` as (FIN, RSV, opcode, unmasked payload).
pub fn unmasked_frames(output: &[u8]) -> Vec<(bool, u8, OpCode, Vec<u8>)> {
    let mut frames = Vec::new();
    let mut rest = output;
    while let Ok(Parsed::Complete(header, len)) = FrameHeader::parse(rest) {
        let total = len + header.payload_len as usize;
        let mut payload = rest[len..total].to_vec();
        if let Some(key) = header.masking_key {
            rfc6455::mask::apply_mask(&mut payload, key, 0);
        }
        frames.push((header.fin, header.rsv, header.opcode, payload));
        rest = &rest[total..];
    }
    assert!(rest.is_empty(), "output ends inside a frame");
    frames
}
