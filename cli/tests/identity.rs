//! Signed identity on the rooms server (`rfc6455 serve --jwt-...`): every row of the
//! verification rules on the upgrade, the places a token may come from on the
//! upgrade, the event stream and POST, permissions by room, refresh and expiry, and
//! users with several connections. The tokens are made by PyJWT, not by our code.

mod support;

use serde_json::{json, Value};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::chat::Client;
use support::sse;
use support::tokens::{mint, Tokens, SECRET};
use support::ServerProcess;

fn serve(args: &[&str]) -> ServerProcess {
    let mut all = vec!["serve", "--threads", "2"];
    all.extend_from_slice(args);
    ServerProcess::start(env!("CARGO_BIN_EXE_rfc6455"), &all)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn bearer(token: &str) -> String {
    format!("Authorization: Bearer {token}\r\n")
}

/// Connects with `token` in the Authorization header; panics on a refusal.
fn signed(addr: &str, token: &str) -> Client {
    Client::upgrade(addr, "/", &bearer(token))
        .unwrap_or_else(|(status, _, body)| panic!("refused {status}: {body}"))
}

/// The status and body of an upgrade refused with `headers`.
fn refused(addr: &str, path: &str, headers: &str) -> (u16, String, String) {
    match Client::upgrade(addr, path, headers) {
        Ok(_) => panic!("{path} {headers:?} was let in"),
        Err(refusal) => refusal,
    }
}

/// `rfc6455_auth_failures_total{reason="R"}` of the server's `/metrics`.
fn auth_failures(addr: &str, reason: &str) -> u64 {
    let (status, _, body) = sse::request(addr, "GET", "/metrics", "", b"");
    assert_eq!(status, 200);
    let series = format!("rfc6455_auth_failures_total{{reason=\"{reason}\"}} ");
    body.lines()
        .find_map(|l| l.strip_prefix(&series))
        .unwrap_or_else(|| panic!("no {series} in {body}"))
        .parse()
        .unwrap()
}

#[test]
fn every_row_of_the_verification_rules_on_the_upgrade() {
    let tokens = Tokens::make("rows");
    let (rsa, ec) = (tokens.pem("rsa_public"), tokens.pem("ec_public"));
    let server = serve(&[
        "--jwt-secret",
        SECRET,
        "--jwt-public-key",
        &rsa,
        "--jwt-public-key",
        &ec,
    ]);
    let addr = &server.addr;
    for case in ["hs256", "rs256", "es256", "expired_within_leeway"] {
        let mut ada = signed(addr, tokens.get(case));
        // The user comes from the token: a name in hello changes nothing.
        ada.send(json!({"type": "hello", "name": "someone-else", "id": 1}));
        assert_eq!(
            ada.recv(),
            json!({"type": "ack", "id": 1, "name": "Ada", "user": "ada"}),
            "{case}"
        );
    }
    let rows = [
        ("expired", "expired", "the token has expired"),
        ("not_yet_valid", "not_yet_valid", "not valid yet"),
        ("issued_in_future", "not_yet_valid", "not valid yet"),
        ("no_exp", "missing_claim", "lacks a required claim"),
        ("no_sub", "missing_claim", "lacks a required claim"),
        ("wrong_secret", "bad_signature", "signature does not verify"),
        (
            "rs256_other_key",
            "bad_signature",
            "signature does not verify",
        ),
        ("alg_none", "malformed", "not a well-formed JWT"),
        ("confusion", "bad_signature", "signature does not verify"),
    ];
    for (case, _, says) in rows {
        let (status, head, body) = refused(addr, "/", &bearer(tokens.get(case)));
        assert_eq!(status, 401, "{case}");
        assert!(head.contains("WWW-Authenticate: Bearer"), "{case}: {head}");
        assert!(body.contains(says), "{case}: {body:?}");
        assert_eq!(body.lines().count(), 1, "one line: {body:?}");
    }
    let (status, _, body) = refused(addr, "/", "");
    assert_eq!(status, 401);
    assert!(body.contains("a signed token is required"), "{body}");
    assert_eq!(auth_failures(addr, "expired"), 1);
    assert_eq!(auth_failures(addr, "not_yet_valid"), 2);
    assert_eq!(auth_failures(addr, "missing_claim"), 2);
    assert_eq!(auth_failures(addr, "bad_signature"), 3);
    assert_eq!(auth_failures(addr, "malformed"), 1);
    assert_eq!(auth_failures(addr, "missing"), 1);
}

/// With only the RSA key configured, an HS256 token keyed with that key's PEM bytes
/// is refused for its algorithm: the algorithm is the key's, not the token's.
#[test]
fn algorithm_confusion_is_refused_with_only_the_public_key() {
    let tokens = Tokens::make("confusion");
    let server = serve(&["--jwt-public-key", &tokens.pem("rsa_public")]);
    let (status, _, body) = refused(&server.addr, "/", &bearer(tokens.get("confusion")));
    assert_eq!(status, 401);
    assert!(body.contains("algorithm"), "{body}");
    assert_eq!(auth_failures(&server.addr, "algorithm"), 1);
    // An HS256 token that would verify against a secret is refused too: no secret.
    let (status, _, _) = refused(&server.addr, "/", &bearer(tokens.get("hs256")));
    assert_eq!(status, 401);
    signed(&server.addr, tokens.get("rs256"));
}

#[test]
fn issuer_and_audience_are_required_when_configured() {
    let server = serve(&[
        "--jwt-secret",
        SECRET,
        "--jwt-issuer",
        "issuer.test",
        "--jwt-audience",
        "rooms",
    ]);
    let addr = &server.addr;
    let claims = |extra: Value| {
        let mut c = json!({"sub": "ada", "exp_in": 600});
        c.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        mint(c)
    };
    signed(addr, &claims(json!({"iss": "issuer.test", "aud": "rooms"})));
    let rows = [
        (json!({"iss": "elsewhere", "aud": "rooms"}), "issuer"),
        (json!({"iss": "issuer.test", "aud": "other"}), "audience"),
        (json!({"aud": "rooms"}), "missing_claim"),
        (json!({"iss": "issuer.test"}), "missing_claim"),
    ];
    for (extra, reason) in rows {
        let before = auth_failures(addr, reason);
        let (status, _, body) = refused(addr, "/", &bearer(&claims(extra.clone())));
        assert_eq!(status, 401, "{extra}: {body}");
        assert_eq!(auth_failures(addr, reason), before + 1, "{extra}: {reason}");
    }
}

/// A token in the header, the query string or the cookie, on the upgrade, the event
/// stream and POST; none: 401 on each.
#[test]
fn a_token_comes_in_the_header_the_query_or_the_cookie_everywhere() {
    let server = serve(&["--jwt-secret", SECRET, "--jwt-cookie", "rooms_token"]);
    let addr = &server.addr;
    let token = mint(json!({"sub": "ada", "exp_in": 600}));
    let places = [
        ("header", "", bearer(&token)),
        ("query", "?token=", String::new()),
        (
            "cookie",
            "",
            format!("Cookie: theme=dark; rooms_token={token}\r\n"),
        ),
    ];
    for (place, query, headers) in &places {
        let query = if query.is_empty() {
            String::new()
        } else {
            format!("{query}{token}")
        };
        // The upgrade.
        let mut client = Client::upgrade(addr, &format!("/{query}"), headers)
            .unwrap_or_else(|(s, _, b)| panic!("{place}: {s} {b}"));
        client.send(json!({"type": "hello", "id": 1}));
        assert_eq!(client.recv()["user"], "ada", "{place}");
        // The event stream.
        let path = format!("/rooms/lobby/events{query}");
        let (_stream, head) = sse::Stream::open(addr, &path, &format!("{}{headers}", sse::ACCEPT));
        assert!(head.starts_with("HTTP/1.1 200"), "{place}: {head}");
        // POST: the sender is the token's user.
        let body = json!({"text": format!("via {place}")}).to_string();
        let headers = format!("Content-Type: application/json\r\n{headers}");
        let path = format!("/rooms/lobby/messages{query}");
        let (status, _, answer) = sse::request(addr, "POST", &path, &headers, body.as_bytes());
        assert_eq!(status, 202, "{place}: {answer}");
    }
    // A cookie of another name is no token.
    let other = format!("Cookie: token={token}\r\n");
    assert_eq!(refused(addr, "/", &other).0, 401);
    let (_, head) = sse::Stream::open(addr, "/rooms/lobby/events", sse::ACCEPT);
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    let body = br#"{"from":"x","text":"hi"}"#;
    let json_type = "Content-Type: application/json\r\n";
    let (status, _, answer) = sse::request(addr, "POST", "/rooms/lobby/messages", json_type, body);
    assert_eq!(status, 401, "{answer}");
    assert_eq!(auth_failures(addr, "missing"), 3);
    // The posts came from the token's user.
    let mut reader = signed(addr, &token);
    let replayed = reader.join("lobby", None);
    assert_eq!(replayed.len(), 3);
    assert!(replayed.iter().all(|m| m["from"] == "ada"), "{replayed:?}");
}

/// A token in the query string is not in the log (with `--trace` and `-vv`), not in
/// `/metrics`.
#[test]
fn a_query_token_stays_out_of_logs_trace_and_metrics() {
    let mut server = serve(&["--jwt-secret", SECRET, "--trace", "-vv"]);
    let addr = server.addr.clone();
    let token = mint(json!({"sub": "ada", "exp_in": 600}));
    let bad = format!("{}x", &token[..token.len() - 1]);
    let mut ada = Client::upgrade(&addr, &format!("/?token={token}"), "").unwrap();
    ada.join("lobby", None);
    let _ = refused(&addr, &format!("/?token={bad}"), "");
    let (_, head) = sse::Stream::open(
        &addr,
        &format!("/rooms/lobby/events?token={token}"),
        sse::ACCEPT,
    );
    assert!(head.starts_with("HTTP/1.1 200"));
    let (_, _, metrics) = sse::request(&addr, "GET", "/metrics", "", b"");
    drop(ada);
    let log = server.stop();
    assert!(
        log.contains("token=<redacted>"),
        "the requests were logged: {log}"
    );
    // The signature part alone is the secret-bearing bit: it must appear nowhere.
    for secret in [&token, &bad] {
        let signature = secret.rsplit('.').next().unwrap();
        assert!(!log.contains(signature), "a token in the log");
        assert!(!metrics.contains(signature), "a token in /metrics");
    }
}

#[test]
fn rooms_and_watch_claims_decide_what_a_user_may_join_and_publish() {
    let server = serve(&["--jwt-secret", SECRET]);
    let addr = &server.addr;
    let token = mint(json!({"sub": "ada", "exp_in": 600,
        "rooms": ["lobby", "team-*"], "watch": ["news"]}));
    let mut ada = signed(addr, &token);
    for room in ["lobby", "team-a", "news"] {
        ada.join(room, None);
    }
    ada.send(json!({"type": "join", "room": "admin", "id": 2}));
    let error = ada.recv();
    assert_eq!(
        (error["code"].as_str(), error["id"].as_u64()),
        (Some("forbidden"), Some(2))
    );
    ada.send(json!({"type": "message", "room": "news", "text": "hi", "id": 3}));
    assert_eq!(ada.recv()["code"], "forbidden");
    ada.send(json!({"type": "typing", "room": "news", "id": 4}));
    assert_eq!(ada.recv()["code"], "forbidden");
    ada.send(json!({"type": "message", "room": "team-a", "text": "hi", "id": 5}));
    assert_eq!(ada.recv()["seq"], 1);
    // Over HTTP: a stream of a watched room, none of another; a POST to a room of
    // `rooms` only.
    let auth = format!("{}{}", sse::ACCEPT, bearer(&token));
    for (room, status) in [("news", "200"), ("team-b", "200"), ("admin", "403")] {
        let (_, head) = sse::Stream::open(addr, &format!("/rooms/{room}/events"), &auth);
        assert!(
            head.starts_with(&format!("HTTP/1.1 {status}")),
            "{room}: {head}"
        );
    }
    let post = format!("Content-Type: application/json\r\n{}", bearer(&token));
    for (room, status) in [("news", 403), ("admin", 403), ("team-b", 202)] {
        let path = format!("/rooms/{room}/messages");
        let (got, _, body) = sse::request(addr, "POST", &path, &post, br#"{"text":"x"}"#);
        assert_eq!(got, status, "{room}: {body}");
    }
}

/// `expiring` comes once, `--expiring-notice` before `exp`; a refresh keeps the
/// connection past the old `exp`; without one, close 4001 at `exp`.
#[test]
fn a_refresh_keeps_the_connection_and_expiry_closes_it_with_4001() {
    let server = serve(&["--jwt-secret", SECRET, "--expiring-notice", "2"]);
    let addr = &server.addr;
    let first_exp = now() + 3;
    let token = mint(json!({"sub": "ada", "exp": first_exp}));
    let mut ada = signed(addr, &token);
    let expiring = ada.recv_type("expiring");
    let left = expiring["in"].as_u64().unwrap();
    assert!((1..=2).contains(&left), "{expiring}");
    // Refused refreshes leave the old token in force.
    let bob = mint(json!({"sub": "bob", "exp_in": 600}));
    ada.send(json!({"type": "refresh", "token": bob, "id": 1}));
    assert_eq!(ada.recv()["code"], "unauthorized");
    let stale = mint(json!({"sub": "ada", "exp_in": -60}));
    ada.send(json!({"type": "refresh", "token": stale, "id": 2}));
    assert_eq!(ada.recv()["code"], "unauthorized");
    let second_exp = first_exp + 4;
    let fresh = mint(json!({"sub": "ada", "exp": second_exp}));
    ada.send(json!({"type": "refresh", "token": fresh, "id": 3}));
    assert_eq!(
        ada.recv(),
        json!({"type": "ack", "id": 3, "exp": second_exp})
    );
    // Past the first exp, the connection serves requests.
    while now() <= first_exp + 1 {
        std::thread::sleep(Duration::from_millis(200));
    }
    ada.send(json!({"type": "hello", "id": 4}));
    let mut next = ada.recv();
    if next["type"] == "expiring" {
        next = ada.recv();
    }
    assert_eq!(next["id"], 4, "{next}");
    // No refresh now: closed with 4001 at the second exp (within a second).
    let closed = loop {
        match ada.ws.read().unwrap() {
            rfc6455::Event::Close(frame) => break frame.expect("a close code"),
            rfc6455::Event::Text(text) => assert!(text.contains("expiring"), "{text}"),
            _ => {}
        }
    };
    let at = now();
    assert_eq!(closed.code, rfc6455::CloseCode(4001));
    assert_eq!(closed.reason, "token expired");
    assert!(
        (second_exp..=second_exp + 1).contains(&at),
        "closed at {at}, exp {second_exp}"
    );
}

#[test]
fn an_event_stream_ends_at_its_tokens_exp() {
    let server = serve(&["--jwt-secret", SECRET]);
    let exp = now() + 2;
    let token = mint(json!({"sub": "ada", "exp": exp}));
    let headers = format!("{}{}", sse::ACCEPT, bearer(&token));
    let (mut stream, head) = sse::Stream::open(&server.addr, "/rooms/r/events", &headers);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let started = Instant::now();
    let mut rest = Vec::new();
    use std::io::Read;
    let _ = stream.socket.read_to_end(&mut rest);
    let at = now();
    assert!(
        (exp..=exp + 1).contains(&at),
        "ended at {at}, exp {exp}, after {:?}",
        started.elapsed()
    );
}

/// Two connections of one user: presence names it once, `joined` when the first
/// joins, `left` when the last goes; a message reaches the user's other connection,
/// a direct message both.
#[test]
fn a_user_with_two_connections_is_one_member() {
    let server = serve(&["--jwt-secret", SECRET]);
    let addr = &server.addr;
    let (ada, bob) = (
        mint(json!({"sub": "ada", "exp_in": 600})),
        mint(json!({"sub": "bob", "exp_in": 600})),
    );
    let mut bob = signed(addr, &bob);
    bob.join("lobby", None);
    let mut tab1 = signed(addr, &ada);
    let (_, members) = tab1.join_with_presence("lobby", None);
    assert_eq!(members, ["ada", "bob"]);
    assert_eq!(
        bob.recv(),
        json!({"type": "joined", "room": "lobby", "user": "ada"})
    );
    let mut tab2 = signed(addr, &ada);
    let (_, members) = tab2.join_with_presence("lobby", None);
    assert_eq!(members, ["ada", "bob"], "the user once");
    tab1.send(json!({"type": "message", "room": "lobby", "text": "from tab 1", "id": 7}));
    assert_eq!(tab1.recv()["seq"], 1);
    for other in [&mut bob, &mut tab2] {
        let message = other.recv();
        assert_eq!(
            (message["text"].as_str(), message["from"].as_str()),
            (Some("from tab 1"), Some("ada"))
        );
    }
    tab1.assert_nothing_pending();
    bob.send(json!({"type": "direct", "to": "ada", "text": "psst", "id": 8}));
    assert_eq!(bob.recv()["delivered"], true);
    for tab in [&mut tab1, &mut tab2] {
        assert_eq!(tab.recv()["text"], "psst");
    }
    // No `joined` for the second tab, no `left` for the first one gone.
    drop(tab1);
    bob.assert_nothing_pending();
    drop(tab2);
    assert_eq!(
        bob.recv(),
        json!({"type": "left", "room": "lobby", "user": "ada"})
    );
}

#[test]
fn a_user_gets_429_beyond_its_connections_and_a_full_room_is_refused() {
    // The default --max-user-connections: 16.
    let server = serve(&["--jwt-secret", SECRET, "--room-capacity", "2"]);
    let addr = &server.addr;
    let token = |sub: &str| mint(json!({"sub": sub, "exp_in": 600}));
    let ada = token("ada");
    let mut tabs: Vec<Client> = (0..16).map(|_| signed(addr, &ada)).collect();
    let (status, _, body) = refused(addr, "/", &bearer(&ada));
    assert_eq!(status, 429, "the 17th: {body}");
    assert!(body.contains("16 connections"), "{body}");
    // Event streams of the user come and go: they are not counted, and their end
    // frees no WebSocket connection's place.
    for _ in 0..3 {
        let headers = format!("{}{}", sse::ACCEPT, bearer(&ada));
        let (stream, head) = sse::Stream::open(addr, "/rooms/r/events", &headers);
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        drop(stream);
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(refused(addr, "/", &bearer(&ada)).0, 429, "still 16");
    // One closed: its place is free again (once the server has seen it go).
    tabs.pop();
    let deadline = Instant::now() + Duration::from_secs(5);
    let again = loop {
        match Client::upgrade(addr, "/", &bearer(&ada)) {
            Ok(client) => break client,
            Err((429, _, _)) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err((status, _, body)) => panic!("{status}: {body}"),
        }
    };
    tabs.push(again);
    // Room capacity counts users: ada's second tab still fits, carol does not.
    let mut bob = signed(addr, &token("bob"));
    tabs[0].join("small", None);
    bob.join("small", None);
    tabs[1].join("small", None);
    let mut carol = signed(addr, &token("carol"));
    carol.send(json!({"type": "join", "room": "small", "id": 1}));
    assert_eq!(carol.recv()["code"], "room_full");
}

/// The Python example of docs/identity.md, run as printed (its port moved to the
/// test server's) against `serve` with the secret the page's command gives.
#[test]
fn the_documented_python_example_connects() {
    let page = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/identity.md"))
        .unwrap();
    let secret = page
        .split("--jwt-secret '")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .expect("the page's serve command");
    let script = page
        .split("```python\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("the page's Python block");
    assert!(
        script.contains(secret),
        "the script uses the command's secret"
    );
    let server = serve(&["--jwt-secret", secret]);
    let script = script.replace("127.0.0.1:9001", &server.addr);
    let out = std::process::Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = printed
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines[0],
        json!({"type": "ack", "id": 1, "name": "Ada", "user": "ada"})
    );
    assert_eq!(lines[1]["code"], "forbidden");
}

/// Headless Chromium signs in the way a site would (a login page that sets the token
/// cookie, PyJWT's), opens the chat page, and is the token's user on the WebSocket:
/// the cookie went with the upgrade. `--expiring-notice` before the token's `exp` the
/// page fetches a fresh one and sends `refresh`; the connection outlives the first
/// token (no `left`, no reconnect) and still chats.
#[test]
fn a_browser_with_its_token_in_a_cookie_joins_and_refreshes_it() {
    let chromium = support::browser::find().expect("chromium (tests/setup.sh installs it)");
    let server = serve(&["--jwt-secret", SECRET, "--expiring-notice", "4"]);
    let port = support::redis::free_port();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tokens/token_server.py");
    let login_seconds = 8;
    let mut signer = std::process::Command::new("python3")
        .args([
            script,
            &port.to_string(),
            SECRET,
            &login_seconds.to_string(),
        ])
        .spawn()
        .unwrap();
    let signed_in_until = now() + login_seconds;
    let mut watcher = signed(
        &server.addr,
        &mint(json!({"sub": "watcher", "exp_in": 600})),
    );
    watcher.join("web", None);
    let page = format!(
        "http://{}/?autotest=ignored&room=web&say=hello&expect=hi&token_url=http://127.0.0.1:{port}/token",
        server.addr
    );
    let encoded: String = page
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    // The signer may take a moment to listen: the browser retries nothing, so wait.
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the token server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let _page = support::browser::Page::open_top(
        &chromium,
        "identity-cookie",
        &format!("http://127.0.0.1:{port}/login?next={encoded}"),
    );
    let mut said = Vec::new();
    let mut until = |watcher: &mut Client, what: &dyn Fn(&Value) -> bool| -> Value {
        loop {
            let m = watcher.recv();
            said.push(m.clone());
            assert_ne!(m["type"], "left", "the page's connection dropped: {said:?}");
            if what(&m) {
                return m;
            }
        }
    };
    // The page's first words come from the token's user, not from its `autotest` name.
    let hello = until(&mut watcher, &|m| {
        m["type"] == "message" && m["text"] == "hello"
    });
    assert_eq!(hello["from"], "ada");
    watcher.send(json!({"type": "message", "room": "web", "text": "hi 1"}));
    until(&mut watcher, &|m| m["text"] == "saw:hi 1");
    let refreshed = until(&mut watcher, &|m| {
        m["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("refreshed:"))
    });
    assert_eq!(refreshed["text"], "refreshed:Ada");
    assert!(
        now() < signed_in_until,
        "refreshed before the first token's exp"
    );
    while now() <= signed_in_until + 1 {
        std::thread::sleep(Duration::from_millis(200));
    }
    // Past the first token's exp: the same connection (no `left` seen) still chats.
    watcher.send(json!({"type": "message", "room": "web", "text": "hi 2"}));
    until(&mut watcher, &|m| m["text"] == "saw:hi 2");
    let _ = signer.kill();
    let _ = signer.wait();
}

/// A user signed in on two `--redis` nodes is one member: presence lists it once,
/// `joined` when its first connection anywhere joins, `left` when its last one
/// anywhere leaves; a direct message reaches its connections on both nodes.
#[test]
fn a_user_on_two_redis_nodes_is_one_member() {
    let redis = support::redis::RedisServer::start();
    let url = redis.url();
    let nodes = [
        serve(&["--jwt-secret", SECRET, "--redis", &url]),
        serve(&["--jwt-secret", SECRET, "--redis", &url]),
    ];
    let (ada, bob) = (
        mint(json!({"sub": "ada", "exp_in": 600})),
        mint(json!({"sub": "bob", "exp_in": 600})),
    );
    let mut bob = signed(&nodes[0].addr, &bob);
    bob.join("lobby", None);
    let mut on_a = signed(&nodes[0].addr, &ada);
    let (_, members) = on_a.join_with_presence("lobby", None);
    assert_eq!(members, ["ada", "bob"]);
    assert_eq!(
        bob.recv(),
        json!({"type": "joined", "room": "lobby", "user": "ada"})
    );
    let mut on_b = signed(&nodes[1].addr, &ada);
    let (_, members) = on_b.join_with_presence("lobby", None);
    assert_eq!(members, ["ada", "bob"], "one member, two nodes");
    // A direct message reaches both of ada's connections.
    bob.send(json!({"type": "direct", "to": "ada", "text": "psst", "id": 8}));
    assert_eq!(bob.recv_type("ack")["delivered"], true);
    for tab in [&mut on_a, &mut on_b] {
        assert_eq!(tab.recv_type("direct")["text"], "psst");
    }
    // A message said on node B reaches ada on node A too.
    on_b.send(json!({"type": "message", "room": "lobby", "text": "from b", "id": 9}));
    assert_eq!(on_b.recv_type("ack")["seq"], 1);
    assert_eq!(on_a.recv_type("message")["text"], "from b");
    assert_eq!(bob.recv_type("message")["text"], "from b");
    // The first connection goes: no `left` (bob's probe answer comes first).
    drop(on_a);
    std::thread::sleep(Duration::from_millis(300));
    bob.send(json!({"type": "probe", "id": "probe"}));
    let next = bob.recv();
    assert_eq!(next["id"], "probe", "{next}");
    drop(on_b);
    assert_eq!(
        bob.recv(),
        json!({"type": "left", "room": "lobby", "user": "ada"})
    );
}

/// A browser sends its cookie whichever page asks: a token from the cookie counts
/// only for this site's own pages (the Origin is this server), so that another
/// site's page cannot open a connection as the user (cross-site WebSocket
/// hijacking). A token the page sends itself (header, query) is no ambient
/// credential: any Origin may carry one.
#[test]
fn a_cookie_token_counts_only_for_this_sites_pages() {
    let server = serve(&["--jwt-secret", SECRET]);
    let addr = &server.addr;
    let token = mint(json!({"sub": "ada", "exp_in": 600}));
    let cookie = format!("Cookie: token={token}\r\n");
    let evil = "Origin: http://evil.example\r\n";
    let (status, _, body) = refused(addr, "/", &format!("{cookie}{evil}"));
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("cookie"), "{body}");
    let (_, head) = sse::Stream::open(
        addr,
        "/rooms/r/events",
        &format!("{}{cookie}{evil}", sse::ACCEPT),
    );
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    // The site's own page (the Host the client sent is `addr`), and no browser at all.
    let own = format!("{cookie}Origin: http://{addr}\r\n");
    Client::upgrade(addr, "/", &own).unwrap_or_else(|(s, _, b)| panic!("{s} {b}"));
    Client::upgrade(addr, "/", &cookie).unwrap_or_else(|(s, _, b)| panic!("{s} {b}"));
    // A token the page sent itself.
    Client::upgrade(addr, "/", &format!("{}{evil}", bearer(&token)))
        .unwrap_or_else(|(s, _, b)| panic!("{s} {b}"));
}
