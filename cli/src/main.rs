//! `rfc6455`: the command line tool. Servers (`serve`, the rooms server and its chat
//! page; `echo`, the Autobahn testee) in `servers.rs` and `chat/`; the terminal
//! client in `client.rs`; the learning tools (`decode`, `encode`, `accept`), which show
//! the wire protocol byte by byte, in `learn.rs`.

mod chat;
mod client;
mod learn;
mod servers;
mod tap;

use clap::{Parser, Subcommand};
use learn::{Payload, Sender};
use std::io::Write;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "rfc6455", version, about = "WebSocket (RFC 6455) tools")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the rooms server: a JSON chat protocol with presence, typing, direct
    /// messages, acks and catch-up, and its chat page at http://ADDR/.
    ///
    /// Example: rfc6455 serve --addr 127.0.0.1:9001
    ///
    /// Over TLS (https:// and wss://): rfc6455 serve --tls-cert cert.pem --tls-key key.pem
    Serve {
        #[command(flatten)]
        server: servers::ServerArgs,
        /// Accept upgrades only from these Origins (repeatable); others get 403.
        #[arg(long = "origin", value_name = "ORIGIN")]
        origins: Vec<String>,
        /// Require `?token=TOKEN` or `Authorization: Bearer TOKEN` (401 otherwise), on
        /// the WebSocket upgrade, the event streams, POST and /metrics.
        #[arg(long, value_parser = parse_token)]
        token: Option<String>,
        /// Messages kept per room for late joiners and catch-up.
        #[arg(long, default_value_t = 100)]
        history: usize,
        /// Messages per second one connection may send (over it: close 1008); 0: no limit.
        #[arg(long, default_value_t = 50)]
        max_rate: u32,
        #[command(flatten)]
        redis: Box<chat::redis::RedisArgs>,
        /// Server-Sent Events streams (`GET /rooms/ROOM/events`) get a comment line
        /// this often, so that proxies do not time them out.
        #[arg(long, value_name = "SECONDS", default_value_t = 15.0, value_parser = parse_seconds)]
        sse_keepalive: f64,
        #[command(flatten)]
        limits: chat::ChatLimits,
        #[command(flatten)]
        identity: Box<chat::IdentityArgs>,
    },
    /// Runs the echo server on the mio event loop: every text and binary message is
    /// sent back. Ctrl-C (or SIGTERM) closes every connection with 1001 and exits.
    Echo {
        #[command(flatten)]
        server: servers::ServerArgs,
        #[command(flatten)]
        limits: servers::EchoArgs,
    },
    /// A terminal client, like wscat: each stdin line is sent as a text message and
    /// every message received is printed. Commands: /ping [TEXT], /close [CODE [REASON]].
    ///
    /// Example: rfc6455 client ws://127.0.0.1:9001/ --trace
    ///
    /// Over TLS: rfc6455 client wss://localhost:9001/ --ca cert.pem
    Client {
        /// The server's ws:// or wss:// URL.
        url: String,
        /// Print every frame in and out, annotated, and the handshake.
        #[arg(long)]
        trace: bool,
        /// Offer permessage-deflate (RFC 7692).
        #[arg(long)]
        deflate: bool,
        /// wss://: trust the certificates of this PEM file (your CA, or a self-signed
        /// server certificate) instead of the platform's roots.
        #[arg(long, value_name = "CA.pem")]
        ca: Option<std::path::PathBuf>,
    },
    /// Decodes frames from hex bytes and explains every bit (RFC 6455 §5.2).
    ///
    /// Example: rfc6455 decode 81 85 37 fa 21 3d 7f 9f 4d 51 58
    ///
    /// Compressed (RFC 7692 §7.2.3.1): rfc6455 decode --deflate c1 07 f2 48 cd c9 c9 07 00
    Decode {
        /// Hex bytes (spaces, commas, colons and 0x prefixes are ignored); `-` reads
        /// them from standard input.
        #[arg(required = true)]
        hex: Vec<String>,
        /// Who sent the bytes; by default the first frame's MASK bit decides.
        #[arg(long, value_enum)]
        from: Option<Sender>,
        /// Read them as permessage-deflate traffic (RFC 7692): RSV1 marks a compressed
        /// message, which is inflated and shown both ways.
        #[arg(long)]
        deflate: bool,
    },
    /// Encodes one message as frames, prints their bytes in hex and explains them.
    ///
    /// Example: rfc6455 encode --text Hello --mask 37fa213d
    Encode {
        #[command(flatten)]
        payload: Payload,
        /// The reason of a --close frame.
        #[arg(long, requires = "close")]
        reason: Option<String>,
        /// Mask with this key (8 hex digits), as a client must (RFC 6455 §5.3).
        #[arg(long, value_name = "KEY", conflicts_with = "client")]
        mask: Option<String>,
        /// Mask with a fresh random key, as a client does.
        #[arg(long)]
        client: bool,
        /// Split a text or binary payload into fragments of at most N bytes (§5.4).
        #[arg(long, value_name = "N")]
        fragment: Option<usize>,
    },
    /// Relays WebSocket connections to an upstream server and prints every frame that
    /// crosses, in both directions, annotated: FIN/RSV/opcode, mask key, length,
    /// payload, and each rule of RFC 6455 it breaks. The bytes pass verbatim (only the
    /// request's Host is rewritten); a violation is reported and still relayed.
    ///
    /// Example: rfc6455 tap --listen 127.0.0.1:9000 --upstream ws://127.0.0.1:9001
    /// then point a client (or a browser: pages are relayed too) at 127.0.0.1:9000.
    Tap {
        /// Where clients connect.
        #[arg(long, default_value = "127.0.0.1:9000")]
        listen: std::net::SocketAddr,
        /// The server: ws://HOST:PORT[/PATH] or wss://… (a path replaces every
        /// request's target; without one, targets pass as they are).
        #[arg(long, value_name = "URL")]
        upstream: String,
        /// One JSON object per line (per frame, head, open and close), for tools.
        #[arg(long)]
        json: bool,
        /// Payload bytes shown per frame (text quoted, else hex).
        #[arg(long, value_name = "N", default_value_t = 64)]
        max_preview: usize,
        /// wss:// upstream: trust the certificates of this PEM file instead of the
        /// platform's roots.
        #[arg(long, value_name = "CA.pem")]
        ca: Option<std::path::PathBuf>,
        /// Client connections relayed at once (each holds two sockets); beyond, a
        /// new one is closed at once.
        #[arg(long, value_name = "N", default_value_t = 1024)]
        max_pairs: usize,
        /// A client whose request head is not all in by then is dropped.
        #[arg(long, value_name = "SECONDS", default_value_t = 10.0, value_parser = parse_seconds)]
        head_timeout: f64,
    },
    /// Computes Sec-WebSocket-Accept for a Sec-WebSocket-Key, step by step (§4.2.2).
    ///
    /// Example: rfc6455 accept dGhlIHNhbXBsZSBub25jZQ==
    Accept {
        /// The client's Sec-WebSocket-Key.
        key: String,
    },
}

/// Seconds, from 0.3 (a heartbeat runs every third of `--node-timeout`) to an hour.
pub(crate) fn parse_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if (0.3..=3600.0).contains(&s) => Ok(s),
        _ => Err(format!("{text:?}: seconds from 0.3 to 3600")),
    }
}

/// A token of at least one character (an empty one would let `?token=` pass).
fn parse_token(text: &str) -> Result<String, String> {
    if text.is_empty() {
        return Err("an empty token would let anybody in".into());
    }
    Ok(text.to_string())
}

/// Raises the soft limit of open files to the hard one: a server holding many
/// connections needs a descriptor for each, and the soft limit is often 1,024.
fn raise_open_files_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        let _ = setrlimit(Resource::Nofile, limit);
    }
}

fn main() -> ExitCode {
    raise_open_files_limit();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve {
            server,
            origins,
            token,
            history,
            max_rate,
            redis,
            sse_keepalive,
            limits,
            identity,
        } => identity.auth().and_then(|auth| {
            let signed_users = auth.is_some();
            servers::serve(
                &server,
                chat::ChatConfig {
                    auth: auth.map(std::sync::Arc::new),
                    origins,
                    token,
                    history,
                    keepalive: std::time::Duration::from_secs_f64(sse_keepalive),
                    hsts: server.tls_enabled(),
                    limits,
                },
                max_rate,
                redis.options(history, signed_users),
            )
        }),
        Command::Echo { server, limits } => servers::echo(&server, &limits),
        Command::Client {
            url,
            trace,
            deflate,
            ca,
        } => client::client(&url, trace, deflate, ca.as_deref()),
        Command::Decode { hex, from, deflate } => learn::decode(&hex, from, deflate),
        Command::Encode {
            payload,
            reason,
            mask,
            client,
            fragment,
        } => learn::encode(
            &payload,
            reason.as_deref(),
            mask.as_deref(),
            client,
            fragment,
        ),
        Command::Accept { key } => Ok(learn::accept_steps(&key)),
        Command::Tap {
            listen,
            upstream,
            json,
            max_preview,
            ca,
            max_pairs,
            head_timeout,
        } => tap::tap(&tap::TapOptions {
            listen,
            upstream,
            json,
            max_preview,
            ca,
            max_pairs,
            head_timeout: std::time::Duration::from_secs_f64(head_timeout),
        }),
    };
    match result {
        Ok(text) => {
            // A closed pipe (`| head`) is not an error worth a panic.
            let _ = std::io::stdout().lock().write_all(text.as_bytes());
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}
