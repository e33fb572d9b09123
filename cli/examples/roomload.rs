//! A load generator for `rfc6455 serve` shaped like a real-time app's traffic, for
//! `benches/cluster_50k.sh`: many connections in one process, on one mio event loop,
//! spread over the nodes of a cluster. Connection `g` says hello as user `u{g}`, joins
//! its personal room `p{g}` and its group room `g{g/10}` (ten members, spread over the
//! nodes); the process publishes `--rate` messages a second to the groups, each
//! carrying its send time, and closes and reopens `--churn` connections a second,
//! each coming back with `since` (catch-up). It reports the delivery latency
//! (publisher's send to each member's receive), and messages lost, duplicated or
//! reordered, checked by seq per member and room.
//!
//! ```text
//! cargo run --release --example roomload -- ws://127.0.0.1:9001/ ws://127.0.0.1:9002/ \
//!     --first 0 --connections 10000 --rate 500 --churn 30 --warmup 10 --seconds 60
//! ```
//!
//! `--idle`: connect, join, and only hold the connections (heartbeats answered) for
//! `--seconds` (`--bare`: without the hello and the joins). `--reconnect`: a connection the server ends comes back as the chat page
//! does (at once after a close frame, 200 ms after a refused handshake), with `since`;
//! reports the close codes and the most reconnects in one second
//! (`benches/drain_haproxy.sh`).
//!
//! `--socketio`: the same workload against Socket.IO 4 (`benches/node/socketio_rooms.js`),
//! spoken as Engine.IO 4 packets over the WebSocket (`0` open, `40` connect, `42` event,
//! `43` ack, `2`/`3` ping/pong). Socket.IO gives messages no seq and keeps no history,
//! so each text carries its publisher and the publisher's own counter, and a member
//! counts a message lost when a later one from the same publisher arrives first on the
//! same connection, or when it has not come by the end (a group's members and
//! publishers are in one process); what a member misses while reconnecting is not
//! counted (Socket.IO
//! does not deliver it by design: its connection state recovery is not offered with
//! the Redis adapter).

use clap::Parser;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use rfc6455::handshake::client::{ClientHandshake, WsUrl};
use rfc6455::handshake::HeadReader;
use rfc6455::{CloseCode, Connection, Event, Role};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::io::{ErrorKind, Read, Write};
use std::net::ToSocketAddrs;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Parser, Debug)]
struct Args {
    /// The nodes, `ws://HOST:PORT/`; connection g goes to node g mod their number.
    #[arg(required = true)]
    nodes: Vec<String>,
    /// The first connection's number (processes of one run take distinct ranges).
    #[arg(long, default_value_t = 0)]
    first: usize,
    /// Connections of this process (a multiple of the group size).
    #[arg(long, default_value_t = 1000)]
    connections: usize,
    /// Members per group room.
    #[arg(long, default_value_t = 10)]
    group: usize,
    /// Messages per second this process publishes (each reaches group - 1 members).
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// Connections closed and reopened per second.
    #[arg(long, default_value_t = 0.0)]
    churn: f64,
    /// Message text size in bytes.
    #[arg(long, default_value_t = 100)]
    text_size: usize,
    /// Seconds of traffic before the measured ones.
    #[arg(long, default_value_t = 5)]
    warmup: u64,
    /// Seconds measured.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Only hold the connections: no messages, no churn.
    #[arg(long)]
    idle: bool,
    /// Reopen a connection the server ended, with `since`.
    #[arg(long)]
    reconnect: bool,
    /// After the measured seconds, wait up to this long for messages in flight (the
    /// wait ends sooner once 3 s pass with none).
    #[arg(long, default_value_t = 60)]
    straggle: u64,
    /// With --idle: only open the WebSockets (no hello, no rooms), to tell what a
    /// connection costs from what its rooms cost.
    #[arg(long, requires = "idle")]
    bare: bool,
    /// Speak Socket.IO 4 (Engine.IO 4 over the WebSocket) instead of our protocol.
    #[arg(long)]
    socketio: bool,
    /// For up to this many members who lost a message, print to stderr what their
    /// connections saw around it (joins with `since`, acks, messages live or
    /// replayed, closes), to tell where it went.
    #[arg(long, default_value_t = 0)]
    explain_loss: usize,
}

/// What a member's connections saw, for `--explain-loss`.
#[derive(Debug, Clone, Copy)]
enum Seen {
    Live,
    Replayed,
    Acked,
    /// A join of the group room sent with this `since` (0: none).
    JoinSince,
    /// The join's presence: what follows is live.
    Presence,
    /// The generator closed it (churn).
    Churned,
    /// The server closed it.
    Ended,
}

/// One simulated user's connection.
struct Conn {
    g: usize,
    /// Reopened this many times (the user's name changes with it: `u{g}x{gen}`).
    generation: u32,
    stream: TcpStream,
    phase: Phase,
    /// Bytes not yet written (handshake or frames).
    out: Vec<u8>,
    /// The last seq seen in the group room (received or acked): where `since` resumes.
    last_seq: u64,
    /// Seqs of the group room received as messages, and acked as one's own.
    received: Vec<u64>,
    acked: Vec<u64>,
    /// Group messages received more than once, or after a later one.
    duplicated: u64,
    reordered: u64,
    /// The group join's presence has come: what follows is live.
    live: bool,
    /// The code of the server's close frame, if it sent one.
    closed_with: Option<u16>,
    /// Its hello or a join was refused (`unavailable`: Redis down or slow): it
    /// closes and comes back 200 ms later, as the page does.
    retry: bool,
    /// Socket.IO mode: the counters received from each publisher (by user number),
    /// in the order they came.
    got: Received,
}

enum Phase {
    Handshake(ClientHandshake, HeadReader),
    Open(Box<Connection>),
    Closed,
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros() as u64
}

fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|i| fields.get(*i)?.parse::<f64>().ok())
        .sum();
    ticks / 100.0
}

struct Load {
    args: Args,
    urls: Vec<WsUrl>,
    poll: Poll,
    conns: HashMap<Token, Conn>,
    next_token: usize,
    /// Latencies of live group deliveries in the measured window, µs.
    latencies: Vec<u64>,
    measuring: bool,
    deliveries: u64,
    replayed: u64,
    published: u64,
    /// Connections that ended without the server's close frame.
    errors: u64,
    /// Requests answered with an error, and connections reopened after a refused
    /// hello or join.
    refused: u64,
    retried: u64,
    /// What each connection saw, once it ended.
    finished: Vec<View>,
    /// Connections to open again: (when, g, generation, last seq, history).
    reopen: Vec<Reopen>,
    /// When each reopened connection was accepted (its 101), and the close codes seen.
    reopened_at: Vec<Instant>,
    close_codes: HashMap<u16, u64>,
    /// Socket.IO mode: each user's last counter, the counters the server acked (it
    /// took those messages), and what each connection received, once it ended
    /// (churned: false; ended by the server: true; open at the end: None).
    sent_by: HashMap<usize, u64>,
    acked_by: HashMap<usize, HashSet<u64>>,
    socketio_views: Vec<(Received, Option<bool>)>,
    /// `--explain-loss`: by member, (generation, ms since the start, seq, what).
    trail: HashMap<usize, Vec<(u32, u32, u64, Seen)>>,
    start: Instant,
}

/// Socket.IO mode: the counters a connection received, by publisher, in order.
type Received = HashMap<usize, Vec<u64>>;

/// A connection to open again: when, its user, generation, last seq and history.
type Reopen = (Instant, usize, u32, u64, (Vec<u64>, Vec<u64>));

/// One connection's view of its group room.
struct View {
    /// Its member.
    g: usize,
    group: usize,
    received: Vec<u64>,
    acked: Vec<u64>,
    duplicated: u64,
    reordered: u64,
    /// The server ended the connection before the end (and it was not reopened).
    ended_early: bool,
}

impl Load {
    /// Remembers, for `--explain-loss`, that member `c` saw `what` (of `seq`).
    fn note(&mut self, c: &Conn, seq: u64, what: Seen) {
        if self.args.explain_loss > 0 {
            let ms = self.start.elapsed().as_millis() as u32;
            let trail = self.trail.entry(c.g).or_default();
            trail.push((c.generation, ms, seq, what));
        }
    }

    fn open(&mut self, g: usize, generation: u32, last_seq: u64, history: (Vec<u64>, Vec<u64>)) {
        let url = &self.urls[g % self.urls.len()];
        let addr = (url.host.as_str(), url.port)
            .to_socket_addrs()
            .expect("the node's address")
            .next()
            .expect("an address");
        let mut stream = TcpStream::connect(addr).expect("connect");
        let token = Token(self.next_token);
        self.next_token += 1;
        self.poll
            .registry()
            .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
            .expect("register");
        let mut url = url.clone();
        if self.args.socketio {
            url.resource = "/socket.io/?EIO=4&transport=websocket".into();
        }
        let (handshake, request) = ClientHandshake::new(&url, &[], &[]);
        self.conns.insert(
            token,
            Conn {
                g,
                generation,
                stream,
                phase: Phase::Handshake(handshake, HeadReader::new(16 * 1024)),
                out: request,
                last_seq,
                received: history.0,
                acked: history.1,
                duplicated: 0,
                reordered: 0,
                live: false,
                closed_with: None,
                retry: false,
                got: HashMap::new(),
            },
        );
    }

    /// Reads, handles and writes what connection `token` can.
    fn drive(&mut self, token: Token) {
        let Some(mut c) = self.conns.remove(&token) else {
            return;
        };
        let mut buf = [0u8; 16 * 1024];
        let mut alive = true;
        loop {
            match c.stream.read(&mut buf) {
                Ok(0) => {
                    alive = false;
                    break;
                }
                Ok(n) => self.input(&mut c, &buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::NotConnected => break,
                Err(_) => {
                    alive = false;
                    break;
                }
            }
        }
        flush(&mut c);
        if alive && !matches!(c.phase, Phase::Closed) {
            self.conns.insert(token, c);
        } else if self.args.reconnect || c.retry {
            self.retried += u64::from(c.retry);
            let _ = self.poll.registry().deregister(&mut c.stream);
            // At once after the server's close (the page does so on 1012), a moment
            // later after a refused or broken handshake.
            let wait = match c.closed_with {
                Some(code) => {
                    *self.close_codes.entry(code).or_default() += 1;
                    Duration::ZERO
                }
                None => Duration::from_millis(200),
            };
            let history = (
                std::mem::take(&mut c.received),
                std::mem::take(&mut c.acked),
            );
            self.reopen.push((
                Instant::now() + wait,
                c.g,
                c.generation + 1,
                c.last_seq,
                history,
            ));
        } else {
            self.errors += u64::from(!matches!(c.phase, Phase::Closed));
            self.finish(c, true);
        }
    }

    /// Opens the connections whose time to come back has come.
    fn reopen_due(&mut self) {
        let now = Instant::now();
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.reopen)
            .into_iter()
            .partition(|r| r.0 <= now);
        self.reopen = later;
        for (_, g, generation, last, history) in due {
            self.open(g, generation, last, history);
        }
    }

    fn input(&mut self, c: &mut Conn, data: &[u8]) {
        if let Phase::Handshake(handshake, head) = &mut c.phase {
            let Ok(Some(len)) = head.push(data) else {
                return;
            };
            let rest = head.take_rest();
            if handshake.validate(&head.buffer()[..len]).is_err() {
                c.phase = Phase::Closed;
                return;
            }
            if c.generation > 0 {
                self.reopened_at.push(Instant::now());
            }
            let mut ws = Box::new(Connection::new(Role::Client));
            if self.args.bare {
                c.live = true;
                c.phase = Phase::Open(ws);
                return;
            }
            if self.args.socketio {
                // Engine.IO speaks first (its `0` open packet).
                ws.receive(&rest);
                c.phase = Phase::Open(ws);
                self.events(c);
                return;
            }
            let name = format!("u{}x{}", c.g, c.generation);
            let group = format!("g{}", c.g / self.args.group);
            let since = (c.last_seq > 0).then_some(c.last_seq);
            self.note(c, c.last_seq, Seen::JoinSince);
            let mut join = json!({"type": "join", "room": group, "id": "jg"});
            if let Some(s) = since {
                join["since"] = json!(s);
            }
            for request in [
                json!({"type": "hello", "name": name, "id": "h"}),
                json!({"type": "join", "room": format!("p{}", c.g), "id": "jp"}),
                join,
            ] {
                let _ = ws.send_text(&request.to_string());
            }
            ws.receive(&rest);
            c.phase = Phase::Open(ws);
            self.events(c);
            return;
        }
        if let Phase::Open(ws) = &mut c.phase {
            ws.receive(data);
        }
        self.events(c);
    }

    fn events(&mut self, c: &mut Conn) {
        let group = format!("g{}", c.g / self.args.group);
        loop {
            let Phase::Open(ws) = &mut c.phase else {
                return;
            };
            let event = match ws.next_event() {
                Ok(Some(e)) => e,
                Ok(None) => break,
                Err(_) => {
                    c.phase = Phase::Closed;
                    return;
                }
            };
            let text = match event {
                Event::Text(text) => text,
                Event::Close(frame) => {
                    c.closed_with = Some(frame.map_or(1005, |f| f.code.0));
                    self.note(c, c.last_seq, Seen::Ended);
                    c.phase = Phase::Closed;
                    return;
                }
                _ => continue,
            };
            if self.args.socketio {
                self.socketio_packet(c, &text);
                continue;
            }
            let Ok(v) = serde_json::from_str::<Value>(&text) else {
                continue;
            };
            match v["type"].as_str() {
                Some("message") if v["room"] == group.as_str() => {
                    let Some(seq) = v["seq"].as_u64() else {
                        continue;
                    };
                    if c.received.contains(&seq) {
                        c.duplicated += 1;
                    } else if c.received.last().is_some_and(|l| *l > seq) {
                        c.reordered += 1;
                    }
                    c.received.push(seq);
                    c.last_seq = c.last_seq.max(seq);
                    let what = if c.live { Seen::Live } else { Seen::Replayed };
                    self.note(c, seq, what);
                    if c.live {
                        self.deliveries += 1;
                        let sent: Option<u64> = v["text"]
                            .as_str()
                            .and_then(|t| t.split(' ').next()?.parse().ok());
                        if let (true, Some(sent)) = (self.measuring, sent) {
                            self.latencies.push(now_us().saturating_sub(sent));
                        }
                    } else {
                        self.replayed += 1;
                    }
                }
                Some("presence") if v["room"] == group.as_str() => {
                    c.live = true;
                    self.note(c, 0, Seen::Presence);
                }
                Some("ack") if v["seq"].is_u64() => {
                    let seq = v["seq"].as_u64().unwrap_or(0);
                    self.note(c, seq, Seen::Acked);
                    c.acked.push(seq);
                    c.last_seq = c.last_seq.max(seq);
                }
                Some("error") => {
                    self.refused += 1;
                    if ["h", "jp", "jg"].contains(&v["id"].as_str().unwrap_or("")) {
                        c.retry = true;
                        c.phase = Phase::Closed;
                        return;
                    }
                }
                _ => {}
            }
        }
        if let Phase::Open(ws) = &mut c.phase {
            c.out.extend_from_slice(ws.pending_output());
            let n = ws.pending_output().len();
            ws.consume_output(n);
        }
    }

    /// Handles one Engine.IO packet (Socket.IO mode): answers the open and the pings,
    /// joins after the connect, and checks each group message against its publisher's
    /// counter.
    fn socketio_packet(&mut self, c: &mut Conn, packet: &str) {
        let Phase::Open(ws) = &mut c.phase else {
            return;
        };
        let group = format!("g{}", c.g / self.args.group);
        let reply = match packet.as_bytes().first() {
            Some(b'0') => Some("40".to_string()),
            Some(b'2') => Some("3".to_string()),
            _ if packet.starts_with("40") => {
                Some(format!("420[\"join\",[\"p{}\",\"{group}\"]]", c.g))
            }
            // An ack: `43ID[...]`; 0 is the join's, the others a message's counter.
            _ if packet.starts_with("43") => {
                let id: Option<u64> = packet[2..].split('[').next().and_then(|d| d.parse().ok());
                match id {
                    Some(0) => c.live = true,
                    Some(n) => {
                        self.acked_by.entry(c.g).or_default().insert(n);
                    }
                    None => {}
                }
                None
            }
            _ if packet.starts_with("42[") => {
                let Ok(v) = serde_json::from_str::<Value>(&packet[2..]) else {
                    return;
                };
                if v[0] != "message" || v[1]["room"] != group.as_str() {
                    return;
                }
                // "SENT_US PUBLISHER.COUNTER xxx..."
                let text = v[1]["text"].as_str().unwrap_or("");
                let mut words = text.split(' ');
                let sent: Option<u64> = words.next().and_then(|w| w.parse().ok());
                let Some((from, n)) = words.next().and_then(|w| {
                    let (a, b) = w.split_once('.')?;
                    Some((a.parse::<usize>().ok()?, b.parse::<u64>().ok()?))
                }) else {
                    return;
                };
                let got = c.got.entry(from).or_default();
                if got.contains(&n) {
                    c.duplicated += 1;
                } else if got.last().is_some_and(|last| *last > n) {
                    c.reordered += 1;
                }
                got.push(n);
                if c.live {
                    self.deliveries += 1;
                    if let (true, Some(sent)) = (self.measuring, sent) {
                        self.latencies.push(now_us().saturating_sub(sent));
                    }
                }
                None
            }
            _ => None,
        };
        if let Some(reply) = reply {
            let _ = ws.send_text(&reply);
        }
    }

    /// Sends one group message from connection `token`, if it is open and live.
    fn publish(&mut self, token: Token) -> bool {
        let Some(c) = self.conns.get_mut(&token) else {
            return false;
        };
        let Phase::Open(ws) = &mut c.phase else {
            return false;
        };
        if !c.live {
            return false;
        }
        let group = format!("g{}", c.g / self.args.group);
        let m = if self.args.socketio {
            // The counter is also the ack's id: an acked counter is a message the
            // server took, which every other member is owed.
            let counter = self.sent_by.get(&c.g).copied().unwrap_or(0) + 1;
            let text = padded(
                format!("{} {}.{} ", now_us(), c.g, counter),
                self.args.text_size,
            );
            let event = json!(["message", {"room": group, "text": text}]);
            format!("42{counter}{event}")
        } else {
            let text = padded(format!("{} ", now_us()), self.args.text_size);
            json!({"type": "message", "room": group, "text": text, "id": self.published})
                .to_string()
        };
        if ws.send_text(&m).is_err() {
            return false;
        }
        if self.args.socketio {
            *self.sent_by.entry(c.g).or_default() += 1;
        }
        c.out.extend_from_slice(ws.pending_output());
        let n = ws.pending_output().len();
        ws.consume_output(n);
        flush(c);
        self.published += 1;
        true
    }

    /// Closes connection `token` (a clean close) and opens its user again at once.
    fn churn(&mut self, token: Token) {
        let Some(mut c) = self.conns.remove(&token) else {
            return;
        };
        self.note(&c, c.last_seq, Seen::Churned);
        if let Phase::Open(ws) = &mut c.phase {
            let _ = ws.close(CloseCode::NORMAL, "churn");
            c.out.extend_from_slice(ws.pending_output());
        }
        flush(&mut c);
        let _ = self.poll.registry().deregister(&mut c.stream);
        if self.args.socketio {
            let got = std::mem::take(&mut c.got);
            self.socketio_views.push((got, None));
        }
        let (g, generation, last) = (c.g, c.generation + 1, c.last_seq);
        let history = (
            std::mem::take(&mut c.received),
            std::mem::take(&mut c.acked),
        );
        self.open(g, generation, last, history);
    }

    fn finish(&mut self, mut c: Conn, ended_early: bool) {
        let _ = self.poll.registry().deregister(&mut c.stream);
        self.finished.push(View {
            g: c.g,
            group: c.g / self.args.group,
            received: std::mem::take(&mut c.received),
            acked: std::mem::take(&mut c.acked),
            duplicated: c.duplicated,
            reordered: c.reordered,
            ended_early,
        });
        if self.args.socketio {
            let got = std::mem::take(&mut c.got);
            self.socketio_views.push((got, Some(ended_early)));
        }
    }
}

/// `--explain-loss`: what member `v.g` saw around the seqs it missed.
fn explain_loss(load: &Load, v: &View, seen: &[u64], first: u64, top: u64) {
    let missing: Vec<u64> = (first..=top)
        .filter(|s| seen.binary_search(s).is_err())
        .collect();
    eprintln!(
        "loss: member {} of group {} missed {} of {first}..={top}: {:?}",
        v.g,
        v.group,
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    let near = |seq: u64| missing.iter().any(|m| seq + 3 >= *m && seq <= m + 3);
    for (generation, ms, seq, what) in load.trail.get(&v.g).into_iter().flatten() {
        let always = !matches!(what, Seen::Live | Seen::Replayed | Seen::Acked);
        if always || near(*seq) {
            eprintln!("  gen {generation} at {ms} ms: {what:?} {seq}");
        }
    }
}

fn flush(c: &mut Conn) {
    while !c.out.is_empty() {
        match c.stream.write(&c.out) {
            Ok(0) => break,
            Ok(n) => {
                c.out.drain(..n);
            }
            Err(_) => break,
        }
    }
}

/// `text` with `x`s added up to `size` bytes.
fn padded(mut text: String, size: usize) -> String {
    while text.len() < size {
        text.push('x');
    }
    text
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let args = Args::parse();
    let urls: Vec<WsUrl> = args
        .nodes
        .iter()
        .map(|u| WsUrl::parse(u).expect("a ws:// URL"))
        .collect();
    let mut load = Load {
        poll: Poll::new().expect("poll"),
        urls,
        conns: HashMap::new(),
        next_token: 0,
        latencies: Vec::new(),
        measuring: false,
        deliveries: 0,
        replayed: 0,
        published: 0,
        errors: 0,
        refused: 0,
        retried: 0,
        finished: Vec::new(),
        reopen: Vec::new(),
        reopened_at: Vec::new(),
        close_codes: HashMap::new(),
        sent_by: HashMap::new(),
        acked_by: HashMap::new(),
        socketio_views: Vec::new(),
        trail: HashMap::new(),
        start: Instant::now(),
        args,
    };
    let mut events = Events::with_capacity(4096);
    // Open the connections a few hundred at a time.
    let start = Instant::now();
    let mut opened = 0;
    while load
        .conns
        .values()
        .filter(|c| matches!(c.phase, Phase::Open(_)) && c.live)
        .count()
        < load.args.connections
    {
        while opened < load.args.connections
            && opened - load.conns.values().filter(|c| c.live).count() < 256
        {
            load.open(load.args.first + opened, 0, 0, (Vec::new(), Vec::new()));
            opened += 1;
        }
        load.poll
            .poll(&mut events, Some(Duration::from_millis(10)))
            .expect("poll");
        let tokens: Vec<Token> = events.iter().map(|e| e.token()).collect();
        for t in tokens {
            load.drive(t);
        }
        // A balancer may refuse some at first (a node it has not checked yet).
        load.reopen_due();
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "connecting took too long"
        );
    }
    let connect_seconds = start.elapsed().as_secs_f64();
    // For the bench script: the warm-up starts now.
    eprintln!(
        "connected {} in {connect_seconds:.1} s",
        load.args.connections
    );
    let traffic = Instant::now();
    let warmup = Duration::from_secs(load.args.warmup);
    let end = warmup + Duration::from_secs(load.args.seconds);
    let (mut churned, mut cursor) = (0.0f64, 0usize);
    let (mut measured_from, mut cpu_measured, mut deliveries_at) = (0u64, 0.0, 0u64);
    let mut churns = 0u64;
    let mut tokens: Vec<Token> = load.conns.keys().copied().collect();
    while traffic.elapsed() < end {
        let elapsed = traffic.elapsed();
        if !load.measuring && elapsed >= warmup {
            load.measuring = true;
            measured_from = load.published;
            deliveries_at = load.deliveries;
            cpu_measured = cpu_seconds();
        }
        if !load.args.idle {
            let published_goal = load.args.rate * elapsed.as_secs_f64();
            let mut tries = 0;
            while (load.published as f64) < published_goal && tries < tokens.len() {
                cursor = (cursor + 1) % tokens.len();
                tries += 1;
                load.publish(tokens[cursor]);
            }
            let churn_goal = load.args.churn * elapsed.as_secs_f64();
            while churned < churn_goal && !tokens.is_empty() {
                churned += 1.0;
                let pick = tokens[(churned as usize * 7919) % tokens.len()];
                load.churn(pick);
                churns += 1;
                tokens = load.conns.keys().copied().collect();
            }
        }
        load.poll
            .poll(&mut events, Some(Duration::from_millis(1)))
            .expect("poll");
        let ready: Vec<Token> = events.iter().map(|e| e.token()).collect();
        for t in ready {
            load.drive(t);
        }
        load.reopen_due();
        if tokens.len() != load.conns.len() {
            tokens = load.conns.keys().copied().collect();
        }
    }
    let measured = load.published - measured_from;
    let deliveries = load.deliveries - deliveries_at;
    let cpu = cpu_seconds() - cpu_measured;
    // Let what is in flight arrive (until 3 s pass with nothing new, at most
    // --straggle seconds), then check every member's view: what has not come by
    // then counts as lost.
    let drain = Instant::now();
    let (mut quiet_since, mut seen) = (Instant::now(), load.deliveries + load.replayed);
    while quiet_since.elapsed() < Duration::from_secs(3)
        && drain.elapsed() < Duration::from_secs(load.args.straggle)
    {
        load.poll
            .poll(&mut events, Some(Duration::from_millis(10)))
            .expect("poll");
        let ready: Vec<Token> = events.iter().map(|e| e.token()).collect();
        for t in ready {
            load.drive(t);
        }
        load.reopen_due();
        if load.deliveries + load.replayed != seen {
            (quiet_since, seen) = (Instant::now(), load.deliveries + load.replayed);
        }
    }
    let straggle_seconds = drain.elapsed().as_secs_f64();
    let open: Vec<Token> = load.conns.keys().copied().collect();
    for t in open {
        if let Some(c) = load.conns.remove(&t) {
            load.finish(c, false);
        }
    }
    // Per group, its messages are the seqs anyone saw; a member missed those after
    // its first that it neither received nor sent.
    let mut room_max: HashMap<usize, u64> = HashMap::new();
    for v in &load.finished {
        let top = v
            .received
            .iter()
            .chain(&v.acked)
            .max()
            .copied()
            .unwrap_or(0);
        let e = room_max.entry(v.group).or_default();
        *e = (*e).max(top);
    }
    // A member whose connection the server ended misses what came after: counted
    // apart (`lost_after_close`), not as lost.
    let (mut lost, mut lost_after_close, mut duplicated, mut reordered) = (0u64, 0, 0u64, 0u64);
    let mut explained = 0;
    for v in &load.finished {
        duplicated += v.duplicated;
        reordered += v.reordered;
        if load.args.socketio {
            continue;
        }
        let mut seen: Vec<u64> = v.received.iter().chain(&v.acked).copied().collect();
        seen.sort_unstable();
        seen.dedup();
        let Some(first) = seen.first().copied() else {
            continue;
        };
        let top = room_max[&v.group];
        let missed = (top - first + 1) - seen.len() as u64;
        if v.ended_early {
            lost_after_close += missed;
        } else {
            lost += missed;
            if missed > 0 && explained < load.args.explain_loss {
                explained += 1;
                explain_loss(&load, v, &seen, first, top);
            }
        }
    }
    // Socket.IO mode: per connection and publisher, the acked counters after the
    // first one it got that it did not get (a group's members and publishers are all
    // in this process: groups do not straddle processes). Up to its last one got if
    // the generator closed it (churn: what it misses while away is not owed), up to
    // the publisher's last acked if it was open at the end; if the server ended it,
    // what came after counts apart, as in our mode.
    let no_acks = HashSet::new();
    for (got, ended) in &load.socketio_views {
        for (from, counters) in got {
            let acked = load.acked_by.get(from).unwrap_or(&no_acks);
            let (Some(first), Some(last)) = (counters.iter().min(), counters.iter().max()) else {
                continue;
            };
            let missing = |from_exclusive: u64, to: u64| {
                acked
                    .iter()
                    .filter(|a| **a > from_exclusive && **a <= to && !counters.contains(a))
                    .count() as u64
            };
            let top = acked.iter().max().copied().unwrap_or(0);
            lost += missing(*first, *last);
            match ended {
                Some(false) => lost += missing(*last, top),
                Some(true) => lost_after_close += missing(*last, top),
                None => {}
            }
        }
    }
    load.latencies.sort_unstable();
    let l = &load.latencies;
    if load.args.reconnect {
        let mut per_second: HashMap<u64, u64> = HashMap::new();
        for at in &load.reopened_at {
            *per_second
                .entry(at.duration_since(traffic).as_secs())
                .or_default() += 1;
        }
        let mut codes: Vec<(u16, u64)> = load.close_codes.iter().map(|(c, n)| (*c, *n)).collect();
        codes.sort_unstable();
        let span = match (load.reopened_at.iter().min(), load.reopened_at.iter().max()) {
            (Some(a), Some(b)) => b.duration_since(*a).as_secs_f64(),
            _ => 0.0,
        };
        println!(
            "reconnected {} peak_per_s {} over_s {:.1} pending {} close_codes {:?}",
            load.reopened_at.len(),
            per_second.values().max().copied().unwrap_or(0),
            span,
            load.reopen.len(),
            codes
        );
    }
    println!(
        "connections {} connect_s {:.1} published {} deliveries {} per_s {:.0} replayed {} p50_ms {:.1} p99_ms {:.1} max_ms {:.1} lost {} lost_after_close {} duplicated {} reordered {} churns {} errors {} refused {} retried {} cpu_us_per_delivery {:.2} straggle_s {:.1}",
        load.args.connections,
        connect_seconds,
        measured,
        deliveries,
        deliveries as f64 / load.args.seconds as f64,
        load.replayed,
        percentile(l, 0.5) as f64 / 1000.0,
        percentile(l, 0.99) as f64 / 1000.0,
        l.last().copied().unwrap_or(0) as f64 / 1000.0,
        lost,
        lost_after_close,
        duplicated,
        reordered,
        churns,
        load.errors,
        load.refused,
        load.retried,
        if deliveries > 0 { cpu * 1e6 / deliveries as f64 } else { 0.0 },
        straggle_seconds,
    );
}
