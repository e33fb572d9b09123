//! Resident memory per idle connection of the event-loop server (`rfc6455 echo`):
//! starts it as a child process, opens N WebSocket connections to it (default 10 000),
//! and reads the child's VmRSS from /proc before and after. Linux only.
//!
//! ```text
//! cargo build --release --bins --examples
//! target/release/examples/idle_memory 10000
//! ```

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("Linux /proc");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000);
    let exe = std::env::current_exe().unwrap();
    let server_bin = exe.parent().unwrap().parent().unwrap().join("rfc6455");
    let addr = "127.0.0.1:9301";
    let mut child = Command::new(&server_bin)
        .args(["echo", "--addr", addr])
        .stderr(Stdio::null())
        .spawn()
        .expect("build the binary first: cargo build --release --bins");
    std::thread::sleep(Duration::from_millis(300));
    let pid = child.id();

    // One connection first, so that one-time allocations are not counted per connection.
    let mut conns = vec![open(addr)];
    std::thread::sleep(Duration::from_millis(200));
    let before = rss_kib(pid);
    for _ in 1..n {
        conns.push(open(addr));
    }
    // Let the server finish every handshake and a tick release idle buffers.
    std::thread::sleep(Duration::from_millis(2500));
    let after = rss_kib(pid);
    let per_conn = (after.saturating_sub(before)) as f64 * 1024.0 / (n - 1) as f64;
    println!(
        "{n} idle connections: server RSS {before} KiB -> {after} KiB, {per_conn:.0} bytes per connection"
    );
    drop(conns);
    let _ = child.kill();
    let _ = child.wait();
}

/// Opens a WebSocket connection with a raw handshake and keeps it idle.
fn open(addr: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .write_all(
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        .unwrap();
    let mut head = [0u8; 256];
    let n = stream.read(&mut head).unwrap();
    assert!(head[..n].starts_with(b"HTTP/1.1 101"), "handshake failed");
    stream
}
