//! The rooms server (`rfc6455 serve`) with several clients: its JSON protocol, room
//! isolation, presence, acks, direct messages, catch-up, token and Origin checks.
#![cfg(feature = "cli")]

mod support;

use rfc6455::blocking::{self, WebSocket};
use rfc6455::Event;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;

use std::time::Duration;

/// `rfc6455 serve` with extra arguments, killed on drop.
type Serve = support::ServerProcess;

/// `threads` event loops: every test runs with one and with two (`--threads`), and
/// with two, consecutive clients land on alternate loops (least connections).
fn serve(threads: &str, args: &[&str]) -> Serve {
    let mut all = vec!["serve", "--threads", threads];
    all.extend_from_slice(args);
    support::ServerProcess::start(env!("CARGO_BIN_EXE_rfc6455"), &all)
}

struct Client {
    ws: WebSocket<TcpStream>,
}

impl Client {
    fn connect(server: &Serve, query: &str) -> Client {
        let ws = blocking::connect(&format!("ws://{}/{query}", server.addr)).unwrap();
        ws.get_ref()
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Client { ws }
    }

    fn hello(server: &Serve, name: &str) -> Client {
        let mut c = Client::connect(server, "");
        c.send(json!({"type": "hello", "name": name, "id": 0}));
        assert_eq!(c.recv(), json!({"type": "ack", "id": 0, "name": name}));
        c
    }

    fn send(&mut self, value: Value) {
        self.ws.send_text(&value.to_string()).unwrap();
    }

    fn recv(&mut self) -> Value {
        loop {
            match self.ws.read().unwrap() {
                Event::Text(text) => return serde_json::from_str(&text).unwrap(),
                Event::Ping(_) | Event::Pong(_) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    /// Joins and returns the messages replayed before the presence event.
    fn join(&mut self, room: &str, since: Option<u64>) -> Vec<Value> {
        let mut req = json!({"type": "join", "room": room, "id": 1});
        if let Some(s) = since {
            req["since"] = json!(s);
        }
        self.send(req);
        assert_eq!(self.recv(), json!({"type": "ack", "id": 1, "room": room}));
        let mut replayed = Vec::new();
        loop {
            let v = self.recv();
            if v["type"] == "presence" {
                return replayed;
            }
            replayed.push(v);
        }
    }

    /// Proves nothing else is queued: a request with a fresh id gets its ack next.
    fn assert_nothing_pending(&mut self) {
        self.send(json!({"type": "probe", "id": "probe"}));
        let next = self.recv();
        // An error event (unknown type), answering the probe: nothing came before it.
        assert_eq!(next["id"], "probe", "something was queued before: {next}");
    }
}

/// Runs each named test with one event loop and with two.
macro_rules! on_one_and_two_loops {
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
        }
    )*};
}

on_one_and_two_loops!(
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
    let mut ann = Client::hello(&server, "ann");
    let mut bob = Client::hello(&server, "bob");
    let mut cy = Client::hello(&server, "cy");
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
    assert_eq!(ack["delivered_to"], 1, "not to the sender");
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
    let mut ann = Client::hello(&server, "ann");
    ann.join("lobby", None);
    let mut bob = Client::hello(&server, "bob");
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
    let _bob_again = Client::hello(&server, "bob");
}

fn direct_messages_are_acknowledged_with_their_delivery(threads: &str) {
    let server = serve(threads, &[]);
    let mut ann = Client::hello(&server, "ann");
    let mut bob = Client::hello(&server, "bob");
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
    let mut ann = Client::hello(&server, "ann");
    ann.join("news", None);
    let mut bob = Client::hello(&server, "bob");
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
        assert_eq!(ann.recv()["delivered_to"], 0);
    }
    let mut bob = Client::hello(&server, "bob");
    let missed = bob.join("news", Some(3));
    let texts: Vec<&str> = missed.iter().map(|m| m["text"].as_str().unwrap()).collect();
    assert_eq!(texts, ["m4", "m5"]);
    let seqs: Vec<u64> = missed.iter().map(|m| m["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [4, 5]);
    // A new joiner without `since` gets the whole (bounded) history.
    let mut cy = Client::hello(&server, "cy");
    assert_eq!(cy.join("news", None).len(), 5);
}

fn history_is_bounded(threads: &str) {
    let server = serve(threads, &["--history", "3"]);
    let mut ann = Client::hello(&server, "ann");
    ann.join("r", None);
    for i in 1..=5 {
        ann.send(message("x", "r", i));
        ann.recv();
    }
    let mut bob = Client::hello(&server, "bob");
    let seqs: Vec<u64> = bob
        .join("r", None)
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [3, 4, 5]);
}

fn bad_requests_get_error_events_not_a_crash(threads: &str) {
    let server = serve(threads, &[]);
    let mut c = Client::connect(&server, "");
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
    let mut other = Client::connect(&server, "");
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
    let mut ann = Client::hello(&server, "ann");
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
        .map(|name| Client::hello(&server, name))
        .collect();
    let m = metrics();
    assert!(
        m.contains("rfc6455_loop_open_connections{loop=\"0\"} 2\n")
            && m.contains("rfc6455_loop_open_connections{loop=\"1\"} 2\n"),
        "two members on each loop: {m}"
    );
    for c in &mut clients {
        c.join("feed", None);
    }
    let readers: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            std::thread::spawn(move || {
                if i < 2 {
                    for n in 0..EACH {
                        c.send(json!({"type": "message", "room": "feed", "text": n.to_string()}));
                    }
                }
                // Each member gets every message but its own; the senders get acks
                // (no id: none) and the other sender's messages.
                let expected = if i < 2 { EACH } else { 2 * EACH };
                let mut got = Vec::new();
                while got.len() < expected as usize {
                    let v = c.recv();
                    if v["type"] == "message" {
                        got.push((
                            v["seq"].as_u64().unwrap(),
                            v["from"].clone(),
                            v["text"].clone(),
                        ));
                    }
                }
                got
            })
        })
        .collect();
    let views: Vec<_> = readers.into_iter().map(|r| r.join().unwrap()).collect();
    let seqs: Vec<u64> = views[2].iter().map(|m| m.0).collect();
    assert!(
        seqs == (1..=2 * EACH).collect::<Vec<_>>(),
        "no gap, no duplicate"
    );
    assert!(views[2] == views[3], "members on both loops see one order");
    for (sender, name) in [(0, "ann"), (1, "bob")] {
        let own: Vec<String> = views[2]
            .iter()
            .filter(|m| m.1 == name)
            .map(|m| m.2.as_str().unwrap().to_string())
            .collect();
        let sent: Vec<String> = (0..EACH).map(|n| n.to_string()).collect();
        assert!(own == sent, "{name}'s messages, all, in the order sent");
        // The other sender saw this one's messages with the same seq numbers.
        let mine: Vec<_> = views[2].iter().filter(|m| m.1 == name).cloned().collect();
        assert!(
            views[1 - sender] == mine,
            "{name}'s messages as the other sender saw them"
        );
    }
}

fn the_connection_limit_counts_every_loop(threads: &str) {
    let server = serve(threads, &["--max-connections", "2"]);
    let _ann = Client::hello(&server, "ann");
    let _bob = Client::hello(&server, "bob");
    let status = raw_upgrade_status(&server.addr, "/", "");
    assert!(status.starts_with("HTTP/1.1 503"), "{status}");
}
