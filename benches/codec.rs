//! Codec benchmarks, side by side with tungstenite in the same groups.
//!
//! ```text
//! cargo bench --bench codec                      # everything
//! cargo bench --bench codec -- decode            # one group
//! ```
//!
//! Groups: `unmask` (ours, and memcpy as the physical reference; tungstenite's masking
//! function is private, so it is measured inside `decode`),
//! `decode` (many masked client frames into messages, server role: ours owned
//! (`next_event`), lent (`next_message`) after reads into its buffer, lent after
//! `receive` of bytes in hand, tungstenite, and a memcpy of the same
//! bytes in the same 64 KiB reads as the floor), `reassemble` (fragmented messages), `encode` (both roles), `utf8`
//! (std vs simdutf8 vs our incremental validator) and `handshake`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rfc6455::frame::FrameHeader;
use rfc6455::handshake::client::{ClientHandshake, WsUrl};
use rfc6455::handshake::server::Request;
use rfc6455::mask::apply_mask;
use rfc6455::utf8::Utf8Validator;
use rfc6455::{Config, Connection, Event, MessageKind, MessageRef, OpCode, Role};
use std::hint::black_box;
use std::io::{self, Read, Write};

const SIZES: [(usize, &str); 5] = [
    (16, "16B"),
    (125, "125B"),
    (1024, "1KiB"),
    (64 * 1024, "64KiB"),
    (1024 * 1024, "1MiB"),
];

fn unmask(c: &mut Criterion) {
    let mut group = c.benchmark_group("unmask");
    let key = [0x37, 0xfa, 0x21, 0x3d];
    for (size, name) in SIZES {
        let source = vec![0x5au8; size];
        let mut buf = vec![0u8; size];
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(BenchmarkId::new("rfc6455", name), |b| {
            b.iter(|| apply_mask(black_box(&mut buf), black_box(key), 0))
        });
        group.bench_function(BenchmarkId::new("memcpy", name), |b| {
            b.iter(|| black_box(&mut buf).copy_from_slice(black_box(&source)))
        });
    }
    group.finish();
}

/// `count` masked binary frames of `size` bytes, as a client sends them.
fn client_frames(size: usize, count: usize) -> Vec<u8> {
    let mut client = Connection::new(Role::Client);
    let payload = vec![0xabu8; size];
    for _ in 0..count {
        client.send_binary(&payload).unwrap();
    }
    client.pending_output().to_vec()
}

/// About 1 MiB of frames per iteration, at least 16 frames.
fn frame_count(size: usize) -> usize {
    ((1 << 20) / size).clamp(16, 65536)
}

/// A stream that reads from a slice in `chunk`-byte reads and discards what is written.
struct Replay<'a> {
    data: &'a [u8],
    chunk: usize,
}

impl Read for Replay<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.chunk).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

impl Write for Replay<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

const READ_CHUNK: usize = 64 * 1024;

/// Decodes `input` with a server-role connection, reading it in 64 KiB pieces; after
/// each read, `drain` takes every message parsed and says how many were data messages.
fn decode_with(input: &[u8], mut drain: impl FnMut(&mut Connection) -> usize) -> usize {
    let mut server = Connection::with_config(Role::Server, Config::default());
    let mut stream = Replay {
        data: input,
        chunk: READ_CHUNK,
    };
    let mut messages = 0;
    loop {
        let space = server.input_buffer(READ_CHUNK);
        let n = stream.read(space).unwrap();
        if n == 0 {
            return messages;
        }
        server.commit_input(n);
        messages += drain(&mut server);
    }
}

/// Through the owned API (`next_event`): an allocation per message.
fn decode_ours(input: &[u8]) -> usize {
    decode_with(input, |server| {
        let mut messages = 0;
        while let Some(event) = server.next_event().unwrap() {
            messages += usize::from(matches!(event, Event::Binary(_) | Event::Text(_)));
            black_box(event);
        }
        messages
    })
}

/// Takes every message parsed through the lent API (`next_message`): no allocation
/// per message. Says how many were data messages.
fn drain_lent(server: &mut Connection) -> usize {
    let mut messages = 0;
    while let Some(message) = server.next_message().unwrap() {
        messages += usize::from(matches!(
            message,
            MessageRef::Binary(_) | MessageRef::Text(_)
        ));
        black_box(message);
    }
    messages
}

/// Read into the connection's buffer, through the lent API.
fn decode_lent(input: &[u8]) -> usize {
    decode_with(input, drain_lent)
}

/// Bytes the caller already holds (as a TLS session's plaintext), handed over with
/// `receive` in the same 64 KiB pieces, through the lent API: the rest of a frame
/// that spans pieces is unmasked straight into the message, without a copy into the
/// input buffer first.
fn decode_received(input: &[u8]) -> usize {
    let mut server = Connection::with_config(Role::Server, Config::default());
    let mut messages = 0;
    for piece in input.chunks(READ_CHUNK) {
        server.receive(piece);
        messages += drain_lent(&mut server);
    }
    messages
}

fn decode_tungstenite(input: &[u8]) -> usize {
    let stream = Replay {
        data: input,
        chunk: READ_CHUNK,
    };
    let mut ws =
        tungstenite::WebSocket::from_raw_socket(stream, tungstenite::protocol::Role::Server, None);
    let mut messages = 0;
    loop {
        match ws.read() {
            Ok(message) => {
                black_box(&message);
                messages += 1;
            }
            Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return messages
            }
            Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                return messages
            }
            // The input ends without a Close: that is how tungstenite reports EOF.
            Err(
                tungstenite::Error::ConnectionClosed
                | tungstenite::Error::AlreadyClosed
                | tungstenite::Error::Protocol(
                    tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
                ),
            ) => return messages,
            Err(e) => panic!("tungstenite: {e}"),
        }
    }
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    for (size, name) in &SIZES[..4] {
        let count = frame_count(*size);
        let input = client_frames(*size, count);
        assert_eq!(decode_ours(&input), count);
        assert_eq!(decode_lent(&input), count);
        assert_eq!(decode_received(&input), count);
        assert_eq!(decode_tungstenite(&input), count);
        // Elements = frames: criterion reports frames per second.
        group.throughput(Throughput::Elements(count as u64));
        group.bench_function(BenchmarkId::new("rfc6455", name), |b| {
            b.iter(|| decode_ours(black_box(&input)))
        });
        group.bench_function(BenchmarkId::new("rfc6455-lent", name), |b| {
            b.iter(|| decode_lent(black_box(&input)))
        });
        group.bench_function(BenchmarkId::new("rfc6455-receive", name), |b| {
            b.iter(|| decode_received(black_box(&input)))
        });
        // The physical floor: the same bytes copied once, as a read does.
        let mut copy = vec![0u8; input.len()];
        group.bench_function(BenchmarkId::new("memcpy", name), |b| {
            b.iter(|| {
                for (to, from) in copy
                    .chunks_mut(READ_CHUNK)
                    .zip(black_box(&input).chunks(READ_CHUNK))
                {
                    to.copy_from_slice(from);
                }
                black_box(&copy);
            })
        });
        group.bench_function(BenchmarkId::new("tungstenite", name), |b| {
            b.iter(|| decode_tungstenite(black_box(&input)))
        });
    }
    group.finish();
}

fn reassemble(c: &mut Criterion) {
    let mut group = c.benchmark_group("reassemble");
    // 16 messages of 64 KiB, each in 16 fragments of 4 KiB.
    let mut client = Connection::new(Role::Client);
    let fragment = vec![b'x'; 4096];
    for _ in 0..16 {
        for i in 0..16 {
            client
                .send_fragment(MessageKind::Text, &fragment, i == 15)
                .unwrap();
        }
    }
    let input = client.pending_output().to_vec();
    assert_eq!(decode_ours(&input), 16);
    assert_eq!(decode_tungstenite(&input), 16);
    group.throughput(Throughput::Bytes(16 * 64 * 1024));
    group.bench_function("rfc6455/64KiB-text-in-16", |b| {
        b.iter(|| decode_ours(black_box(&input)))
    });
    group.bench_function("tungstenite/64KiB-text-in-16", |b| {
        b.iter(|| decode_tungstenite(black_box(&input)))
    });
    group.finish();
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    for (size, name) in &SIZES[..4] {
        let payload = vec![0xabu8; *size];
        let count = frame_count(*size);
        group.throughput(Throughput::Elements(count as u64));
        for role in [Role::Server, Role::Client] {
            let label = match role {
                Role::Server => "server",
                Role::Client => "client-masked",
            };
            let mut conn = Connection::new(role);
            group.bench_function(BenchmarkId::new(label, name), |b| {
                b.iter(|| {
                    for _ in 0..count {
                        conn.send_binary(black_box(&payload)).unwrap();
                    }
                    let n = conn.pending_output().len();
                    conn.consume_output(n);
                })
            });
        }
        // The header alone, as the encoder writes it.
        let header = FrameHeader {
            fin: true,
            rsv: 0,
            opcode: OpCode::Binary,
            masking_key: None,
            payload_len: *size as u64,
        };
        group.bench_function(BenchmarkId::new("header-only", name), |b| {
            b.iter(|| black_box(black_box(&header).encode()))
        });
    }
    group.finish();
}

fn utf8(c: &mut Criterion) {
    let mut group = c.benchmark_group("utf8");
    let ascii = "The quick brown fox jumps over the lazy dog. ".repeat(1500);
    let mixed = "Grüße, 世界! Привет мир. 🦀 κόσμε — ".repeat(1000);
    for (name, text) in [("ascii-64KiB", &ascii), ("mixed-64KiB", &mixed)] {
        let mut end = 64 * 1024;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let bytes = &text.as_bytes()[..end];
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function(BenchmarkId::new("std", name), |b| {
            b.iter(|| std::str::from_utf8(black_box(bytes)).is_ok())
        });
        group.bench_function(BenchmarkId::new("simdutf8", name), |b| {
            b.iter(|| simdutf8::basic::from_utf8(black_box(bytes)).is_ok())
        });
        group.bench_function(
            BenchmarkId::new("rfc6455-incremental-4KiB-pieces", name),
            |b| {
                b.iter(|| {
                    let mut v = Utf8Validator::new();
                    for piece in black_box(bytes).chunks(4096) {
                        v.feed(piece).unwrap();
                    }
                    v.is_complete()
                })
            },
        );
    }
    group.finish();
}

fn handshake(c: &mut Criterion) {
    let mut group = c.benchmark_group("handshake");
    let request =
        b"GET /chat?room=1 HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Origin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36\r\n\
Accept-Encoding: gzip, deflate, br\r\nSec-WebSocket-Version: 13\r\n\r\n";
    group.bench_function("server-parse-and-101", |b| {
        b.iter(|| {
            let parsed = Request::parse(black_box(request)).unwrap();
            parsed.accept(Some("chat"))
        })
    });
    let url = WsUrl::parse("ws://server.example.com/chat").unwrap();
    let (client, _) =
        ClientHandshake::with_key("dGhlIHNhbXBsZSBub25jZQ==".into(), &url, &["chat"], &[]);
    let response = Request::parse(request).unwrap().accept(Some("chat"));
    group.bench_function("client-validate-101", |b| {
        b.iter(|| client.validate(black_box(&response)).unwrap())
    });
    group.finish();
}

criterion_group!(benches, unmask, decode, reassemble, encode, utf8, handshake);
criterion_main!(benches);
