//! Several `rfc6455 serve --redis` nodes sharing rooms through a real `redis-server`
//! (tests/setup.sh installs it; each test starts its own on a free loopback port):
//! one order for every member on every node, presence and names across nodes, direct
//! messages between nodes, a node killed with SIGKILL, Redis killed and restarted, and
//! the nodes behind a real HAProxy, with headless Chromium pages going through it.

mod support;

use rfc6455::Event;
use serde_json::{json, Value};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::browser::{self, Page};
use support::chat::Client;
use support::redis::{eventually, free_port, metric, node, RedisCluster, RedisServer, Shared};
use support::sse::{full_id, id_of, post, request, Stream, ACCEPT};
use support::ServerProcess;

fn message(room: &str, text: &str, id: u64) -> Value {
    json!({"type": "message", "room": room, "text": text, "id": id})
}

/// `GET path` on a node: (status, body). `Connection: close`, or a balancer in
/// between would keep the connection open.
fn get(addr: &str, path: &str) -> (u16, String) {
    let (status, _, body) = request(addr, "GET", path, "Connection: close\r\n", b"");
    (status, body)
}

#[test]
fn three_nodes_share_one_room_in_one_order_with_presence_and_direct_messages() {
    three_nodes_share_one_room_in_one_order_with_presence_and_direct_messages_with(
        &RedisServer::start(),
    );
}

/// The same on a Redis Cluster of three primaries: sharded pub/sub, one slot a room.
#[test]
fn three_nodes_on_a_redis_cluster_share_one_room_in_one_order() {
    three_nodes_share_one_room_in_one_order_with_presence_and_direct_messages_with(
        &RedisCluster::start(3, 0),
    );
}

fn three_nodes_share_one_room_in_one_order_with_presence_and_direct_messages_with(
    redis: &dyn Shared,
) {
    let nodes: Vec<ServerProcess> = (0..3).map(|_| node(redis, &[])).collect();
    let names = ["ann", "bob", "cy"];
    let mut clients: Vec<Client> = nodes
        .iter()
        .zip(names)
        .map(|(n, name)| Client::hello(&n.addr, name))
        .collect();
    // Names are unique in the cluster, not only on a node.
    let mut other = Client::connect(&nodes[2].addr, "");
    other.send(json!({"type": "hello", "name": "ann", "id": 9}));
    assert_eq!(other.recv()["code"], "name_taken");

    let mut presences = Vec::new();
    for c in &mut clients {
        presences.push(c.join_with_presence("lobby", None).1);
    }
    assert_eq!(
        presences[2],
        ["ann", "bob", "cy"],
        "presence lists all three nodes"
    );
    assert_eq!(clients[0].recv_type("joined")["user"], "bob");
    assert_eq!(clients[0].recv_type("joined")["user"], "cy");
    assert_eq!(clients[1].recv_type("joined")["user"], "cy");

    // Each sends 5; everyone sees the others' 10 in one seq order.
    for round in 0..5 {
        for (i, c) in clients.iter_mut().enumerate() {
            c.send(message("lobby", &format!("{}{round}", names[i]), 100));
        }
    }
    // Read up to the others' 10 messages and the acks of one's own 5 (an ack may come
    // after the last message: it must not be taken for a later request's ack).
    let mut views = Vec::new();
    for c in &mut clients {
        let (mut seqs, mut acks) = (Vec::new(), 0);
        while seqs.len() < 10 || acks < 5 {
            let v = c.recv();
            if v["type"] == "message" {
                seqs.push(v["seq"].as_u64().unwrap());
            } else if v["type"] == "ack" && v["id"] == 100 {
                acks += 1;
            }
        }
        views.push(seqs);
    }
    // Each client's view is the 15 messages minus its own 5, in increasing order.
    for seqs in &views {
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "seq order: {seqs:?}");
        assert!(seqs.iter().all(|s| (1..=15).contains(s)));
    }
    let mut all: Vec<u64> = views.concat();
    all.sort();
    all.dedup();
    assert_eq!(all, (1..=15).collect::<Vec<_>>(), "no gap");

    // A direct message crosses nodes, and its ack tells the truth.
    clients[0].send(json!({"type": "direct", "to": "cy", "text": "psst", "id": 3}));
    assert_eq!(
        clients[0].recv_type("ack"),
        json!({"type": "ack", "id": 3, "delivered": true})
    );
    let got = clients[2].recv_type("direct");
    assert_eq!(
        (&got["from"], &got["text"]),
        (&json!("ann"), &json!("psst"))
    );
    clients[0].send(json!({"type": "direct", "to": "nobody", "text": "?", "id": 4}));
    assert_eq!(clients[0].recv_type("ack")["delivered"], false);

    // A leave on one node is seen on the others.
    clients[1].send(json!({"type": "leave", "room": "lobby", "id": 5}));
    assert_eq!(clients[0].recv_type("left")["user"], "bob");
    assert_eq!(clients[2].recv_type("left")["user"], "bob");
    let (status, metrics) = get(&nodes[0].addr, "/metrics");
    assert_eq!(status, 200);
    assert!(metrics.contains("\nrfc6455_redis_up 1\n"), "{metrics}");
}

/// Two publishers on two nodes, 1,000 messages each at once: a member on each node
/// sees the same 2,000 messages with seq 1..=2000, each publisher's in its order.
#[test]
fn two_publishers_on_two_nodes_give_every_member_one_gapless_order() {
    two_publishers_on_two_nodes_give_every_member_one_gapless_order_with(&RedisServer::start());
}

/// The same on a Redis Cluster of three primaries: sharded pub/sub, one slot a room.
#[test]
fn two_publishers_on_a_redis_cluster_give_every_member_one_gapless_order() {
    two_publishers_on_two_nodes_give_every_member_one_gapless_order_with(&RedisCluster::start(
        3, 0,
    ));
}

fn two_publishers_on_two_nodes_give_every_member_one_gapless_order_with(redis: &dyn Shared) {
    const EACH: u64 = 1000;
    let a = node(&redis, &["--history", "10"]);
    let b = node(&redis, &["--history", "10"]);
    let mut clients = vec![
        Client::hello(&a.addr, "pa"),
        Client::hello(&b.addr, "pb"),
        Client::hello(&a.addr, "ma"),
        Client::hello(&b.addr, "mb"),
    ];
    for c in &mut clients {
        c.join("feed", None);
    }
    support::chat::two_publishers_one_order(clients, "feed", ["pa", "pb"], EACH);
    // At most one Redis call per message (the script; a loop's messages of one turn
    // share one), plus for each of node A's two clients a hello, a join and (the
    // readers have dropped their clients) a release of the name and a leave of the
    // room (two slots in a cluster: two calls), and one to record that node A
    // follows the room.
    let settled = || {
        let mut last = -1.0;
        assert!(eventually(Duration::from_secs(5), || {
            let now = metric(&a.addr, "rfc6455_redis_round_trips_total");
            std::mem::replace(&mut last, now) == now
        }));
        last
    };
    let calls = settled();
    assert!(
        (10.0..=(EACH + 9) as f64).contains(&calls),
        "{calls} round trips for {EACH} messages"
    );
}

/// A loop's messages of one turn cost Redis one pipelined round trip (one per shard
/// in a cluster), not one each: 60 messages to 6 rooms written at once.
#[test]
fn messages_that_arrive_together_share_a_redis_round_trip() {
    messages_that_arrive_together_share_a_redis_round_trip_with(&RedisServer::start(), 1);
}

/// The same on a Redis Cluster of three primaries: one pipeline per shard.
#[test]
fn on_a_redis_cluster_messages_that_arrive_together_share_a_round_trip_per_shard() {
    messages_that_arrive_together_share_a_redis_round_trip_with(&RedisCluster::start(3, 0), 3);
}

fn messages_that_arrive_together_share_a_redis_round_trip_with(redis: &dyn Shared, shards: u32) {
    use std::io::Write;
    const ROOMS: u64 = 6;
    const EACH: u64 = 10;
    let a = node(&redis, &[]);
    let b = node(&redis, &[]);
    let mut sender = Client::hello(&a.addr, "pa");
    let mut member = Client::hello(&b.addr, "mb");
    let rooms: Vec<String> = (0..ROOMS).map(|r| format!("room{r}")).collect();
    for room in &rooms {
        sender.join(room, None);
    }
    for room in &rooms {
        member.join(room, None);
    }
    for room in &rooms {
        // One message each first: every shard has the script.
        sender.send(message(room, "first", 0));
        assert_eq!(sender.recv_type("ack")["seq"], 1);
        assert_eq!(member.recv_type("message")["seq"], 1);
    }
    let before = metric(&a.addr, "rfc6455_redis_round_trips_total");
    // Masked frames made by a connection of their own, all in one write.
    let mut frames = rfc6455::Connection::new(rfc6455::Role::Client);
    for i in 0..ROOMS * EACH {
        let room = &rooms[(i % ROOMS) as usize];
        frames
            .send_text(&message(room, &format!("m{i}"), i + 1).to_string())
            .unwrap();
    }
    sender
        .ws
        .get_mut()
        .write_all(frames.pending_output())
        .unwrap();
    // Within a room, the acks come in the order of the requests (across rooms, each
    // waits for its own room's earlier messages).
    let mut acked = vec![1; ROOMS as usize];
    for _ in 0..ROOMS * EACH {
        let ack = sender.recv_type("ack");
        let i = ack["id"].as_u64().unwrap() - 1;
        let r = (i % ROOMS) as usize;
        assert_eq!(ack["room"], rooms[r]);
        assert_eq!(ack["seq"], 2 + i / ROOMS, "{ack}");
        assert_eq!(ack["seq"], acked[r] + 1, "{ack}");
        acked[r] += 1;
    }
    let mut next = vec![2; ROOMS as usize];
    for _ in 0..ROOMS * EACH {
        let got = member.recv_type("message");
        let r = rooms.iter().position(|room| got["room"] == *room).unwrap();
        assert_eq!(got["seq"], next[r], "{got}");
        next[r] += 1;
    }
    let calls = metric(&a.addr, "rfc6455_redis_round_trips_total") - before;
    // One turn usually reads the whole write; two at most here.
    assert!(
        calls <= (2 * shards) as f64,
        "{calls} round trips for {} messages on {shards} shards",
        ROOMS * EACH
    );
}

/// `--redis redis://HOST:PORT/3`: the rooms' keys are in database 3, pipelined
/// messages too (they go on the node's own connection, which must select it).
#[test]
fn a_database_named_in_the_url_holds_the_rooms() {
    use std::io::{Read, Write};
    struct InDatabase3(RedisServer);
    impl Shared for InDatabase3 {
        fn node_args(&self) -> Vec<String> {
            vec!["--redis".into(), format!("{}3", self.0.url())]
        }
    }
    let redis = InDatabase3(RedisServer::start());
    let a = node(&redis, &[]);
    let b = node(&redis, &[]);
    let mut ann = Client::hello(&a.addr, "ann");
    let mut bob = Client::hello(&b.addr, "bob");
    ann.join("db", None);
    bob.join("db", None);
    // One first, alone: Redis has the script then.
    ann.send(message("db", "first", 0));
    assert_eq!(ann.recv_type("ack")["seq"], 1);
    let before = metric(&a.addr, "rfc6455_redis_round_trips_total");
    let mut frames = rfc6455::Connection::new(rfc6455::Role::Client);
    for i in 1..=50 {
        frames
            .send_text(&message("db", &format!("m{i}"), i).to_string())
            .unwrap();
    }
    ann.ws.get_mut().write_all(frames.pending_output()).unwrap();
    for seq in 1..=51 {
        assert_eq!(bob.recv_type("message")["seq"], seq);
    }
    let trips = metric(&a.addr, "rfc6455_redis_round_trips_total") - before;
    assert!(
        trips <= 2.0,
        "{trips} round trips: the batch was not pipelined"
    );
    // The room's seq, read in database 3 and in database 0.
    let seq_in = |db: u8| {
        let port = redis
            .0
            .url()
            .trim_end_matches('/')
            .rsplit(':')
            .next()
            .unwrap()
            .to_string();
        let mut stream = TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        write!(
            stream,
            "SELECT {db}\r\nGET rfc6455:{{r:db}}:seq\r\nQUIT\r\n"
        )
        .unwrap();
        let mut reply = String::new();
        let _ = stream.read_to_string(&mut reply);
        reply
    };
    assert!(seq_in(3).contains("$2\r\n51\r\n"), "{:?}", seq_in(3));
    assert!(seq_in(0).contains("$-1\r\n"), "{:?}", seq_in(0));
}

/// A message's ack never reaches its sender before the room's earlier messages do, so
/// a client may resume from an ack's seq (`since`): the ack of ann's message waits
/// until bob's earlier ones, which come to ann's node through Redis, are out.
#[test]
fn an_ack_never_overtakes_the_messages_before_it() {
    use std::io::Write;
    const FLOOD: u64 = 2000;
    let redis = RedisServer::start();
    let a = node(&redis, &[]);
    let b = node(&redis, &[]);
    let mut ann = Client::hello(&a.addr, "ann");
    let mut bob = Client::hello(&b.addr, "bob");
    ann.join("busy", None);
    bob.join("busy", None);
    let mut has = std::collections::BTreeSet::new();
    for round in 1..=3 {
        let mut frames = rfc6455::Connection::new(rfc6455::Role::Client);
        for i in 0..FLOOD {
            frames
                .send_text(&message("busy", &format!("flood {i}"), 0).to_string())
                .unwrap();
        }
        bob.ws.get_mut().write_all(frames.pending_output()).unwrap();
        ann.send(message("busy", "mine", round));
        loop {
            let v = ann.recv();
            if v["type"] == "message" {
                has.insert(v["seq"].as_u64().unwrap());
            } else if v["type"] == "ack" && v["id"] == round {
                let seq = v["seq"].as_u64().unwrap();
                let missing: Vec<u64> = (1..seq).filter(|s| !has.contains(s)).collect();
                assert!(
                    missing.is_empty(),
                    "round {round}: ack {seq} came before {missing:?}"
                );
                has.insert(seq);
                break;
            }
        }
        // Bob reads his acks, so that nothing waits on full socket buffers.
        let mut acks = 0;
        while acks < FLOOD {
            acks += u64::from(bob.recv()["type"] == "ack");
        }
    }
    assert_eq!(metric(&a.addr, "rfc6455_chat_acks_overdue_total"), 0.0);
}

/// `kill -9` of a node: the others announce its members `left` within the node
/// timeout (1.5 s here, plus a third, plus slack), and its client, reconnecting to
/// another node with `since`, gets exactly what it missed.
#[test]
fn a_killed_node_is_reaped_and_its_clients_catch_up_on_another_node() {
    a_killed_node_is_reaped_and_its_clients_catch_up_on_another_node_with(&RedisServer::start());
}

/// The same on a Redis Cluster of three primaries: sharded pub/sub, one slot a room.
#[test]
fn on_a_redis_cluster_a_killed_node_is_reaped_and_its_clients_catch_up() {
    a_killed_node_is_reaped_and_its_clients_catch_up_on_another_node_with(&RedisCluster::start(
        3, 0,
    ));
}

fn a_killed_node_is_reaped_and_its_clients_catch_up_on_another_node_with(redis: &dyn Shared) {
    let mut a = node(&redis, &[]);
    let b = node(&redis, &[]);
    let mut ann = Client::hello(&a.addr, "ann");
    let mut bob = Client::hello(&b.addr, "bob");
    ann.join("news", None);
    bob.join("news", None);
    bob.send(message("news", "before", 1));
    let last_seen = ann.recv_type("message")["seq"].as_u64().unwrap();
    a.stop(); // SIGKILL: no close frames, no release, the heartbeat just stops
    let killed = Instant::now();
    for i in 0..10 {
        bob.send(message("news", &format!("while away {i}"), 2));
    }
    let left = bob.recv_type("left");
    assert_eq!(left["user"], "ann");
    assert!(
        killed.elapsed() < Duration::from_secs(4),
        "noticed in {:?}",
        killed.elapsed()
    );
    let (_, metrics) = get(&b.addr, "/metrics");
    assert!(
        metrics.contains("\nrfc6455_redis_nodes_reaped_total 1\n"),
        "{metrics}"
    );

    // The name is free again; the client reconnects (to B, as a balancer would send it).
    let mut ann = Client::hello(&b.addr, "ann");
    let (missed, members) = ann.join_with_presence("news", Some(last_seen));
    let texts: Vec<&str> = missed.iter().map(|m| m["text"].as_str().unwrap()).collect();
    let expected: Vec<String> = (0..10).map(|i| format!("while away {i}")).collect();
    assert_eq!(texts, expected, "exactly what it missed, in order");
    assert_eq!(members, ["ann", "bob"]);
    ann.assert_nothing_pending();
}

/// Redis killed and restarted (empty: no persistence) during traffic: `/healthz` says
/// 503 then 200, requests get `unavailable` meanwhile, the nodes register their users
/// again, seq numbers go on from where they were, and traffic resumes.
#[test]
fn the_nodes_survive_a_redis_restart() {
    let mut redis = RedisServer::start();
    let a = node(&redis, &[]);
    let b = node(&redis, &[]);
    let mut ann = Client::hello(&a.addr, "ann");
    let mut bob = Client::hello(&b.addr, "bob");
    ann.join("r", None);
    bob.join("r", None);
    for i in 1..=3 {
        ann.send(message("r", "x", i));
        assert_eq!(bob.recv_type("message")["seq"], i);
    }
    assert_eq!(get(&a.addr, "/healthz").0, 200);

    redis.kill();
    assert!(
        eventually(Duration::from_secs(5), || get(&a.addr, "/healthz").0 == 503),
        "a node without Redis says so"
    );
    assert!(
        eventually(Duration::from_secs(5), || get(&b.addr, "/healthz").0 == 503),
        "on every node"
    );
    let (_, why) = get(&b.addr, "/healthz");
    assert!(why.starts_with("unavailable: redis"), "{why}");
    ann.send(message("r", "lost?", 7));
    let refused = ann.recv_type("error");
    assert_eq!(
        (&refused["code"], &refused["id"]),
        (&json!("unavailable"), &json!(7))
    );
    // Traffic goes on meanwhile: 2,000 messages of 4 KiB (8 MiB) are each refused at
    // once, not queued for later, and the node's memory stays where it was.
    let rss = a.rss_kib();
    let big = "x".repeat(4096);
    for i in 0..2000 {
        ann.send(message("r", &big, 100 + i));
        let refused = ann.recv_type("error");
        assert_eq!(
            (&refused["code"], &refused["id"]),
            (&json!("unavailable"), &json!(100 + i))
        );
    }
    let grown = a.rss_kib().saturating_sub(rss);
    assert!(
        grown < 2048,
        "8 MiB refused, but the node grew by {grown} KiB"
    );
    // The connections stay open meanwhile.
    ann.assert_nothing_pending();

    redis.restart();
    for n in [&a, &b] {
        assert!(
            eventually(Duration::from_secs(10), || get(&n.addr, "/healthz").0
                == 200),
            "healthy again"
        );
    }
    ann.send(message("r", "back", 8));
    let ack = ann.recv_type("ack");
    assert_eq!(ack["seq"], 4, "the seq goes on although Redis lost it");
    let got = bob.recv_type("message");
    assert_eq!((&got["text"], &got["seq"]), (&json!("back"), &json!(4)));
    // Presence and names were registered again.
    let mut cy = Client::hello(&a.addr, "cy");
    assert_eq!(cy.join_with_presence("r", None).1, ["ann", "bob", "cy"]);
    let mut fake = Client::connect(&b.addr, "");
    fake.send(json!({"type": "hello", "name": "ann", "id": 1}));
    assert_eq!(fake.recv()["code"], "name_taken");
    let (_, metrics) = get(&a.addr, "/metrics");
    assert!(
        metrics.contains("\nrfc6455_redis_reconnects_total 1\n"),
        "{metrics}"
    );
}

/// Server-Sent Events and HTTP publish across nodes: a stream on node B gets what a
/// backend posts on node A and what a WebSocket member says on A, in seq order; it
/// resumes on node C with `Last-Event-ID`, getting exactly what it missed.
#[test]
fn streams_and_http_publishes_work_across_nodes() {
    streams_and_http_publishes_work_across_nodes_with(&RedisServer::start());
}

/// The same on a Redis Cluster of three primaries: sharded pub/sub, one slot a room.
#[test]
fn streams_and_http_publishes_work_across_nodes_on_a_redis_cluster() {
    streams_and_http_publishes_work_across_nodes_with(&RedisCluster::start(3, 0));
}

fn streams_and_http_publishes_work_across_nodes_with(redis: &dyn Shared) {
    let nodes = [node(&redis, &[]), node(&redis, &[]), node(&redis, &[])];
    let (mut stream, _) = Stream::open(&nodes[1].addr, "/rooms/ops/events", ACCEPT);
    stream.until(b"event: presence\n");
    stream.event();
    let mut ann = Client::hello(&nodes[0].addr, "ann");
    ann.join("ops", None);
    assert!(stream.data_event().contains(r#""type":"joined""#));
    assert_eq!(post(&nodes[0].addr, "ops", "ci", "deployed"), 1);
    ann.send(message("ops", "thanks", 1));
    let first = stream.data_event();
    assert_eq!(id_of(&first), 1);
    assert!(first.contains(r#""from":"ci""#));
    let second = full_id(&stream.data_event());
    assert!(second.ends_with(":2"), "{second}");
    drop(stream);
    for i in 0..5 {
        post(&nodes[2].addr, "ops", "ci", &format!("missed {i}"));
    }
    let (mut stream, _) = Stream::open(
        &nodes[2].addr,
        "/rooms/ops/events",
        &format!("{ACCEPT}Last-Event-ID: {second}\r\n"),
    );
    stream.event(); // retry
                    // The epoch is the cluster's (Redis's), not the node's: nothing was lost.
    assert!(stream.event().contains(r#""recovered":true"#));
    let ids: Vec<u64> = (0..5).map(|_| id_of(&stream.data_event())).collect();
    assert_eq!(ids, [3, 4, 5, 6, 7]);
    let presence = stream.data_event();
    assert!(presence.contains(r#""members":["ann"]"#), "{presence}");
    ann.send(message("ops", "live", 2));
    assert_eq!(id_of(&stream.data_event()), 8);
}

/// HAProxy (tests/setup.sh installs it) with deploy/haproxy.cfg's settings in front
/// of two nodes: clients reach both through one address; when one node is killed,
/// its client reconnects through the balancer, lands on the survivor and catches up.
#[test]
fn behind_haproxy_a_client_of_a_killed_node_reconnects_and_catches_up() {
    let redis = RedisServer::start();
    let mut nodes = vec![node(&redis, &[]), node(&redis, &[])];
    let balancer = Haproxy::start(&[&nodes[0].addr, &nodes[1].addr]);
    let users = |n: &ServerProcess| get(&n.addr, "/metrics").1.contains("\nrfc6455_users 1\n");
    let mut ann = Client::hello(&balancer.addr, "ann");
    let anns = nodes.iter().position(users).expect("ann is on a node");
    let mut bob = Client::hello(&balancer.addr, "bob");
    assert!(
        nodes.iter().all(users),
        "round robin: one client on each node"
    );
    ann.join("hall", None);
    bob.join("hall", None);
    bob.send(message("hall", "before", 1));
    let seen = ann.recv_type("message")["seq"].as_u64().unwrap();

    nodes.remove(anns).stop();
    for i in 0..5 {
        bob.send(message("hall", &format!("meanwhile {i}"), 2));
    }
    assert!(
        ann.ws.read().is_err(),
        "ann's connection broke with its node"
    );
    // What the page does: reconnect with backoff, hello, join with `since`. The name
    // is free once the dead node is reaped; the balancer skips the dead node.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut ann = loop {
        assert!(Instant::now() < deadline, "ann could not get back in");
        std::thread::sleep(Duration::from_millis(200));
        let Ok(ws) = rfc6455::blocking::connect(&format!("ws://{}/", balancer.addr)) else {
            continue;
        };
        ws.get_ref()
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut c = Client { ws };
        c.send(json!({"type": "hello", "name": "ann", "id": 0}));
        if c.recv()["type"] == "ack" {
            break c;
        }
    };
    let texts: Vec<String> = ann
        .join("hall", Some(seen))
        .iter()
        .map(|m| m["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        texts,
        (0..5).map(|i| format!("meanwhile {i}")).collect::<Vec<_>>()
    );
    bob.send(message("hall", "welcome back", 3));
    assert_eq!(ann.recv_type("message")["text"], "welcome back");
}

/// The recipe of docs/cluster.md with real browsers: two headless Chromium pages open the chat
/// through HAProxy, land on different nodes and chat; the node of one page is killed;
/// that page reconnects through the balancer, lands on the survivor (its status names
/// the new node), waits for its name to be released, and its log shows every message
/// sent meanwhile, once each and in order, then live ones. A third node, not behind
/// the balancer, hosts the test's own client, which sends and reads the pages' reports.
#[test]
fn behind_haproxy_two_browser_pages_chat_and_one_survives_its_node() {
    let chromium = browser::find().expect("chromium (tests/setup.sh installs it)");
    let redis = RedisServer::start();
    let mut nodes = vec![node(&redis, &[]), node(&redis, &[])];
    let ids: Vec<String> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| Client::hello_node(&n.addr, &format!("probe{i}")).1.unwrap())
        .collect();
    let watcher_node = node(&redis, &[]);
    let balancer = Haproxy::start(&[&nodes[0].addr, &nodes[1].addr]);
    let mut room = WatchedRoom::join(&watcher_node.addr, "web");
    let page = |me: &str, say: &str, expect: &str| {
        let url = format!(
            "http://{}/?autotest={me}&room=web&say={say}&expect={expect}&report=w-",
            balancer.addr
        );
        Page::open(&chromium, &format!("cluster-{me}"), (800, 600), &url)
    };
    let node_of = |room: &mut WatchedRoom, who: &str, after: usize| {
        room.until(Duration::from_secs(30), |said| {
            said[after..]
                .iter()
                .find(|(from, _)| from == who)
                .and_then(|(_, text)| text.strip_prefix("node:"))
                .map(str::to_string)
        })
        .unwrap_or_else(|| panic!("{who}'s page did not say on which node it is"))
    };
    let _alice = page("alice", "hi-from-alice", "hi-from-bob");
    let alices = node_of(&mut room, "alice", 0);
    // Round robin takes turns per connection, and a page makes two (its load and its
    // WebSocket): if bob's lands where alice's did, shift the turn by one request
    // through the balancer and open it again.
    let mut attempt = 0;
    let (bob, _bob_page) = loop {
        attempt += 1;
        assert!(
            attempt <= 8,
            "bob's page never landed on alice's other node"
        );
        let bob = format!("bob{attempt}");
        let mark = room.said.len();
        let session = page(&bob, &format!("hi-from-{bob}"), "hi-from-alice");
        if node_of(&mut room, &bob, mark) != alices {
            break (bob, session);
        }
        drop(session);
        assert_eq!(get(&balancer.addr, "/healthz").0, 200);
    };
    let chatted = room.until(Duration::from_secs(30), |said| {
        let saw = |who: &str, text: &str| said.iter().any(|(f, t)| f == who && t == text);
        (saw("alice", &format!("saw:hi-from-{bob}")) && saw(&bob, "saw:hi-from-alice"))
            .then_some(())
    });
    assert!(chatted.is_some(), "the pages did not chat: {:?}", room.said);

    let mark = room.said.len();
    let dead = ids.iter().position(|id| *id == alices).unwrap();
    nodes.remove(dead).stop();
    for i in 1..=5 {
        room.say(&format!("w-away-{i}"));
    }
    let now_on = node_of(&mut room, "alice", mark);
    assert_eq!(
        now_on,
        ids[1 - dead],
        "alice's page is back, on the survivor"
    );
    let shown = |said: &[(String, String)], n: usize| {
        let mine: Vec<String> = said[mark..]
            .iter()
            .filter(|(f, t)| f == "alice" && t.contains("shown:"))
            .map(|(_, t)| t.clone())
            .collect();
        (mine.len() >= n).then_some(mine)
    };
    room.until(Duration::from_secs(20), |said| shown(said, 5))
        .unwrap_or_else(|| {
            panic!(
                "alice's page did not show the missed messages: {:?}",
                room.said
            )
        });
    room.say("w-live");
    let seen = room
        .until(Duration::from_secs(20), |said| shown(said, 6))
        .unwrap_or_else(|| panic!("alice's page did not show a live message: {:?}", room.said));
    let expected: Vec<String> = (1..=5)
        .map(|i| format!("shown:w-away-{i}"))
        .chain(["shown:w-live".to_string()])
        .collect();
    assert_eq!(
        seen, expected,
        "missed messages once each, in order, then live"
    );
}

/// The read-only page (`/?watch=ROOM`, a real `EventSource` in headless Chromium)
/// through HAProxy: it shows messages said over WebSocket and posted over HTTP; its
/// node is killed; the browser reconnects by itself through the balancer with
/// `Last-Event-ID`, and shows what was said meanwhile, once each and in order. The
/// page reports what it shows by posting "shown:TEXT #N" into the room, N counting what
/// it has shown: a report posted to the node being killed may reach the room and then
/// be sent again by HAProxy to the survivor (its response never came), which is not
/// the page showing a message twice — the same N, counted once here.
#[test]
fn behind_haproxy_an_event_source_page_resumes_on_another_node() {
    let chromium = browser::find().expect("chromium (tests/setup.sh installs it)");
    let redis = RedisServer::start();
    let mut nodes = vec![node(&redis, &[]), node(&redis, &[])];
    let watcher_node = node(&redis, &[]);
    let balancer = Haproxy::start(&[&nodes[0].addr, &nodes[1].addr]);
    let mut room = WatchedRoom::join(&watcher_node.addr, "feed");
    let url = format!(
        "http://{}/?watch=feed&autotest=viewer&report=w-",
        balancer.addr
    );
    let _page = Page::open(&chromium, "cluster-viewer", (800, 600), &url);
    let streams = |n: &ServerProcess| {
        get(&n.addr, "/metrics")
            .1
            .contains("\nrfc6455_sse_streams 1\n")
    };
    assert!(
        eventually(Duration::from_secs(30), || nodes.iter().any(streams)),
        "the page's EventSource did not connect"
    );
    let shown = |said: &[(String, String)], n: usize| {
        let mut counted = std::collections::BTreeMap::new();
        for (from, text) in said {
            let report = text.strip_prefix("shown:").filter(|_| from == "viewer");
            if let Some((what, count)) = report.and_then(|r| r.rsplit_once(" #")) {
                let count: u32 = count.parse().expect("a count after #");
                if counted.insert(count, format!("shown:{what}")).is_some() {
                    eprintln!("report #{count} ({what}) reached the room twice");
                }
            }
        }
        (counted.len() >= n).then(|| counted.into_values().collect::<Vec<_>>())
    };
    room.say("w-1");
    post(&watcher_node.addr, "feed", "ci", "w-2");
    room.until(Duration::from_secs(20), |said| shown(said, 2))
        .unwrap_or_else(|| panic!("the page did not show w-1, w-2: {:?}", room.said));

    let dead = nodes.iter().position(streams).unwrap();
    nodes.remove(dead).stop();
    room.say("w-3");
    post(&watcher_node.addr, "feed", "ci", "w-4");
    // EventSource waits `retry` (2 s), then reconnects with Last-Event-ID.
    let seen = room
        .until(Duration::from_secs(30), |said| shown(said, 4))
        .unwrap_or_else(|| panic!("the page did not resume: {:?}", room.said));
    assert!(streams(&nodes[0]), "the stream is on the survivor now");
    assert_eq!(seen, ["shown:w-1", "shown:w-2", "shown:w-3", "shown:w-4"]);
}

/// A room as the test's own client sees it: every message said in it, in order, as
/// (from, text). The pages' scripted mode reports there.
struct WatchedRoom {
    client: Client,
    room: String,
    said: Vec<(String, String)>,
}

impl WatchedRoom {
    fn join(addr: &str, room: &str) -> WatchedRoom {
        let mut client = Client::hello(addr, "watcher");
        client.join(room, None);
        client
            .ws
            .get_ref()
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        WatchedRoom {
            client,
            room: room.to_string(),
            said: Vec::new(),
        }
    }

    fn say(&mut self, text: &str) {
        self.client
            .send(json!({"type": "message", "room": self.room, "text": text}));
    }

    /// Reads the room until `found` finds something in what was said; None after `limit`.
    fn until<T>(
        &mut self,
        limit: Duration,
        mut found: impl FnMut(&[(String, String)]) -> Option<T>,
    ) -> Option<T> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(t) = found(&self.said) {
                return Some(t);
            }
            if Instant::now() > deadline {
                return None;
            }
            match self.client.ws.read() {
                Ok(Event::Text(text)) => {
                    let m: Value = serde_json::from_str(&text).unwrap();
                    if m["type"] == "message" {
                        let from = m["from"].as_str().unwrap_or_default().to_string();
                        let text = m["text"].as_str().unwrap_or_default().to_string();
                        self.said.push((from, text));
                    }
                }
                Ok(_) | Err(rfc6455::blocking::Error::Io(_)) => {} // a read timeout: again
                Err(e) => panic!("the watcher's connection: {e}"),
            }
        }
    }
}

/// `haproxy -db` with the project's config, on a free loopback port, its servers
/// pointed at the nodes; stopped by PID on drop.
struct Haproxy {
    child: Child,
    addr: String,
    /// Where its config file was written; removed on drop.
    dir: std::path::PathBuf,
}

impl Haproxy {
    fn start(nodes: &[&str]) -> Haproxy {
        let template = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../deploy/haproxy.cfg"
        ))
        .unwrap();
        let port = free_port();
        let servers: String = nodes
            .iter()
            .enumerate()
            .map(|(i, addr)| {
                format!(
                    "    server node{} {addr} check inter 500ms fall 1 rise 1\n",
                    i + 1
                )
            })
            .collect();
        let config = rewrite(&template, &format!("127.0.0.1:{port}"), &servers);
        let dir = std::env::temp_dir().join(format!("rfc6455-haproxy-{port}"));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("haproxy.cfg");
        std::fs::write(&path, config).unwrap();
        let child = Command::new("haproxy")
            .args(["-db", "-f"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("haproxy (tests/setup.sh installs it)");
        let addr = format!("127.0.0.1:{port}");
        assert!(
            eventually(Duration::from_secs(10), || TcpStream::connect(&addr)
                .is_ok()),
            "haproxy listens"
        );
        Haproxy { child, addr, dir }
    }
}

/// The deploy config with the test's address and nodes: its `bind` line and its
/// `server` lines replaced, everything else (timeouts, balance, checks) as shipped.
fn rewrite(template: &str, bind: &str, servers: &str) -> String {
    let mut out = String::new();
    let mut servers_written = false;
    for line in template.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("bind ") {
            out.push_str(&format!("    bind {bind}\n"));
        } else if trimmed.starts_with("server ") {
            if !servers_written {
                out.push_str(servers);
                servers_written = true;
            }
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    assert!(servers_written, "deploy/haproxy.cfg has server lines");
    out
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
