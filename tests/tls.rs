//! TLS (`wss://`, HTTPS) through rustls: the blocking client against the event-loop
//! server and the blocking server, the hostile inputs of `e2e.rs` sent inside TLS, and
//! what goes wrong at the TLS layer itself (plain HTTP or garbage to the TLS port, a
//! handshake that stops half-way, an untrusted or misnamed certificate) while the
//! server keeps serving the others. Certificates: `support/tls.rs` (rcgen).
#![cfg(all(feature = "server", feature = "tls"))]

use rfc6455::blocking::{self, ClientStream, Error, WebSocket};
use rfc6455::handshake::server::Request;
use rfc6455::server::{Accept, ConnId, Ctx, Handler, Message, Server, ServerConfig, SharedFrame};
use rfc6455::tls::rustls;
use rfc6455::{CloseCode, Config, Event};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

mod support;

use support::tls::{pki, raw_tls};

/// Echoes; "all:X" sends X to every connection as one shared frame; "flood:N" sends N
/// binary messages of 64 KiB back.
struct Echo;

impl Handler for Echo {
    type Data = ();

    fn upgrade(&mut self, _request: &Request) -> Result<Accept<()>, u16> {
        Ok(Accept::new(()))
    }

    fn message(&mut self, ctx: &mut Ctx<'_, ()>, id: ConnId, message: Message) {
        if let Message::Text(text) = &message {
            if let Some(rest) = text.strip_prefix("all:") {
                let frame = SharedFrame::text(rest);
                for other in ctx.connections() {
                    ctx.send_shared(other, &frame);
                }
                return;
            }
            if let Some(n) = text.strip_prefix("flood:") {
                let chunk = vec![7u8; 64 * 1024];
                for _ in 0..n.parse::<usize>().unwrap() {
                    ctx.send_binary(id, &chunk);
                }
                return;
            }
        }
        ctx.send(id, &message);
    }
}

/// The event-loop server over TLS, on its own thread; shut down on drop.
struct TlsServer {
    addr: SocketAddr,
    handle: rfc6455::server::Handle,
    thread: Option<thread::JoinHandle<()>>,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        self.handle.shutdown();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn start(config: ServerConfig) -> TlsServer {
    start_with(ServerConfig {
        tls: Some(support::tls::server_config()),
        ..config
    })
}

/// The same server without TLS.
fn start_plain() -> TlsServer {
    start_with(ServerConfig::default())
}

fn start_with(config: ServerConfig) -> TlsServer {
    let config = ServerConfig {
        shutdown_timeout: Duration::from_millis(300),
        ..config
    };
    let server = Server::bind("127.0.0.1:0".parse().unwrap(), config).unwrap();
    let addr = server.local_addr().unwrap();
    let handle = server.handle();
    let thread = Some(thread::spawn(move || server.run(Echo).unwrap()));
    TlsServer {
        addr,
        handle,
        thread,
    }
}

fn connect(url: &str) -> WebSocket<ClientStream> {
    let ws = blocking::connect_tls(url, support::tls::client_config()).unwrap();
    ws.get_ref()
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    ws
}

/// Reads events until the peer's Close; returns its code.
fn close_code(ws: &mut WebSocket<ClientStream>) -> u16 {
    loop {
        match ws.read() {
            Ok(Event::Close(frame)) => return frame.map_or(1005, |f| f.code.0),
            Ok(_) => {}
            Err(e) => panic!("no Close frame: {e}"),
        }
    }
}

/// Messages both ways, a ping, a close code: what every TLS test client does.
fn converse(ws: &mut WebSocket<ClientStream>) {
    ws.send_text("hello over TLS").unwrap();
    assert_eq!(ws.read().unwrap(), Event::Text("hello over TLS".into()));
    // Larger than rustls' 64 KiB buffer limit and than one TLS record (16 KiB): the
    // writes go out in parts.
    let big: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    ws.send_binary(&big).unwrap();
    assert_eq!(ws.read().unwrap(), Event::Binary(big));
    // Back to back, so that records end one message and begin the next (the server
    // takes decrypted bytes straight into the message being assembled).
    let text = "é-".repeat(40_000);
    let bytes: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    ws.send_text(&text).unwrap();
    ws.send_binary(&bytes).unwrap();
    assert_eq!(ws.read().unwrap(), Event::Text(text));
    assert_eq!(ws.read().unwrap(), Event::Binary(bytes));
    ws.send_ping(b"tls?").unwrap();
    assert_eq!(ws.read().unwrap(), Event::Pong(b"tls?".to_vec()));
    ws.close(CloseCode(4001), "done").unwrap();
    assert_eq!(close_code(ws), 4001);
    assert!(matches!(ws.read(), Err(Error::Closed)));
}

#[test]
fn the_blocking_client_and_the_event_loop_server_over_tls() {
    let server = start(ServerConfig::default());
    let port = server.addr.port();
    // By name and by address: the certificate names both.
    for url in [
        format!("wss://localhost:{port}/"),
        format!("wss://127.0.0.1:{port}/chat?x=1"),
    ] {
        let mut ws = connect(&url);
        let session = ws.get_ref().tls().expect("a TLS session");
        assert_eq!(session.alpn_protocol(), Some(&b"http/1.1"[..]));
        let described = rfc6455::tls::describe(session, None).unwrap();
        assert!(described.starts_with("TLSv1_3 TLS13_"), "{described}");
        converse(&mut ws);
    }

    // Shared frames (one buffer for all) and a flood of output (backpressure through
    // the TLS layer) reach every connection intact.
    let mut a = connect(&format!("wss://localhost:{port}/"));
    let mut b = connect(&format!("wss://localhost:{port}/"));
    a.send_text("flood:40").unwrap();
    b.send_text("all:to everyone").unwrap();
    assert_eq!(b.read().unwrap(), Event::Text("to everyone".into()));
    let mut floods = 0;
    let mut shared = 0;
    while floods < 40 || shared < 1 {
        match a.read().unwrap() {
            Event::Binary(data) => {
                assert_eq!(data, vec![7u8; 64 * 1024]);
                floods += 1;
            }
            Event::Text(text) => {
                assert_eq!(text, "to everyone");
                shared += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    converse(&mut a);
    converse(&mut b);
}

#[test]
fn the_blocking_server_over_tls() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = thread::spawn(move || {
        let tls = support::tls::server_config();
        let (tcp, _) = listener.accept().unwrap();
        let mut ws = blocking::accept_tls(tcp, tls, Config::default(), |_| Ok(None)).unwrap();
        loop {
            match ws.read() {
                Ok(Event::Text(text)) => ws.send_text(&text).unwrap(),
                Ok(Event::Binary(data)) => ws.send_binary(&data).unwrap(),
                Ok(_) => {}
                Err(Error::Closed) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    });
    let mut ws = connect(&format!("wss://localhost:{port}/"));
    converse(&mut ws);
    drop(ws);
    server.join().unwrap().unwrap();
}

/// A raw TLS peer: sends a valid upgrade request inside TLS and returns the stream
/// after the 101.
fn raw_upgrade(addr: SocketAddr) -> support::tls::RawTls {
    let mut stream = raw_tls(&addr.to_string());
    stream
        .write_all(
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        .unwrap();
    stream.flush().unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101 "), "{head:?}");
    stream
}

/// Everything a raw TLS stream reads until the server ends it, and whether it ended
/// TLS properly (close_notify: rustls reads `Ok(0)`) rather than with a bare TCP FIN.
fn read_to_end(stream: &mut support::tls::RawTls) -> (Vec<u8>, bool) {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return (bytes, true),
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return (bytes, false),
            Err(e) => panic!("read failed after {} bytes: {e}", bytes.len()),
        }
    }
}

#[test]
fn protocol_violations_inside_tls_get_their_close_codes_and_bad_heads_their_status() {
    let server = start(ServerConfig::default());
    for (bytes, code) in support::hostile::frame_violations() {
        let mut stream = raw_upgrade(server.addr);
        stream.write_all(bytes).unwrap();
        stream.flush().unwrap();
        let (reply, close_notify) = read_to_end(&mut stream);
        assert_eq!(
            reply[0], 0x88,
            "a Close frame for {bytes:02x?}: {reply:02x?}"
        );
        assert_eq!(
            u16::from_be_bytes([reply[2], reply[3]]),
            code,
            "{bytes:02x?}"
        );
        // The server ended TLS properly: close_notify, not just a TCP FIN.
        assert!(close_notify, "{bytes:02x?}");
    }
    // The event loop answers bad heads in its own way (it serves plain HTTP on the same
    // port, so a POST is a request like any other): inside TLS it must answer exactly
    // what it answers over plain TCP.
    let plain = start_plain();
    for (request, _) in support::hostile::malformed_handshakes() {
        let mut stream = raw_tls(&server.addr.to_string());
        // The server may answer and close before reading all of an oversized head.
        let _ = stream
            .write_all(request.as_bytes())
            .and_then(|_| stream.flush());
        let over_tls = String::from_utf8_lossy(&read_to_end(&mut stream).0).into_owned();
        let mut tcp = TcpStream::connect(plain.addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = tcp.write_all(request.as_bytes());
        let mut over_tcp = Vec::new();
        let _ = tcp.read_to_end(&mut over_tcp);
        let over_tcp = String::from_utf8_lossy(&over_tcp);
        let status = |r: &str| r.lines().next().unwrap_or("").to_string();
        assert_eq!(status(&over_tls), status(&over_tcp), "{request:.60}");
        assert!(
            over_tls.starts_with("HTTP/1.1 4") || over_tls.starts_with("HTTP/1.1 5"),
            "{request:.60}: {over_tls}"
        );
    }
    let mut ws = connect(&format!("wss://localhost:{}/", server.addr.port()));
    converse(&mut ws);
}

/// Everything a plain TCP peer reads until the server closes (a reset counts as the
/// end too); panics if the server keeps it open for the 10 s read timeout.
fn tcp_read_all(tcp: &mut TcpStream) -> Vec<u8> {
    let mut bytes = Vec::new();
    match tcp.read_to_end(&mut bytes) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("the server did not end the connection: {e}"),
    }
    bytes
}

/// A ClientHello of an SSL 3.0 client (version 0x0300, one TLS 1.2 cipher suite, no
/// extensions): a version rustls does not speak.
fn ssl3_client_hello() -> Vec<u8> {
    let mut body = vec![0x03, 0x00];
    body.extend_from_slice(&[0x42; 32]); // random
    body.push(0); // no session id
    body.extend_from_slice(&[0x00, 0x02, 0xc0, 0x2f]); // one cipher suite
    body.extend_from_slice(&[0x01, 0x00]); // compression: null
    let mut handshake = vec![0x01, 0, 0, body.len() as u8];
    handshake.extend_from_slice(&body);
    let mut record = vec![0x16, 0x03, 0x00, 0, handshake.len() as u8];
    record.extend_from_slice(&handshake);
    record
}

/// `rfc6455 ARGS --tls-cert … --tls-key …` with the test certificate.
fn binary_over_tls(args: &[&str]) -> support::ServerProcess {
    let pki = pki();
    let mut args = args.to_vec();
    args.extend([
        "--tls-cert",
        pki.cert.to_str().unwrap(),
        "--tls-key",
        pki.key.to_str().unwrap(),
    ]);
    support::ServerProcess::start(env!("CARGO_BIN_EXE_rfc6455"), &args)
}

#[test]
fn tls_failures_cost_one_log_line_each_and_the_other_clients_are_served() {
    let pki = pki();
    let mut server = binary_over_tls(&["echo", "--threads", "1", "--trace"]);
    let addr = server.addr.clone();
    let port = addr.rsplit(':').next().unwrap().to_string();
    let mut alice = connect(&format!("wss://localhost:{port}/"));
    alice.send_text("before").unwrap();
    assert_eq!(alice.read().unwrap(), Event::Text("before".into()));

    // Plain HTTP to the TLS port: a clear answer, in clear text.
    let mut tcp = TcpStream::connect(&addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let answer = String::from_utf8(tcp_read_all(&mut tcp)).unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{answer}"
    );
    assert!(
        answer.ends_with("\r\n\r\nThis port speaks TLS: use https:// or wss:// here.\n"),
        "{answer}"
    );

    // A handshake record of garbage, bytes that are no TLS record at all, and a client
    // of a version rustls does not speak: each gets the end of its connection, with a
    // TLS alert (content type 21) when rustls has one to send, and nothing else.
    for bytes in [
        b"\x16\x03\x01\x00\x05hello".to_vec(),
        vec![0x00, 0x01, 0x02, 0x03, 0xff, 0xfe, 0xfd, 0xfc],
        ssl3_client_hello(),
    ] {
        let mut tcp = TcpStream::connect(&addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        tcp.write_all(&bytes).unwrap();
        let reply = tcp_read_all(&mut tcp);
        assert!(
            reply.is_empty() || reply[0] == 21,
            "an alert or nothing for {bytes:02x?}: {reply:02x?}"
        );
    }

    // A client that does not trust the server's CA refuses, naming the cause.
    let untrusting = rfc6455::tls::client_config_with_ca(&pki.other_ca).unwrap();
    match blocking::connect_tls(&format!("wss://localhost:{port}/"), untrusting) {
        Err(Error::Tls(e)) => assert!(e.to_string().contains("UnknownIssuer"), "{e}"),
        other => panic!("expected a TLS error, got {other:?}"),
    }

    // Alice never noticed.
    converse(&mut alice);
    drop(alice);
    std::thread::sleep(Duration::from_millis(200));
    let log = server.stop();
    let failures: Vec<&str> = log.lines().filter(|l| l.contains("TLS failed")).collect();
    // One line per failed connection: plain HTTP, three bad handshakes, and the alert
    // of the client that refused our certificate.
    assert_eq!(failures.len(), 5, "{failures:#?}");
    assert!(failures[0].contains("plain HTTP"), "{failures:#?}");
    assert!(
        failures[4].contains("alert"),
        "the refusing client's alert: {failures:#?}"
    );
    // --trace: the TLS session of each completed handshake, once (alice's).
    let sessions: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" TLS TLSv1_3 "))
        .collect();
    assert_eq!(sessions.len(), 1, "{log}");
    assert!(
        sessions[0].contains("alpn=http/1.1 sni=localhost"),
        "{sessions:?}"
    );
}

#[test]
fn a_client_that_stops_in_the_middle_of_the_tls_handshake_is_cut_at_the_handshake_timeout() {
    let server = start(ServerConfig {
        handshake_timeout: Duration::from_millis(500),
        ..ServerConfig::default()
    });
    // The first half of a real ClientHello, then nothing.
    let name = "localhost".try_into().unwrap();
    let mut session = rustls::ClientConnection::new(support::tls::client_config(), name).unwrap();
    let mut hello = Vec::new();
    session.write_tls(&mut hello).unwrap();
    let mut stalled = TcpStream::connect(server.addr).unwrap();
    stalled
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let started = Instant::now();
    stalled.write_all(&hello[..hello.len() / 2]).unwrap();

    // Meanwhile, others are served.
    let mut ws = connect(&format!("wss://localhost:{}/", server.addr.port()));
    converse(&mut ws);

    let reply = tcp_read_all(&mut stalled);
    let waited = started.elapsed();
    assert!(reply.is_empty(), "nothing but the end: {reply:02x?}");
    assert!(
        waited >= Duration::from_millis(400),
        "cut at the timeout, not before: {waited:?}"
    );
}

#[test]
fn a_certificate_for_another_name_is_refused_by_name() {
    let pki = pki();
    let other = rfc6455::tls::server_config(&pki.other_name_cert, &pki.other_name_key).unwrap();
    let server = start_with(ServerConfig {
        tls: Some(other),
        ..ServerConfig::default()
    });
    let url = format!("wss://localhost:{}/", server.addr.port());
    match blocking::connect_tls(&url, support::tls::client_config()) {
        Err(Error::Tls(e)) => assert!(
            e.to_string()
                .contains("not valid for name \"localhost\"; certificate is only valid for DnsName(\"example.test\")"),
            "{e}"
        ),
        other => panic!("expected a TLS error, got {other:?}"),
    }
}

/// Sends one HTTP request inside TLS and returns the whole response.
fn https_get(addr: &str, path: &str) -> String {
    let mut stream = raw_tls(addr);
    write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    stream.flush().unwrap();
    String::from_utf8(read_to_end(&mut stream).0).unwrap()
}

#[test]
fn serve_over_tls_sets_hsts_and_counts_tls_failures() {
    let server = binary_over_tls(&["serve"]);
    let page = https_get(&server.addr, "/");
    assert!(page.starts_with("HTTP/1.1 200 "), "{page:.200}");
    assert!(
        page.contains("\r\nStrict-Transport-Security: max-age=31536000\r\n"),
        "{page:.400}"
    );
    assert!(page.contains("<html"), "the chat page");
    let health = https_get(&server.addr, "/healthz");
    assert!(health.starts_with("HTTP/1.1 200 "), "{health}");

    let mut tcp = TcpStream::connect(&server.addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    tcp.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
    assert!(tcp_read_all(&mut tcp).starts_with(b"HTTP/1.1 400 "));
    let metrics = https_get(&server.addr, "/metrics");
    assert!(
        metrics.contains("\nrfc6455_tls_failures_total 1\n"),
        "{metrics}"
    );
}

#[test]
fn two_chromium_pages_chat_over_wss() {
    let chromium = support::browser::find().expect("chromium (tests/setup.sh installs it)");
    let server = binary_over_tls(&["serve"]);
    let mut watcher = support::chat::Client::hello_tls(&server.addr, "watcher");
    watcher.join("web", None);
    // The browser does not know the test CA: it is told to accept the certificate.
    // The page itself picks wss:// because it was loaded over https://.
    let page = |me: &str, other: &str| {
        let url = format!(
            "https://{}/?autotest={me}&room=web&say=hi-from-{me}&expect=hi-from-{other}",
            server.addr
        );
        support::browser::Page::open_with(
            &chromium,
            &format!("tls-{me}"),
            (800, 600),
            &url,
            &["--ignore-certificate-errors"],
        )
    };
    let _alice = page("alice", "bob");
    let _bob = page("bob", "alice");
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut said: Vec<(String, String)> = Vec::new();
    let saw = |said: &[(String, String)], who: &str, text: &str| {
        said.iter().any(|(f, t)| f == who && t == text)
    };
    while !(saw(&said, "alice", "saw:hi-from-bob") && saw(&said, "bob", "saw:hi-from-alice")) {
        assert!(
            Instant::now() < deadline,
            "the pages did not chat over wss://: {said:?}"
        );
        let m = watcher.recv();
        if m["type"] == "message" {
            let field = |k: &str| m[k].as_str().unwrap_or_default().to_string();
            said.push((field("from"), field("text")));
        }
    }
    // Both pages negotiated permessage-deflate inside TLS, as they do without it.
    for who in ["alice", "bob"] {
        assert!(
            said.iter()
                .any(|(f, t)| f == who && t.starts_with("extensions:permessage-deflate")),
            "{who}: {said:?}"
        );
    }
}

#[test]
fn connect_verifies_wss_against_the_platform_roots() {
    // The test CA is in no platform store: `connect` (no CA given) must refuse it.
    let server = start(ServerConfig::default());
    let url = format!("wss://localhost:{}/", server.addr.port());
    match blocking::connect(&url) {
        Err(Error::Tls(e)) => assert!(e.to_string().contains("UnknownIssuer"), "{e}"),
        other => panic!("expected the platform roots to refuse the test CA: {other:?}"),
    }
    // The same server, trusted through the CA: served.
    let mut ws = connect(&url);
    ws.send_text("trusted").unwrap();
    assert_eq!(ws.read().unwrap(), Event::Text("trusted".into()));
}
