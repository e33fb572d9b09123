//! The `Sec-WebSocket-Extensions` parser (RFC 6455 §9.1) and permessage-deflate's
//! negotiation (RFC 7692 §7.1) on arbitrary header values, both roles. Invariants: no
//! panic; a server's answer is itself a valid answer that a client accepts when it
//! offered what the answer needs; an accepted window size is always 8 to 15.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rfc6455::deflate::{accept_response, negotiate, DeflateConfig};
use rfc6455::extensions::parse;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Several header lines, split at newlines.
    let values: Vec<&str> = text.split('\n').collect();
    let offers = parse(&values);
    for element in offers.iter().flatten() {
        // What parses prints back to something that parses to the same.
        let printed = element.to_string();
        assert_eq!(parse(&[&printed]), vec![Ok(element.clone())], "{printed}");
    }
    for config in [
        DeflateConfig::default(),
        DeflateConfig {
            no_context_takeover: false,
            request_no_context_takeover: false,
            request_max_window_bits: Some(10),
            ..DeflateConfig::default()
        },
    ] {
        if let Some((agreed, answer)) = negotiate(&config, &offers) {
            assert!((8..=15).contains(&agreed.local_max_window_bits));
            assert!((8..=15).contains(&agreed.remote_max_window_bits));
            // A client that offered everything the answer uses accepts it.
            let client = DeflateConfig {
                request_no_context_takeover: false,
                request_max_window_bits: None,
                ..DeflateConfig::default()
            };
            let seen = accept_response(&client, &parse(&[&answer]));
            assert!(matches!(seen, Ok(Some(_))), "{answer}: {seen:?}");
        }
        if let Ok(Some(agreed)) = accept_response(&config, &offers) {
            assert!((8..=15).contains(&agreed.local_max_window_bits));
            assert!((8..=15).contains(&agreed.remote_max_window_bits));
        }
    }
});
