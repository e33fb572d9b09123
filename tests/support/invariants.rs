//! Invariants of a connection's behaviour under arbitrary input, shared by the proptest
//! properties (`tests/props.rs`) and the fuzz targets (`fuzz/fuzz_targets/`).
//!
//! The checks look only at what a peer could see — the bytes a connection sends — and at
//! its public state, so they hold for any correct implementation.

#![allow(dead_code)]

use rfc6455::deflate::Negotiated;
use rfc6455::frame::{FrameHeader, Parsed};
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
    let mut rest = input;
    let mut sizes = chunks.iter().cycle();
    while !rest.is_empty() {
        let size = if chunks.is_empty() {
            rest.len()
        } else {
            (*sizes.next().unwrap()).clamp(1, rest.len())
        };
        let (chunk, tail) = rest.split_at(size);
        rest = tail;
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
    let mut rest = output;
    let mut closed = false;
    let mut fragmented = false;
    while !rest.is_empty() {
        assert!(!closed, "a frame after our Close");
        let (header, len) = match FrameHeader::parse(rest) {
            Ok(Parsed::Complete(header, len)) => (header, len),
            other => panic!("our output does not parse: {other:?}"),
        };
        let rsv1_allowed = deflate && matches!(header.opcode, OpCode::Text | OpCode::Binary);
        header
            .check(receiver, if rsv1_allowed { 0b100 } else { 0 })
            .expect("our frame breaks a rule");
        let total = len + header.payload_len as usize;
        assert!(total <= rest.len(), "our output ends inside a frame");
        let mut payload = rest[len..total].to_vec();
        if let Some(key) = header.masking_key {
            rfc6455::mask::apply_mask(&mut payload, key, 0);
        }
        match header.opcode {
            OpCode::Close => {
                CloseFrame::parse(&payload).expect("our Close payload is legal");
                closed = true;
            }
            OpCode::Text | OpCode::Binary => {
                assert!(!fragmented, "a new message inside a fragmented one");
                fragmented = !header.fin;
            }
            OpCode::Continuation => {
                assert!(fragmented, "a continuation of nothing");
                fragmented = !header.fin;
            }
            _ => {}
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
