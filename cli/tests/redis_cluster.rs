//! What a Redis Cluster (and Redis Sentinel) adds to the nodes (tests/setup.sh installs `redis-server` 7,
//! which has sharded pub/sub; each test starts its own cluster on free loopback
//! ports): a room's traffic reaches only the nodes with someone in it, a member
//! joining on a node that did not follow the room yet misses nothing from its join
//! on, and a shard's primary killed under a busy room is followed to its promoted
//! replica with nothing lost or reordered for the members who stayed connected (the
//! same under Redis Sentinel).

mod support;

use serde_json::{json, Value};
use std::time::Duration;
use support::chat::Client;
use support::redis::{eventually, metric, node, RedisCluster, RedisSentinel, RedisServer, Shared};

const RECEIVED: &str = "rfc6455_redis_messages_received_total";

fn message(room: &str, text: &str, id: u64) -> Value {
    json!({"type": "message", "room": room, "text": text, "id": id})
}

/// Sends `count` messages to `room` and reads their acks; returns the last seq.
fn say(client: &mut Client, room: &str, count: u64) -> u64 {
    let mut last = 0;
    for i in 0..count {
        client.send(message(room, &format!("m{i}"), i));
        last = client.recv_type("ack")["seq"].as_u64().unwrap();
    }
    last
}

#[test]
fn a_room_s_traffic_reaches_only_the_nodes_with_someone_in_it() {
    only_interested_nodes_receive(&RedisServer::start());
}

#[test]
fn on_a_redis_cluster_a_room_s_traffic_reaches_only_the_nodes_with_someone_in_it() {
    only_interested_nodes_receive(&RedisCluster::start(3, 0));
}

/// Node C has a member in "quiet" only: 300 messages in "busy" (members on A and B)
/// do not move its count of messages received from Redis; B's moves by all of them.
fn only_interested_nodes_receive(redis: &dyn Shared) {
    let nodes: Vec<_> = (0..3).map(|_| node(redis, &[])).collect();
    let mut ann = Client::hello(&nodes[0].addr, "ann");
    let mut bob = Client::hello(&nodes[1].addr, "bob");
    let mut cy = Client::hello(&nodes[2].addr, "cy");
    ann.join("busy", None);
    bob.join("busy", None);
    cy.join("quiet", None);
    let (b_before, c_before) = (
        metric(&nodes[1].addr, RECEIVED),
        metric(&nodes[2].addr, RECEIVED),
    );
    let last = say(&mut ann, "busy", 300);
    for i in 0..300 {
        let got = bob.recv_type("message");
        assert_eq!(got["text"], format!("m{i}"));
    }
    assert_eq!(last, 300);
    assert!(metric(&nodes[1].addr, RECEIVED) - b_before >= 300.0);
    assert_eq!(
        metric(&nodes[2].addr, RECEIVED),
        c_before,
        "node C has no one in the busy room"
    );
    // C still gets its own room's traffic.
    ann.join("quiet", None);
    say(&mut ann, "quiet", 1);
    assert_eq!(cy.recv_type("message")["text"], "m0");
    assert_eq!(
        metric(&nodes[2].addr, "rfc6455_redis_subscribed_rooms"),
        1.0
    );
    assert!(metric(&nodes[2].addr, RECEIVED) > c_before);
}

/// While 2,000 messages pour into a room, members join it on two nodes that did not
/// follow it: each gets, from the history its join reads and then live, every seq
/// from its first on, once and in order. (The node subscribes, waits for Redis to
/// confirm, then reads the room: nothing falls between the read and the live.)
#[test]
fn on_a_redis_cluster_a_member_joining_a_busy_room_on_a_fresh_node_misses_nothing() {
    const TOTAL: u64 = 2000;
    let redis = RedisCluster::start(3, 0);
    let nodes: Vec<_> = (0..3).map(|_| node(&redis, &[])).collect();
    let mut ann = Client::hello(&nodes[0].addr, "ann");
    ann.join("busy", None);
    let publisher = std::thread::spawn(move || {
        for i in 0..TOTAL {
            ann.send(message("busy", &format!("m{i}"), i));
        }
        let mut acks = 0;
        while acks < TOTAL {
            if ann.recv()["type"] == "ack" {
                acks += 1;
            }
        }
    });
    let mut readers = Vec::new();
    for (i, n) in nodes[1..].iter().enumerate() {
        std::thread::sleep(Duration::from_millis(150));
        let mut member = Client::hello(&n.addr, &format!("late{i}"));
        let history = member.join("busy", None);
        readers.push(std::thread::spawn(move || {
            let mut seqs: Vec<u64> = history.iter().map(|m| m["seq"].as_u64().unwrap()).collect();
            while seqs.last() != Some(&TOTAL) {
                let v = member.recv();
                if v["type"] == "message" {
                    seqs.push(v["seq"].as_u64().unwrap());
                }
            }
            seqs
        }));
    }
    publisher.join().unwrap();
    for reader in readers {
        let seqs = reader.join().unwrap();
        let first = seqs[0];
        assert!(first < TOTAL, "joined during the traffic: {first}");
        assert_eq!(
            seqs,
            (first..=TOTAL).collect::<Vec<_>>(),
            "every seq from the first on, once, in order"
        );
    }
}

/// Three primaries and three replicas; the primary of a busy room's shard is killed
/// (SIGKILL) in the middle of the traffic. The members stay connected; the nodes see
/// the promoted replica, resubscribe and catch up from the log. The publisher
/// retries what was refused meanwhile (`unavailable`) with the same idempotency key.
/// A member on the other node gets every message once, in order (at most the one in
/// flight at the kill twice, if its key was not replicated).
#[test]
fn on_a_redis_cluster_a_failover_loses_nothing_for_members_who_stay() {
    let mut redis = RedisCluster::start(3, 1);
    let nodes: Vec<_> = (0..2).map(|_| node(&redis, &[])).collect();
    let primary = redis.primary_of("rfc6455:{r:busy}:events");
    failover_loses_nothing(&nodes, || redis.nodes[primary].kill());
}

/// The same under Redis Sentinel (`--redis-sentinel`): the primary killed, the
/// sentinel promotes the replica, and the nodes ask the sentinel again for the
/// primary, reconnect to it, resubscribe and catch their members up.
#[test]
fn under_redis_sentinel_a_failover_loses_nothing_for_members_who_stay() {
    let mut redis = RedisSentinel::start();
    let nodes: Vec<_> = (0..2).map(|_| node(&redis, &[])).collect();
    failover_loses_nothing(&nodes, || redis.servers[0].kill());
    assert!(
        redis.servers[1].reply("ROLE").contains("master"),
        "the replica was promoted"
    );
}

/// A primary turned into a replica under a node (what Sentinel does to an old
/// primary that comes back after a failover): the node counts Redis as down
/// (`/healthz` 503, reconnecting, so that under Sentinel it finds the new primary)
/// instead of refusing requests one by one while it reports healthy. Once the server
/// is a primary again, the node is back. (Redis drops the node's subscriber
/// connection on the role change, which is enough here; a write answered `READONLY`
/// on a connection that stayed up counts as down too, belt and braces.)
#[test]
fn a_primary_turned_replica_under_a_node_counts_as_redis_down() {
    let redis = RedisServer::start();
    let other = RedisServer::start();
    let n = node(&redis, &[]);
    let mut ann = Client::hello(&n.addr, "ann");
    ann.join("r", None);
    say(&mut ann, "r", 1);
    assert_eq!(
        redis.command(&format!("REPLICAOF 127.0.0.1 {}", other.port)),
        "+OK"
    );
    ann.send(message("r", "refused", 7));
    let answer = loop {
        let v = ann.recv();
        if v["id"] == 7 {
            break v;
        }
    };
    assert_eq!(answer["code"], "unavailable", "{answer}");
    assert!(eventually(Duration::from_secs(5), || metric(
        &n.addr,
        "rfc6455_redis_up"
    ) == 0.0));
    assert_eq!(redis.command("REPLICAOF NO ONE"), "+OK");
    assert!(eventually(Duration::from_secs(10), || metric(
        &n.addr,
        "rfc6455_redis_up"
    ) == 1.0));
    say(&mut ann, "r", 1);
}

/// Two members of "busy" on two nodes; `kill` the primary that holds the room after
/// a third of 300 messages: the member who stayed gets every one once, in order.
fn failover_loses_nothing(nodes: &[support::ServerProcess], kill: impl FnOnce()) {
    const TOTAL: u64 = 300;
    let mut ann = Client::hello(&nodes[0].addr, "ann");
    let mut bob = Client::hello(&nodes[1].addr, "bob");
    ann.join("busy", None);
    bob.join("busy", None);
    let reader = std::thread::spawn(move || read_until(bob, TOTAL));
    let mut kill = Some(kill);
    let refused = publish_retrying(&mut ann, TOTAL, |i| {
        if i == TOTAL / 3 {
            kill.take().unwrap()();
        }
    });
    let (got, mut bob) = reader.join().unwrap();
    assert!(
        refused > 0,
        "the failover was seen: requests were refused meanwhile"
    );
    let repeated = every_message_in_order(&got, TOTAL);
    assert!(repeated <= 1, "{repeated} repeated");
    eprintln!("failover: {refused} requests refused meanwhile, {repeated} message(s) repeated");
    // Both members are still connected and live.
    say(&mut ann, "busy", 1);
    assert_eq!(bob.recv_type("message")["text"], "m0");
    for n in nodes {
        assert!(metric(&n.addr, "rfc6455_redis_reconnects_total") >= 1.0);
        assert!(eventually(Duration::from_secs(5), || metric(
            &n.addr,
            "rfc6455_redis_up"
        ) == 1.0));
    }
}

/// A busy room's slot moved to another primary (resharding) in the middle of the
/// traffic: the scripts follow `MOVED` and `ASK` (or are refused with `TRYAGAIN`
/// while the slot's keys are half moved, and retried), the nodes are unsubscribed
/// by Redis from the channel and subscribe again on its new shard, and a member
/// gets every message once, in order.
#[test]
fn on_a_redis_cluster_a_room_moved_to_another_shard_loses_nothing() {
    const TOTAL: u64 = 300;
    let redis = RedisCluster::start(3, 0);
    let nodes: Vec<_> = (0..2).map(|_| node(&redis, &[])).collect();
    let mut ann = Client::hello(&nodes[0].addr, "ann");
    let mut bob = Client::hello(&nodes[1].addr, "bob");
    ann.join("busy", None);
    bob.join("busy", None);
    let channel = "rfc6455:{r:busy}:events";
    let from = redis.primary_of(channel);
    let to = (from + 1) % 3;
    let reader = std::thread::spawn(move || read_until(bob, TOTAL));
    let mut mover = None;
    let redis = std::sync::Arc::new(redis);
    let refused = publish_retrying(&mut ann, TOTAL, |i| {
        if i == TOTAL / 3 {
            let redis = redis.clone();
            mover = Some(std::thread::spawn(move || redis.move_slot_of(channel, to)));
        }
    });
    mover.unwrap().join().unwrap();
    assert_eq!(redis.primary_of(channel), to, "the slot moved");
    let (got, mut bob) = reader.join().unwrap();
    let repeated = every_message_in_order(&got, TOTAL);
    assert_eq!(repeated, 0);
    eprintln!("resharding: {refused} requests refused meanwhile");
    say(&mut ann, "busy", 1);
    assert_eq!(bob.recv_type("message")["text"], "m0");
}

/// Sends m0..m{total-1} to "busy", each with an idempotency key, retrying one that
/// is refused (`unavailable`) every 50 ms; `before(i)` runs before message i. Returns
/// how many requests were refused.
fn publish_retrying(ann: &mut Client, total: u64, mut before: impl FnMut(u64)) -> u64 {
    let mut refused = 0;
    for i in 0..total {
        before(i);
        loop {
            let mut m = message("busy", &format!("m{i}"), i);
            m["idempotency_key"] = json!(format!("k{i}"));
            ann.send(m);
            let answer = loop {
                let v = ann.recv();
                if v["id"] == i && (v["type"] == "ack" || v["type"] == "error") {
                    break v;
                }
            };
            if answer["type"] == "ack" {
                break;
            }
            assert_eq!(answer["code"], "unavailable", "{answer}");
            refused += 1;
            assert!(refused < 400, "still refused after 20 s: {answer}");
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    refused
}

/// Reads (seq, text) of every message until m{total-1}.
fn read_until(mut member: Client, total: u64) -> (Vec<(u64, String)>, Client) {
    let last = format!("m{}", total - 1);
    let mut got: Vec<(u64, String)> = Vec::new();
    while got.last().map(|(_, t)| t.as_str()) != Some(last.as_str()) {
        let v = member.recv();
        if v["type"] == "message" {
            got.push((
                v["seq"].as_u64().unwrap(),
                v["text"].as_str().unwrap().into(),
            ));
        }
    }
    (got, member)
}

/// Asserts that `got` has seqs in increasing order and the texts m0..m{total-1} in
/// order; returns how many were repeated.
fn every_message_in_order(got: &[(u64, String)], total: u64) -> usize {
    assert!(
        got.windows(2).all(|w| w[0].0 < w[1].0),
        "seqs in order: {got:?}"
    );
    let mut texts: Vec<&str> = got.iter().map(|(_, t)| t.as_str()).collect();
    texts.dedup();
    let expected: Vec<String> = (0..total).map(|i| format!("m{i}")).collect();
    assert_eq!(texts, expected, "every message, in order");
    got.len() - texts.len()
}
