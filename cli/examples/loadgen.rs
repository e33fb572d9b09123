//! A load generator for any `ws://` echo server: C connections, each keeping D messages
//! of S bytes in flight, M messages each (or until a time cap). Reports messages per
//! second, MB/s, and p50/p99/max round-trip latency.
//!
//! ```text
//! cargo run --release --example loadgen -- ws://127.0.0.1:9001/ -c 50 -s 16 -d 16 -m 20000
//! ```
//!
//! Fan-out mode, against `rfc6455 serve` (the rooms server): K members join one room,
//! one publisher sends P messages carrying their send time; reports deliveries per
//! second and p50/p99 delivery latency.
//!
//! ```text
//! cargo run --release -- serve --max-rate 0 &
//! cargo run --release --example loadgen -- ws://127.0.0.1:9001/ --fanout 1000 --publish 200
//! ```
//!
//! Over the nodes of a `--redis` cluster: `--spread ws://NODE2/` puts every other member
//! there, and `--metrics` counts the Redis round trips per message (`benches/cluster.sh`).
//!
//! `benches/load.sh` runs it against our event-loop server, our blocking server and a
//! tungstenite server, side by side. Each connection is one thread with the blocking
//! client; latency is measured per message, from just before its frame is written to
//! just after its echo is read (the echo keeps order, so a FIFO of send times matches).

use clap::Parser;
use rfc6455::blocking;
use rfc6455::{CloseCode, Event};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

#[derive(Parser, Debug, Clone)]
struct Args {
    /// The echo server's URL.
    url: String,
    /// Concurrent connections.
    #[arg(short, long, default_value_t = 1)]
    connections: usize,
    /// Messages per connection.
    #[arg(short, long, default_value_t = 10_000)]
    messages: usize,
    /// Message size in bytes.
    #[arg(short, long, default_value_t = 16)]
    size: usize,
    /// Messages in flight per connection.
    #[arg(short, long, default_value_t = 1)]
    depth: usize,
    /// Stop after this many seconds even if messages remain.
    #[arg(short = 't', long, default_value_t = 30)]
    seconds: u64,
    /// Print one machine-readable line: msgs_per_s mb_per_s p50_us p99_us max_us errors
    /// messages cpu_us_per_msg (the generator's own CPU time, user + system, per echo)
    /// (fan-out: deliveries_per_s p50_us p99_us max_us members_short round_trips_per_msg).
    #[arg(long)]
    raw: bool,
    /// Fan-out mode: this many members join one room of the rooms server.
    #[arg(long, value_name = "K")]
    fanout: Option<usize>,
    /// Fan-out mode: messages the publisher sends.
    #[arg(long, value_name = "P", default_value_t = 100)]
    publish: usize,
    /// Offer permessage-deflate (RFC 7692) on every connection.
    #[arg(long)]
    deflate: bool,
    /// Fan-out mode: spread the members over this node too (repeat for more nodes of a
    /// `--redis` cluster); members alternate between URL and these, the publisher is
    /// on URL.
    #[arg(long, value_name = "URL")]
    spread: Vec<String>,
    /// Fan-out mode: the text of each message, in bytes (its send time, padded).
    #[arg(long, value_name = "BYTES", default_value_t = 64)]
    text_size: usize,
    /// Fan-out mode: the members are Server-Sent Events streams
    /// (`GET /rooms/fanout/events`) instead of WebSocket connections; the publisher
    /// stays a WebSocket member.
    #[arg(long)]
    sse: bool,
    /// Fan-out mode: a node's `/metrics` address (`127.0.0.1:PORT`, repeat for every
    /// node): reports the Redis round trips made while publishing, per message.
    #[arg(long, value_name = "ADDR")]
    metrics: Vec<String>,
    /// wss://: trust the certificates of this PEM file instead of the platform's roots.
    #[arg(long, value_name = "CA.pem")]
    ca: Option<std::path::PathBuf>,
    /// Handshake mode: each of the C connections opens, completes the handshakes (TLS
    /// for wss://, then WebSocket) and closes, again and again until -t seconds pass;
    /// reports new connections per second and the p50/p99 time to open one.
    #[arg(long)]
    handshakes: bool,
}

/// Connects, offering permessage-deflate if asked; over wss:// trusting `--ca`.
fn connect(
    args: &Args,
    url: &str,
) -> Result<blocking::WebSocket<rfc6455::blocking::ClientStream>, blocking::Error> {
    let config = rfc6455::Config {
        deflate: args.deflate.then(rfc6455::deflate::DeflateConfig::default),
        ..rfc6455::Config::default()
    };
    match &args.ca {
        Some(ca) => {
            static TLS: std::sync::OnceLock<std::sync::Arc<rfc6455::tls::rustls::ClientConfig>> =
                std::sync::OnceLock::new();
            let tls =
                TLS.get_or_init(|| rfc6455::tls::client_config_with_ca(ca).expect("the --ca file"));
            blocking::connect_with_tls(url, config, &[], tls.clone())
        }
        None => blocking::connect_with(url, config, &[]),
    }
}

/// Handshake mode: open, close, again; the time each open took.
fn run_handshakes(args: &Args, deadline: Instant) -> Outcome {
    let mut outcome = Outcome::default();
    while Instant::now() < deadline {
        let started = Instant::now();
        match connect(args, &args.url) {
            Ok(mut ws) => {
                outcome.latencies.push(started.elapsed());
                let _ = ws.close(CloseCode::NORMAL, "");
                while ws.read().is_ok() {}
            }
            Err(e) => {
                eprintln!("connect: {e}");
                outcome.errors += 1;
            }
        }
    }
    outcome
}

#[derive(Default)]
struct Outcome {
    latencies: Vec<Duration>,
    bytes: usize,
    errors: usize,
}

fn run_connection(args: &Args, deadline: Instant) -> Outcome {
    let mut outcome = Outcome::default();
    let mut ws = match connect(args, &args.url) {
        Ok(ws) => ws,
        Err(e) => {
            eprintln!("connect: {e}");
            outcome.errors += 1;
            return outcome;
        }
    };
    let _ = ws.get_ref().set_read_timeout(Some(Duration::from_secs(10)));
    let payload = vec![b'x'; args.size];
    let mut in_flight = VecDeque::with_capacity(args.depth);
    let mut sent = 0;
    let mut received = 0;
    while received < args.messages {
        while in_flight.len() < args.depth && sent < args.messages && Instant::now() < deadline {
            in_flight.push_back(Instant::now());
            if ws.send_binary(&payload).is_err() {
                outcome.errors += 1;
                return outcome;
            }
            sent += 1;
        }
        if in_flight.is_empty() {
            break; // time is up
        }
        match ws.read() {
            Ok(Event::Binary(data)) => {
                let started = in_flight.pop_front().expect("an echo answers a message");
                outcome.latencies.push(started.elapsed());
                outcome.bytes += data.len();
                received += 1;
            }
            Ok(_) => {}
            Err(e) => {
                eprintln!("read: {e}");
                outcome.errors += 1;
                return outcome;
            }
        }
    }
    let _ = ws.close(CloseCode::NORMAL, "");
    while ws.read().is_ok() {}
    outcome
}

/// CPU time this process has used so far, user + system, all threads: its share of a
/// machine that it shares with the server it measures. Linux's `/proc/self/stat` counts
/// it in clock ticks of 1/100 s (`USER_HZ`, fixed for user space); 0 elsewhere.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // After "pid (command) ", utime and stime are the 12th and 13th fields.
    let fields: Vec<&str> = stat.rsplit(") ").next().unwrap_or("").split(' ').collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn main() {
    let args = Args::parse();
    if let Some(members) = args.fanout {
        return fanout(&args, members);
    }
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let cpu_before = cpu_seconds();
    let threads: Vec<_> = (0..args.connections)
        .map(|_| {
            let args = args.clone();
            std::thread::spawn(move || {
                if args.handshakes {
                    run_handshakes(&args, deadline)
                } else {
                    run_connection(&args, deadline)
                }
            })
        })
        .collect();
    let mut total = Outcome::default();
    for thread in threads {
        let outcome = thread.join().expect("a load thread panicked");
        total.latencies.extend(outcome.latencies);
        total.bytes += outcome.bytes;
        total.errors += outcome.errors;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_before;
    total.latencies.sort_unstable();
    let pct = |p: f64| {
        if total.latencies.is_empty() {
            return 0.0;
        }
        let i = ((total.latencies.len() as f64 - 1.0) * p).round() as usize;
        total.latencies[i].as_secs_f64() * 1e6
    };
    let messages = total.latencies.len();
    let per_second = messages as f64 / elapsed;
    let mb_per_second = total.bytes as f64 / elapsed / 1e6;
    if args.raw {
        let cpu_per_message = cpu * 1e6 / messages.max(1) as f64;
        println!(
            "{per_second:.0} {mb_per_second:.1} {:.0} {:.0} {:.0} {} {messages} {cpu_per_message:.2}",
            pct(0.5),
            pct(0.99),
            pct(1.0),
            total.errors
        );
    } else if args.handshakes {
        println!(
            "{messages} connections opened and closed in {elapsed:.2} s: {per_second:.0}/s; \
             time to open p50 {:.0} µs, p99 {:.0} µs, max {:.0} µs; {} errors",
            pct(0.5),
            pct(0.99),
            pct(1.0),
            total.errors
        );
    } else {
        println!(
            "{messages} messages in {elapsed:.2} s: {per_second:.0} msg/s, {mb_per_second:.1} MB/s echoed; \
             round trip p50 {:.0} µs, p99 {:.0} µs, max {:.0} µs; {} errors",
            pct(0.5),
            pct(0.99),
            pct(1.0),
            total.errors
        );
    }
}

fn micros_since_epoch() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// A fan-out member: a WebSocket member of the room, or a Server-Sent Events stream.
enum Listener {
    Ws(Box<blocking::WebSocket<rfc6455::blocking::ClientStream>>),
    Sse(std::io::BufReader<std::net::TcpStream>),
}

impl Listener {
    /// `GET /rooms/fanout/events` on the server of `url` (`ws://HOST:PORT/...`), read
    /// up to the presence event: then the stream is live. A thousand connections at
    /// once overflow the kernel's accept queue (`ListenOverflows` in `nstat`) and some
    /// get reset before the server sees them: those try again.
    fn stream(url: &str) -> Listener {
        let host = url
            .strip_prefix("ws://")
            .and_then(|rest| rest.split('/').next())
            .expect("a ws://HOST:PORT/ URL");
        for _ in 0..50 {
            if let Some(reader) = Self::subscribe(host) {
                return Listener::Sse(reader);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("no stream from {host} after 50 attempts");
    }

    fn subscribe(host: &str) -> Option<std::io::BufReader<std::net::TcpStream>> {
        use std::io::{BufRead, Write};
        let mut socket = std::net::TcpStream::connect(host).ok()?;
        write!(
            socket,
            "GET /rooms/fanout/events HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n"
        )
        .ok()?;
        let _ = socket.set_read_timeout(Some(Duration::from_secs(30)));
        let mut reader = std::io::BufReader::new(socket);
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        assert!(
            line.starts_with("HTTP/1.1 200 "),
            "the stream's answer: {line}"
        );
        loop {
            line.clear();
            if reader.read_line(&mut line).ok()? == 0 {
                return None;
            }
            if line.starts_with("event: presence") {
                return Some(reader);
            }
        }
    }

    /// The next chat message's JSON text; `None` when the connection ends.
    fn next_message(&mut self) -> Option<String> {
        match self {
            Listener::Ws(ws) => loop {
                match ws.read() {
                    Ok(Event::Text(t)) if t.contains(r#""type":"message""#) => return Some(t),
                    Ok(_) => {}
                    Err(_) => return None,
                }
            },
            Listener::Sse(reader) => {
                use std::io::BufRead;
                let mut line = String::new();
                loop {
                    line.clear();
                    if reader.read_line(&mut line).ok()? == 0 {
                        return None;
                    }
                    if let Some(data) = line.strip_prefix("data: ") {
                        if data.contains(r#""type":"message""#) {
                            return Some(data.trim_end().to_string());
                        }
                    }
                }
            }
        }
    }
}

/// Connects to the rooms server, says hello as `name` and joins the room.
fn member(
    url: &str,
    name: &str,
    args: &Args,
) -> blocking::WebSocket<rfc6455::blocking::ClientStream> {
    let mut ws = connect(args, url).expect("connect");
    ws.send_text(&format!(r#"{{"type":"hello","name":"{name}"}}"#))
        .unwrap();
    ws.send_text(r#"{"type":"join","room":"fanout"}"#).unwrap();
    // Wait for our own presence event: then we are in the room.
    loop {
        if let Ok(Event::Text(t)) = ws.read() {
            if t.contains(r#""type":"presence""#) {
                return ws;
            }
        }
    }
}

/// The sum of the Redis round-trip counters of the nodes at `addrs` (their `/metrics`).
fn redis_round_trips(addrs: &[String]) -> u64 {
    use std::io::{Read, Write};
    addrs
        .iter()
        .map(|addr| {
            let mut stream = std::net::TcpStream::connect(addr).expect("connect to /metrics");
            write!(stream, "GET /metrics HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
            let mut page = String::new();
            stream.read_to_string(&mut page).unwrap();
            page.lines()
                .find_map(|l| l.strip_prefix("rfc6455_redis_round_trips_total "))
                .and_then(|n| n.trim().parse::<u64>().ok())
                .unwrap_or_else(|| panic!("{addr}/metrics has no rfc6455_redis_round_trips_total"))
        })
        .sum()
}

fn fanout(args: &Args, members: usize) {
    let urls: Vec<String> = std::iter::once(args.url.clone())
        .chain(args.spread.iter().cloned())
        .collect();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(members + 1));
    let threads: Vec<_> = (0..members)
        .map(|i| {
            let url = urls[i % urls.len()].clone();
            let barrier = barrier.clone();
            let expected = args.publish;
            let member_args = args.clone();
            let sse = args.sse;
            std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || {
                    let mut listener = if sse {
                        Listener::stream(&url)
                    } else {
                        let ws = member(&url, &format!("m{i}"), &member_args);
                        let _ = ws.get_ref().set_read_timeout(Some(Duration::from_secs(30)));
                        Listener::Ws(Box::new(ws))
                    };
                    barrier.wait();
                    let mut latencies = Vec::with_capacity(expected);
                    let mut last = Instant::now();
                    while latencies.len() < expected {
                        match listener.next_message() {
                            Some(t) => {
                                let now = micros_since_epoch();
                                // The publisher's text is its send time in µs.
                                let sent: u64 = t
                                    .split(r#""text":""#)
                                    .nth(1)
                                    .and_then(|r| r.split(['"', ' ']).next())
                                    .and_then(|n| n.parse().ok())
                                    .unwrap_or(now);
                                latencies.push(Duration::from_micros(now.saturating_sub(sent)));
                                last = Instant::now();
                            }
                            None => break,
                        }
                    }
                    // The connection is handed back, so that it stays open until the
                    // figures are read: a leaving member makes Redis round trips too.
                    (latencies, last, listener)
                })
                .expect("spawn a member")
        })
        .collect();
    let mut publisher = member(&args.url, "publisher", args);
    barrier.wait();
    let trips_before = redis_round_trips(&args.metrics);
    let started = Instant::now();
    for _ in 0..args.publish {
        let mut text = micros_since_epoch().to_string();
        text.push(' ');
        while text.len() < args.text_size {
            text.push('x');
        }
        publisher
            .send_text(&format!(
                r#"{{"type":"message","room":"fanout","text":"{text}"}}"#
            ))
            .unwrap();
    }
    let mut latencies = Vec::new();
    let mut finished = started;
    let mut short = 0;
    let mut connections = Vec::with_capacity(members);
    for thread in threads {
        let (l, last, ws) = thread.join().expect("a member panicked");
        connections.push(ws);
        if l.len() < args.publish {
            short += 1;
        }
        finished = finished.max(last);
        latencies.extend(l);
    }
    let trips = redis_round_trips(&args.metrics) - trips_before;
    drop(connections);
    latencies.sort_unstable();
    let elapsed = finished.duration_since(started).as_secs_f64();
    let pct = |p: f64| {
        let i = ((latencies.len() as f64 - 1.0) * p).round() as usize;
        latencies.get(i).map_or(0.0, |d| d.as_secs_f64() * 1e6)
    };
    let per_message = trips as f64 / args.publish as f64;
    if args.raw {
        // deliveries/s p50_us p99_us max_us members_short redis_round_trips_per_message
        let rate = latencies.len() as f64 / elapsed;
        let (p50, p99, max) = (pct(0.5), pct(0.99), pct(1.0));
        println!("{rate:.0} {p50:.0} {p99:.0} {max:.0} {short} {per_message:.2}");
        return;
    }
    println!(
        "fan-out: {} members x {} messages = {} deliveries in {elapsed:.3} s: {:.0} deliveries/s; \
         delivery latency p50 {:.0} µs, p99 {:.0} µs, max {:.0} µs; {short} members missed messages",
        members,
        args.publish,
        latencies.len(),
        latencies.len() as f64 / elapsed,
        pct(0.5),
        pct(0.99),
        pct(1.0),
    );
    if !args.metrics.is_empty() {
        println!(
            "redis round trips while publishing: {trips} for {} messages ({:.2} per message), \
             all nodes together",
            args.publish, per_message
        );
    }
}
