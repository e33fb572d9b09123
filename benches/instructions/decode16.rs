//! Decodes 10 × 65,536 masked 16-byte binary frames, as `decode/*/16B` in
//! benches/codec.rs does, for callgrind to count the instructions: a figure that does
//! not move with the machine's noise. `count.sh` copies this file into each checkout
//! as an example and runs it; the argument picks the API (`owned`, `lent`, `receive`).
use rfc6455::{Config, Connection, MessageRef, Role};
use std::hint::black_box;

fn main() {
    let api = std::env::args().nth(1).unwrap_or_else(|| "lent".into());
    let mut client = Connection::new(Role::Client);
    for _ in 0..65536 {
        client.send_binary(&[0xab; 16]).unwrap();
    }
    let input = client.pending_output().to_vec();
    let mut messages = 0;
    for _ in 0..10 {
        let mut server = Connection::with_config(Role::Server, Config::default());
        for piece in input.chunks(64 * 1024) {
            if api == "receive" {
                server.receive(piece);
            } else {
                server.input_buffer(piece.len())[..piece.len()].copy_from_slice(piece);
                server.commit_input(piece.len());
            }
            if api == "owned" {
                while let Some(event) = server.next_event().unwrap() {
                    messages += 1;
                    black_box(event);
                }
            } else {
                while let Some(message) = server.next_message().unwrap() {
                    messages += usize::from(matches!(message, MessageRef::Binary(_)));
                    black_box(message);
                }
            }
        }
    }
    assert_eq!(messages, 10 * 65536);
}
