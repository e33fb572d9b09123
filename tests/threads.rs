//! The event-loop server with several loops (`ServerConfig::threads`): connections
//! spread over them, sends that cross loops in order, one connection limit, one set of
//! counters, one shutdown.
#![cfg(feature = "server")]

use rfc6455::blocking::{self, ClientStream, WebSocket};
use rfc6455::handshake::server::Request;
use rfc6455::server::{
    Accept, Balance, CloseInfo, ConnId, Ctx, Handler, HttpRequest, HttpResponse, Received, Refusal,
    Reply, Server, ServerConfig, SharedFrame,
};
use rfc6455::{CloseCode, CloseFrame, Event};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// One per loop; all share the list of connections. "whoami" answers the loop's
/// index; "all:X" sends X to every connection (the sender included) with the list
/// locked, so that the order in which senders take the lock is the order everyone
/// sees; "share:X" does the same with one `SharedFrame`; "sleep:MS" blocks the loop;
/// "post:N:SIZE" sends to the other loop's connections and counts what was taken.
#[derive(Clone, Default)]
struct Hub {
    members: Arc<Mutex<Vec<ConnId>>>,
}

impl Handler for Hub {
    type Data = ();

    fn upgrade(&mut self, _request: &Request) -> Result<Accept<()>, Refusal> {
        Ok(Accept::new(()))
    }

    fn open(&mut self, _ctx: &mut Ctx<'_, ()>, id: ConnId) {
        self.members.lock().unwrap().push(id);
    }

    fn message(&mut self, ctx: &mut Ctx<'_, ()>, id: ConnId, message: Received<'_>) {
        let Received::Text(text) = message else {
            return;
        };
        if text == "whoami" {
            ctx.send_text(id, &id.worker().to_string());
        } else if let Some(rest) = text.strip_prefix("all:") {
            let members = self.members.lock().unwrap();
            for &member in members.iter() {
                assert!(ctx.send_text(member, rest), "{member} took the message");
            }
        } else if let Some(ms) = text.strip_prefix("sleep:") {
            // A loop that stops turning (a handler that blocks).
            thread::sleep(Duration::from_millis(ms.parse().unwrap()));
        } else if let Some(rest) = text.strip_prefix("post:") {
            // "post:N:SIZE": N messages of SIZE bytes to every member of another loop;
            // answers how many sends were taken.
            let (n, size) = rest.split_once(':').unwrap();
            let payload = "x".repeat(size.parse().unwrap());
            let members = self.members.lock().unwrap().clone();
            let mut taken = 0;
            for _ in 0..n.parse::<usize>().unwrap() {
                for &member in members.iter().filter(|m| m.worker() != id.worker()) {
                    taken += usize::from(ctx.send_text(member, &payload));
                }
            }
            ctx.send_text(id, &format!("taken {taken}"));
        } else if let Some(rest) = text.strip_prefix("share:") {
            let frame = SharedFrame::text(rest);
            let members = self.members.lock().unwrap();
            for &member in members.iter() {
                assert!(ctx.send_shared(member, &frame));
            }
        }
    }

    fn close(&mut self, _ctx: &mut Ctx<'_, ()>, id: ConnId, _data: (), _info: CloseInfo) {
        self.members.lock().unwrap().retain(|m| *m != id);
    }

    fn request(
        &mut self,
        ctx: &mut Ctx<'_, ()>,
        _id: ConnId,
        _request: &HttpRequest,
    ) -> Option<Reply<()>> {
        let stats = ctx.totals();
        Some(Reply::Response(HttpResponse::text(
            200,
            &format!("open {} per loop {:?}\n", stats.open, stats.open_per_loop),
        )))
    }
}

struct Running {
    addr: SocketAddr,
    handle: rfc6455::server::Handle,
    /// The open connections, as the handler sees them.
    members: Arc<Mutex<Vec<ConnId>>>,
    thread: Option<thread::JoinHandle<std::io::Result<()>>>,
}

impl Running {
    fn stop(mut self) {
        self.handle.shutdown();
        self.thread.take().unwrap().join().unwrap().unwrap();
    }
}

fn start(config: ServerConfig) -> Running {
    let config = ServerConfig {
        shutdown_timeout: Duration::from_millis(500),
        ..config
    };
    let server = Server::bind("127.0.0.1:0".parse().unwrap(), config).unwrap();
    let addr = server.local_addr().unwrap();
    let handle = server.handle();
    let hub = Hub::default();
    let members = hub.members.clone();
    let thread = thread::spawn(move || server.run_with(|_| hub.clone()));
    Running {
        addr,
        handle,
        members,
        thread: Some(thread),
    }
}

fn two_loops(balance: Balance) -> ServerConfig {
    ServerConfig {
        threads: 2,
        balance,
        ..ServerConfig::default()
    }
}

fn connect(addr: SocketAddr) -> WebSocket<ClientStream> {
    let ws = blocking::connect(&format!("ws://{addr}/")).unwrap();
    ws.get_ref()
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    ws
}

fn text(ws: &mut WebSocket<ClientStream>) -> String {
    loop {
        match ws.read().unwrap() {
            Event::Text(text) => return text,
            Event::Ping(_) | Event::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

fn worker_of(ws: &mut WebSocket<ClientStream>) -> usize {
    ws.send_text("whoami").unwrap();
    text(ws).parse().unwrap()
}

fn http_get(addr: SocketAddr) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(stream, "GET /stats HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

/// Four clients of a two-loop least-connections server: on loops 0, 1, 0, 1.
fn four_on_alternate_loops(addr: SocketAddr) -> Vec<WebSocket<ClientStream>> {
    let mut clients: Vec<_> = (0..4).map(|_| connect(addr)).collect();
    let workers: Vec<usize> = clients.iter_mut().map(worker_of).collect();
    assert_eq!(workers, [0, 1, 0, 1]);
    clients
}

/// A thread that is no loop (e.g. one that reads a Redis subscription) sends through
/// the server's `Handle`, with one loop as with two: the loop wakes and sends at once.
/// (With one loop the mail once waited, unread, until something else woke the loop.)
/// A server of `threads` loops with two clients connected, open and known to the
/// handler (their ids), each client reading with a 2 s timeout.
fn two_members(threads: usize) -> (Running, Vec<WebSocket<ClientStream>>, Vec<ConnId>) {
    let server = start(ServerConfig {
        threads,
        ..ServerConfig::default()
    });
    let mut clients: Vec<_> = (0..2).map(|_| connect(server.addr)).collect();
    for ws in &mut clients {
        worker_of(ws); // open, and known to the handler
        ws.get_ref()
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
    }
    let ids = server.members.lock().unwrap().clone();
    assert_eq!(ids.len(), 2);
    (server, clients, ids)
}

#[test]
fn a_handle_sends_from_another_thread_with_one_loop_and_with_two() {
    for threads in [1, 2] {
        let (server, mut clients, ids) = two_members(threads);
        let relay = thread::spawn({
            let handle = server.handle.clone();
            move || {
                let frame = SharedFrame::text("shared from afar");
                for id in ids {
                    assert!(handle.send_text(id, "from afar"));
                    assert!(handle.send_shared(id, &frame));
                }
            }
        });
        relay.join().unwrap();
        for ws in &mut clients {
            assert_eq!(text(ws), "from afar", "{threads} loop(s)");
            assert_eq!(text(ws), "shared from afar", "{threads} loop(s)");
        }
        server.stop();
    }
}

/// The `Handle` sends binary messages and closes connections too, from a thread that
/// is no loop, with one loop as with two; the clients answer the Close, and the
/// handler hears each connection end.
#[test]
fn a_handle_sends_binary_and_closes_from_another_thread() {
    for threads in [1, 2] {
        let (server, mut clients, ids) = two_members(threads);
        let admin = thread::spawn({
            let handle = server.handle.clone();
            move || {
                for id in ids {
                    assert!(handle.send_binary(id, &[0, 1, 0xff]));
                    assert!(handle.close(id, CloseCode::POLICY_VIOLATION, "from afar"));
                }
            }
        });
        admin.join().unwrap();
        let close = CloseFrame {
            code: CloseCode::POLICY_VIOLATION,
            reason: "from afar".into(),
        };
        for ws in &mut clients {
            assert_eq!(ws.read().unwrap(), Event::Binary(vec![0, 1, 0xff]));
            assert_eq!(ws.read().unwrap(), Event::Close(Some(close.clone())));
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while !server.members.lock().unwrap().is_empty() {
            assert!(Instant::now() < deadline, "{threads} loop(s): not closed");
            thread::sleep(Duration::from_millis(10));
        }
        server.stop();
    }
}

#[test]
fn least_connections_gives_each_loop_its_share() {
    let server = start(two_loops(Balance::LeastConnections));
    let mut clients: Vec<_> = (0..6).map(|_| connect(server.addr)).collect();
    let mut per_loop = [0; 2];
    for ws in &mut clients {
        per_loop[worker_of(ws)] += 1;
    }
    assert_eq!(per_loop, [3, 3]);
    // The counters handed to `http` are the whole process's.
    let stats = http_get(server.addr);
    assert!(stats.ends_with("open 6 per loop [3, 3]\n"), "{stats}");
    server.stop();
}

#[test]
fn reuse_port_serves_on_every_loop() {
    let server = start(two_loops(Balance::ReusePort));
    // 32 connections all hashed to one of two sockets: probability 2^-31.
    let mut clients: Vec<_> = (0..32).map(|_| connect(server.addr)).collect();
    let mut per_loop = [0; 2];
    for ws in &mut clients {
        per_loop[worker_of(ws)] += 1;
    }
    assert!(per_loop[0] > 0 && per_loop[1] > 0, "{per_loop:?}");
    assert_eq!(per_loop[0] + per_loop[1], 32);
    server.stop();
}

#[test]
fn sends_reach_connections_on_the_other_loop() {
    let server = start(two_loops(Balance::LeastConnections));
    let mut clients = four_on_alternate_loops(server.addr);
    clients[0].send_text("all:from loop 0").unwrap();
    clients[1].send_text("share:from loop 1").unwrap();
    // The two loops take their sender's message in either order; every connection
    // gets both, and all of them in the same order.
    let views: Vec<[String; 2]> = clients.iter_mut().map(|ws| [text(ws), text(ws)]).collect();
    let mut both = views[0].clone();
    both.sort();
    assert_eq!(both, ["from loop 0", "from loop 1"]);
    assert!(views.iter().all(|v| *v == views[0]), "{views:?}");
    server.stop();
}

/// Two senders on two loops, 300 messages each at full speed: every connection, on
/// either loop, receives all 600 in one and the same order (the order in which the
/// handlers took the lock), each sender's own in the order it sent them.
#[test]
fn concurrent_senders_on_two_loops_are_seen_in_one_order_everywhere() {
    const EACH: usize = 300;
    let server = start(two_loops(Balance::LeastConnections));
    let clients = four_on_alternate_loops(server.addr);
    let readers: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, mut ws)| {
            thread::spawn(move || {
                let mut seen = Vec::with_capacity(2 * EACH);
                if i < 2 {
                    // The senders: write everything first (the server queues what
                    // they do not read yet), then read.
                    for n in 0..EACH {
                        ws.send_text(&format!("all:{i}-{n}")).unwrap();
                    }
                }
                while seen.len() < 2 * EACH {
                    seen.push(text(&mut ws));
                }
                seen
            })
        })
        .collect();
    let views: Vec<Vec<String>> = readers.into_iter().map(|r| r.join().unwrap()).collect();
    for view in &views[1..] {
        assert_eq!(view, &views[0], "every connection sees the same order");
    }
    for sender in 0..2 {
        let own: Vec<String> = views[0]
            .iter()
            .filter(|m| m.starts_with(&format!("{sender}-")))
            .cloned()
            .collect();
        let expected: Vec<String> = (0..EACH).map(|n| format!("{sender}-{n}")).collect();
        assert_eq!(own, expected, "sender {sender}: all, in order, once");
    }
    server.stop();
}

#[test]
fn the_connection_limit_is_the_whole_process() {
    let server = start(ServerConfig {
        max_connections: 3,
        ..two_loops(Balance::LeastConnections)
    });
    let mut open: Vec<_> = (0..3).map(|_| connect(server.addr)).collect();
    match blocking::connect(&format!("ws://{}/", server.addr)) {
        Err(blocking::Error::Response(e)) => assert!(e.to_string().contains("503"), "{e}"),
        other => panic!("a fourth connection got {:?}", other.map(|_| ())),
    }
    // One closes: room for another, on whichever loop.
    open.pop().unwrap().close(CloseCode::NORMAL, "").unwrap();
    // (The server counts it closed once the closing handshake is over: retry a while.)
    let reconnected = (0..50).any(|_| {
        thread::sleep(Duration::from_millis(20));
        blocking::connect(&format!("ws://{}/", server.addr)).is_ok()
    });
    assert!(reconnected, "a slot freed by a close is usable again");
    server.stop();
}

/// A loop that stops turning does not make the others pile up messages for it: its
/// mailbox holds at most 16 × `max_queued_output` (here 16 × 64 KiB = 1 MiB), and sends
/// beyond that fail at once.
#[test]
fn a_stalled_loop_has_a_bounded_mailbox() {
    let server = start(ServerConfig {
        max_queued_output: 64 * 1024,
        ..two_loops(Balance::LeastConnections)
    });
    let mut sender = connect(server.addr);
    let mut stalled = connect(server.addr);
    assert_eq!((worker_of(&mut sender), worker_of(&mut stalled)), (0, 1));
    stalled.send_text("sleep:1500").unwrap();
    thread::sleep(Duration::from_millis(200));
    // 100 messages of 32 KiB (3.2 MiB) for the stalled loop's connection.
    sender.send_text("post:100:32768").unwrap();
    let taken: usize = text(&mut sender)
        .strip_prefix("taken ")
        .unwrap()
        .parse()
        .unwrap();
    // 1 MiB / (32 KiB + the mail's own few bytes) = 31.
    assert_eq!(taken, 31, "sends taken for a 1 MiB mailbox");
    // Once the loop turns again, the connection's own limit applies to what arrives:
    // after what fits in 64 KiB, it is a slow consumer, closed with 1008.
    let mut texts = 0;
    let code = loop {
        match stalled.read().unwrap() {
            Event::Text(t) => {
                assert_eq!(t.len(), 32768);
                texts += 1;
            }
            Event::Close(frame) => break frame.unwrap().code,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(code, CloseCode::POLICY_VIOLATION);
    assert!(
        texts <= 2,
        "{texts} messages of 32 KiB within a 64 KiB limit"
    );
    server.stop();
}

#[test]
fn shutdown_closes_the_connections_of_every_loop_with_1001() {
    let server = start(two_loops(Balance::LeastConnections));
    let mut clients = four_on_alternate_loops(server.addr);
    let handle = server.handle.clone();
    let stopper = thread::spawn(move || server.stop());
    for ws in &mut clients {
        match ws.read().unwrap() {
            Event::Close(Some(frame)) => assert_eq!(frame.code, CloseCode::GOING_AWAY),
            other => panic!("expected a Close, got {other:?}"),
        }
    }
    stopper.join().unwrap();
    drop(handle);
}

#[test]
fn run_with_one_handler_refuses_several_loops() {
    let server = Server::bind(
        "127.0.0.1:0".parse().unwrap(),
        two_loops(Balance::ReusePort),
    )
    .unwrap();
    let err = server.run(Hub::default()).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("run_with"), "{err}");
}
