//! Differential: the same frames, fed in the same pieces, to our `Connection` and to
//! tungstenite's `WebSocket`, in either role. After every frame's last byte both must
//! have reached the same verdict: the same messages and control frames with the same
//! content, or the same failure class (1002 protocol error, 1007 invalid payload, 1009 too
//! big), or both still waiting for more bytes. The only disagreements allowed are the
//! classes in `differences.rs`, each justified there by the RFC; any other difference
//! fails the target.
//!
//! Verdicts are compared at frame boundaries, not after every chunk: we judge a header as
//! soon as it arrives (RFC 6455 §5.2 rules need nothing more), tungstenite reads a whole
//! frame before most checks. Both are correct, so the comparison waits for the frame's
//! end. A Close ends the comparison: what follows a Close is not data (RFC 6455 §5.5.1).
#![no_main]

#[path = "../differences.rs"]
mod differences;

use arbitrary::Arbitrary;
use differences::{Ours, Theirs};
use libfuzzer_sys::fuzz_target;
use rfc6455::{Config, Role};

/// Both sides' limits: small, so that 1009 is reached by inputs of a few KiB.
const MAX_FRAME: usize = 1024;
const MAX_MESSAGE: usize = 4096;

#[derive(Arbitrary, Debug)]
struct Input {
    /// Which role both sides play (the peer they hear is the other one).
    client: bool,
    /// Chunk sizes the stream is fed in, cycled (0 counts as 1).
    chunks: Vec<u8>,
    frames: Vec<FrameSpec>,
    /// Bytes cut from the end of the stream (the last frame then ends inside itself).
    cut: u8,
}

#[derive(Arbitrary, Debug)]
struct FrameSpec {
    /// The first byte as sent: FIN, RSV1-3, opcode — any value, rules broken or not.
    first: u8,
    mask: Option<[u8; 4]>,
    length: Length,
    payload: Payload,
}

/// How the payload length is written (RFC 6455 §5.2).
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Length {
    Minimal,
    /// In 16 bits even when 7 would do.
    Sixteen,
    /// In 64 bits even when fewer would do.
    SixtyFour,
    /// In 64 bits with the most significant bit set (the frame then never ends).
    MsbSet,
}

#[derive(Arbitrary, Debug)]
enum Payload {
    Bytes(Vec<u8>),
    Text(String),
    /// A Close body: code and reason.
    Close(u16, String),
    /// `len` copies of `byte`: cheap large payloads for the size limits.
    Fill(u16, u8),
}

impl Payload {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Payload::Bytes(b) => b.clone(),
            Payload::Text(s) => s.as_bytes().to_vec(),
            Payload::Close(code, reason) => {
                let mut b = code.to_be_bytes().to_vec();
                b.extend_from_slice(reason.as_bytes());
                b
            }
            Payload::Fill(len, byte) => vec![*byte; *len as usize % (2 * MAX_MESSAGE)],
        }
    }
}

fn encode(spec: &FrameSpec) -> Vec<u8> {
    let mut payload = spec.payload.bytes();
    let len = payload.len() as u64;
    let mut out = vec![spec.first];
    let mask_bit = if spec.mask.is_some() { 0x80 } else { 0 };
    match spec.length {
        Length::Minimal if len < 126 => out.push(mask_bit | len as u8),
        Length::Minimal | Length::Sixteen if len <= 0xFFFF => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        Length::MsbSet => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(len | 1 << 63).to_be_bytes());
        }
        _ => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&len.to_be_bytes());
        }
    }
    if let Some(key) = spec.mask {
        out.extend_from_slice(&key);
        rfc6455::mask::apply_mask(&mut payload, key, 0);
    }
    out.extend_from_slice(&payload);
    out
}

fuzz_target!(|input: Input| {
    let role = if input.client {
        Role::Client
    } else {
        Role::Server
    };
    let config = Config {
        max_frame_size: MAX_FRAME,
        max_message_size: MAX_MESSAGE,
        ..Config::default()
    };
    let mut ours = Ours::new(role, config);
    let mut theirs = Theirs::new(role, MAX_FRAME, MAX_MESSAGE);

    let frames: Vec<Vec<u8>> = input.frames.iter().map(encode).collect();
    let total: usize = frames.iter().map(Vec::len).sum();
    let keep = total.saturating_sub(input.cut as usize);
    let mut sizes = input.chunks.iter().cycle();
    let mut fed = 0;
    for (spec, frame) in input.frames.iter().zip(&frames) {
        let sent = &frame[..frame.len().min(keep - fed)];
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let mut rest = sent;
        while !rest.is_empty() {
            let size = match sizes.next() {
                Some(&s) => (s as usize).clamp(1, rest.len()),
                None => rest.len(),
            };
            let (chunk, tail) = rest.split_at(size);
            ours.feed(chunk, &mut a);
            theirs.feed(chunk, &mut b);
            rest = tail;
        }
        fed += sent.len();
        let frame = differences::Frame {
            first: spec.first,
            declared: declared_length(spec),
            msb_set: matches!(spec.length, Length::MsbSet),
            non_minimal: non_minimal(spec),
            over_limit: declared_length(spec) > MAX_FRAME as u64,
            whole: sent.len() == frame.len(),
            payload: spec.payload.bytes(),
        };
        if a != b {
            match differences::classify_frame(&frame, &a, &b, ours.error.as_ref()) {
                Some(difference) => {
                    difference.note();
                    return; // a known difference ends the comparison
                }
                None => panic!(
                    "our Connection and tungstenite disagree on {frame:?}: ours {a:?}, theirs {b:?}, our error {:?}",
                    ours.error
                ),
            }
        }
        assert_eq!(
            ours.done, theirs.done,
            "one side finished, the other did not"
        );
        if ours.done || fed == keep {
            break;
        }
    }
});

fn declared_length(spec: &FrameSpec) -> u64 {
    let len = spec.payload.bytes().len() as u64;
    match spec.length {
        Length::MsbSet => len | 1 << 63,
        _ => len,
    }
}

fn non_minimal(spec: &FrameSpec) -> bool {
    let len = spec.payload.bytes().len();
    match spec.length {
        Length::Minimal | Length::MsbSet => false,
        Length::Sixteen => len < 126,
        Length::SixtyFour => len <= 0xFFFF,
    }
}
