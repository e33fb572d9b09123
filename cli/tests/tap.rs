//! `rfc6455 tap` for real: the binary between a client and a server, both sides checked
//! byte for byte, its lines checked against a golden file, violations reported and
//! relayed, `--json`, a `wss://` upstream, and headless Chromium through it.

mod support;

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::ServerProcess;

const BIN: &str = env!("CARGO_BIN_EXE_rfc6455");
/// RFC 6455 §1.3's key: its accept value is known (s3pPLMBiTxaQ9kYGzzhZRbK+xOo=).
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// A running `rfc6455 tap`: its stdout collected, killed on drop.
struct Tap {
    child: Child,
    /// Where clients connect (`127.0.0.1:PORT`).
    addr: String,
    out: Arc<Mutex<String>>,
}

impl Tap {
    fn start(upstream: &str, extra: &[&str]) -> Tap {
        let mut child = Command::new(BIN)
            .args(["tap", "--listen", "127.0.0.1:0", "--upstream", upstream])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start rfc6455 tap");
        let mut banner = String::new();
        BufReader::new(child.stderr.take().unwrap())
            .read_line(&mut banner)
            .unwrap();
        let addr = banner
            .split("ws://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .unwrap_or_else(|| panic!("no address in the banner: {banner:?}"))
            .to_string();
        let out = Arc::new(Mutex::new(String::new()));
        let sink = out.clone();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        std::thread::spawn(move || {
            let mut line = String::new();
            while stdout.read_line(&mut line).unwrap_or(0) > 0 {
                sink.lock().unwrap().push_str(&line);
                line.clear();
            }
        });
        Tap { child, addr, out }
    }

    /// Waits until the output contains each of `needles` (in any order).
    fn wait_for(&self, needles: &[&str]) -> String {
        let what = format!("{needles:?}");
        self.wait_until(&what, |out| needles.iter().all(|n| out.contains(n)))
    }

    /// Waits until `done` holds for the output (`what` names it in the failure).
    fn wait_until(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = self.out.lock().unwrap().clone();
            if done(&out) {
                return out;
            }
            assert!(Instant::now() < deadline, "waited for {what} in:\n{out}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn request(host: &str, extra: &str) -> Vec<u8> {
    format!(
        "GET /echo HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
    .into_bytes()
}

/// A frame as a client sends it: masked with `key`.
fn masked(first: u8, payload: &[u8], key: [u8; 4]) -> Vec<u8> {
    let mut frame = vec![first];
    match payload.len() {
        n @ 0..=125 => frame.push(0x80 | n as u8),
        n @ 126..=65535 => {
            frame.push(0x80 | 126);
            frame.extend((n as u16).to_be_bytes());
        }
        n => {
            frame.push(0x80 | 127);
            frame.extend((n as u64).to_be_bytes());
        }
    }
    frame.extend(key);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    frame
}

fn read_to_end(stream: &mut TcpStream) -> Vec<u8> {
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut all = Vec::new();
    stream
        .read_to_end(&mut all)
        .expect("the tap ends the stream");
    all
}

/// The output with what changes from run to run replaced: times, ports.
fn normalize(out: &str, names: &[(&str, &str)]) -> String {
    let mut text = out.to_string();
    for (from, to) in names {
        text = text.replace(from, to);
    }
    let mut normalized = String::new();
    for line in text.lines() {
        let words: Vec<&str> = line
            .split(' ')
            .map(|word| {
                let time = word.len() > 2
                    && word.starts_with('+')
                    && word.ends_with('s')
                    && word[1..word.len() - 1].parse::<f64>().is_ok();
                let peer = word.starts_with("127.0.0.1:") && word[10..].parse::<u16>().is_ok();
                match (time, peer) {
                    (true, _) => "+T",
                    (_, true) => "127.0.0.1:PEER",
                    _ => word,
                }
            })
            .collect();
        normalized.push_str(&words.join(" "));
        normalized.push('\n');
    }
    normalized
}

#[test]
fn golden_a_scripted_client_and_the_echo_server() {
    let server = ServerProcess::start(BIN, &["echo", "--threads", "1"]);
    let tap = Tap::start(&format!("ws://{}", server.addr), &[]);
    let mut client = TcpStream::connect(&tap.addr).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    client.write_all(&request(&tap.addr, "")).unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8];
        client.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101 "));
    let k = [0x37, 0xfa, 0x21, 0x3d];
    let binary: Vec<u8> = (0..=255).collect();
    // RFC 6455 §5.7's examples, one step at a time (each waits for its answer, so that
    // the lines come in one order): a masked "Hello"; the same in two fragments with
    // a ping between them; a 256-byte binary message (16-bit length); a close.
    let steps: [(Vec<u8>, Vec<u8>); 5] = [
        (
            masked(0x81, b"Hello", k),
            [&[0x81, 5][..], b"Hello"].concat(),
        ),
        (
            [masked(0x01, b"Hel", k), masked(0x89, b"ping", k)].concat(),
            [&[0x8a, 4][..], b"ping"].concat(),
        ),
        (masked(0x80, b"lo", k), [&[0x81, 5][..], b"Hello"].concat()),
        (
            masked(0x82, &binary, k),
            [&[0x82, 126, 1, 0][..], &binary].concat(),
        ),
        (masked(0x88, b"\x03\xe8done", k), vec![0x88, 2, 0x03, 0xe8]),
    ];
    for (sent, answer) in &steps {
        // In small pieces: the tap reads frames across reads.
        for piece in sent.chunks(7) {
            client.write_all(piece).unwrap();
        }
        // What the client gets is exactly what the echo server sends.
        let mut got = vec![0; answer.len()];
        client.read_exact(&mut got).unwrap();
        assert_eq!(&got, answer);
    }
    assert!(
        read_to_end(&mut client).is_empty(),
        "nothing after the close"
    );
    drop(client);
    let out = tap.wait_for(&["closed"]);
    let got = normalize(&out, &[(&tap.addr, "TAP"), (&server.addr, "SERVER")]);
    let golden_path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/tap_echo.txt");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(golden_path, &got).unwrap();
    }
    let golden = std::fs::read_to_string(golden_path).expect("tests/golden/tap_echo.txt");
    assert_eq!(
        got, golden,
        "the tap's lines differ from the golden file:\n{got}"
    );
}

#[test]
fn bytes_cross_verbatim_both_ways_and_server_violations_are_reported() {
    // A scripted server that records everything it receives.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream = listener.local_addr().unwrap().to_string();
    let mut server_sent = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        rfc6455::accept_key(KEY)
    )
    .into_bytes();
    server_sent.extend([0x81, 0x02, b'o', b'k']);
    server_sent.extend(masked(0x81, b"masked", [1, 2, 3, 4])); // §5.1: servers do not mask
    server_sent.extend([0xa2, 0x01, 0x00]); // RSV2 without an extension (§5.2)
    server_sent.extend([0x82, 126, 0x00, 0x03, 1, 2, 3]); // a 16-bit length for 3 (§5.2)
    server_sent.extend([0x88, 0x02, 0x03, 0xea]);
    let script = server_sent.clone();
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buf).unwrap();
            assert!(n > 0, "the head never came");
            got.extend(&buf[..n]);
        }
        for piece in script.chunks(5) {
            stream.write_all(piece).unwrap();
        }
        got.extend(read_to_end(&mut stream));
        got
    });
    let tap = Tap::start(&format!("ws://{upstream}"), &[]);
    let mut client = TcpStream::connect(&tap.addr).unwrap();
    let head = request(&tap.addr, "X-Trace: 1\r\n");
    let mut frames = masked(0x82, &vec![7u8; 70_000], [9, 8, 7, 6]); // 64-bit length
    frames.extend(masked(0x89, b"", [0, 0, 0, 0]));
    frames.extend(masked(0x88, b"\x03\xe8", [5, 5, 5, 5]));
    client.write_all(&head).unwrap();
    for piece in frames.chunks(3000) {
        client.write_all(piece).unwrap();
    }
    client.shutdown(std::net::Shutdown::Write).unwrap();
    let client_got = read_to_end(&mut client);
    let server_got = server.join().unwrap();

    assert_eq!(
        client_got, server_sent,
        "the client got other bytes than the server sent"
    );
    let expected_head = String::from_utf8(head)
        .unwrap()
        .replace(&format!("Host: {}", tap.addr), &format!("Host: {upstream}"));
    let mut expected = expected_head.into_bytes();
    expected.extend(&frames);
    assert_eq!(server_got.len(), expected.len());
    assert!(
        server_got == expected,
        "the server got other bytes than the client sent"
    );

    let out = tap.wait_for(&["closed"]);
    for line in [
        &format!("(rewritten: Host {} → {upstream})", tap.addr),
        "X-Trace: 1",
        "✓ Sec-WebSocket-Accept = base64(SHA-1(key + GUID)) (RFC 6455 §4.2.2)",
        "→ FIN=1 binary (0x2) len=70000 (64-bit) mask=09080706 0707070707",
        "← FIN=1 text (0x1) len=2 (7-bit) unmasked \"ok\"",
        "← FIN=1 text (0x1) len=6 (7-bit) mask=01020304 \"masked\"",
        "✗ masked frame from a server (RFC 6455 §5.1)",
        "✗ reserved bits set (010) without an extension (RFC 6455 §5.2)",
        "✗ payload length not encoded in the minimal number of bytes (RFC 6455 §5.2)",
        "← FIN=1 close (0x8) len=2 (7-bit) unmasked code=1002 (protocol error)",
        "→ FIN=1 close (0x8) len=2 (7-bit) mask=05050505 code=1000 (normal closure)",
    ] {
        assert!(out.contains(line), "no {line:?} in:\n{out}");
    }
    // Each violation once, the rest of the frames clean.
    assert_eq!(out.matches('✗').count(), 3, "{out}");
}

/// Sends the handshake and one frame through the tap to the echo server; returns
/// what came back after the 101.
fn one_frame(tap: &Tap, frame: &[u8]) -> Vec<u8> {
    let mut client = TcpStream::connect(&tap.addr).unwrap();
    let mut bytes = request(&tap.addr, "");
    bytes.extend(frame);
    client.write_all(&bytes).unwrap();
    let got = read_to_end(&mut client);
    let end = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    got[end..].to_vec()
}

#[test]
fn client_violations_are_relayed_and_the_servers_close_code_comes_back() {
    let server = ServerProcess::start(BIN, &["echo", "--threads", "1"]);
    let tap = Tap::start(&format!("ws://{}", server.addr), &[]);
    let k = [0xa, 0xb, 0xc, 0xd];
    let cases: [(Vec<u8>, &str, u16); 4] = [
        (
            vec![0x81, 0x02, b'h', b'i'],
            "✗ unmasked frame from a client (RFC 6455 §5.1)",
            1002,
        ),
        (
            masked(0x83, b"x", k),
            "✗ reserved opcode 0x3 (RFC 6455 §5.2)",
            1002,
        ),
        (
            masked(0x81, &[0xce, 0xba, 0xff], k),
            "✗ invalid UTF-8 in a text message (RFC 6455 §8.1)",
            1007,
        ),
        (
            masked(0x09, b"", k),
            "✗ fragmented control frame (RFC 6455 §5.5)",
            1002,
        ),
    ];
    for (i, (frame, report, code)) in cases.iter().enumerate() {
        let back = one_frame(&tap, frame);
        // The server saw the violation (so the tap relayed it) and closed with its code.
        assert_eq!(back[0], 0x88, "case {i}: {back:?}");
        assert_eq!(u16::from_be_bytes([back[2], back[3]]), *code, "case {i}");
        let id = i + 1;
        let tag = format!("#{id} ");
        let out = tap.wait_until(&format!("#{id} closed"), |out| {
            out.lines()
                .any(|l| l.starts_with(&tag) && l.contains(" closed: "))
        });
        let conn: Vec<&str> = out.lines().filter(|l| l.starts_with(&tag)).collect();
        // The violation, under the frame that broke it; the server's close code.
        assert!(
            conn.iter().any(|l| l.ends_with(report)),
            "case {i}: {conn:#?}"
        );
        let close_code = format!("unmasked code={code}");
        assert!(
            conn.iter()
                .any(|l| l.contains("← FIN=1 close (0x8)") && l.contains(&close_code)),
            "case {i}: {conn:#?}"
        );
    }
    // A header the tap cannot frame (a 64-bit length with its top bit set): reported,
    // relayed raw, and the server still answers it.
    let mut bad = vec![0x82, 0xff];
    bad.extend([0x80, 0, 0, 0, 0, 0, 0, 1]);
    bad.extend(k);
    let back = one_frame(&tap, &bad);
    assert_eq!((back[0], &back[2..4]), (0x88, &[0x03, 0xea][..]));
    tap.wait_for(&[
        "→ ✗ at byte 0: 64-bit payload length with the most significant bit set (RFC 6455 §5.2): \
         the frames are lost, the rest is relayed as it is",
    ]);
}

#[test]
fn json_lines_describe_heads_frames_and_the_close() {
    let server = ServerProcess::start(BIN, &["echo", "--threads", "1"]);
    let tap = Tap::start(
        &format!("ws://{}", server.addr),
        &["--json", "--max-preview", "4"],
    );
    let back = one_frame(
        &tap,
        &[
            masked(0x81, b"Hello", [1, 2, 3, 4]),
            masked(0x88, b"\x03\xe8", [1, 2, 3, 4]),
        ]
        .concat(),
    );
    assert_eq!(&back[..7], b"\x81\x05Hello");
    tap.wait_for(&["\"event\":\"close\""]);
    let out = tap.out.lock().unwrap().clone();
    let objects: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let events: Vec<&str> = objects
        .iter()
        .map(|o| o["event"].as_str().unwrap())
        .collect();
    // In the order things crossed: the client's frames may pass before the 101.
    assert_eq!(events[..2], ["open", "request"], "{out}");
    assert_eq!(events.last(), Some(&"close"), "{out}");
    let mut sorted = events.clone();
    sorted.sort();
    let expected = [
        "close", "frame", "frame", "frame", "frame", "open", "request", "response",
    ];
    assert_eq!(sorted, expected, "{out}");
    assert_eq!(
        objects[1]["rewritten"][0],
        format!("Host {} → {}", tap.addr, server.addr)
    );
    let response = objects.iter().find(|o| o["event"] == "response").unwrap();
    assert_eq!(response["checks"][0]["ok"], true);
    let hello = &objects[2];
    assert_eq!(hello["from"], "client");
    assert_eq!(hello["mask"], "01020304");
    assert_eq!(hello["len"], 5);
    assert_eq!(hello["preview_text"], "Hell"); // --max-preview 4
    assert_eq!(hello["violations"].as_array().unwrap().len(), 0);
    let echoed = objects
        .iter()
        .find(|o| o["from"] == "server" && o["opcode"] == "text")
        .unwrap();
    assert_eq!(echoed["mask"], Value::Null);
    let close = objects
        .iter()
        .find(|o| o["from"] == "server" && o["opcode"] == "close")
        .unwrap();
    assert_eq!(close["close"]["code"], 1000);
    assert_eq!(objects[7]["client"]["frames"], 2);
    assert_eq!(objects[7]["server"]["frames"], 2);
}

#[test]
fn a_wss_upstream_is_verified_and_watched() {
    let pki = support::tls::pki();
    let server = ServerProcess::start(
        BIN,
        &[
            "echo",
            "--threads",
            "1",
            "--tls-cert",
            pki.cert.to_str().unwrap(),
            "--tls-key",
            pki.key.to_str().unwrap(),
        ],
    );
    let port = server.addr.rsplit(':').next().unwrap();
    let upstream = format!("wss://localhost:{port}");
    // Without the CA, the platform roots refuse the test certificate: 502.
    let refused = Tap::start(&upstream, &[]);
    let back = {
        let mut c = TcpStream::connect(&refused.addr).unwrap();
        c.write_all(&request(&refused.addr, "")).unwrap();
        read_to_end(&mut c)
    };
    assert!(
        back.starts_with(b"HTTP/1.1 502 "),
        "{}",
        String::from_utf8_lossy(&back)
    );
    refused.wait_for(&["UnknownIssuer"]);
    // With it: the conversation, and the TLS session named once.
    let tap = Tap::start(&upstream, &["--ca", pki.ca.to_str().unwrap()]);
    let mut ws = rfc6455::blocking::connect(&format!("ws://{}/", tap.addr)).unwrap();
    ws.send_text("over TLS").unwrap();
    assert_eq!(ws.read().unwrap(), rfc6455::Event::Text("over TLS".into()));
    drop(ws);
    let out = tap.wait_for(&[
        "upstream TLS",
        "← FIN=1 text (0x1) len=8 (7-bit) unmasked \"over TLS\"",
    ]);
    assert!(
        out.contains(&format!("Host {} → localhost:{port}", tap.addr)),
        "{out}"
    );
}

#[test]
fn a_missing_upstream_gets_a_502() {
    let unused = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = unused.local_addr().unwrap();
    drop(unused);
    let tap = Tap::start(&format!("ws://{addr}"), &[]);
    let mut client = TcpStream::connect(&tap.addr).unwrap();
    client.write_all(&request(&tap.addr, "")).unwrap();
    let got = read_to_end(&mut client);
    assert!(
        got.starts_with(b"HTTP/1.1 502 Bad Gateway\r\n"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    drop(client);
    tap.wait_for(&["closed (upstream", "Connection refused"]);
}

#[test]
fn chromium_through_the_tap_masks_offers_deflate_and_says_going_away() {
    let chromium = support::browser::find().expect("chromium (tests/setup.sh installs it)");
    let server = ServerProcess::start(BIN, &["serve", "--threads", "1"]);
    let tap = Tap::start(&format!("ws://{}", server.addr), &[]);
    // bob (not through the tap) answers; the page leaves once it has seen him.
    let mut bob = support::chat::Client::hello(&server.addr, "bob");
    bob.join("tap", None);
    let url = format!(
        "http://{}/?autotest=alice&room=tap&say=hi-from-alice&expect=hi-from-bob&leave=1",
        tap.addr
    );
    let _page = support::browser::Page::open(&chromium, "tap-alice", (800, 600), &url);
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let m = bob.recv();
        if m["type"] == "message" && m["text"] == "hi-from-alice" {
            break;
        }
        assert!(Instant::now() < deadline, "alice never spoke");
    }
    bob.send(serde_json::json!({"type": "message", "room": "tap", "text": "hi-from-bob"}));
    let out = tap.wait_for(&["code=1001 (going away)"]);
    // The page itself came through the tap as plain HTTP.
    assert!(out.contains("(not an upgrade: relayed as it is)"), "{out}");
    // The browser's upgrade, with its permessage-deflate offer, and the server's answer.
    assert!(
        out.contains("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"),
        "{out}"
    );
    assert!(out.contains("· permessage-deflate agreed"), "{out}");
    // Masked client frames, compressed, shown inflated; the server's frames unmasked.
    let client_frames: Vec<&str> = out.lines().filter(|l| l.contains(" → FIN=")).collect();
    assert!(
        client_frames.iter().all(|l| l.contains(" mask=")),
        "{client_frames:#?}"
    );
    assert!(
        client_frames.iter().any(|l| l.contains("RSV=100")
            && l.contains("deflate: message")
            && l.contains("hi-from-alice")),
        "{client_frames:#?}"
    );
    assert!(
        out.lines().any(|l| l.contains("← FIN=1 text")
            && l.contains("unmasked")
            && l.contains("hi-from-bob")),
        "{out}"
    );
    // Leaving the page: Chromium closes with 1001 (and its FIN at once); the server
    // answers the Close all the same.
    let out = tap.wait_for(&["← FIN=1 close (0x8) len=2 (7-bit) unmasked code=1001 (going away)"]);
    let close = out
        .lines()
        .find(|l| l.contains("→ FIN=1 close (0x8)"))
        .unwrap();
    assert!(
        close.contains(" mask=") && close.ends_with("code=1001 (going away)"),
        "{close}"
    );
    assert_eq!(out.matches('✗').count(), 0, "{out}");
}

#[test]
fn a_fast_sender_and_a_server_that_does_not_read_cost_the_tap_bounded_memory() {
    // The server completes the handshake, then reads nothing.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream = listener.local_addr().unwrap().to_string();
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8];
        while !head.ends_with(b"\r\n\r\n") {
            stream.read_exact(&mut byte).unwrap();
            head.push(byte[0]);
        }
        let answer = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n\r\n",
            rfc6455::accept_key(KEY)
        );
        stream.write_all(answer.as_bytes()).unwrap();
        let _ = stopped.recv();
    });
    let tap = Tap::start(&format!("ws://{upstream}"), &[]);
    let rss_kib = || {
        let status = std::fs::read_to_string(format!("/proc/{}/status", tap.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap()
    };
    let before = rss_kib();
    let mut client = TcpStream::connect(&tap.addr).unwrap();
    client.write_all(&request(&tap.addr, "")).unwrap();
    // 1 MiB frames, 256 of them, as fast as the client can write.
    let frame = masked(0x82, &vec![0x55; 1 << 20], [1, 2, 3, 4]);
    client
        .set_write_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let mut written = 0usize;
    'send: for _ in 0..256 {
        let mut rest = &frame[..];
        while !rest.is_empty() {
            match client.write(rest) {
                Ok(n) => {
                    written += n;
                    rest = &rest[n..];
                }
                Err(_) => break 'send, // the write timed out: backpressure reached us
            }
        }
    }
    let during = rss_kib();
    eprintln!("written {written} bytes; tap RSS {before} KiB -> {during} KiB");
    // Backpressure: far less than the 256 MiB went anywhere (socket buffers hold
    // some MiB), and the tap itself grew by less than 16 MiB.
    assert!(written < 64 << 20, "{written} bytes were accepted");
    assert!(
        during < before + 16 * 1024,
        "RSS {before} KiB -> {during} KiB"
    );
    let _ = stop.send(());
    server.join().unwrap();
}

#[test]
fn pairs_are_capped_and_a_silent_client_is_dropped_after_the_head_timeout() {
    let server = ServerProcess::start(BIN, &["echo", "--threads", "1"]);
    let upstream = format!("ws://{}/", server.addr);
    let tap = Tap::start(&upstream, &["--max-pairs", "1", "--head-timeout", "1"]);
    // A client that sends the start of a head and nothing more holds the one pair...
    let mut silent = TcpStream::connect(&tap.addr).unwrap();
    silent.write_all(b"GET / HT").unwrap();
    tap.wait_for(&["#1 "]);
    // ...so a second one is closed at once.
    let mut second = TcpStream::connect(&tap.addr).unwrap();
    second
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    assert_eq!(second.read(&mut [0u8; 16]).unwrap_or(0), 0, "closed");
    tap.wait_for(&["refused: 1 connections relayed (--max-pairs)"]);
    // The silent one goes after the head timeout, and its pair with it.
    silent
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    assert_eq!(silent.read(&mut [0u8; 16]).unwrap_or(0), 0, "dropped");
    tap.wait_for(&["no request head within 1s"]);
}
