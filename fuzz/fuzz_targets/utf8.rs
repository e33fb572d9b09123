//! Differential: the incremental UTF-8 validator (RFC 6455 §8.1) against
//! `std::str::from_utf8`, on arbitrary bytes split at arbitrary points. Byte 0 gives
//! the split points' seed; the validator must accept exactly what std accepts, and
//! reject an invalid byte in the piece that holds it (fail fast), not later.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rfc6455::utf8::Utf8Validator;

fuzz_target!(|data: &[u8]| {
    let Some((&seed, text)) = data.split_first() else {
        return;
    };
    // Cut points from the seed: a piece length cycle of 1..=8 bytes, or one piece.
    let step = (seed as usize % 9).max(1);
    let pieces: Vec<&[u8]> = if seed >= 128 {
        vec![text]
    } else {
        text.chunks(step).collect()
    };
    let mut validator = Utf8Validator::new();
    let mut consumed = 0;
    // The failing piece's byte range.
    let mut failed_at = None;
    for piece in pieces {
        let start = consumed;
        consumed += piece.len();
        if validator.feed(piece).is_err() {
            failed_at = Some((start, consumed));
            break;
        }
    }
    match std::str::from_utf8(text) {
        Ok(_) => {
            assert_eq!(failed_at, None, "valid UTF-8 rejected");
            assert!(validator.is_complete());
        }
        Err(e) => match e.error_len() {
            Some(error_len) => {
                let (start, end) = failed_at.expect("invalid UTF-8 accepted");
                // Fail fast. std reports the longest valid-looking prefix of the bad
                // sequence (`error_len` bytes at `valid_up_to`); the byte that proves
                // it bad is that prefix's first byte (an impossible lead) or the byte
                // just after it. The failing piece must hold one of those.
                let first_bad = e.valid_up_to();
                let last_bad = e.valid_up_to() + error_len;
                assert!(end > first_bad, "failed before the bad sequence");
                assert!(start <= last_bad, "failed late: piece {start}..{end}");
            }
            None => assert!(failed_at.is_none() && !validator.is_complete()),
        },
    }
});
