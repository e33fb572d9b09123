//! Arbitrary byte streams into one direction of `rfc6455 tap` (`rfc6455::learn::tap::FrameTap`),
//! cut into arbitrary pieces: it reads what strangers send, so it must never panic,
//! must report the same frames however the stream is cut, and must keep its memory
//! bounded (previews at most `max_preview` bytes, a Close payload at most 125).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rfc6455::learn::tap::{FrameTap, TapEvent};
use rfc6455::Role;

// The first byte picks the sender, deflate and the preview size; the second the
// size of the pieces; the rest is the stream.
fuzz_target!(|data: &[u8]| {
    let [config, cut, stream @ ..] = data else {
        return;
    };
    let sender = if config & 1 == 0 {
        Role::Client
    } else {
        Role::Server
    };
    let deflate = config & 2 != 0;
    let max_preview = usize::from(config >> 2);
    let tap = || {
        let mut tap = FrameTap::new(sender, max_preview);
        if deflate {
            tap.enable_deflate();
        }
        tap
    };

    let mut whole = tap();
    let mut at_once = Vec::new();
    whole.feed(stream, &mut at_once);

    let mut pieces = tap();
    let mut in_pieces = Vec::new();
    for piece in stream.chunks(usize::from(*cut).max(1)) {
        pieces.feed(piece, &mut in_pieces);
    }
    assert_eq!(
        at_once, in_pieces,
        "the frames depend on how the stream was cut"
    );
    assert_eq!(whole.bytes(), stream.len() as u64);
    assert_eq!(whole.unfinished(), pieces.unfinished());

    let mut end = 0u64;
    for event in &at_once {
        match event {
            TapEvent::Frame(frame) => {
                let keep = if frame.header.opcode == rfc6455::OpCode::Close {
                    max_preview.max(125)
                } else {
                    max_preview
                };
                assert!(frame.preview.len() <= keep);
                assert!(frame.preview.len() as u64 <= frame.header.payload_len);
                if let Some(message) = &frame.inflated {
                    assert!(message.preview.len() <= max_preview);
                    assert!(message.preview.len() as u64 <= message.len);
                }
                assert_eq!(frame.offset, end, "frames follow each other");
                end = frame.offset + frame.header_len as u64 + frame.header.payload_len;
                // The line a person reads is built for every frame.
                let _ = frame.to_string();
                for v in &frame.violations {
                    assert!(v.section().starts_with("RFC "), "{v}");
                }
            }
            TapEvent::Unframeable { offset, .. } => {
                assert_eq!(*offset, end);
                assert!(whole.is_raw());
            }
        }
    }
    assert!(end <= stream.len() as u64);
});
