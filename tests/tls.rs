//! TLS (`wss://`, HTTPS) through rustls: the blocking client against the event-loop
//! server and the blocking server, the hostile inputs of `e2e.rs` sent inside TLS, and
//! what goes wrong at the TLS layer itself (plain HTTP or garbage to the TLS port, a
//! handshake that stops half-way, an untrusted or misnamed certificate) while the
//! server keeps serving the others. Certificates: `support/tls.rs` (rcgen).
#![cfg(all(feature = "server", feature = "tls"))]

use rfc6455::blocking::{self, Error};
use rfc6455::handshake::server::Request;
use rfc6455::server::{
    Accept, ConnId, Ctx, Handler, Received, Refusal, Server, ServerConfig, SharedFrame,
};
use rfc6455::tls::rustls;
use rfc6455::{Config, Event};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

mod support;

use support::tls::{connect, converse, pki, raw_tls, read_to_end, tcp_read_all};

/// Echoes; "all:X" sends X to every connection as one shared frame; "flood:N" sends N
/// binary messages of 64 KiB back.
struct Echo;

impl Handler for Echo {
    type Data = ();

    fn upgrade(&mut self, _request: &Request) -> Result<Accept<()>, Refusal> {
        Ok(Accept::new(()))
    }

    fn message(&mut self, ctx: &mut Ctx<'_, ()>, id: ConnId, message: Received<'_>) {
        if let Received::Text(text) = message {
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
        ctx.send(id, message);
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
