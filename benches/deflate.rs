//! permessage-deflate (RFC 7692) throughput: compressing and inflating whole messages
//! through a `Connection`, for two payloads: a rooms-server JSON message and 64 KiB of
//! text. `benches/deflate.sh` runs it next to Node `ws` on the same payloads.
//!
//! ```text
//! cargo bench --bench deflate
//! ```

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rfc6455::deflate::Negotiated;
use rfc6455::{Config, Connection, Event, Role};
use std::hint::black_box;

/// A message as the rooms server broadcasts it.
pub const ROOMS_JSON: &str = r#"{"type":"message","room":"lobby","seq":1234,"ts":1732400000000,"from":"ada","text":"hello everyone, how is the deflate going today?","id":42}"#;

/// 64 KiB of text, the same bytes as `benches/node/deflate.js` makes.
fn text_64k() -> String {
    let mut text = String::new();
    let mut i = 0u32;
    while text.len() < 64 * 1024 {
        text.push_str(&format!(
            "line {i}: the quick brown fox jumps over the lazy dog {}\n",
            (i * 7919) % 1000
        ));
        i += 1;
    }
    text.truncate(64 * 1024);
    text
}

fn agreed(takeover: bool) -> Negotiated {
    Negotiated {
        local_no_context_takeover: !takeover,
        remote_no_context_takeover: !takeover,
        threshold: 0,
        ..Negotiated::default()
    }
}

fn payloads() -> [(String, &'static str); 2] {
    [
        (ROOMS_JSON.to_string(), "rooms_json"),
        (text_64k(), "64KiB_text"),
    ]
}

fn compress(c: &mut Criterion) {
    let mut group = c.benchmark_group("deflate_compress");
    for (payload, name) in payloads() {
        for takeover in [false, true] {
            let mut server =
                Connection::with_deflate(Role::Server, Config::default(), Some(agreed(takeover)));
            server.send_text(&payload).unwrap();
            let wire = server.pending_output().len();
            eprintln!(
                "{name}, context takeover {takeover}: {} bytes -> {wire} on the wire ({:.1}%)",
                payload.len(),
                100.0 * wire as f64 / payload.len() as f64
            );
            server.consume_output(wire);
            let id = format!(
                "{name}/{}",
                if takeover { "takeover" } else { "no_takeover" }
            );
            group.throughput(Throughput::Bytes(payload.len() as u64));
            group.bench_function(BenchmarkId::new("rfc6455", id), |b| {
                b.iter(|| {
                    server.send_text(black_box(&payload)).unwrap();
                    let n = server.pending_output().len();
                    server.consume_output(n);
                })
            });
        }
    }
    group.finish();
}

fn inflate(c: &mut Criterion) {
    let mut group = c.benchmark_group("deflate_inflate");
    for (payload, name) in payloads() {
        // Compressed frames as a client sends them, without context takeover, so that
        // the same bytes inflate again and again.
        let mut client =
            Connection::with_deflate(Role::Client, Config::default(), Some(agreed(false)));
        client.send_text(&payload).unwrap();
        let frame = client.pending_output().to_vec();
        let mut server =
            Connection::with_deflate(Role::Server, Config::default(), Some(agreed(false)));
        group.throughput(Throughput::Bytes(payload.len() as u64));
        group.bench_function(BenchmarkId::new("rfc6455", name), |b| {
            b.iter(|| {
                server.receive(black_box(&frame));
                match server.next_event() {
                    Ok(Some(Event::Text(text))) => black_box(text),
                    other => panic!("{other:?}"),
                };
            })
        });
    }
    group.finish();
}

criterion_group!(benches, compress, inflate);
criterion_main!(benches);
