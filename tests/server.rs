//! The mio event-loop server over real sockets: echo, plain HTTP, refusals, limits,
//! timers, backpressure and graceful shutdown.
#![cfg(feature = "server")]

use rfc6455::blocking::{self, ClientStream, Error};
use rfc6455::deflate::DeflateConfig;
use rfc6455::handshake::server::Request;
use rfc6455::server::{
    Accept, CloseInfo, ConnId, Ctx, Handle, Handler, HttpRequest, HttpResponse, Received, Refusal,
    Reply, Server, ServerConfig, SharedFrame, SlowConsumer,
};
use rfc6455::{CloseCode, Event};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// What the test handler saw, in order.
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    Open(String),
    Close(String, CloseInfo),
    /// A "share:" broadcast went out; its compressed size, if it was compressed.
    Shared(Option<usize>),
}

/// Echoes, except: "broadcast:X" sends X to every other connection; "share:X" sends X
/// to every other connection as one `SharedFrame`; "flood:N" sends N messages of 64 KiB
/// back; refuses the path /forbidden with 403; serves GET /page.
struct TestHandler {
    seen: mpsc::Sender<Seen>,
}

impl Handler for TestHandler {
    type Data = String; // the request path

    fn upgrade(&mut self, request: &Request) -> Result<Accept<String>, Refusal> {
        if request.path() == "/forbidden" {
            return Err(403.into());
        }
        if request.path() == "/ticket" {
            // An application's header may not change the response's framing.
            return Err(Refusal::new(401, "no ticket\r\nX-Injected: 1")
                .with_header("WWW-Authenticate", "Ticket")
                .with_header("Content-Length", "0")
                .with_header("Connection", "keep-alive"));
        }
        let protocol = request.protocols().iter().find(|p| *p == "chat").cloned();
        Ok(Accept {
            protocol,
            data: request.path().to_string(),
        })
    }

    fn open(&mut self, ctx: &mut Ctx<'_, String>, id: ConnId) {
        let path = ctx.data(id).unwrap().clone();
        let _ = self.seen.send(Seen::Open(path));
    }

    fn message(&mut self, ctx: &mut Ctx<'_, String>, id: ConnId, message: Received<'_>) {
        if let Received::Text(text) = message {
            if let Some(rest) = text.strip_prefix("broadcast:") {
                for other in ctx.connections() {
                    if other != id {
                        ctx.send_text(other, rest);
                    }
                }
                return;
            }
            if let Some(rest) = text.strip_prefix("share:") {
                let frame = SharedFrame::text(rest);
                for other in ctx.connections() {
                    if other != id {
                        ctx.send_shared(other, &frame);
                    }
                }
                let _ = self.seen.send(Seen::Shared(frame.compressed_len()));
                return;
            }
            if let Some(n) = text.strip_prefix("mixed:") {
                // Shared frames (even i) and the connection's own (odd i), interleaved.
                for i in 0..n.parse::<u32>().unwrap() {
                    for other in ctx.connections().into_iter().filter(|&o| o != id) {
                        if i % 2 == 0 {
                            ctx.send_shared(other, &SharedFrame::binary(&numbered(i)));
                        } else {
                            ctx.send_text(other, &format!("direct {i}"));
                        }
                    }
                }
                return;
            }
            if let Some(n) = text.strip_prefix("flood:") {
                let chunk = vec![0u8; 64 * 1024];
                for _ in 0..n.parse::<usize>().unwrap() {
                    ctx.send_binary(id, &chunk);
                }
                return;
            }
        }
        ctx.send(id, message);
    }

    fn close(&mut self, _ctx: &mut Ctx<'_, String>, _id: ConnId, path: String, info: CloseInfo) {
        let _ = self.seen.send(Seen::Close(path, info));
    }

    fn request(
        &mut self,
        _ctx: &mut Ctx<'_, String>,
        _id: ConnId,
        request: &HttpRequest,
    ) -> Option<Reply<String>> {
        match request.path() {
            "/page" => Some(Reply::Response(HttpResponse::html(200, "<h1>rooms</h1>"))),
            "/missing" => Some(Reply::Response(HttpResponse::text(404, "not found\n"))),
            _ => None,
        }
    }
}

struct Running {
    addr: SocketAddr,
    handle: Handle,
    seen: mpsc::Receiver<Seen>,
    thread: Option<JoinHandle<()>>,
}

impl Running {
    fn url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    fn next_seen(&self) -> Seen {
        self.seen
            .recv_timeout(Duration::from_secs(10))
            .expect("the handler saw nothing")
    }

    fn stop(mut self) {
        self.handle.shutdown();
        self.thread.take().unwrap().join().unwrap();
    }
}

fn start(mut config: ServerConfig) -> Running {
    // Clients that are not reading never answer the shutdown's Close: don't wait long.
    config.shutdown_timeout = Duration::from_millis(300);
    let server = Server::bind("127.0.0.1:0".parse().unwrap(), config).unwrap();
    let addr = server.local_addr().unwrap();
    let handle = server.handle();
    let (tx, seen) = mpsc::channel();
    let thread = thread::spawn(move || server.run(TestHandler { seen: tx }).unwrap());
    Running {
        addr,
        handle,
        seen,
        thread: Some(thread),
    }
}

fn connect(url: &str) -> blocking::WebSocket<ClientStream> {
    let ws = blocking::connect(url).unwrap();
    ws.get_ref()
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    ws
}

fn http_get(addr: SocketAddr, request: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response
}

/// A raw TCP client that has sent an upgrade request for `path` (RFC 6455 §1.3's
/// key) and reads nothing yet.
fn raw_upgrade(addr: SocketAddr, path: &str) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).unwrap();
    tcp
}

/// Reads events until the peer's Close; returns its code.
fn close_code(ws: &mut blocking::WebSocket<ClientStream>) -> u16 {
    loop {
        match ws.read() {
            Ok(Event::Close(frame)) => return frame.map_or(1005, |f| f.code.0),
            Ok(_) => {}
            Err(e) => panic!("no Close frame: {e}"),
        }
    }
}

#[test]
fn echoes_and_reports_a_clean_close() {
    let server = start(ServerConfig::default());
    let mut ws = connect(&server.url("/echo"));
    assert_eq!(server.next_seen(), Seen::Open("/echo".into()));
    ws.send_text("hello").unwrap();
    assert_eq!(ws.read().unwrap(), Event::Text("hello".into()));
    ws.send_binary(&[1, 2, 3]).unwrap();
    assert_eq!(ws.read().unwrap(), Event::Binary(vec![1, 2, 3]));
    ws.close(CloseCode::NORMAL, "bye").unwrap();
    assert_eq!(close_code(&mut ws), 1000);
    assert!(matches!(ws.read(), Err(Error::Closed)));
    match server.next_seen() {
        Seen::Close(path, info) => {
            assert_eq!(path, "/echo");
            assert_eq!(info.code, CloseCode::NORMAL);
            assert_eq!(info.reason, "bye");
            assert!(info.clean);
        }
        other => panic!("{other:?}"),
    }
    server.stop();
}

#[test]
fn a_dropped_tcp_connection_is_reported_as_1006() {
    let server = start(ServerConfig::default());
    let ws = connect(&server.url("/gone"));
    assert_eq!(server.next_seen(), Seen::Open("/gone".into()));
    drop(ws);
    match server.next_seen() {
        Seen::Close(_, info) => {
            assert_eq!(info.code, CloseCode::ABNORMAL_CLOSURE);
            assert!(!info.clean);
        }
        other => panic!("{other:?}"),
    }
    server.stop();
}

#[test]
fn a_close_that_comes_with_the_peers_fin_is_still_answered() {
    // What Chromium does when a tab goes away: Close 1001, then FIN at once. RFC 6455
    // §5.5.1: a Close is answered; a half-closed TCP connection can still carry it.
    let server = start(ServerConfig::default());
    let mut tcp = raw_upgrade(server.addr, "/tab");
    assert_eq!(server.next_seen(), Seen::Open("/tab".into()));
    let key = [1, 2, 3, 4];
    let payload = 1001u16.to_be_bytes();
    tcp.write_all(&[
        0x88,
        0x82,
        1,
        2,
        3,
        4,
        payload[0] ^ key[0],
        payload[1] ^ key[1],
    ])
    .unwrap();
    tcp.shutdown(std::net::Shutdown::Write).unwrap();
    let mut got = Vec::new();
    tcp.read_to_end(&mut got).unwrap();
    let frames = &got[got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4..];
    assert_eq!(frames, [0x88, 0x02, 0x03, 0xe9]);
    match server.next_seen() {
        Seen::Close(_, info) => assert_eq!((info.code.0, info.clean), (1001, true)),
        other => panic!("{other:?}"),
    }
    server.stop();
}

#[test]
fn the_handler_sends_to_other_connections() {
    let server = start(ServerConfig::default());
    let mut a = connect(&server.url("/a"));
    let mut b = connect(&server.url("/b"));
    let mut c = connect(&server.url("/c"));
    for _ in 0..3 {
        assert!(matches!(server.next_seen(), Seen::Open(_)));
    }
    a.send_text("broadcast:hi all").unwrap();
    assert_eq!(b.read().unwrap(), Event::Text("hi all".into()));
    assert_eq!(c.read().unwrap(), Event::Text("hi all".into()));
    // Not to the sender: its next message is the echo of what it sends next.
    a.send_text("me").unwrap();
    assert_eq!(a.read().unwrap(), Event::Text("me".into()));
    server.stop();
}

#[test]
fn plain_http_on_the_same_port() {
    let server = start(ServerConfig::default());
    let health = http_get(server.addr, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(health.starts_with("HTTP/1.1 200 OK\r\n"), "{health}");
    assert!(health.ends_with("\r\n\r\nok\n"), "{health}");
    let page = http_get(server.addr, "GET /page HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(page.starts_with("HTTP/1.1 200 OK\r\n") && page.ends_with("<h1>rooms</h1>"));
    let missing = http_get(server.addr, "GET /missing HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(missing.starts_with("HTTP/1.1 404 "), "{missing}");
    // What the handler does not serve is a WebSocket endpoint: a plain GET there is
    // told to upgrade (RFC 9110 §15.5.22), other methods that it takes GET.
    let plain = http_get(server.addr, "GET /chat HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(
        plain.starts_with("HTTP/1.1 426 Upgrade Required\r\n"),
        "{plain}"
    );
    assert!(plain.contains("\r\nUpgrade: websocket\r\n"), "{plain}");
    assert!(plain.contains("\r\nConnection: Upgrade\r\n"), "{plain}");
    let post = http_get(server.addr, "POST /chat HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(post.starts_with("HTTP/1.1 405 "), "{post}");
    assert!(post.contains("\r\nAllow: GET\r\n"), "{post}");
    // Asking for the upgrade but getting it wrong stays a 400 (RFC 6455 §4.2.1).
    let no_key = http_get(
        server.addr,
        "GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n",
    );
    assert!(no_key.starts_with("HTTP/1.1 400 "), "{no_key}");
    let malformed = http_get(server.addr, "BLAH\r\n\r\n");
    assert!(malformed.starts_with("HTTP/1.1 400 "), "{malformed}");
    // A broken upgrade gets the handshake's status, not 404.
    let old_version = http_get(
        server.addr,
        "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n",
    );
    assert!(old_version.starts_with("HTTP/1.1 426 "), "{old_version}");
    server.stop();
}

#[test]
fn upgrades_are_refused_by_the_handler_and_over_the_connection_limit() {
    let server = start(ServerConfig {
        max_connections: 1,
        ..ServerConfig::default()
    });
    match blocking::connect(&server.url("/forbidden")) {
        Err(Error::Response(e)) => assert!(e.to_string().contains("403"), "{e}"),
        other => panic!("{other:?}"),
    }
    // A refusal with its reason and headers, its framing the server's.
    let mut tcp = TcpStream::connect(server.addr).unwrap();
    tcp.write_all(
        b"GET /ticket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 401 "), "{head}");
    assert!(head.contains("\r\nWWW-Authenticate: Ticket"), "{head}");
    assert_eq!(head.matches("Content-Length").count(), 1, "{head}");
    assert!(head.contains("\r\nConnection: close"), "{head}");
    assert!(
        !head.contains("keep-alive") && !head.contains("X-Injected"),
        "{head}"
    );
    assert_eq!(body, "no ticket  X-Injected: 1\n", "one line");
    let mut first = connect(&server.url("/one"));
    assert_eq!(server.next_seen(), Seen::Open("/one".into()));
    match blocking::connect(&server.url("/two")) {
        Err(Error::Response(e)) => assert!(e.to_string().contains("503"), "{e}"),
        other => panic!("{other:?}"),
    }
    first.send_text("still served").unwrap();
    assert_eq!(first.read().unwrap(), Event::Text("still served".into()));
    server.stop();
}

#[test]
fn a_subprotocol_is_chosen_by_the_handler() {
    let server = start(ServerConfig::default());
    let ws = blocking::connect_with(&server.url("/"), rfc6455::Config::default(), &["x", "chat"])
        .unwrap();
    assert_eq!(ws.protocol(), Some("chat"));
    server.stop();
}

#[test]
fn a_client_that_never_finishes_its_head_is_dropped() {
    let server = start(ServerConfig {
        handshake_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    });
    let mut slow = TcpStream::connect(server.addr).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
    let mut rest = Vec::new();
    // The server closes the connection without an answer.
    let _ = slow.read_to_end(&mut rest);
    assert!(rest.is_empty());
    server.stop();
}

#[test]
fn a_peer_that_stops_answering_pings_is_closed() {
    let server = start(ServerConfig {
        ping_interval: Some(Duration::from_millis(100)),
        ping_timeout: Duration::from_millis(200),
        close_timeout: Duration::from_millis(200),
        ..ServerConfig::default()
    });
    // A raw client: completes the handshake, then never sends a byte (no pongs).
    let mut raw = raw_upgrade(server.addr, "/silent");
    let mut received = Vec::new();
    let _ = raw.read_to_end(&mut received);
    let after_head = received.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let frames = &received[after_head..];
    // A ping (0x89 0x00), then a Close with 1008.
    assert_eq!(frames[..2], [0x89, 0x00], "{frames:02x?}");
    let close = frames.windows(2).position(|w| w[0] == 0x88).unwrap();
    assert_eq!(frames[close + 2..close + 4], 1008u16.to_be_bytes());
    assert_eq!(server.next_seen(), Seen::Open("/silent".into()));
    assert!(matches!(server.next_seen(), Seen::Close(_, info) if !info.clean));

    // A client that answers pings (the blocking client does, automatically) stays.
    let mut alive = connect(&server.url("/alive"));
    for _ in 0..3 {
        thread::sleep(Duration::from_millis(150));
        alive.send_text("tick").unwrap();
        loop {
            match alive.read().unwrap() {
                Event::Text(t) => {
                    assert_eq!(t, "tick");
                    break;
                }
                Event::Ping(_) => {}
                other => panic!("{other:?}"),
            }
        }
    }
    server.stop();
}

#[test]
fn a_slow_consumer_is_closed_and_others_are_not_slowed() {
    let server = start(ServerConfig {
        max_queued_output: 256 * 1024,
        ..ServerConfig::default()
    });
    let mut slow = connect(&server.url("/slow"));
    let mut fast = connect(&server.url("/fast"));
    // 64 MiB asked for, at most 256 KiB queued: the server closes with 1008.
    slow.send_text("flood:1024").unwrap();
    fast.send_text("ping me").unwrap();
    assert_eq!(fast.read().unwrap(), Event::Text("ping me".into()));
    let mut received = 0;
    let code = loop {
        match slow.read() {
            Ok(Event::Binary(data)) => received += data.len(),
            Ok(Event::Close(frame)) => break frame.unwrap().code.0,
            Ok(_) => {}
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(code, 1008);
    assert!(received < 64 << 20, "received {received}");
    server.stop();
}

/// CPU time (user + system, in clock ticks) of this process's thread named `name`.
fn thread_cpu_ticks(name: &str) -> u64 {
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let dir = task.unwrap().path();
        if std::fs::read_to_string(dir.join("comm")).unwrap().trim() != name {
            continue;
        }
        let stat = std::fs::read_to_string(dir.join("stat")).unwrap();
        // Fields after the command name (which ends at the last ')'): state is field 3,
        // utime and stime are fields 14 and 15.
        let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
        return fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    }
    panic!("no thread named {name}");
}

#[test]
fn a_busy_polling_loop_echoes_and_sleeps_once_traffic_stops() {
    let config = ServerConfig {
        busy_poll: Some(Duration::from_millis(2)),
        shutdown_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    };
    let server = Server::bind("127.0.0.1:0".parse().unwrap(), config).unwrap();
    let addr = server.local_addr().unwrap();
    let handle = server.handle();
    let (tx, _seen) = mpsc::channel();
    let thread = thread::Builder::new()
        .name("busy-poll-loop".into())
        .spawn(move || server.run(TestHandler { seen: tx }).unwrap())
        .unwrap();
    let mut ws = connect(&format!("ws://{addr}/spin"));
    for i in 0..200 {
        ws.send_text(&format!("m{i}")).unwrap();
        assert_eq!(ws.read().unwrap(), Event::Text(format!("m{i}")));
    }
    // Idle: a loop that kept spinning would use the whole second (100 ticks).
    thread::sleep(Duration::from_millis(100));
    let before = thread_cpu_ticks("busy-poll-loop");
    thread::sleep(Duration::from_secs(1));
    let spent = thread_cpu_ticks("busy-poll-loop") - before;
    assert!(spent < 20, "the idle loop used {spent} ticks of CPU in 1 s");
    handle.shutdown();
    thread.join().unwrap();
}

/// 4 KiB that say which message they are, in every byte.
fn numbered(i: u32) -> Vec<u8> {
    (0..4096u32)
        .map(|j| (i.wrapping_mul(31) ^ j) as u8)
        .collect()
}

#[test]
fn shared_and_own_frames_written_together_arrive_whole_and_in_order() {
    // 1,500 shared frames of 4 KiB and 1,500 own frames between them: more than the
    // socket takes at once, so the gathered writes stop part-way through frames.
    let server = start(ServerConfig {
        max_queued_output: 64 << 20,
        ..ServerConfig::default()
    });
    let mut member = connect(&server.url("/member"));
    let mut sender = connect(&server.url("/sender"));
    assert!(matches!(server.next_seen(), Seen::Open(_)));
    assert!(matches!(server.next_seen(), Seen::Open(_)));
    sender.send_text("mixed:3000").unwrap();
    thread::sleep(Duration::from_millis(200)); // let the server fill the socket
    for i in 0..3000u32 {
        let expected = if i % 2 == 0 {
            Event::Binary(numbered(i))
        } else {
            Event::Text(format!("direct {i}"))
        };
        assert_eq!(member.read().unwrap(), expected, "message {i}");
    }
    server.stop();
}

#[test]
fn a_slow_consumer_can_lose_messages_instead() {
    let server = start(ServerConfig {
        max_queued_output: 256 * 1024,
        slow_consumer: SlowConsumer::DropMessages,
        ..ServerConfig::default()
    });
    let mut slow = connect(&server.url("/slow"));
    slow.send_text("flood:1024").unwrap();
    slow.send_text("after").unwrap();
    let mut binary = 0;
    loop {
        match slow.read().unwrap() {
            Event::Binary(_) => binary += 1,
            Event::Text(t) => {
                assert_eq!(t, "after");
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(binary < 1024, "nothing was dropped");
    server.stop();
}

#[test]
fn the_message_rate_is_limited() {
    let server = start(ServerConfig {
        max_messages_per_second: Some(5),
        ..ServerConfig::default()
    });
    let mut ws = connect(&server.url("/chatty"));
    for i in 0..20 {
        if ws.send_text(&format!("{i}")).is_err() {
            break;
        }
    }
    assert_eq!(close_code(&mut ws), 1008);
    server.stop();
}

#[test]
fn an_oversized_message_gets_1009() {
    let server = start(ServerConfig {
        connection: rfc6455::Config {
            max_message_size: 1000,
            ..rfc6455::Config::default()
        },
        ..ServerConfig::default()
    });
    let mut ws = connect(&server.url("/big"));
    ws.send_binary(&[0; 1001]).unwrap();
    assert_eq!(close_code(&mut ws), 1009);
    server.stop();
}

#[test]
fn graceful_shutdown_closes_every_connection_with_1001() {
    let server = start(ServerConfig::default());
    let mut a = connect(&server.url("/a"));
    let mut b = connect(&server.url("/b"));
    assert!(matches!(server.next_seen(), Seen::Open(_)));
    assert!(matches!(server.next_seen(), Seen::Open(_)));
    let addr = server.addr;
    server.handle.shutdown();
    assert_eq!(close_code(&mut a), 1001);
    assert_eq!(close_code(&mut b), 1001);
    // The blocking client answered both Close frames: the server is done.
    drop((a, b));
    let Running { thread, .. } = server;
    thread.unwrap().join().unwrap();
    // And no longer listens.
    assert!(TcpStream::connect(addr).is_err());
}

#[test]
fn many_concurrent_connections_echo_correctly() {
    let server = start(ServerConfig::default());
    let url = server.url("/many");
    let clients: Vec<_> = (0..100)
        .map(|i| {
            let url = url.clone();
            thread::spawn(move || {
                let mut ws = connect(&url);
                for j in 0..20 {
                    let text = format!("client {i} message {j} {}", "x".repeat(j * 100));
                    ws.send_text(&text).unwrap();
                    assert_eq!(ws.read().unwrap(), Event::Text(text));
                }
                ws.close(CloseCode::NORMAL, "").unwrap();
                assert_eq!(close_code(&mut ws), 1000);
            })
        })
        .collect();
    for client in clients {
        client.join().unwrap();
    }
    server.stop();
}

/// A client that offers permessage-deflate and records frames (to see RSV1).
fn connect_deflate(url: &str) -> blocking::WebSocket<ClientStream> {
    connect_offering(url, DeflateConfig::default())
}

fn connect_offering(url: &str, deflate: DeflateConfig) -> blocking::WebSocket<ClientStream> {
    let config = rfc6455::Config {
        deflate: Some(deflate),
        trace: true,
        ..rfc6455::Config::default()
    };
    let ws = blocking::connect_with(url, config, &[]).unwrap();
    ws.get_ref()
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    ws
}

/// Whether the last data frame `ws` received had RSV1 (compressed) set.
fn last_received_compressed(ws: &mut blocking::WebSocket<ClientStream>) -> bool {
    ws.take_trace()
        .iter()
        .rfind(|f| !f.outgoing && !f.header.opcode.is_control())
        .expect("a data frame was received")
        .header
        .rsv
        == 0b100
}

#[test]
fn a_broadcast_is_compressed_once_for_every_deflate_member() {
    let server = start(ServerConfig::default());
    let mut sender = connect(&server.url("/s"));
    let mut a = connect_deflate(&server.url("/a"));
    let mut b = connect_deflate(&server.url("/b"));
    let mut plain = connect(&server.url("/p"));
    for _ in 0..4 {
        assert!(matches!(server.next_seen(), Seen::Open(_)));
    }
    let text = "a message that compresses, a message that compresses, a message that compresses";
    sender.send_text(&format!("share:{text}")).unwrap();
    let compressed = match server.next_seen() {
        Seen::Shared(size) => size.expect("compressed for the deflate members"),
        other => panic!("{other:?}"),
    };
    assert!(compressed < 2 + text.len(), "{compressed}");
    for ws in [&mut a, &mut b] {
        assert_eq!(ws.read().unwrap(), Event::Text(text.into()));
        assert!(last_received_compressed(ws));
    }
    assert_eq!(plain.read().unwrap(), Event::Text(text.into()));
    // Direct sends are compressed too (the echo), and small ones are not.
    a.send_text(text).unwrap();
    assert_eq!(a.read().unwrap(), Event::Text(text.into()));
    assert!(last_received_compressed(&mut a));
    a.send_text("short").unwrap();
    assert_eq!(a.read().unwrap(), Event::Text("short".into()));
    assert!(!last_received_compressed(&mut a));
    server.stop();
}

#[test]
fn with_context_takeover_each_connection_compresses_for_itself() {
    let server = start(ServerConfig {
        connection: rfc6455::Config {
            deflate: Some(DeflateConfig {
                no_context_takeover: false,
                request_no_context_takeover: false,
                ..DeflateConfig::default()
            }),
            ..rfc6455::Config::default()
        },
        ..ServerConfig::default()
    });
    let mut sender = connect(&server.url("/s"));
    // As browsers offer: nothing asked of the server.
    let takeover = DeflateConfig {
        no_context_takeover: false,
        request_no_context_takeover: false,
        ..DeflateConfig::default()
    };
    let mut a = connect_offering(&server.url("/a"), takeover);
    for _ in 0..2 {
        assert!(matches!(server.next_seen(), Seen::Open(_)));
    }
    let text = "context taken over, context taken over, context taken over, context taken over";
    for _ in 0..3 {
        sender.send_text(&format!("share:{text}")).unwrap();
        // Not compressed once for all: this connection's own compressor did it.
        assert!(matches!(server.next_seen(), Seen::Shared(None)));
        assert_eq!(a.read().unwrap(), Event::Text(text.into()));
        assert!(last_received_compressed(&mut a));
    }
    server.stop();
}

/// A drain: `/healthz` 503 and newcomers refused at once; the open connections
/// closed with 1012 one by one, spread over the period (not all in one moment); then
/// the server's run returns.
#[test]
fn a_drain_spreads_its_closes_over_the_period_and_refuses_newcomers() {
    let server = start(ServerConfig::default());
    let mut clients: Vec<_> = (0..10)
        .map(|i| connect(&server.url(&format!("/c{i}"))))
        .collect();
    for _ in 0..10 {
        assert!(matches!(server.next_seen(), Seen::Open(_)));
    }
    let over = Duration::from_millis(1500);
    let started = std::time::Instant::now();
    server.handle.drain(over);
    let health = http_get(server.addr, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(health.starts_with("HTTP/1.1 503 "), "{health}");
    assert!(health.contains("draining"), "{health}");
    let mut late = raw_upgrade(server.addr, "/late");
    let mut refusal = String::new();
    let _ = late.read_to_string(&mut refusal);
    assert!(refusal.starts_with("HTTP/1.1 503 "), "{refusal}");
    // Each client reads its Close (answering it): when it came.
    let (tx, rx) = mpsc::channel();
    for mut ws in clients.drain(..) {
        let tx = tx.clone();
        thread::spawn(move || {
            let code = close_code(&mut ws);
            let _ = tx.send((code, started.elapsed()));
        });
    }
    drop(tx);
    let mut closes: Vec<(u16, Duration)> = rx.iter().collect();
    closes.sort_by_key(|(_, at)| *at);
    assert_eq!(closes.len(), 10);
    assert!(closes.iter().all(|(code, _)| *code == 1012), "{closes:?}");
    let (first, last) = (closes[0].1, closes[9].1);
    // The i-th of 10 goes at i/10 of the period: the first at once, the last at 0.9.
    assert!(first < over / 4, "the first at once: {closes:?}");
    assert!(
        last - first >= over / 2,
        "spread, not all at once: {closes:?}"
    );
    assert!(
        last < over + Duration::from_secs(1),
        "within the period: {closes:?}"
    );
    let mut thread = server;
    thread.thread.take().unwrap().join().unwrap();
}

/// A drain ends as soon as nobody is left, not at the end of its period: here one
/// client is drained at once and the other leaves by itself.
#[test]
fn a_drain_ends_once_nobody_is_left() {
    let mut server = start(ServerConfig::default());
    let mut first = connect(&server.url("/first"));
    let second = connect(&server.url("/second"));
    for _ in 0..2 {
        assert!(matches!(server.next_seen(), Seen::Open(_)));
    }
    server.handle.drain(Duration::from_secs(60));
    drop(second);
    assert_eq!(close_code(&mut first), 1012);
    drop(first);
    let started = std::time::Instant::now();
    server.thread.take().unwrap().join().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "run returned after {:?}, not at the end of the 60 s period",
        started.elapsed()
    );
}

/// Stalls its loop on "stall" until the test says go (and tells it the loop is
/// stalled); tells the test each connection's id as it opens.
struct Staller {
    opened: mpsc::Sender<ConnId>,
    stalled: mpsc::Sender<()>,
    go: mpsc::Receiver<()>,
}

impl Handler for Staller {
    type Data = ();

    fn upgrade(&mut self, _request: &Request) -> Result<Accept<()>, Refusal> {
        Ok(Accept {
            protocol: None,
            data: (),
        })
    }

    fn open(&mut self, _ctx: &mut Ctx<'_, ()>, id: ConnId) {
        let _ = self.opened.send(id);
    }

    fn message(&mut self, _ctx: &mut Ctx<'_, ()>, _id: ConnId, message: Received<'_>) {
        if matches!(message, Received::Text("stall")) {
            let _ = self.stalled.send(());
            let _ = self.go.recv_timeout(Duration::from_secs(10));
        }
    }
}

/// A loop that falls behind has a full mailbox, and a send to one of its connections
/// from another thread is refused. That connection must not just miss the message
/// and go on as if nothing happened (a chat member would never know): its loop
/// closes it with 1013 "try again later" once it turns again, after what was taken,
/// so the client reconnects and catches up. Connections whose sends were all taken
/// get them all and stay open.
#[test]
fn a_send_refused_by_a_stalled_loop_closes_its_connection_with_1013() {
    let config = ServerConfig {
        // The mailbox holds 16 times this: about 65 of the sends below.
        max_queued_output: 4096,
        shutdown_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    };
    let server = Server::bind("127.0.0.1:0".parse().unwrap(), config).unwrap();
    let addr = server.local_addr().unwrap();
    let handle = server.handle();
    let (opened_tx, opened) = mpsc::channel();
    let (go, go_rx) = mpsc::channel();
    let (stalled_tx, stalled) = mpsc::channel();
    let thread = thread::spawn(move || {
        server
            .run(Staller {
                opened: opened_tx,
                stalled: stalled_tx,
                go: go_rx,
            })
            .unwrap()
    });
    let mut clients: Vec<_> = (0..20)
        .map(|_| {
            let ws = connect(&format!("ws://{addr}/"));
            let id = opened.recv_timeout(Duration::from_secs(10)).unwrap();
            (ws, id)
        })
        .collect();
    clients[0].0.send_text("stall").unwrap();
    stalled.recv_timeout(Duration::from_secs(10)).unwrap();
    // 900 bytes each, at most 4 taken per connection: each stays under its own
    // 4 KiB. Three rounds over all 20 fit in the mailbox; five more rounds over the
    // last 10 do not.
    let text = "x".repeat(900);
    let mut taken = vec![0; clients.len()];
    let mut refused = vec![0; clients.len()];
    let rounds = (0..3).map(|_| 0..20).chain((0..5).map(|_| 10..20));
    for i in rounds.flatten() {
        match handle.send_text(clients[i].1, &text) {
            true => taken[i] += 1,
            false => refused[i] += 1,
        }
    }
    assert!(refused[..10].iter().all(|r| *r == 0), "{refused:?}");
    assert!(taken.iter().sum::<usize>() > 0, "the mailbox took some");
    assert!(
        refused.iter().sum::<usize>() > 0,
        "and refused some: {taken:?}"
    );
    go.send(()).unwrap();
    for (i, (ws, _)) in clients.iter_mut().enumerate() {
        for _ in 0..taken[i] {
            assert!(matches!(ws.read().unwrap(), Event::Text(t) if t.len() == 900));
        }
        if refused[i] > 0 {
            assert_eq!(close_code(ws), 1013, "connection {i}");
        }
    }
    // One whose sends were all taken is still open: it answers a ping.
    let ws = &mut clients[0].0;
    ws.send_ping(b"still here").unwrap();
    loop {
        match ws.read().unwrap() {
            Event::Pong(payload) => {
                assert_eq!(&payload[..], b"still here");
                break;
            }
            Event::Close(frame) => panic!("closed: {frame:?}"),
            _ => {}
        }
    }
    handle.shutdown();
    thread.join().unwrap();
}
