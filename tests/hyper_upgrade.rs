//! `examples/hyper_upgrade.rs` end to end: hyper serves plain HTTP and hands WebSocket
//! upgrades to the core (feature `http`). Our blocking client talks to it with and
//! without permessage-deflate; broken upgrades get the RFC's statuses from hyper.

use rfc6455::blocking;
use rfc6455::deflate::DeflateConfig;
use rfc6455::{CloseCode, Config, Event};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

#[path = "../examples/hyper_upgrade.rs"]
mod hyper_upgrade;

/// The example's server on a runtime of its own, on a port the kernel chose.
fn start() -> SocketAddr {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || runtime.block_on(hyper_upgrade::serve(listener)));
    addr
}

/// Sends a raw request and returns the whole response (hyper closes after errors).
fn raw(addr: SocketAddr, request: &str) -> String {
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    tcp.write_all(request.as_bytes()).unwrap();
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    // Until the end of the head and its body (Content-Length), or the close.
    loop {
        let n = tcp.read(&mut buf).unwrap_or(0);
        if n == 0 {
            break;
        }
        response.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&response);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(str::to_string)
                })
                .and_then(|l| l.trim().parse::<usize>().ok());
            if length.is_some_and(|l| body.len() >= l) {
                break;
            }
        }
    }
    String::from_utf8(response).unwrap()
}

#[test]
fn messages_go_both_ways_over_hyper_with_and_without_deflate() {
    let addr = start();
    for deflate in [None, Some(DeflateConfig::default())] {
        let config = Config {
            deflate: deflate.clone(),
            ..Config::default()
        };
        let mut ws = blocking::connect_with(&format!("ws://{addr}/chat"), config, &[]).unwrap();
        assert_eq!(
            ws.connection().deflate().is_some(),
            deflate.is_some(),
            "deflate agreed when offered"
        );
        ws.send_text("hello hyper").unwrap();
        assert_eq!(ws.read().unwrap(), Event::Text("hello hyper".into()));
        let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        ws.send_binary(&big).unwrap();
        assert_eq!(ws.read().unwrap(), Event::Binary(big));
        ws.send_ping(b"p").unwrap();
        assert_eq!(ws.read().unwrap(), Event::Pong(b"p".to_vec()));
        ws.close(CloseCode(4000), "bye").unwrap();
        match ws.read().unwrap() {
            Event::Close(Some(frame)) => assert_eq!(frame.code, CloseCode(4000)),
            other => panic!("expected the echoed Close, got {other:?}"),
        }
    }
}

#[test]
fn hyper_serves_plain_http_and_refuses_broken_upgrades_with_the_rfcs_statuses() {
    let addr = start();
    // Whatever is not a WebSocket request is hyper's, whatever its method or version.
    for request in [
        "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        "POST /form HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi",
        "GET / HTTP/1.0\r\n\r\n",
    ] {
        let page = raw(addr, request);
        assert!(page.starts_with("HTTP/1."), "{request:?}: {page}");
        assert!(page.contains(" 200 OK\r\n"), "{request:?}: {page}");
        assert!(
            page.contains("hyper serves this page"),
            "{request:?}: {page}"
        );
    }

    let upgrade = |version: &str| {
        format!(
            "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: {version}\r\n\r\n"
        )
    };
    // RFC 6455 §4.2.2 item 4: an unsupported version gets 426 and the version we speak.
    let old = raw(addr, &upgrade("8"));
    assert!(old.starts_with("HTTP/1.1 426 "), "{old}");
    assert!(
        old.to_ascii_lowercase()
            .contains("\r\nsec-websocket-version: 13\r\n"),
        "{old}"
    );
    // A key that is not base64 of 16 bytes: 400.
    let bad_key = raw(
        addr,
        &upgrade("13").replace("dGhlIHNhbXBsZSBub25jZQ==", "short"),
    );
    assert!(bad_key.starts_with("HTTP/1.1 400 "), "{bad_key}");
    assert!(bad_key.contains("Sec-WebSocket-Key"), "{bad_key}");
    // A valid one: 101 with the accept value of RFC 6455 §1.3.
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    tcp.write_all(upgrade("13").as_bytes()).unwrap();
    let mut head = [0u8; 512];
    let n = tcp.read(&mut head).unwrap();
    let head = String::from_utf8_lossy(&head[..n]).to_ascii_lowercase();
    assert!(
        head.starts_with("http/1.1 101 switching protocols\r\n"),
        "{head}"
    );
    assert!(
        head.contains("\r\nsec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo=\r\n"),
        "{head}"
    );
}
