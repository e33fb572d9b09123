//! The lent receive API (`Connection::next_message`) against the owned one
//! (`next_event`), and the reused-buffer one (`next_message_into`): arbitrary bytes in arbitrary chunks, to either role, with or without
//! permessage-deflate, read both ways; the two must agree call by call — same messages,
//! same error at the same point, same frames sent — and every invariant of
//! `tests/support/invariants.rs` holds. Input layout: byte 0 = how many chunk-size
//! bytes follow (mod 8), then those bytes, then byte R (bit 0: role, bit 1: deflate,
//! bits 2-7: how the calls read), then the stream.
#![no_main]

#[path = "../../tests/support/invariants.rs"]
mod invariants;

use libfuzzer_sys::fuzz_target;
use rfc6455::deflate::Negotiated;
use rfc6455::{Config, Role};

fuzz_target!(|data: &[u8]| {
    let (chunks, rest) = invariants::split_input(data);
    let Some((&options, stream)) = rest.split_first() else {
        return;
    };
    let role = if options & 1 == 0 {
        Role::Server
    } else {
        Role::Client
    };
    let deflate = (options & 2 != 0).then(|| Negotiated {
        local_no_context_takeover: false,
        remote_no_context_takeover: false,
        threshold: 0,
        ..Negotiated::default()
    });
    // How the calls read (cycled): three modes from bits 2-7 (see drive_both_apis).
    let lend = [(options >> 2) % 3, (options >> 4) % 3, (options >> 6) % 3];
    let config = Config {
        max_frame_size: 4096,
        max_message_size: 16 * 1024,
        ..Config::default()
    };
    invariants::drive_both_apis(role, &config, deflate, stream, &chunks, &lend);
});
