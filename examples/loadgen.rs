//! A load generator for any `ws://` echo server: C connections, each keeping D messages
//! of S bytes in flight, M messages each (or until a time cap). Reports messages per
//! second, MB/s, and p50/p99/max round-trip latency.
//!
//! ```text
//! cargo run --release --example loadgen -- ws://127.0.0.1:9001/ -c 50 -s 16 -d 16 -m 20000
//! ```
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
    /// Print one machine-readable line: msgs_per_s mb_per_s p50_us p99_us max_us errors.
    #[arg(long)]
    raw: bool,
}

#[derive(Default)]
struct Outcome {
    latencies: Vec<Duration>,
    bytes: usize,
    errors: usize,
}

fn run_connection(args: &Args, deadline: Instant) -> Outcome {
    let mut outcome = Outcome::default();
    let mut ws = match blocking::connect(&args.url) {
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

fn main() {
    let args = Args::parse();
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let threads: Vec<_> = (0..args.connections)
        .map(|_| {
            let args = args.clone();
            std::thread::spawn(move || run_connection(&args, deadline))
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
        println!(
            "{per_second:.0} {mb_per_second:.1} {:.0} {:.0} {:.0} {}",
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
