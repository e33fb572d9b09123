//! The rooms server (`rfc6455 serve`) with several clients: its JSON protocol, room
//! isolation, presence, acks, direct messages, catch-up, token and Origin checks.

mod support;

use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use support::chat::Client;
use support::redis::RedisServer;

use std::time::Duration;

/// `rfc6455 serve` with extra arguments (and the Redis it uses), killed on drop.
struct Serve {
    process: support::ServerProcess,
    /// Rooms in Redis: a message's ack has no `delivered_to`.
    redis: Option<RedisServer>,
}

impl std::ops::Deref for Serve {
    type Target = support::ServerProcess;
    fn deref(&self) -> &support::ServerProcess {
        &self.process
    }
}

/// `mode`: "1" or "2" event loops (with two, consecutive clients land on alternate
/// loops), or "redis": two loops, rooms kept in a Redis of the test's own.
fn serve(mode: &str, args: &[&str]) -> Serve {
    let redis = (mode == "redis").then(RedisServer::start);
    let threads = if mode == "redis" { "2" } else { mode };
    let mut all = vec!["serve", "--threads", threads];
    let url = redis.as_ref().map(RedisServer::url);
    if let Some(url) = &url {
        all.extend(["--redis", url]);
    }
    all.extend_from_slice(args);
    let process = support::ServerProcess::start(env!("CARGO_BIN_EXE_rfc6455"), &all);
    Serve { process, redis }
}

/// Runs each named test with one event loop, with two, and with the rooms in Redis.
macro_rules! on_one_and_two_loops_and_redis {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn one_loop() {
                super::$name("1")
            }
            #[test]
            fn two_loops() {
                super::$name("2")
            }
            #[test]
            fn redis() {
                super::$name("redis")
            }
        }
    )*};
}

on_one_and_two_loops_and_redis!(
    messages_reach_the_other_members_of_the_room_only,
    presence_follows_joins_leaves_and_disconnects,
    direct_messages_are_acknowledged_with_their_delivery,
    a_reconnecting_client_catches_up_on_exactly_what_it_missed,
    history_is_bounded,
    bad_requests_get_error_events_not_a_crash,
    a_token_is_required_when_configured,
    origins_are_restricted_when_configured,
    the_page_and_the_metrics_are_served,
    the_connection_limit_counts_every_loop,
);

fn message(text: &str, room: &str, id: u64) -> Value {
    json!({"type": "message", "room": room, "text": text, "id": id})
}

fn messages_reach_the_other_members_of_the_room_only(threads: &str) {
    let server = serve(threads, &[]);
    let mut ann = Client::hello(&server.addr, "ann");
    let mut bob = Client::hello(&server.addr, "bob");
    let mut cy = Client::hello(&server.addr, "cy");
    ann.join("one", None);
    bob.join("one", None);
    assert_eq!(
        ann.recv(),
        json!({"type": "joined", "room": "one", "user": "bob"})
    );
    cy.join("two", None);

    ann.send(message("hello one", "one", 7));
    let ack = ann.recv();
    assert_eq!(ack["type"], "ack");
    assert_eq!(ack["id"], 7);
    assert_eq!(ack["seq"], 1);
    if server.redis.is_none() {
        assert_eq!(ack["delivered_to"], 1, "not to the sender");
    }
    let got = bob.recv();
    assert_eq!(got["type"], "message");
    assert_eq!(
        (&got["from"], &got["text"], &got["seq"]),
        (&json!("ann"), &json!("hello one"), &json!(1))
    );
    assert!(got["ts"].as_u64().unwrap() > 1_600_000_000_000);
    // No cross-talk, and the sender gets no copy.
    cy.assert_nothing_pending();
    ann.assert_nothing_pending();
}

fn presence_follows_joins_leaves_and_disconnects(threads: &str) {
    let server = serve(threads, &[]);
    let mut ann = Client::hello(&server.addr, "ann");
    ann.join("lobby", None);
    let mut bob = Client::hello(&server.addr, "bob");
    bob.send(json!({"type": "join", "room": "lobby", "id": 1}));
    assert_eq!(bob.recv()["type"], "ack");
    assert_eq!(
        bob.recv(),
        json!({"type": "presence", "room": "lobby", "members": ["ann", "bob"]})
    );
    assert_eq!(
        ann.recv(),
        json!({"type": "joined", "room": "lobby", "user": "bob"})
    );

    bob.send(json!({"type": "typing", "room": "lobby"}));
    assert_eq!(
        ann.recv(),
        json!({"type": "typing", "room": "lobby", "user": "bob"})
    );

    bob.send(json!({"type": "leave", "room": "lobby", "id": 2}));
    assert_eq!(bob.recv(), json!({"type": "ack", "id": 2, "room": "lobby"}));
    assert_eq!(
        ann.recv(),
        json!({"type": "left", "room": "lobby", "user": "bob"})
    );

    bob.join("lobby", None);
    assert_eq!(ann.recv()["type"], "joined");
    drop(bob); // a disconnect leaves every room
    assert_eq!(
        ann.recv(),
        json!({"type": "left", "room": "lobby", "user": "bob"})
    );
    // And frees the name.
    let _bob_again = Client::hello(&server.addr, "bob");
}

fn direct_messages_are_acknowledged_with_their_delivery(threads: &str) {
    let server = serve(threads, &[]);
    let mut ann = Client::hello(&server.addr, "ann");
    let mut bob = Client::hello(&server.addr, "bob");
    ann.send(json!({"type": "direct", "to": "bob", "text": "psst", "id": 3}));
    assert_eq!(
        ann.recv(),
        json!({"type": "ack", "id": 3, "delivered": true})
    );
    let got = bob.recv();
    assert_eq!(
        (&got["type"], &got["from"], &got["text"]),
        (&json!("direct"), &json!("ann"), &json!("psst"))
    );
    ann.send(json!({"type": "direct", "to": "nobody", "text": "hello?", "id": 4}));
    assert_eq!(
        ann.recv(),
        json!({"type": "ack", "id": 4, "delivered": false, "reason": "no such user online"})
    );
}

fn a_reconnecting_client_catches_up_on_exactly_what_it_missed(threads: &str) {
    let server = serve(threads, &[]);
    let mut ann = Client::hello(&server.addr, "ann");
    ann.join("news", None);
    let mut bob = Client::hello(&server.addr, "bob");
    assert!(bob.join("news", None).is_empty());
    assert_eq!(ann.recv()["type"], "joined");
    for i in 1..=3 {
        ann.send(message(&format!("m{i}"), "news", i));
        assert_eq!(ann.recv()["seq"], i);
        assert_eq!(bob.recv()["seq"], i);
    }
    drop(bob);
    assert_eq!(ann.recv()["type"], "left");
    for i in 4..=5 {
        ann.send(message(&format!("m{i}"), "news", i));
        let ack = ann.recv();
        assert_eq!(ack["seq"], i);
        if server.redis.is_none() {
            assert_eq!(ack["delivered_to"], 0);
        }
    }
    let mut bob = Client::hello(&server.addr, "bob");
    let missed = bob.join("news", Some(3));
    let texts: Vec<&str> = missed.iter().map(|m| m["text"].as_str().unwrap()).collect();
    assert_eq!(texts, ["m4", "m5"]);
    let seqs: Vec<u64> = missed.iter().map(|m| m["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [4, 5]);
    // A new joiner without `since` gets the whole (bounded) history.
    let mut cy = Client::hello(&server.addr, "cy");
    assert_eq!(cy.join("news", None).len(), 5);
}

fn history_is_bounded(threads: &str) {
    let server = serve(threads, &["--history", "3"]);
    let mut ann = Client::hello(&server.addr, "ann");
    ann.join("r", None);
    for i in 1..=5 {
        ann.send(message("x", "r", i));
        ann.recv();
    }
    let mut bob = Client::hello(&server.addr, "bob");
    let seqs: Vec<u64> = bob
        .join("r", None)
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [3, 4, 5]);
}

fn bad_requests_get_error_events_not_a_crash(threads: &str) {
    let server = serve(threads, &[]);
    let mut c = Client::connect(&server.addr, "");
    c.ws.send_text("{not json").unwrap();
    assert_eq!(c.recv()["code"], "bad_json");
    c.send(json!({"type": "message", "room": "r", "text": "x", "id": 1}));
    assert_eq!(
        c.recv(),
        json!({"type": "error", "code": "no_hello", "message": "say hello with a name first", "id": 1})
    );
    c.send(json!({"type": "hello", "name": "x".repeat(33), "id": 2}));
    assert_eq!(c.recv()["code"], "too_long");
    c.send(json!({"type": "hello", "name": "", "id": 3}));
    assert_eq!(c.recv()["code"], "bad_field");
    c.send(json!({"type": "hello", "name": "ann", "id": 4}));
    assert_eq!(c.recv()["type"], "ack");
    c.send(json!({"type": "dance", "id": 5}));
    assert_eq!(c.recv()["code"], "unknown_type");
    c.send(json!({"type": "message", "room": "nowhere", "text": "x", "id": 6}));
    assert_eq!(c.recv()["code"], "not_in_room");
    c.send(json!({"type": "join", "room": "r".repeat(65), "id": 7}));
    assert_eq!(c.recv()["code"], "too_long");
    c.ws.send_binary(b"\x00").unwrap();
    assert_eq!(c.recv()["code"], "bad_json");
    let mut other = Client::connect(&server.addr, "");
    other.send(json!({"type": "hello", "name": "ann", "id": 8}));
    assert_eq!(other.recv()["code"], "name_taken");
    // Still serving.
    c.assert_nothing_pending();
}

fn raw_upgrade_status(addr: &str, target: &str, extra: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {target} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
    .unwrap();
    let mut buf = [0u8; 64];
    let n = stream.read(&mut buf).unwrap();
    String::from_utf8_lossy(&buf[..n])
        .lines()
        .next()
        .unwrap()
        .to_string()
}

fn a_token_is_required_when_configured(threads: &str) {
    let server = serve(threads, &["--token", "s3cret"]);
    assert!(raw_upgrade_status(&server.addr, "/", "").starts_with("HTTP/1.1 401"));
    assert!(raw_upgrade_status(&server.addr, "/?token=wrong", "").starts_with("HTTP/1.1 401"));
    assert!(raw_upgrade_status(&server.addr, "/?token=s3cret", "").starts_with("HTTP/1.1 101"));
    assert!(
        raw_upgrade_status(&server.addr, "/", "Authorization: Bearer s3cret\r\n")
            .starts_with("HTTP/1.1 101")
    );
}

fn origins_are_restricted_when_configured(threads: &str) {
    let server = serve(
        threads,
        &[
            "--origin",
            "https://chat.example",
            "--origin",
            "http://localhost:9001",
        ],
    );
    assert!(raw_upgrade_status(&server.addr, "/", "").starts_with("HTTP/1.1 403"));
    assert!(
        raw_upgrade_status(&server.addr, "/", "Origin: https://evil.example\r\n")
            .starts_with("HTTP/1.1 403")
    );
    assert!(
        raw_upgrade_status(&server.addr, "/", "Origin: https://chat.example\r\n")
            .starts_with("HTTP/1.1 101")
    );
}

fn the_page_and_the_metrics_are_served(threads: &str) {
    let server = serve(threads, &[]);
    let mut ann = Client::hello(&server.addr, "ann");
    ann.join("lobby", None);
    let get = |path: &str| {
        let mut stream = TcpStream::connect(&server.addr).unwrap();
        write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    };
    let page = get("/");
    assert!(page.starts_with("HTTP/1.1 200 OK\r\n"));
    assert!(page.contains("Content-Type: text/html"));
    assert!(page.contains("new WebSocket("));
    let missing = get("/favicon.ico");
    assert!(missing.starts_with("HTTP/1.1 404 "), "{missing}");
    let metrics = get("/metrics");
    assert!(
        metrics.contains("\nrfc6455_open_connections 1\n"),
        "{metrics}"
    );
    assert!(metrics.contains("\nrfc6455_rooms 1\n"), "{metrics}");
    assert!(metrics.contains("\nrfc6455_users 1\n"), "{metrics}");
    assert!(
        metrics.contains("rfc6455_messages_in_total 2\n"),
        "{metrics}"
    );
}

/// Two publishers on two event loops, 1,000 messages each at once: every member, on
/// either loop, sees the same 2,000 messages with seq 1..=2000, no gap, no duplicate,
/// and each publisher's in the order it sent them.
#[test]
fn two_publishers_on_two_loops_give_every_member_one_gapless_order() {
    const EACH: u64 = 1000;
    let server = serve("2", &["--max-rate", "0", "--history", "10"]);
    let metrics = || {
        let mut stream = TcpStream::connect(&server.addr).unwrap();
        write!(stream, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    };
    let mut clients: Vec<Client> = ["ann", "bob", "cy", "dee"]
        .iter()
        .map(|name| Client::hello(&server.addr, name))
        .collect();
    // A loop publishes its counters at the end of its turn, maybe just after the ack.
    let spread = |m: &str| {
        m.contains("rfc6455_loop_open_connections{loop=\"0\"} 2\n")
            && m.contains("rfc6455_loop_open_connections{loop=\"1\"} 2\n")
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !spread(&metrics()) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let m = metrics();
    assert!(spread(&m), "two members on each loop: {m}");
    for c in &mut clients {
        c.join("feed", None);
    }
    support::chat::two_publishers_one_order(clients, "feed", ["ann", "bob"], EACH);
}

fn the_connection_limit_counts_every_loop(threads: &str) {
    let server = serve(threads, &["--max-connections", "2"]);
    let _ann = Client::hello(&server.addr, "ann");
    let _bob = Client::hello(&server.addr, "bob");
    let status = raw_upgrade_status(&server.addr, "/", "");
    assert!(status.starts_with("HTTP/1.1 503"), "{status}");
}

/// SIGTERM drains: `/healthz` 503 at once, the members closed with 1012 spread over
/// `--drain-seconds` (a stream ends too), then the process exits with success.
/// SIGINT closes everyone at once with 1001.
#[test]
fn sigterm_drains_and_sigint_closes_at_once() {
    let bin = env!("CARGO_BIN_EXE_rfc6455");
    let args = ["serve", "--threads", "2", "--drain-seconds", "1.5"];
    let mut server = support::ServerProcess::start(bin, &args);
    let mut members: Vec<Client> = (0..6)
        .map(|i| Client::hello(&server.addr, &format!("m{i}")))
        .collect();
    let (mut stream, _) =
        support::sse::Stream::open(&server.addr, "/rooms/r/events", support::sse::ACCEPT);
    stream.until(b"event: presence\n");
    let started = std::time::Instant::now();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &server.pid().to_string()])
        .status();
    // The kill is asynchronous: /healthz turns 503 within a moment.
    let health = (0..50)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(20));
            support::sse::request(&server.addr, "GET", "/healthz", "", b"").0
        })
        .find(|status| *status == 503);
    assert_eq!(health, Some(503), "/healthz while draining");
    let mut closed_at = Vec::new();
    for member in &mut members {
        let code = loop {
            match member.ws.read() {
                Ok(rfc6455::Event::Close(frame)) => break frame.map(|f| f.code.0),
                Ok(_) => {}
                Err(e) => panic!("{e}"),
            }
        };
        assert_eq!(code, Some(1012));
        closed_at.push(started.elapsed());
    }
    closed_at.sort();
    assert!(
        closed_at[5] - closed_at[0] >= Duration::from_millis(500),
        "spread over the period: {closed_at:?}"
    );
    let mut rest = Vec::new();
    let _ = stream.socket.read_to_end(&mut rest);
    assert!(server.terminate(), "exits with success after the drain");

    let mut server = support::ServerProcess::start(bin, &args);
    let mut members: Vec<Client> = (0..3)
        .map(|i| Client::hello(&server.addr, &format!("n{i}")))
        .collect();
    let _ = std::process::Command::new("kill")
        .args(["-INT", &server.pid().to_string()])
        .status();
    for member in &mut members {
        match member.ws.read() {
            Ok(rfc6455::Event::Close(frame)) => assert_eq!(frame.map(|f| f.code.0), Some(1001)),
            other => panic!("{other:?}"),
        }
    }
    drop(server.stop());
}
