//! Arbitrary bytes as a client's upgrade request (RFC 6455 §4.2.1), found by the head
//! reader and parsed by the server (and as a plain request with a body): never a panic; a rejection always carries an HTTP
//! error status and a response that says it; an accepted request yields a 101 that a
//! client holding the same key accepts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rfc6455::handshake::client::{ClientHandshake, WsUrl};
use rfc6455::handshake::server::Request;
use rfc6455::handshake::HeadReader;

fuzz_target!(|data: &[u8]| {
    // The head reader, fed in two pieces, finds the same head as in one.
    let mut whole = HeadReader::new(4096);
    let found = whole.push(data);
    let mut split = HeadReader::new(4096);
    let half = data.len() / 2;
    let found_split = match split.push(&data[..half]) {
        Ok(None) => split.push(&data[half..]),
        other => other,
    };
    if let (Ok(Some(a)), Ok(Some(b))) = (found, found_split) {
        assert_eq!(a, b);
    }

    match Request::parse(data) {
        Ok(request) => {
            let response = request.accept(request.protocols().first().map(String::as_str));
            let url = WsUrl::parse("ws://example.com/").unwrap();
            let offered: Vec<&str> = request.protocols().iter().map(String::as_str).collect();
            let (client, _) =
                ClientHandshake::with_key(request.key().to_string(), &url, &offered, &[]);
            let accepted = client.validate(&response).expect("our 101 is valid");
            assert_eq!(accepted.protocol.as_ref(), request.protocols().first());
        }
        Err(err) => {
            let status = err.status();
            assert!((400..600).contains(&status), "status {status}");
            let response = err.response();
            assert!(response.starts_with(format!("HTTP/1.1 {status} ").as_bytes()));
        }
    }

    // The same bytes as a plain request (the server's other path): its body length is
    // a number, or 411 (a Transfer-Encoding) or 400 (a bad or conflicting
    // Content-Length), never a panic.
    if let Some(http) = rfc6455::server::HttpRequest::parse(data) {
        if let Err(status) = http.body_length() {
            assert!(status == 400 || status == 411, "status {status}");
        }
    }
});
