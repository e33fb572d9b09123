//! The rooms server over plain HTTP (`rfc6455 serve`): rooms as Server-Sent Events
//! streams (`GET /rooms/ROOM/events`) read byte for byte from a raw socket, resuming
//! with `Last-Event-ID`, messages posted with `POST /rooms/ROOM/messages`, every error
//! status, the connection limit, and a slow stream reader cut while others go on.

mod support;

use serde_json::{json, Value};
use std::io::Read;
use std::time::{Duration, Instant};
use support::chat::Client;
use support::sse::{full_id, id_of, post, request, Stream, ACCEPT};
use support::ServerProcess;

fn serve(extra: &[&str]) -> ServerProcess {
    let mut args = vec!["serve", "--threads", "2", "--max-rate", "0"];
    args.extend_from_slice(extra);
    ServerProcess::start(env!("CARGO_BIN_EXE_rfc6455"), &args)
}

/// The next chat message a WebSocket member gets, as the text that came.
fn message_text(member: &mut Client) -> String {
    loop {
        if let rfc6455::Event::Text(text) = member.ws.read().unwrap() {
            if text.contains(r#""type":"message""#) {
                return text;
            }
        }
    }
}

#[test]
fn a_stream_carries_messages_and_presence_byte_for_byte() {
    let server = serve(&["--sse-keepalive", "1"]);
    let (mut stream, head) = Stream::open(&server.addr, "/rooms/news/events", ACCEPT);
    assert_eq!(
        head,
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n\
         Connection: close\r\nCache-Control: no-cache\r\nX-Accel-Buffering: no\r\n\r\n"
    );
    assert_eq!(stream.event(), "retry: 2000\n\n");
    assert_eq!(
        stream.event(),
        "event: presence\ndata: {\"members\":[],\"room\":\"news\",\"type\":\"presence\"}\n\n"
    );
    // A WebSocket member joins: a presence change on the stream.
    let mut ann = Client::hello(&server.addr, "ann");
    ann.join("news", None);
    assert_eq!(
        stream.data_event(),
        "event: presence\ndata: {\"room\":\"news\",\"type\":\"joined\",\"user\":\"ann\"}\n\n"
    );
    let mut bob = Client::hello(&server.addr, "bob");
    bob.join("news", None);
    assert!(stream.data_event().contains(r#""user":"bob""#));
    // The same JSON a member gets, with the seq as the event id.
    ann.send(json!({"type": "message", "room": "news", "text": "hi\nthere"}));
    let got = message_text(&mut bob);
    let first = stream.data_event();
    // The id is the room's epoch and the seq.
    let epoch = full_id(&first).split(':').next().unwrap().to_string();
    assert_eq!(epoch.len(), 8, "{first}");
    assert_eq!(
        first,
        format!("id: {epoch}:1\nevent: message\ndata: {got}\n\n")
    );
    // And a message posted over HTTP reaches both transports.
    assert_eq!(post(&server.addr, "news", "ci", "deployed"), 2);
    let got = message_text(&mut bob);
    assert!(
        got.contains(r#""from":"ci","room":"news","text":"deployed""#),
        "{got}"
    );
    assert_eq!(
        stream.data_event(),
        format!("id: {epoch}:2\nevent: message\ndata: {got}\n\n")
    );
    // Quiet now: a keep-alive comment within two ticks.
    let started = Instant::now();
    assert_eq!(stream.event(), ": keep-alive\n\n");
    assert!(started.elapsed() < Duration::from_secs(3));
    let (_, metrics, body) = request(&server.addr, "GET", "/metrics", "", b"");
    assert!(
        body.contains("\nrfc6455_sse_streams 1\n"),
        "{metrics}{body}"
    );
}

#[test]
fn last_event_id_resumes_with_exactly_the_missed_messages() {
    let server = serve(&[]);
    let (mut stream, _) = Stream::open(&server.addr, "/rooms/feed/events", ACCEPT);
    stream.until(b"event: presence\n");
    stream.event();
    let mut last = String::new();
    for i in 1..=3 {
        post(&server.addr, "feed", "ci", &format!("before {i}"));
        last = full_id(&stream.data_event());
        assert_eq!(id_of(&format!("id: {last}\n")), i);
    }
    drop(stream);
    for i in 1..=10 {
        post(&server.addr, "feed", "ci", &format!("missed {i}"));
    }
    // What an EventSource sends when it reconnects: the last id it saw.
    let (mut stream, head) = Stream::open(
        &server.addr,
        "/rooms/feed/events",
        &format!("{ACCEPT}Last-Event-ID: {last}\r\n"),
    );
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(stream.event(), "retry: 2000\n\n");
    let epoch = last.split(':').next().unwrap();
    assert_eq!(
        stream.event(),
        format!(
            "event: recovery\ndata: {{\"epoch\":\"{epoch}\",\"oldest\":4,\"recovered\":true}}\n\n"
        )
    );
    for i in 1..=10 {
        let event = stream.data_event();
        assert_eq!(id_of(&event), 3 + i);
        assert!(
            event.contains(&format!(r#""text":"missed {i}""#)),
            "{event}"
        );
    }
    assert!(stream.data_event().starts_with("event: presence\n"));
    post(&server.addr, "feed", "ci", "live");
    let event = stream.data_event();
    assert_eq!(id_of(&event), 14);
    assert!(event.contains(r#""text":"live""#));
    // `?since=&epoch=` does the same for a client that cannot set headers.
    let path = format!("/rooms/feed/events?since=12&epoch={epoch}");
    let (mut since, _) = Stream::open(&server.addr, &path, ACCEPT);
    since.event();
    assert!(since.event().contains(r#""recovered":true"#));
    let ids: Vec<u64> = (0..2).map(|_| id_of(&since.data_event())).collect();
    assert_eq!(ids, [13, 14]);
}

#[test]
fn every_error_has_its_status() {
    let server = serve(&[
        "--token",
        "s3cret",
        "--origin",
        "http://good.example",
        "--max-connections",
        "1",
    ]);
    let addr = server.addr.as_str();
    let json_type = "Content-Type: application/json\r\n";
    let auth = "Authorization: Bearer s3cret\r\n";
    let good = br#"{"from":"ci","text":"hello"}"#;
    let status = |method: &str, path: &str, headers: &str, body: &[u8]| {
        request(addr, method, path, headers, body).0
    };
    let path = "/rooms/r/messages";
    assert_eq!(status("POST", path, json_type, good), 401, "no token");
    assert_eq!(
        status("POST", "/rooms/r/messages?token=wrong", json_type, good),
        401
    );
    let with = |extra: &str| format!("{auth}{extra}");
    assert_eq!(
        status("POST", path, &with("Content-Type: text/plain\r\n"), good),
        415
    );
    assert_eq!(status("POST", path, &with(json_type), b"{not json"), 400);
    assert_eq!(status("POST", path, &with(json_type), b"[1,2]"), 400);
    assert_eq!(
        status("POST", path, &with(json_type), br#"{"text":"no sender"}"#),
        400
    );
    let long = json!({"from": "ci", "text": "x".repeat(4097)}).to_string();
    let (code, _, body) = request(addr, "POST", path, &with(json_type), long.as_bytes());
    assert_eq!(code, 400);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["error"],
        "too_long"
    );
    let huge = vec![b' '; 70_000];
    assert_eq!(status("POST", path, &with(json_type), &huge), 413);
    assert_eq!(
        status("POST", path, &with("Transfer-Encoding: chunked\r\n"), b""),
        411
    );
    let (code, head, _) = request(addr, "GET", path, auth, b"");
    assert_eq!(code, 405);
    assert!(head.contains("\r\nAllow: POST, OPTIONS\r\n"), "{head}");
    let (code, head, _) = request(addr, "DELETE", "/rooms/r/events", auth, b"");
    assert_eq!(code, 405);
    assert!(head.contains("\r\nAllow: GET\r\n"), "{head}");
    // Browsers: the Origin rules of the WebSocket endpoint, and CORS for allowed ones.
    let evil = "Origin: http://evil.example\r\n";
    assert_eq!(
        status("POST", path, &with(&format!("{json_type}{evil}")), good),
        403
    );
    assert_eq!(status("OPTIONS", path, evil, b""), 403);
    let (code, head, _) = request(
        addr,
        "OPTIONS",
        path,
        "Origin: http://good.example\r\n",
        b"",
    );
    assert_eq!(code, 204);
    assert!(head.contains("\r\nAccess-Control-Allow-Origin: http://good.example\r\n"));
    assert!(head.contains("\r\nAccess-Control-Allow-Methods: POST\r\n"));
    let headers = with(&format!("{json_type}Origin: http://good.example\r\n"));
    let (code, head, body) = request(addr, "POST", path, &headers, good);
    assert_eq!((code, body.as_str()), (202, r#"{"seq":1}"#));
    assert!(head.contains("\r\nAccess-Control-Allow-Origin: http://good.example\r\n"));
    // Streams: token, Accept, the connection limit (1 here).
    assert_eq!(status("GET", "/rooms/r/events", ACCEPT, b""), 401);
    assert_eq!(
        status(
            "GET",
            "/rooms/r/events",
            &with("Accept: text/html\r\n"),
            b""
        ),
        406
    );
    assert_eq!(
        status(
            "GET",
            "/rooms/r/events",
            &with(&format!("{ACCEPT}Last-Event-ID: x\r\n")),
            b""
        ),
        400
    );
    let (_first, head) = Stream::open(addr, "/rooms/r/events?token=s3cret", ACCEPT);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"));
    assert_eq!(
        status("GET", "/rooms/r/events?token=s3cret", ACCEPT, b""),
        503,
        "over --max-connections"
    );
}

/// A reader that stops reading is cut once its output reaches the server's limit
/// (4 MiB): its memory is bounded, and a reader that keeps up gets every message.
#[test]
fn a_slow_stream_reader_is_cut_and_the_others_keep_receiving() {
    let server = serve(&[]);
    let (mut slow, _) = Stream::open(&server.addr, "/rooms/busy/events", ACCEPT);
    slow.socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let (mut fast, _) = Stream::open(&server.addr, "/rooms/busy/events", ACCEPT);
    let reader = std::thread::spawn(move || {
        fast.until(b"event: presence\n");
        fast.event();
        let ids: Vec<u64> = (1..=5000).map(|_| id_of(&fast.message_event())).collect();
        (ids, fast)
    });
    let mut ann = Client::hello(&server.addr, "ann");
    ann.join("busy", None);
    let text = "x".repeat(4000);
    for _ in 0..5000 {
        ann.send(json!({"type": "message", "room": "busy", "text": text}));
    }
    // 5000 × 4 KB = 20 MB for each stream: the fast one reads it all...
    let (ids, _fast) = reader.join().unwrap();
    assert!(
        ids == (1..=5000).collect::<Vec<u64>>(),
        "the fast reader got all, in order"
    );
    // ...the slow one was cut: it reads what the kernel held, then the end.
    let mut rest = Vec::new();
    slow.socket
        .read_to_end(&mut rest)
        .expect("the server ended the stream (EOF)");
    slow.buf.extend_from_slice(&rest);
    let got = String::from_utf8_lossy(&slow.buf).matches("\nid: ").count();
    assert!(got < 5000, "the slow reader was cut, after {got} messages");
    let (_, _, metrics) = request(&server.addr, "GET", "/metrics", "", b"");
    assert!(metrics.contains("\nrfc6455_sse_streams 1\n"), "{metrics}");
    let slow_events = metrics
        .lines()
        .find_map(|l| l.strip_prefix("rfc6455_slow_consumer_events_total "))
        .unwrap();
    assert!(slow_events.parse::<u64>().unwrap() >= 1, "{metrics}");
}

/// A body that arrives in pieces, after its head, is read whole before it is served;
/// bytes after it (a pipelined request) are not served.
#[test]
fn a_body_in_pieces_is_read_whole() {
    let server = serve(&[]);
    let body = json!({"from": "ci", "text": "slowly"}).to_string();
    let mut socket = std::net::TcpStream::connect(&server.addr).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    use std::io::Write;
    write!(
        socket,
        "POST /rooms/r/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    let (first, second) = body.split_at(10);
    for piece in [first, second] {
        std::thread::sleep(Duration::from_millis(100));
        socket.write_all(piece.as_bytes()).unwrap();
    }
    socket
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    socket.read_to_string(&mut response).unwrap();
    assert!(
        response.starts_with("HTTP/1.1 202 Accepted\r\n"),
        "{response}"
    );
    assert!(
        response.ends_with("\r\n\r\n{\"seq\":1}"),
        "one response: {response}"
    );
}

/// A graceful shutdown (SIGTERM) ends every stream: the reader sees the end of the
/// response, and the process exits cleanly.
#[test]
fn a_shutdown_ends_the_streams() {
    let mut server = serve(&[]);
    let (mut stream, _) = Stream::open(&server.addr, "/rooms/r/events", ACCEPT);
    stream.until(b"event: presence\n");
    stream.event();
    assert!(server.terminate(), "serve exits with success");
    let mut rest = Vec::new();
    stream
        .socket
        .read_to_end(&mut rest)
        .expect("the stream ended (EOF), not reset");
    assert!(
        rest.iter().all(|&b| b != 0),
        "nothing but what was queued: {rest:?}"
    );
}
