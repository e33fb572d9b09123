//! The rooms server's budgets and defences (`rfc6455 serve`), attacked as a client
//! would: replays, non-reading members, event streams, HTTP floods, rooms per member,
//! typing storms, impersonation, CORS, tokens in logs, invisible names. Each test
//! asserts the bound the "Limits and defences" table of docs/limits.md states.

mod support;

use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;
use support::chat::Client;
use support::sse::{request, Stream, ACCEPT};
use support::ServerProcess;

const BIN: &str = env!("CARGO_BIN_EXE_rfc6455");

fn serve(args: &[&str]) -> ServerProcess {
    let mut all = vec!["serve", "--threads", "1"];
    all.extend_from_slice(args);
    ServerProcess::start(BIN, &all)
}

/// Sends `text` into `room` and waits for its ack; the ack.
fn say(client: &mut Client, room: &str, text: &str, id: u64) -> Value {
    client.send(json!({"type": "message", "room": room, "text": text, "id": id}));
    loop {
        let v = client.recv();
        if v["id"] == id {
            return v;
        }
    }
}

/// A join's ack and the messages replayed before its presence event.
fn join(client: &mut Client, room: &str, since: Option<u64>) -> (Value, Vec<Value>) {
    let mut req = json!({"type": "join", "room": room, "id": "j"});
    if let Some(since) = since {
        req["since"] = json!(since);
    }
    client.send(req);
    let ack = client.recv();
    let mut replayed = Vec::new();
    loop {
        let v = client.recv();
        if v["type"] == "presence" {
            return (ack, replayed);
        }
        replayed.push(v);
    }
}

#[test]
fn a_replay_is_the_newest_that_fit_and_older_ones_page_back() {
    let server = serve(&["--max-rate", "0", "--max-replay", "20000"]);
    let mut ann = Client::hello(&server.addr, "ann");
    join(&mut ann, "r", None);
    let text = "a".repeat(4000);
    for id in 1..=10 {
        assert_eq!(say(&mut ann, "r", &text, id)["seq"], id);
    }
    let mut bob = Client::hello(&server.addr, "bob");
    let (ack, replayed) = join(&mut bob, "r", None);
    let seqs = |messages: &[Value]| -> Vec<u64> {
        messages
            .iter()
            .map(|m| m["seq"].as_u64().unwrap())
            .collect()
    };
    // The newest 4 (4 × ~4.1 KB within 20,000 bytes), running on into the live ones.
    assert_eq!(seqs(&replayed), [7, 8, 9, 10]);
    assert_eq!((&ack["more"], &ack["before"]), (&json!(true), &json!(7)));
    assert_eq!(say(&mut ann, "r", "live", 11)["seq"], 11);
    assert_eq!(bob.recv_type("message")["seq"], 11, "no gap, no duplicate");
    // Paging back: one `history` message per page, within the budget too.
    let mut all = seqs(&replayed);
    let mut before = 7;
    loop {
        bob.send(json!({"type": "history", "room": "r", "before": before, "id": "h"}));
        let page = bob.recv_type("history");
        assert!(
            page.to_string().len() <= 20_500,
            "{} bytes",
            page.to_string().len()
        );
        let got = seqs(page["messages"].as_array().unwrap());
        before = got[0];
        all.splice(0..0, got);
        if page["more"] == false {
            break;
        }
    }
    assert_eq!(
        all,
        (1..=10).collect::<Vec<u64>>(),
        "every message once, in order"
    );
    // A repeat join without `since` replays nothing.
    bob.send(json!({"type": "join", "room": "r", "id": "again"}));
    let mut again = bob.recv();
    assert!(again.as_object_mut().unwrap().remove("epoch").is_some());
    assert_eq!(
        again,
        json!({"type": "ack", "id": "again", "room": "r", "more": false})
    );
    bob.assert_nothing_pending();
}

#[test]
fn a_text_is_limited_in_the_bytes_it_is_stored_as() {
    let server = serve(&[]);
    let mut ann = Client::hello(&server.addr, "ann");
    join(&mut ann, "r", None);
    // 4,096 characters, but 24,576 bytes stored (`\u0001` each).
    let refused = say(&mut ann, "r", &"\u{1}".repeat(4096), 1);
    assert_eq!(refused["code"], "too_long", "{refused}");
    let fits = say(&mut ann, "r", &"\u{1}".repeat(682), 2);
    assert_eq!(fits["type"], "ack", "{fits}");
}

/// Bytes the kernel holds for TCP sockets (`mem` pages of /proc/net/sockstat).
fn tcp_kernel_bytes() -> u64 {
    let sockstat = std::fs::read_to_string("/proc/net/sockstat").unwrap();
    let tcp = sockstat.lines().find(|l| l.starts_with("TCP:")).unwrap();
    let pages: u64 = tcp
        .split_whitespace()
        .skip_while(|w| *w != "mem")
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    pages * 4096
}

#[test]
fn members_that_never_read_cost_under_a_megabyte_each() {
    let server = serve(&["--max-rate", "0", "--history", "1000"]);
    let mut ann = Client::hello(&server.addr, "ann");
    join(&mut ann, "full", None);
    // 1,000 messages of the largest stored size: 4 MB of history.
    let text = format!("{}aaaa", "\u{1}".repeat(682));
    for id in 1..=1000 {
        assert_eq!(say(&mut ann, "full", &text, id)["type"], "ack");
    }
    let (rss, kernel) = (server.rss_kib() * 1024, tcp_kernel_bytes());
    let members: Vec<Client> = (0..100)
        .map(|i| {
            let mut client = Client::hello(&server.addr, &format!("m{i}"));
            // Two joins, never reading: the second replays nothing.
            for _ in 0..2 {
                client.send(json!({"type": "join", "room": "full"}));
            }
            client
        })
        .collect();
    std::thread::sleep(Duration::from_secs(2));
    let grown =
        (server.rss_kib() * 1024).saturating_sub(rss) + tcp_kernel_bytes().saturating_sub(kernel);
    let per_member = grown / members.len() as u64;
    eprintln!("non-reading members: {per_member} bytes each (process and kernel)");
    assert!(
        per_member < 1 << 20,
        "{per_member} bytes per non-reading member"
    );
}

#[test]
fn event_streams_are_capped_and_leave_room_for_websockets() {
    let server = serve(&["--max-connections", "300", "--http-rate", "0"]);
    let mut streams = Vec::new();
    let mut refused = 0;
    for _ in 0..300 {
        let (stream, head) = Stream::open(&server.addr, "/rooms/r/events", ACCEPT);
        match &head[9..12] {
            "200" => streams.push(stream),
            "503" => refused += 1,
            other => panic!("status {other}"),
        }
    }
    assert_eq!(
        (streams.len(), refused),
        (150, 150),
        "half of --max-connections"
    );
    // A WebSocket still gets its 101.
    let mut ann = Client::hello(&server.addr, "ann");
    join(&mut ann, "r", None);
}

fn post(addr: &str, room: &str, from: &str, text: &str, headers: &str) -> (u16, String, String) {
    let body = json!({"from": from, "text": text}).to_string();
    let headers = format!("Content-Type: application/json\r\n{headers}");
    request(
        addr,
        "POST",
        &format!("/rooms/{room}/messages"),
        &headers,
        body.as_bytes(),
    )
}

#[test]
fn posts_and_stream_opens_from_one_address_are_rate_limited() {
    let server = serve(&["--http-rate", "5"]);
    let statuses: Vec<(u16, String)> = (0..30)
        .map(|i| {
            let (status, head, _) = post(&server.addr, "r", "ci", &format!("{i}"), "");
            (status, head)
        })
        .collect();
    let accepted = statuses.iter().filter(|(s, _)| *s == 202).count();
    assert!(
        (10..=12).contains(&accepted),
        "{accepted} accepted: a burst of 10"
    );
    let (_, limited) = statuses.iter().find(|(s, _)| *s == 429).expect("a 429");
    assert!(limited.contains("Retry-After: 1"), "{limited}");
    let (_, head) = Stream::open(&server.addr, "/rooms/r/events", ACCEPT);
    assert!(head.starts_with("HTTP/1.1 429"), "{head}");
}

/// A series' value in the /metrics text.
fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in {text}"))
        .parse()
        .unwrap()
}

#[test]
fn history_in_memory_stays_within_its_budget() {
    let server = serve(&["--http-rate", "0", "--history-budget", "200000"]);
    let text = "x".repeat(1000);
    for room in 0..400 {
        assert_eq!(
            post(&server.addr, &format!("r{room}"), "ci", &text, "").0,
            202
        );
    }
    let (_, _, metrics) = request(&server.addr, "GET", "/metrics", "", b"");
    let held = metric(&metrics, "rfc6455_history_bytes");
    assert!(held <= 200_000, "{held} bytes of history held");
    assert!(metric(&metrics, "rfc6455_history_evictions_total") > 0);
    // The most recent room kept its message.
    let (mut stream, _) = Stream::open(&server.addr, "/rooms/r399/events", ACCEPT);
    assert_eq!(support::sse::id_of(&stream.message_event()), 1);
}

#[test]
fn a_member_is_stopped_at_its_rooms_cap() {
    let server = serve(&["--max-rate", "0"]);
    let mut ann = Client::hello(&server.addr, "ann");
    let mut acks = 0;
    let mut refusals = 0;
    for room in 0..150 {
        ann.send(json!({"type": "join", "room": format!("r{room}"), "id": room}));
        loop {
            let v = ann.recv();
            match v["type"].as_str() {
                Some("ack") => acks += 1,
                Some("error") => {
                    assert_eq!(v["code"], "too_many_rooms", "{v}");
                    refusals += 1;
                }
                _ => continue,
            }
            break;
        }
    }
    assert_eq!((acks, refusals), (100, 50));
}

#[test]
fn typing_is_passed_on_at_most_once_per_interval() {
    let server = serve(&["--max-rate", "0"]);
    let mut ann = Client::hello(&server.addr, "ann");
    let mut bob = Client::hello(&server.addr, "bob");
    join(&mut ann, "r", None);
    join(&mut bob, "r", None);
    ann.recv_type("joined");
    for id in 0..10 {
        ann.send(json!({"type": "typing", "room": "r", "id": id}));
        let ack = ann.recv_type("ack");
        assert_eq!(ack["passed_on"], id == 0, "{ack}");
    }
    assert_eq!(bob.recv_type("typing")["user"], "ann");
    bob.assert_nothing_pending();
}

#[test]
fn an_http_publisher_cannot_speak_as_a_member() {
    let server = serve(&[]);
    let mut ann = Client::hello(&server.addr, "ann");
    join(&mut ann, "r", None);
    let (status, _, body) = post(&server.addr, "r", "ann", "I am ann", "");
    assert_eq!(status, 409, "{body}");
    assert_eq!(post(&server.addr, "r", "ci", "build green", "").0, 202);
    let message = ann.recv_type("message");
    assert_eq!(
        (&message["from"], &message["via"]),
        (&json!("ci"), &json!("http"))
    );
}

#[test]
fn browsers_may_read_answers_only_for_listed_origins() {
    let server = serve(&[]);
    let evil = "Origin: https://evil.example\r\n";
    let (status, head, _) = post(&server.addr, "r", "ci", "hi", evil);
    assert_eq!(status, 202);
    assert!(!head.contains("Access-Control-Allow-Origin"), "{head}");
    let (status, _, _) = request(&server.addr, "OPTIONS", "/rooms/r/messages", evil, b"");
    assert_eq!(status, 403, "no preflight without --origin");

    let server = serve(&["--origin", "https://ok.example"]);
    let ok = "Origin: https://ok.example\r\n";
    let (status, head, _) = post(&server.addr, "r", "ci", "hi", ok);
    assert_eq!(status, 202);
    assert!(
        head.contains("Access-Control-Allow-Origin: https://ok.example"),
        "{head}"
    );
}

#[test]
fn the_token_guards_metrics_is_compared_in_any_case_and_never_logged() {
    let mut server = serve(&["--token", "s3cret-t0ken", "-v", "--trace"]);
    let (status, _, _) = request(&server.addr, "GET", "/metrics", "", b"");
    assert_eq!(status, 401);
    let bearer = "Authorization: bearer s3cret-t0ken\r\n";
    let (status, _, _) = request(&server.addr, "GET", "/metrics", bearer, b"");
    assert_eq!(
        status, 200,
        "the scheme is case-insensitive (RFC 9110 §11.1)"
    );
    let (status, _, _) = request(&server.addr, "GET", "/metrics?token=s3cret-t0ken", "", b"");
    assert_eq!(status, 200);
    let mut ann = Client::connect(&server.addr, "?token=s3cret-t0ken");
    ann.send(json!({"type": "hello", "name": "ann", "id": 1}));
    assert_eq!(ann.recv()["type"], "ack");
    let mut raw = TcpStream::connect(&server.addr).unwrap();
    write!(
        raw,
        "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Authorization: Bearer s3cret-t0ken\r\nCookie: token=s3cret-t0ken\r\n\r\n"
    )
    .unwrap();
    let mut head = [0u8; 12];
    raw.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 101");
    drop((ann, raw));
    std::thread::sleep(Duration::from_millis(200));
    let log = server.stop();
    assert!(log.contains("token=<redacted>"), "{log}");
    assert!(log.contains("Authorization: <redacted>"), "{log}");
    assert!(
        !log.contains("s3cret"),
        "the token is in a log line:\n{log}"
    );
}

#[test]
fn an_empty_token_is_refused_on_the_command_line() {
    let output = std::process::Command::new(BIN)
        .args(["serve", "--token", "", "--addr", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("empty token"), "{stderr}");
}

#[test]
fn invisible_characters_are_refused_in_names_and_rooms() {
    let server = serve(&[]);
    let mut client = Client::connect(&server.addr, "");
    client.send(json!({"type": "hello", "name": "ann\u{200B}", "id": 1}));
    assert_eq!(client.recv()["code"], "bad_field");
    client.send(json!({"type": "hello", "name": "ann", "id": 2}));
    assert_eq!(client.recv()["type"], "ack");
    client.send(json!({"type": "join", "room": "a\u{202E}b", "id": 3}));
    assert_eq!(client.recv()["code"], "bad_field");
    // Names that are also JavaScript object keys are plain rooms.
    let (ack, _) = join(&mut client, "constructor", None);
    assert_eq!(ack["room"], "constructor");
}

#[test]
fn a_signed_content_length_is_refused() {
    let server = serve(&[]);
    let body = json!({"from": "ci", "text": "hi"}).to_string();
    let mut raw = TcpStream::connect(&server.addr).unwrap();
    write!(
        raw,
        "POST /rooms/r/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: +{}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    raw.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 400"), "{response}");
}

/// A TCP proxy in front of Redis that holds each answer `delay` ms before passing it
/// on (changeable while it runs): a slow Redis, as a congested network or a busy
/// primary makes it.
struct SlowProxy {
    port: u16,
    delay_ms: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl SlowProxy {
    fn start(redis_port: u16) -> SlowProxy {
        use std::sync::atomic::{AtomicU64, Ordering};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let delay_ms = std::sync::Arc::new(AtomicU64::new(0));
        let delay = delay_ms.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(mut client) = client else { return };
                let Ok(mut redis) = TcpStream::connect(("127.0.0.1", redis_port)) else {
                    return;
                };
                let (mut client_in, mut redis_out) =
                    (client.try_clone().unwrap(), redis.try_clone().unwrap());
                std::thread::spawn(move || std::io::copy(&mut client_in, &mut redis_out));
                let delay = delay.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 65536];
                    while let Ok(n @ 1..) = redis.read(&mut buf) {
                        std::thread::sleep(Duration::from_millis(delay.load(Ordering::Relaxed)));
                        if client.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        SlowProxy { port, delay_ms }
    }

    fn set_delay(&self, ms: u64) {
        self.delay_ms
            .store(ms, std::sync::atomic::Ordering::Relaxed);
    }
}

/// GET `path` several times: the statuses and bodies, and the median time taken.
fn timed_gets(addr: &str, path: &str) -> (Vec<(u16, String)>, Duration) {
    let mut answers = Vec::new();
    let mut times = Vec::new();
    for _ in 0..5 {
        let start = std::time::Instant::now();
        let (status, _, body) = request(addr, "GET", path, "", b"");
        times.push(start.elapsed());
        answers.push((status, body));
        std::thread::sleep(Duration::from_millis(50));
    }
    times.sort();
    (answers, times[times.len() / 2])
}

/// Waits up to 10 s for `/healthz` to answer `status`.
fn wait_health(addr: &str, status: u16) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while request(addr, "GET", "/healthz", "", b"").0 != status {
        assert!(
            std::time::Instant::now() < deadline,
            "/healthz never said {status}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_slow_redis_does_not_freeze_the_node() {
    let redis = support::redis::RedisServer::start();
    let proxy = SlowProxy::start(redis.port);
    let url = format!("redis://127.0.0.1:{}/", proxy.port);
    let server = ServerProcess::start(BIN, &["serve", "--threads", "2", "--redis", &url]);
    wait_health(&server.addr, 200);
    let mut ann = Client::hello(&server.addr, "ann");
    join(&mut ann, "r", None);
    assert_eq!(say(&mut ann, "r", "fast", 1)["type"], "ack");

    proxy.set_delay(200);
    wait_health(&server.addr, 503);
    let (health, typical) = timed_gets(&server.addr, "/healthz");
    for (status, body) in &health {
        assert_eq!(*status, 503);
        assert!(body.contains("redis: slow"), "{body}");
    }
    assert!(
        typical < Duration::from_millis(50),
        "/healthz took {typical:?}"
    );
    let (page, typical) = timed_gets(&server.addr, "/");
    assert!(page.iter().all(|(status, _)| *status == 200));
    assert!(
        typical < Duration::from_millis(50),
        "the page took {typical:?}"
    );
    // A member's request is answered at once: `unavailable`, not a wait.
    let start = std::time::Instant::now();
    let refused = say(&mut ann, "r", "slow", 2);
    assert_eq!(refused["code"], "unavailable", "{refused}");
    assert!(
        start.elapsed() < Duration::from_millis(100),
        "{:?}",
        start.elapsed()
    );

    proxy.set_delay(0);
    wait_health(&server.addr, 200);
    assert_eq!(say(&mut ann, "r", "fast again", 3)["type"], "ack");
    // A room's keys expire a week after its last message.
    for key in ["seq", "log", "pos"] {
        let ttl = redis.command(&format!("TTL rfc6455:{{r:r}}:{key}"));
        let seconds: i64 = ttl.trim_start_matches(':').parse().unwrap();
        assert!((600_000..=604_800).contains(&seconds), "{key}: TTL {ttl}");
    }
    // A node renews them with a room's first message and then at most once an hour,
    // not with every message (four Redis commands of ten).
    assert_eq!(redis.command("EXPIRE rfc6455:{r:r}:seq 1000"), ":1");
    assert_eq!(say(&mut ann, "r", "not renewed", 4)["type"], "ack");
    let ttl = redis.command("TTL rfc6455:{r:r}:seq");
    let seconds: i64 = ttl.trim_start_matches(':').parse().unwrap();
    assert!((1..=1000).contains(&seconds), "TTL {ttl}");
}

#[test]
fn a_stream_replays_the_newest_that_fit_and_says_what_it_left_out() {
    let server = serve(&["--http-rate", "0", "--max-replay", "20000"]);
    for i in 1..=10 {
        assert_eq!(
            post(&server.addr, "s", "ci", &format!("{i:04000}"), "").0,
            202
        );
    }
    let (mut stream, head) = Stream::open(&server.addr, "/rooms/s/events", ACCEPT);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(stream.event(), "retry: 2000\n\n");
    let more = stream.event();
    assert!(more.starts_with("event: more\ndata: "), "{more}");
    assert!(more.contains(r#""before":7"#), "{more}");
    let ids: Vec<u64> = (0..4)
        .map(|_| support::sse::id_of(&stream.message_event()))
        .collect();
    assert_eq!(ids, [7, 8, 9, 10]);
    assert_eq!(post(&server.addr, "s", "ci", "live", "").0, 202);
    assert_eq!(support::sse::id_of(&stream.message_event()), 11);
}
