//! A connection with permessage-deflate negotiated (RFC 7692), fed arbitrary bytes in
//! arbitrary chunk sizes. Input layout: byte 0 picks the role (bit 0) and the context
//! takeover of the peer (bit 1), then the layout of `connection_server`. Compressed
//! messages are inflated in bounded steps, held to the message limit as they grow;
//! the shared invariants (`tests/support/invariants.rs`) hold as without deflate.
#![no_main]

#[path = "../../tests/support/invariants.rs"]
mod invariants;

use libfuzzer_sys::fuzz_target;
use rfc6455::deflate::Negotiated;
use rfc6455::{Config, Role};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, data)) = data.split_first() else {
        return;
    };
    let (chunks, stream) = invariants::split_input(data);
    let role = if mode & 1 == 0 {
        Role::Server
    } else {
        Role::Client
    };
    let agreed = Negotiated {
        local_no_context_takeover: true,
        remote_no_context_takeover: mode & 2 != 0,
        threshold: 0,
        ..Negotiated::default()
    };
    let config = Config {
        max_frame_size: 4096,
        max_message_size: 16 * 1024,
        ..Config::default()
    };
    invariants::drive_with(role, &config, Some(agreed), stream, &chunks);
});
