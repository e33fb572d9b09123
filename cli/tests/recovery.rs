//! The recovery contract of the rooms server: every room has an epoch, a catch-up
//! (`since` with the epoch, or `Last-Event-ID`) is told whether it lost anything
//! (`recovered`), history is bounded by count and age; and retries with an
//! idempotency key are delivered once. With one process and with two `--redis` nodes.

mod support;

use serde_json::{json, Value};
use std::time::Duration;
use support::chat::Client;
use support::redis::RedisServer;
use support::sse::{self, full_id, id_of, Stream, ACCEPT};
use support::ServerProcess;

fn serve(args: &[&str]) -> ServerProcess {
    let mut all = vec!["serve", "--threads", "2"];
    all.extend_from_slice(args);
    ServerProcess::start(env!("CARGO_BIN_EXE_rfc6455"), &all)
}

/// A join with `since` and `epoch`: (the ack, the seqs replayed).
fn catch_up(client: &mut Client, room: &str, since: u64, epoch: Option<&str>) -> (Value, Vec<u64>) {
    let mut req = json!({"type": "join", "room": room, "since": since, "id": "c"});
    if let Some(epoch) = epoch {
        req["epoch"] = json!(epoch);
    }
    client.send(req);
    // Live messages of the room, if the client is in it, may come first.
    let ack = client.recv_type("ack");
    assert_eq!(ack["id"], "c", "{ack}");
    let mut seqs = Vec::new();
    loop {
        let m = client.recv();
        match m["type"].as_str() {
            Some("presence") => return (ack, seqs),
            Some("message") => seqs.push(m["seq"].as_u64().unwrap()),
            _ => {}
        }
    }
}

/// The epoch of a plain join's ack.
fn join_epoch(client: &mut Client, room: &str) -> String {
    client.send(json!({"type": "join", "room": room, "id": "j"}));
    let ack = client.recv();
    client.recv_type("presence");
    ack["epoch"].as_str().expect("an epoch").to_string()
}

fn say(client: &mut Client, room: &str, text: &str) -> u64 {
    client.send(json!({"type": "message", "room": room, "text": text, "id": "m"}));
    client.recv_type("ack")["seq"].as_u64().unwrap()
}

#[test]
fn a_catch_up_is_told_whether_it_recovered_everything() {
    let server = serve(&["--history", "5"]);
    let addr = &server.addr;
    let mut bob = Client::hello(addr, "bob");
    let epoch = join_epoch(&mut bob, "r");
    assert_eq!(epoch.len(), 8);
    for i in 1..=3 {
        assert_eq!(say(&mut bob, "r", &format!("m{i}")), i);
    }
    let mut ann = Client::hello(addr, "ann");
    let (ack, seqs) = catch_up(&mut ann, "r", 1, Some(&epoch));
    assert_eq!(
        (ack["recovered"].as_bool(), ack["epoch"].as_str()),
        (Some(true), Some(epoch.as_str()))
    );
    assert_eq!(seqs, [2, 3]);
    // Another epoch, or none: the client cannot know its seq is this room's.
    let (ack, seqs) = catch_up(&mut ann, "r", 1, Some("0badc0de"));
    assert_eq!(ack["recovered"], false);
    assert_eq!(seqs, [1, 2, 3], "another numbering: all that is held");
    let (ack, seqs) = catch_up(&mut ann, "r", 1, None);
    assert_eq!(ack["recovered"], false);
    assert_eq!(seqs, [2, 3], "no epoch: taken as this one");
    // History rolled over: 6..10 held, 3..5 lost.
    for i in 4..=10 {
        say(&mut bob, "r", &format!("m{i}"));
    }
    let (ack, seqs) = catch_up(&mut ann, "r", 2, Some(&epoch));
    assert_eq!(ack["recovered"], false);
    assert_eq!(seqs, [6, 7, 8, 9, 10]);
    let (ack, seqs) = catch_up(&mut ann, "r", 5, Some(&epoch));
    assert_eq!(
        (ack["recovered"].as_bool(), seqs),
        (Some(true), vec![6, 7, 8, 9, 10])
    );
    let (ack, seqs) = catch_up(&mut ann, "r", 10, Some(&epoch));
    assert_eq!((ack["recovered"].as_bool(), seqs.len()), (Some(true), 0));
    // A seq the room never reached.
    assert_eq!(
        catch_up(&mut ann, "r", 99, Some(&epoch)).0["recovered"],
        false
    );
}

#[test]
fn history_older_than_its_ttl_is_not_replayed() {
    let server = serve(&["--history-ttl", "1"]);
    let mut bob = Client::hello(&server.addr, "bob");
    let epoch = join_epoch(&mut bob, "r");
    say(&mut bob, "r", "old 1");
    say(&mut bob, "r", "old 2");
    std::thread::sleep(Duration::from_millis(2100));
    say(&mut bob, "r", "fresh");
    let mut ann = Client::hello(&server.addr, "ann");
    let (ack, seqs) = catch_up(&mut ann, "r", 0, Some(&epoch));
    assert_eq!((ack["recovered"].as_bool(), seqs), (Some(false), vec![3]));
    let mut cat = Client::hello(&server.addr, "cat");
    let replayed = cat.join("r", None);
    assert_eq!(replayed.len(), 1, "{replayed:?}");
    assert_eq!(replayed[0]["text"], "fresh");
    // Over SSE the same.
    let headers = format!("Last-Event-ID: {epoch}:0\r\n");
    let recovery = sse_recovery(&server.addr, "r", &headers);
    assert_eq!(
        recovery,
        json!({"recovered": false, "epoch": epoch, "oldest": 3})
    );
}

/// The `recovery` event that opens a stream of `room` resumed with `headers`.
fn sse_recovery(addr: &str, room: &str, headers: &str) -> Value {
    let path = format!("/rooms/{room}/events");
    let (mut stream, _) = Stream::open(addr, &path, &format!("{ACCEPT}{headers}"));
    stream.event(); // retry
    let event = stream.event();
    let data = event
        .strip_prefix("event: recovery\ndata: ")
        .unwrap_or_else(|| panic!("recovery first: {event:?}"));
    serde_json::from_str(data.trim()).unwrap()
}

/// A node without Redis keeps rooms in memory: restarted, it has new epochs, and a
/// client resuming from before is told it lost its place.
#[test]
fn a_restarted_node_starts_new_epochs() {
    let mut server = serve(&[]);
    let mut bob = Client::hello(&server.addr, "bob");
    let epoch = join_epoch(&mut bob, "r");
    say(&mut bob, "r", "before");
    drop(bob);
    server.stop();
    let server = serve(&[]);
    let mut bob = Client::hello(&server.addr, "bob");
    let (ack, seqs) = catch_up(&mut bob, "r", 1, Some(&epoch));
    assert_eq!(ack["recovered"], false);
    assert_ne!(ack["epoch"], json!(epoch));
    assert!(seqs.is_empty());
    let headers = format!("Last-Event-ID: {epoch}:1\r\n");
    let recovery = sse_recovery(&server.addr, "r", &headers);
    assert_eq!(recovery["recovered"], false);
    assert_eq!(recovery["epoch"], ack["epoch"]);
}

/// An event stream resumed with an id of another epoch is told so first; its ids
/// carry the room's epoch.
#[test]
fn an_event_stream_is_told_when_it_cannot_resume() {
    let server = serve(&["--history", "3"]);
    let addr = &server.addr;
    for i in 1..=6 {
        sse::post(addr, "feed", "ci", &format!("m{i}"));
    }
    let (mut stream, _) = Stream::open(addr, "/rooms/feed/events", ACCEPT);
    stream.event(); // retry
    let first = stream.message_event();
    let epoch = full_id(&first).split(':').next().unwrap().to_string();
    assert_eq!(id_of(&first), 4);
    let recovery = |headers: &str| sse_recovery(addr, "feed", headers);
    let ok = recovery(&format!("Last-Event-ID: {epoch}:4\r\n"));
    assert_eq!(ok, json!({"recovered": true, "epoch": epoch, "oldest": 5}));
    let rolled = recovery(&format!("Last-Event-ID: {epoch}:1\r\n"));
    assert_eq!(
        rolled,
        json!({"recovered": false, "epoch": epoch, "oldest": 4})
    );
    let other = recovery("Last-Event-ID: 0badc0de:4\r\n");
    assert_eq!(other["recovered"], false);
    let bare = recovery("Last-Event-ID: 4\r\n");
    assert_eq!(bare["recovered"], false);
}

/// Two nodes on one Redis: the epoch is the cluster's; a Redis flushed during the
/// run makes a new one, a member who stays connected gets what comes after, and a
/// catch-up from before is told it lost its place.
#[test]
fn a_flushed_redis_changes_the_epoch() {
    let redis = RedisServer::start();
    let url = redis.url();
    let nodes = [serve(&["--redis", &url]), serve(&["--redis", &url])];
    let mut ann = Client::hello(&nodes[0].addr, "ann");
    let mut bob = Client::hello(&nodes[1].addr, "bob");
    let epoch = join_epoch(&mut ann, "r");
    assert_eq!(
        join_epoch(&mut bob, "r"),
        epoch,
        "one epoch for the cluster"
    );
    assert_eq!(say(&mut bob, "r", "one"), 1);
    assert_eq!(say(&mut bob, "r", "two"), 2);
    for seq in [1, 2] {
        assert_eq!(ann.recv_type("message")["seq"], seq);
    }
    assert_eq!(redis.command("FLUSHALL").trim(), "+OK");
    // The room numbers anew: ann, still connected, gets the new seq 1.
    assert_eq!(say(&mut bob, "r", "after"), 1);
    let after = ann.recv_type("message");
    assert_eq!(
        (after["text"].as_str(), after["seq"].as_u64()),
        (Some("after"), Some(1))
    );
    let mut cat = Client::hello(&nodes[0].addr, "cat");
    let (ack, seqs) = catch_up(&mut cat, "r", 2, Some(&epoch));
    assert_eq!(ack["recovered"], false);
    assert_ne!(ack["epoch"], json!(epoch));
    assert_eq!(seqs, [1], "the new numbering's messages, all of them");
    let (ack, seqs) = catch_up(&mut cat, "r", 0, ack["epoch"].as_str());
    assert_eq!((ack["recovered"].as_bool(), seqs), (Some(true), vec![1]));
}

fn post_keyed(addr: &str, room: &str, key: &str, text: &str) -> (u64, String) {
    let body = json!({"from": "ci", "text": text}).to_string();
    let headers = format!("Content-Type: application/json\r\nIdempotency-Key: {key}\r\n");
    let path = format!("/rooms/{room}/messages");
    let (status, head, body) = sse::request(addr, "POST", &path, &headers, body.as_bytes());
    assert_eq!(status, 202, "{head}{body}");
    let seq = serde_json::from_str::<Value>(&body).unwrap()["seq"]
        .as_u64()
        .unwrap();
    (seq, head)
}

/// A retried POST (same `Idempotency-Key`) and a WebSocket message retried after a
/// reconnect (same `idempotency_key`) are delivered once, answered with the first
/// seq; on one node and across two `--redis` nodes.
#[test]
fn retries_with_an_idempotency_key_are_delivered_once() {
    let redis = RedisServer::start();
    let url = redis.url();
    let single = serve(&[]);
    let pair = [serve(&["--redis", &url]), serve(&["--redis", &url])];
    for (a, b) in [(&single.addr, &single.addr), (&pair[0].addr, &pair[1].addr)] {
        let mut reader = Client::hello(a, "reader");
        reader.join("r", None);
        let (first, head) = post_keyed(a, "r", "deploy-42", "deployed");
        assert!(!head.contains("Idempotent-Replayed"), "{head}");
        let (again, head) = post_keyed(b, "r", "deploy-42", "deployed");
        assert_eq!(again, first);
        assert!(head.contains("Idempotent-Replayed: true"), "{head}");
        // Another room, another user: another message.
        let (other, _) = post_keyed(b, "s", "deploy-42", "deployed");
        assert_eq!(other, 1);
        // Over WebSocket: sent, the connection lost before the ack was read, sent
        // again on a new connection (another node) with the same key.
        let mut ann = Client::hello(a, "ann");
        ann.join("r", None);
        ann.send(json!({"type": "message", "room": "r", "text": "once", "idempotency_key": "k-1"}));
        drop(ann);
        let mut ann = Client::hello(b, "ann2");
        ann.join("r", None);
        let seq = first + 1;
        // Not the same user: a new message.
        let retry = json!({"type": "message", "room": "r", "text": "once", "idempotency_key": "k-1", "id": 1});
        ann.send(retry.clone());
        assert_eq!(ann.recv_type("ack")["seq"], seq + 1);
        drop(ann);
        let mut ann = Client::hello(b, "ann");
        ann.join("r", None);
        ann.send(retry);
        let ack = ann.recv_type("ack");
        assert_eq!(
            (ack["seq"].as_u64(), ack["duplicate"].as_bool()),
            (Some(seq), Some(true))
        );
        // The reader got each message once.
        let texts: Vec<(u64, String)> = (0..3)
            .map(|_| {
                let m = reader.recv_type("message");
                (
                    m["seq"].as_u64().unwrap(),
                    m["text"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(
            texts,
            [
                (first, "deployed".into()),
                (seq, "once".into()),
                (seq + 1, "once".into())
            ]
        );
        // Nothing more: the probe's answer comes before any other message.
        reader.send(json!({"type": "probe", "id": "probe"}));
        loop {
            let next = reader.recv();
            assert_ne!(next["type"], "message", "delivered twice: {next}");
            if next["id"] == "probe" {
                break;
            }
        }
        // A key that is not one.
        ann.send(
            json!({"type": "message", "room": "r", "text": "x", "idempotency_key": "", "id": 2}),
        );
        assert_eq!(ann.recv_type("error")["code"], "bad_field");
    }
}
