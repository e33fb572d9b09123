//! The blocking client and server over real loopback sockets, and raw-socket peers that
//! break the protocol.

use rfc6455::blocking::{self, ClientStream, Error, WebSocket};
use rfc6455::handshake::client::ResponseError;
use rfc6455::{CloseCode, CloseFrame, Config, Event, MessageKind};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread::{self, JoinHandle};
use std::time::Duration;

mod support;

/// A server that runs `handler` on each of `connections` accepted streams, in turn.
fn server<F>(connections: usize, handler: F) -> (String, JoinHandle<Vec<Result<(), Error>>>)
where
    F: Fn(&mut TcpStream) -> Result<(), Error> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let handle = thread::spawn(move || {
        (0..connections)
            .map(|_| {
                let (mut stream, _) = listener.accept().unwrap();
                stream
                    .set_read_timeout(Some(Duration::from_secs(10)))
                    .unwrap();
                let result = handler(&mut stream);
                close_transport(stream);
                result
            })
            .collect()
    });
    (addr, handle)
}

/// The server closes the TCP connection first (RFC 6455 §7.1.1): a FIN after its last
/// bytes, then it reads what the peer still sends, so that closing a socket with unread
/// input does not reset the connection and destroy the response or Close frame.
fn close_transport(mut stream: TcpStream) {
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut sink = [0u8; 4096];
    while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
}

fn echo(stream: &mut TcpStream) -> Result<(), Error> {
    let mut ws = blocking::accept(stream)?;
    loop {
        match ws.read()? {
            Event::Text(text) => ws.send_text(&text)?,
            Event::Binary(data) => ws.send_binary(&data)?,
            Event::Close(_) => return Ok(()),
            Event::Ping(_) | Event::Pong(_) => {}
        }
    }
}

fn connect(addr: &str) -> WebSocket<ClientStream> {
    let ws = blocking::connect(&format!("ws://{addr}/")).unwrap();
    ws.get_ref()
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    ws
}

#[test]
fn messages_echo_and_the_client_closes() {
    let (addr, server) = server(1, echo);
    let mut ws = connect(&addr);

    ws.send_text("héllo").unwrap();
    assert_eq!(ws.read().unwrap(), Event::Text("héllo".into()));
    let big: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
    ws.send_binary(&big).unwrap();
    assert_eq!(ws.read().unwrap(), Event::Binary(big));
    ws.send_fragment(MessageKind::Text, b"frag", false).unwrap();
    ws.send_ping(b"between").unwrap();
    ws.send_fragment(MessageKind::Text, b"mented", true)
        .unwrap();
    assert_eq!(ws.read().unwrap(), Event::Pong(b"between".to_vec()));
    assert_eq!(ws.read().unwrap(), Event::Text("fragmented".into()));

    ws.close(CloseCode::NORMAL, "bye").unwrap();
    assert!(matches!(ws.send_text("late"), Err(Error::Send(_))));
    assert_eq!(
        ws.read().unwrap(),
        Event::Close(Some(CloseFrame {
            code: CloseCode::NORMAL,
            reason: String::new()
        }))
    );
    // The client waits for the server to close the TCP connection (RFC 6455 §7.1.1).
    assert!(matches!(ws.read(), Err(Error::Closed)));
    drop(ws);
    assert!(server.join().unwrap()[0].is_ok());
}

#[test]
fn the_server_closes_first() {
    let (addr, server) = server(1, |stream| {
        let mut ws = blocking::accept(stream)?;
        ws.close(CloseCode::GOING_AWAY, "shutting down")?;
        loop {
            if let Event::Close(frame) = ws.read()? {
                assert_eq!(frame.unwrap().code, CloseCode::GOING_AWAY);
                return Ok(());
            }
        }
    });
    let mut ws = connect(&addr);
    assert_eq!(
        ws.read().unwrap(),
        Event::Close(Some(CloseFrame {
            code: CloseCode::GOING_AWAY,
            reason: "shutting down".into()
        }))
    );
    assert!(matches!(ws.read(), Err(Error::Closed)));
    drop(ws);
    assert!(server.join().unwrap()[0].is_ok());
}

#[test]
fn subprotocols_are_negotiated_and_upgrades_can_be_refused() {
    let (addr, server) = server(2, |stream| {
        let mut ws = blocking::accept_with(stream, Config::default(), |request| {
            if request.path() != "/chat" {
                return Err(404);
            }
            Ok(request.protocols().iter().find(|p| *p == "v2").cloned())
        })?;
        ws.send_text(ws.protocol().unwrap_or("none").to_string().as_str())?;
        while !matches!(ws.read()?, Event::Close(_)) {}
        Ok(())
    });
    let url = format!("ws://{addr}/chat");
    let mut ws = blocking::connect_with(&url, Config::default(), &["v1", "v2"]).unwrap();
    assert_eq!(ws.protocol(), Some("v2"));
    assert_eq!(ws.read().unwrap(), Event::Text("v2".into()));
    ws.close(CloseCode::NORMAL, "").unwrap();
    while ws.read().is_ok() {}
    drop(ws);

    let refused = blocking::connect(&format!("ws://{addr}/elsewhere"));
    assert!(matches!(
        refused,
        Err(Error::Response(ResponseError::Status(404)))
    ));
    let results = server.join().unwrap();
    assert!(results[0].is_ok());
    assert!(matches!(results[1], Err(Error::Rejected(404))));
}

/// A raw TCP peer: sends a valid upgrade request and returns the stream after the 101.
fn raw_upgrade(addr: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101 "));
    stream
}

/// Reads until EOF and returns the status code of the Close frame the server sent.
fn close_code_received(mut stream: TcpStream) -> u16 {
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).unwrap();
    assert_eq!(bytes[0], 0x88, "expected a Close frame, got {bytes:02x?}");
    u16::from_be_bytes([bytes[2], bytes[3]])
}

#[test]
fn protocol_violations_get_the_right_close_code_and_the_server_carries_on() {
    let cases = support::hostile::frame_violations();
    let (addr, server) = server(cases.len() + 1, echo);
    for (bytes, code) in &cases {
        let mut stream = raw_upgrade(&addr);
        stream.write_all(bytes).unwrap();
        assert_eq!(close_code_received(stream), *code, "input {bytes:02x?}");
    }
    // A well-behaved client is still served.
    let mut ws = connect(&addr);
    ws.send_text("still here").unwrap();
    assert_eq!(ws.read().unwrap(), Event::Text("still here".into()));
    ws.close(CloseCode::NORMAL, "").unwrap();
    while ws.read().is_ok() {}
    drop(ws);

    let results = server.join().unwrap();
    for result in &results[..cases.len()] {
        assert!(matches!(result, Err(Error::Protocol(_))), "{result:?}");
    }
    assert!(results[cases.len()].is_ok());
}

#[test]
fn malformed_handshakes_get_their_status_and_the_server_carries_on() {
    let cases = support::hostile::malformed_handshakes();
    let (addr, server) = server(cases.len() + 1, echo);
    for (request, status) in &cases {
        let mut stream = TcpStream::connect(&addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        // The server may answer and close before reading all of an oversized head.
        let _ = stream.write_all(request.as_bytes());
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response);
        let response = String::from_utf8_lossy(&response);
        assert!(
            response.starts_with(&format!("HTTP/1.1 {status} ")),
            "{request:.60}: {response}"
        );
        if *status == "426" {
            assert!(response.contains("Sec-WebSocket-Version: 13\r\n"));
            // RFC 9110 §15.5.22: a 426 names the protocol to upgrade to.
            assert!(response.contains("Upgrade: websocket\r\n"), "{response}");
        }
    }
    let mut ws = connect(&addr);
    ws.send_text("still here").unwrap();
    assert_eq!(ws.read().unwrap(), Event::Text("still here".into()));
    ws.close(CloseCode::NORMAL, "").unwrap();
    while ws.read().is_ok() {}
    drop(ws);
    let results = server.join().unwrap();
    for result in &results[..cases.len()] {
        assert!(matches!(result, Err(Error::Request(_))), "{result:?}");
    }
}

#[test]
fn a_client_rejects_a_masked_frame_from_the_server() {
    let (addr, server) = server(1, |stream| {
        let mut head = [0u8; 1024];
        let mut len = 0;
        while !head[..len].ends_with(b"\r\n\r\n") {
            len += stream.read(&mut head[len..])?;
        }
        let request = rfc6455::handshake::server::Request::parse(&head[..len]).unwrap();
        stream.write_all(&request.accept(None))?;
        // A masked frame: servers must not mask (RFC 6455 §5.1).
        stream.write_all(&[0x81, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2])?;
        let mut reply = Vec::new();
        stream.read_to_end(&mut reply)?;
        // The client's Close (masked): unmask the code.
        assert_eq!(reply[0], 0x88);
        let key = [reply[2], reply[3], reply[4], reply[5]];
        let code = u16::from_be_bytes([reply[6] ^ key[0], reply[7] ^ key[1]]);
        assert_eq!(code, 1002);
        Ok(())
    });
    let mut ws = blocking::connect(&format!("ws://{addr}/")).unwrap();
    // The client waits for the server to close: bound that wait, then let it go.
    ws.get_ref()
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    assert!(matches!(ws.read(), Err(Error::Protocol(_))));
    drop(ws);
    server.join().unwrap()[0].as_ref().unwrap();
}

/// A server that completes the opening handshake, then reads and never closes the TCP
/// connection; it answers the client's Close only if `answer_close`. It lets go when
/// the test drops the returned sender.
fn server_that_never_closes_tcp(answer_close: bool) -> (String, std::sync::mpsc::Sender<()>) {
    let (done, wait) = std::sync::mpsc::channel::<()>();
    let (addr, _handle) = server(1, move |stream| {
        let mut ws = blocking::accept(&mut *stream)?;
        if answer_close {
            // Reading the Close queues and sends the answer.
            assert!(matches!(ws.read()?, Event::Close(_)));
        }
        let _ = wait.recv();
        Ok(())
    });
    (addr, done)
}

#[test]
fn the_client_close_has_a_default_timeout() {
    let (addr, _done) = server_that_never_closes_tcp(true);
    let ws = connect(&addr);
    assert_eq!(ws.close_timeout(), Some(blocking::DEFAULT_CLOSE_TIMEOUT));
}

#[test]
fn the_client_stops_waiting_for_a_server_that_answers_close_but_never_closes_tcp() {
    let (addr, _done) = server_that_never_closes_tcp(true);
    let mut ws = connect(&addr);
    ws.set_close_timeout(Some(Duration::from_millis(300)));
    let started = std::time::Instant::now();
    ws.close(CloseCode::NORMAL, "bye").unwrap();
    // The server's Close arrives; then the wait for its TCP FIN ends at the timeout.
    assert!(matches!(ws.read(), Ok(Event::Close(Some(_)))));
    assert!(matches!(ws.read(), Err(Error::Closed)));
    // The 10 s read timeout set by `connect` here did not apply: the close did.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn the_client_gives_up_on_a_server_that_never_answers_close() {
    let (addr, _done) = server_that_never_closes_tcp(false);
    let mut ws = connect(&addr);
    ws.set_close_timeout(Some(Duration::from_millis(300)));
    let started = std::time::Instant::now();
    ws.close(CloseCode::NORMAL, "bye").unwrap();
    assert!(matches!(ws.read(), Err(Error::CloseTimeout)));
    assert!(ws.read().is_err());
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}
