//! A node drained under load (SIGTERM, `--drain-seconds`) with its clients coming
//! back on another node through the shared Redis: the close codes are 1012 and
//! spread over the window, `/healthz` says 503 meanwhile, and every client, resuming
//! with `since`, gets exactly what it missed while the other node's publisher went on.

mod support;

use rfc6455::Event;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::chat::Client;
use support::redis::{node, RedisServer};
use support::sse::request;

const CLIENTS: usize = 200;
const WINDOW: Duration = Duration::from_secs(2);

/// Says hello as `name` on `addr`, again while the name is still held by the node
/// that closed it (its release reaches Redis a moment later).
fn hello_again(addr: &str, name: &str) -> Client {
    for _ in 0..100 {
        let mut c = Client::connect(addr, "");
        c.send(json!({"type": "hello", "name": name, "id": 0}));
        let answer = c.recv();
        if answer["type"] == "ack" {
            return c;
        }
        assert_eq!(answer["code"], "name_taken", "{answer}");
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{name} is still taken");
}

fn seq(message: &Value) -> u64 {
    message["seq"].as_u64().unwrap()
}

#[test]
fn a_drained_node_s_clients_come_back_on_the_other_node_gradually_and_miss_nothing() {
    let redis = RedisServer::start();
    let window = format!("{}", WINDOW.as_secs_f64());
    let mut draining = node(&redis, &["--drain-seconds", &window]);
    let survivor = node(&redis, &[]);
    let mut publisher = Client::hello(&survivor.addr, "publisher");
    publisher.join("feed", None);
    let back = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let name = format!("c{i}");
            let mut c = Client::hello(&draining.addr, &name);
            c.join("feed", None);
            let (survivor, back) = (survivor.addr.clone(), back.clone());
            std::thread::spawn(move || {
                let mut seqs = Vec::new();
                let closed = loop {
                    match c.ws.read().unwrap() {
                        Event::Text(text) => {
                            let v: Value = serde_json::from_str(&text).unwrap();
                            if v["type"] == "message" {
                                seqs.push(seq(&v));
                            }
                        }
                        Event::Close(frame) => break frame.map(|f| f.code.0),
                        _ => {}
                    }
                };
                let closed_at = Instant::now();
                let mut c = hello_again(&survivor, &name);
                let missed = c.join("feed", seqs.last().copied());
                seqs.extend(missed.iter().map(seq));
                back.fetch_add(1, Ordering::SeqCst);
                loop {
                    let v = c.recv();
                    if v["type"] == "message" {
                        seqs.push(seq(&v));
                        if v["text"] == "end" {
                            break;
                        }
                    }
                }
                (closed, closed_at, seqs)
            })
        })
        .collect();

    let killed = Instant::now();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &draining.pid().to_string()])
        .status();
    let mut health = (0, 0);
    let mut sent = 0u64;
    // The publisher goes on until every client is back, checking the two nodes'
    // health on the way.
    while back.load(Ordering::SeqCst) < CLIENTS {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "not all came back"
        );
        publisher.send(json!({"type": "message", "room": "feed", "text": "tick", "id": sent}));
        publisher.recv_type("ack");
        sent += 1;
        if sent == 20 {
            health = (
                request(&draining.addr, "GET", "/healthz", "", b"").0,
                request(&survivor.addr, "GET", "/healthz", "", b"").0,
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    publisher.send(json!({"type": "message", "room": "feed", "text": "end", "id": sent}));
    publisher.recv_type("ack");
    assert_eq!(
        health,
        (503, 200),
        "/healthz of the draining node and the survivor"
    );

    let mut closed_at = Vec::new();
    for client in clients {
        let (code, at, seqs) = client.join().unwrap();
        assert_eq!(code, Some(1012), "Service Restart");
        closed_at.push(at - killed);
        let first = seqs[0];
        assert_eq!(
            seqs,
            (first..=sent + 1).collect::<Vec<_>>(),
            "every message from its first on, once, in order"
        );
    }
    closed_at.sort();
    let spread = closed_at[CLIENTS * 9 / 10] - closed_at[CLIENTS / 10];
    assert!(
        spread >= WINDOW * 2 / 5,
        "the middle 80% of the closes spread over {spread:?} of {WINDOW:?}"
    );
    assert!(draining.terminate(), "the drained node exits with success");
    eprintln!(
        "drain: {CLIENTS} clients closed with 1012 between {:?} and {:?}; {sent} messages meanwhile",
        closed_at[0],
        closed_at[CLIENTS - 1]
    );
}
