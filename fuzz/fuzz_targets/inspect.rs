//! Arbitrary bytes into the frame inspector behind `rfc6455 decode`: it reads hostile
//! input too, so it must never panic, and its summary must count every byte.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rfc6455::learn::inspect::inspect;
use rfc6455::Role;

fuzz_target!(|data: &[u8]| {
    let sender = match data.first() {
        Some(b) if b % 3 == 0 => Some(Role::Client),
        Some(b) if b % 3 == 1 => Some(Role::Server),
        _ => None,
    };
    let report = inspect(data, sender);
    let last = report.lines().last().unwrap();
    assert!(last.starts_with(&format!("{} byte", data.len())), "{last}");
});
