// The event-loop server under fuzz: each input is a script of up to 8 loopback clients
// (connect, write raw bytes or frames, read, pause, half-close, drop) played against a
// fresh `server::Server` with tiny timeouts, sometimes with a graceful shutdown in the
// middle. Invariants:
// - no panic, in the loop or in the handler (a panic in the loop thread fails the input);
// - no callback for a connection after its close, every close callback for a connection
//   that was opened, no message over the configured size; at every tick the server's count
//   of open connections equals the handler's and stays within `max_connections`;
// - every connection ends: once the script is over, every client that was left open
//   is closed by the server (handshake, ping or close timeout) — its socket reaches EOF —
//   and every opened connection got its close callback, within 2 s;
// - the server still answers a fresh client (handshake, echo) after the script, unless
//   it was shut down, and a shutdown returns from `run` without error.
// Memory: the loop's limits are small (2 KiB heads, 4 KiB frames, 64 KiB of queued
// output), and libFuzzer's -rss_limit_mb (512 in fuzz/run.sh) fails an input that grows
// the process past it.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use rfc6455::handshake::server::Request;
use rfc6455::server::{
    Accept, CloseInfo, ConnId, Ctx, Handler, HttpRequest, HttpResponse, Received, Refusal, Reply,
    Server, ServerConfig,
};
use rfc6455::Config;
use std::collections::HashSet;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const MAX_CLIENTS: usize = 8;
const MAX_MESSAGE: usize = 16 * 1024;
const UPGRADE: &[u8] = b"GET /chat HTTP/1.1\r\nHost: fuzz\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

#[derive(Arbitrary, Debug)]
enum Op {
    Connect,
    /// The valid upgrade request above, on client `n`.
    Upgrade(u8),
    /// A plain HTTP request (`/health` is answered by the handler, others 404 or 426).
    Http(u8, bool),
    /// Arbitrary bytes: partial or broken heads, garbage frames.
    Raw(u8, Vec<u8>),
    /// One masked client frame: first byte as given (FIN/RSV/opcode), payload as given.
    Frame(u8, u8, Vec<u8>),
    /// A masked frame of `len` copies of a byte: large payloads, size limits, backpressure.
    Big(u8, u8, u16),
    /// Reads what has arrived, without waiting.
    Read(u8),
    /// Sleeps up to 25 ms: lets timers fire.
    Pause(u8),
    HalfClose(u8),
    Drop(u8),
    /// Graceful shutdown of the whole server.
    Shutdown,
}

#[derive(Arbitrary, Debug)]
struct Script {
    ops: Vec<Op>,
    /// At the end, leave the remaining clients open (the server's timers must end them)
    /// instead of dropping them.
    abandon: bool,
}

/// What the handler saw, checked as it happens and after the script.
#[derive(Default)]
struct Record {
    open: HashSet<ConnId>,
    closed: HashSet<ConnId>,
    /// A broken invariant, seen inside the loop; reported by the fuzz thread.
    violation: Option<String>,
}

struct Recorder(Arc<Mutex<Record>>);

impl Recorder {
    fn check(&self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            let mut record = self.0.lock().unwrap();
            record.violation.get_or_insert_with(what);
        }
    }
}

impl Handler for Recorder {
    type Data = ();

    fn upgrade(&mut self, request: &Request) -> Result<Accept<()>, Refusal> {
        if request.path() == "/reject" {
            return Err(403.into());
        }
        Ok(Accept::new(()))
    }

    fn open(&mut self, _ctx: &mut Ctx<'_, ()>, id: ConnId) {
        let fresh = {
            let mut record = self.0.lock().unwrap();
            !record.closed.contains(&id) && record.open.insert(id)
        };
        self.check(fresh, || format!("{id} opened twice"));
    }

    fn message(&mut self, ctx: &mut Ctx<'_, ()>, id: ConnId, message: Received<'_>) {
        let open = self.0.lock().unwrap().open.contains(&id);
        self.check(open, || format!("a message for {id}, not open"));
        let len = message.as_bytes().len();
        self.check(len <= MAX_MESSAGE, || format!("a message of {len} bytes"));
        match message {
            Received::Text("close") => {
                ctx.close(id, rfc6455::CloseCode::NORMAL, "asked");
            }
            Received::Text("all") => {
                for other in ctx.connections() {
                    ctx.send_text(other, "to all");
                }
            }
            _ => {
                ctx.send(id, message);
            }
        }
    }

    fn close(&mut self, _ctx: &mut Ctx<'_, ()>, id: ConnId, _data: (), info: CloseInfo) {
        let was_open = {
            let mut record = self.0.lock().unwrap();
            record.open.remove(&id) && record.closed.insert(id)
        };
        self.check(was_open, || format!("close of {id}, not open ({info:?})"));
    }

    fn tick(&mut self, ctx: &mut Ctx<'_, ()>) {
        // The server's count of open connections is the handler's, and within the limit.
        let open = ctx.stats().open;
        let seen = self.0.lock().unwrap().open.len();
        self.check(open == seen && open <= 4, || {
            format!("stats say {open} open, the handler saw {seen} opened and not closed")
        });
    }

    fn request(
        &mut self,
        _ctx: &mut Ctx<'_, ()>,
        _id: ConnId,
        request: &HttpRequest,
    ) -> Option<Reply<()>> {
        (request.path() == "/health").then(|| Reply::Response(HttpResponse::text(200, "ok")))
    }
}

fn config() -> ServerConfig {
    ServerConfig {
        connection: Config {
            max_frame_size: 4096,
            max_message_size: MAX_MESSAGE,
            ..ServerConfig::default().connection
        },
        max_connections: 4,
        max_head: 2048,
        max_body: 1024,
        handshake_timeout: Duration::from_millis(30),
        ping_interval: Some(Duration::from_millis(20)),
        ping_timeout: Duration::from_millis(20),
        close_timeout: Duration::from_millis(20),
        max_queued_output: 64 * 1024,
        tick_interval: Duration::from_millis(20),
        shutdown_timeout: Duration::from_millis(50),
        ..ServerConfig::default()
    }
}

/// A masked client frame (RFC 6455 §5.3), key fixed: the server's reading of the payload
/// is what is fuzzed, not the key.
fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let key = [0x37, 0xfa, 0x21, 0x3d];
    let mut out = vec![first];
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n <= 0xFFFF => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&key);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    out
}

/// Writes what the socket takes now; a server that stopped reading gets the rest never.
fn write_some(stream: &mut TcpStream, bytes: &[u8]) {
    let _ = stream.write(bytes);
}

/// Reads what has arrived; true at EOF or a reset.
fn drain(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return true,
        }
    }
}

fuzz_target!(|script: Script| {
    if script.ops.len() > 64 {
        return;
    }
    let record = Arc::new(Mutex::new(Record::default()));
    let server = Server::bind("127.0.0.1:0".parse().unwrap(), config()).unwrap();
    let addr = server.local_addr().unwrap();
    let handle = server.handle();
    let handler = Recorder(record.clone());
    let thread = std::thread::spawn(move || server.run(handler));

    let mut clients: Vec<Option<TcpStream>> = Vec::new();
    let mut shut_down = false;
    // Client `n` (modulo how many were made), if it is still there.
    let client = |clients: &mut Vec<Option<TcpStream>>, n: u8| -> Option<usize> {
        let i = n as usize % clients.len().max(1);
        clients.get(i)?.as_ref()?;
        Some(i)
    };
    for op in &script.ops {
        match op {
            Op::Connect if clients.len() < MAX_CLIENTS => {
                let stream = TcpStream::connect(addr).ok();
                if let Some(s) = &stream {
                    s.set_nonblocking(true).unwrap();
                    s.set_nodelay(true).unwrap();
                }
                clients.push(stream);
            }
            Op::Connect => {}
            Op::Upgrade(n) => {
                if let Some(i) = client(&mut clients, *n) {
                    write_some(clients[i].as_mut().unwrap(), UPGRADE);
                }
            }
            Op::Http(n, health) => {
                if let Some(i) = client(&mut clients, *n) {
                    let path = if *health { "/health" } else { "/x" };
                    let req = format!("GET {path} HTTP/1.1\r\nHost: fuzz\r\n\r\n");
                    write_some(clients[i].as_mut().unwrap(), req.as_bytes());
                }
            }
            Op::Raw(n, bytes) => {
                if let Some(i) = client(&mut clients, *n) {
                    write_some(clients[i].as_mut().unwrap(), bytes);
                }
            }
            Op::Frame(n, first, payload) => {
                if let Some(i) = client(&mut clients, *n) {
                    write_some(clients[i].as_mut().unwrap(), &frame(*first, payload));
                }
            }
            Op::Big(n, byte, len) => {
                if let Some(i) = client(&mut clients, *n) {
                    let payload = vec![*byte; *len as usize];
                    write_some(clients[i].as_mut().unwrap(), &frame(0x82, &payload));
                }
            }
            Op::Read(n) => {
                if let Some(i) = client(&mut clients, *n) {
                    if drain(clients[i].as_mut().unwrap()) {
                        clients[i] = None;
                    }
                }
            }
            Op::Pause(ms) => std::thread::sleep(Duration::from_millis(*ms as u64 % 26)),
            Op::HalfClose(n) => {
                if let Some(i) = client(&mut clients, *n) {
                    let _ = clients[i].as_ref().unwrap().shutdown(Shutdown::Write);
                }
            }
            Op::Drop(n) => {
                if let Some(i) = client(&mut clients, *n) {
                    clients[i] = None;
                }
            }
            Op::Shutdown if !shut_down => {
                handle.shutdown();
                shut_down = true;
            }
            Op::Shutdown => {}
        }
        if let Some(v) = record.lock().unwrap().violation.take() {
            panic!("{v}");
        }
    }

    // Every connection ends: left open, the server's timers end it; dropped, its FIN.
    if !script.abandon {
        clients.clear();
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        for slot in clients.iter_mut() {
            if slot.as_mut().is_some_and(drain) {
                *slot = None;
            }
        }
        let all_closed = clients.iter().all(Option::is_none);
        let none_open = record.lock().unwrap().open.is_empty();
        if (all_closed && none_open) || thread.is_finished() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "connections never ended: {} sockets open, {} connections without a close",
            clients.iter().filter(|c| c.is_some()).count(),
            record.lock().unwrap().open.len()
        );
        std::thread::sleep(Duration::from_millis(2));
    }

    // The server still answers a fresh client.
    if !shut_down {
        let mut fresh = TcpStream::connect(addr).unwrap();
        fresh
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        fresh.write_all(UPGRADE).unwrap();
        fresh.write_all(&frame(0x81, b"still here")).unwrap();
        let mut seen = Vec::new();
        let mut buf = [0u8; 1024];
        let echo = [&[0x81, 10][..], b"still here"].concat();
        while !seen.windows(echo.len()).any(|w| w == echo) {
            match fresh.read(&mut buf) {
                Ok(0) | Err(_) => panic!(
                    "a fresh client got no echo: {:?}",
                    String::from_utf8_lossy(&seen)
                ),
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
        assert!(seen.starts_with(b"HTTP/1.1 101 "));
        drop(fresh);
        handle.shutdown();
    }
    let result = match thread.join() {
        Ok(result) => result,
        Err(panic) => std::panic::resume_unwind(panic),
    };
    result.expect("run returns without error after a shutdown");
    let record = record.lock().unwrap();
    if let Some(v) = &record.violation {
        panic!("{v}");
    }
    assert!(
        record.open.is_empty(),
        "open after run returned: {:?}",
        record.open
    );
});
