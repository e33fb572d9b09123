//! Resident memory per idle connection of the event-loop server (`rfc6455 echo`):
//! starts it as a child process, opens N WebSocket connections to it (default 10 000),
//! and reads the child's VmRSS from /proc before and after. Linux only.
//!
//! With `deflate`, every connection negotiates permessage-deflate with Chromium's
//! offer; idle, they are measured as above. Then each sends one compressed message and
//! reads its compressed echo (so that the server inflated and compressed for it), and
//! the peak while they did (`VmHWM`) is reported: memory per active connection.
//!
//! With `tls`, the server runs with a certificate made here (rcgen) and every
//! connection is `wss://`: a TLS 1.3 session (rustls) under each WebSocket.
//!
//! ```text
//! cargo build --release --bins --examples
//! target/release/examples/idle_memory 10000
//! target/release/examples/idle_memory 10000 deflate
//! target/release/examples/idle_memory 10000 tls
//! ```

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:")
}

fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("Linux /proc");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect(field)
}

/// A compressed, masked text message of 200 bytes, as a client with
/// permessage-deflate sends it (no context takeover: valid on any connection).
fn compressed_message() -> Vec<u8> {
    let agreed = rfc6455::deflate::Negotiated {
        local_no_context_takeover: true,
        remote_no_context_takeover: true,
        threshold: 0,
        ..rfc6455::deflate::Negotiated::default()
    };
    let mut client = rfc6455::Connection::with_deflate(
        rfc6455::Role::Client,
        rfc6455::Config::default(),
        Some(agreed),
    );
    let text = "{\"type\":\"message\",\"room\":\"lobby\",\"text\":\"hello\"} ".repeat(4);
    client.send_text(&text).unwrap();
    let frame = client.pending_output().to_vec();
    assert_eq!(frame[0], 0xc1, "compressed");
    frame
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000);
    let mode = std::env::args().nth(2);
    let deflate = mode.as_deref() == Some("deflate");
    let tls = (mode.as_deref() == Some("tls")).then(Tls::new);
    let exe = std::env::current_exe().unwrap();
    let server_bin = exe.parent().unwrap().parent().unwrap().join("rfc6455");
    let addr = "127.0.0.1:9301";
    let offer = if deflate {
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    } else {
        ""
    };
    let mut command = Command::new(&server_bin);
    command.args(["echo", "--addr", addr, "--threads", "1"]);
    if let Some(tls) = &tls {
        command.arg("--tls-cert").arg(&tls.cert);
        command.arg("--tls-key").arg(&tls.key);
    }
    let mut child = command
        .stderr(Stdio::null())
        .spawn()
        .expect("build the binary first: cargo build --release --bins");
    std::thread::sleep(Duration::from_millis(300));
    let pid = child.id();

    if let Some(tls) = &tls {
        // One connection first, so that one-time allocations are not counted per
        // connection.
        let mut conns = vec![tls.open(addr)];
        std::thread::sleep(Duration::from_millis(200));
        let before = rss_kib(pid);
        for _ in 1..n {
            conns.push(tls.open(addr));
        }
        std::thread::sleep(Duration::from_millis(2500));
        let idle = rss_kib(pid);
        println!(
            "{n} idle wss:// connections (TLS 1.3): server RSS {before} KiB -> {idle} KiB, {:.0} bytes per connection",
            (idle.saturating_sub(before)) as f64 * 1024.0 / (n - 1) as f64
        );
        drop(conns);
        let _ = child.kill();
        let _ = child.wait();
        return;
    }
    // One connection first, so that one-time allocations are not counted per connection.
    let mut conns = vec![open(addr, offer, deflate)];
    std::thread::sleep(Duration::from_millis(200));
    let before = rss_kib(pid);
    // The peak from here on (Linux: "5" to clear_refs resets VmHWM).
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
    for _ in 1..n {
        conns.push(open(addr, offer, deflate));
    }
    let per = |kib: u64| (kib.saturating_sub(before)) as f64 * 1024.0 / (n - 1) as f64;
    // Let the server finish every handshake and a tick release idle buffers.
    std::thread::sleep(Duration::from_millis(2500));
    let idle = rss_kib(pid);
    println!(
        "{n} idle connections{}: server RSS {before} KiB -> {idle} KiB, {:.0} bytes per connection",
        if deflate {
            " with permessage-deflate"
        } else {
            ""
        },
        per(idle)
    );
    if deflate {
        // Every connection sends one compressed message and reads the echo.
        let message = compressed_message();
        for conn in &mut conns {
            conn.write_all(&message).unwrap();
        }
        for conn in &mut conns {
            let mut reply = [0u8; 512];
            let got = conn.read(&mut reply).unwrap();
            assert!(got > 2 && reply[0] == 0xc1, "a compressed echo");
        }
        let peak = status_kib(pid, "VmHWM:");
        println!(
            "then each one compressed message in and out: server peak {before} KiB -> {peak} KiB, {:.0} bytes per active connection",
            per(peak)
        );
        // The server frees what idle connections hold on its next tick; the allocator
        // may keep the freed pages, so RSS says little about what is still in use.
        std::thread::sleep(Duration::from_millis(2500));
        let after = rss_kib(pid);
        println!(
            "idle again: server RSS {after} KiB ({:.0} bytes per connection, freed memory the allocator keeps included)",
            per(after)
        );
    }
    drop(conns);
    let _ = child.kill();
    let _ = child.wait();
}

/// Opens a WebSocket connection with a raw handshake (with `offer`, an extra header
/// line) and keeps it idle.
fn open(addr: &str, offer: &str, deflate: bool) -> TcpStream {
    let mut stream = TcpStream::connect(addr).expect("connect");
    write!(
        stream,
        "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{offer}\r\n"
    )
    .unwrap();
    let mut head = [0u8; 512];
    let n = stream.read(&mut head).unwrap();
    let head = String::from_utf8_lossy(&head[..n]);
    assert!(head.starts_with("HTTP/1.1 101"), "handshake failed");
    assert_eq!(head.contains("permessage-deflate"), deflate, "{head}");
    stream
}

/// A certificate for `localhost` (rcgen, self-signed, written to a temporary
/// directory) and a client configuration that trusts it.
struct Tls {
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
    client: std::sync::Arc<rustls::ClientConfig>,
}

impl Tls {
    fn new() -> Tls {
        let dir = std::env::temp_dir().join(format!("rfc6455-idle-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert, made.cert.pem()).unwrap();
        std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
        let client = rfc6455::tls::client_config_with_ca(&cert).unwrap();
        Tls { cert, key, client }
    }

    /// Opens a `wss://` connection (TLS, then the WebSocket handshake) and keeps it idle.
    fn open(&self, addr: &str) -> rfc6455::blocking::WebSocket<rfc6455::blocking::ClientStream> {
        let port = addr.rsplit(':').next().unwrap();
        rfc6455::blocking::connect_tls(&format!("wss://localhost:{port}/"), self.client.clone())
            .expect("wss:// connect")
    }
}
