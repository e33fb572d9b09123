//! The `rfc6455` binary over TLS: what goes wrong at the TLS layer itself (plain HTTP or
//! garbage to the TLS port, an untrusted certificate) costs one log line each while the
//! others are served; `serve` over HTTPS (HSTS, the TLS failure counter); two Chromium
//! pages chatting over `wss://`. The library's TLS tests are in `tests/tls.rs`.

use rfc6455::blocking::{self, Error};
use rfc6455::Event;
use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

mod support;

use support::tls::{connect, converse, pki, raw_tls, read_to_end, tcp_read_all};

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
