//! Arbitrary message sequences sent by one role decode to the same events in the other,
//! in both directions, whatever the fragmentation and the read sizes.
#![no_main]

#[path = "../../tests/support/invariants.rs"]
mod invariants;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use rfc6455::{Config, Connection, Event, MessageKind, Role};

#[derive(Debug, Arbitrary)]
enum Message {
    Text(String, Vec<u8>),
    Binary(Vec<u8>, Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
}

#[derive(Debug, Arbitrary)]
struct Input {
    client_sends: bool,
    messages: Vec<Message>,
    read_sizes: Vec<u8>,
}

fuzz_target!(|input: Input| {
    let (sender_role, receiver_role) = if input.client_sends {
        (Role::Client, Role::Server)
    } else {
        (Role::Server, Role::Client)
    };
    let mut sender = Connection::new(sender_role);
    let mut expected = Vec::new();
    for message in &input.messages {
        let (kind, payload, fragments) = match message {
            Message::Ping(p) | Message::Pong(p) => {
                let p = &p[..p.len().min(125)];
                if matches!(message, Message::Ping(_)) {
                    sender.send_ping(p).unwrap();
                    expected.push(Event::Ping(p.to_vec()));
                } else {
                    sender.send_pong(p).unwrap();
                    expected.push(Event::Pong(p.to_vec()));
                }
                continue;
            }
            Message::Text(t, f) => (MessageKind::Text, t.as_bytes(), f),
            Message::Binary(b, f) => (MessageKind::Binary, &b[..], f),
        };
        // Fragment at the given sizes (which may split UTF-8 code points).
        let mut rest = payload;
        for &size in fragments.iter().take(8) {
            let (piece, tail) = rest.split_at((size as usize).min(rest.len()));
            sender.send_fragment(kind, piece, false).unwrap();
            rest = tail;
        }
        sender.send_fragment(kind, rest, true).unwrap();
        expected.push(match kind {
            MessageKind::Text => Event::Text(String::from_utf8(payload.to_vec()).unwrap()),
            MessageKind::Binary => Event::Binary(payload.to_vec()),
        });
    }
    let wire = sender.pending_output().to_vec();
    invariants::check_output(sender_role, &wire);
    let sizes: Vec<usize> = input.read_sizes.iter().map(|&s| s as usize).collect();
    let observed = invariants::drive(receiver_role, &Config::default(), &wire, &sizes);
    assert!(!observed.failed);
    assert_eq!(observed.events, expected);
});
