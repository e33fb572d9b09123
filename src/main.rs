//! `rfc6455`: the command line tool: `echo`, the echo server on the event loop (the
//! Autobahn testee), and the learning tools `decode`, `encode` and `accept` that show
//! the wire protocol byte by byte.

mod chat;

use clap::{Parser, Subcommand, ValueEnum};
use rfc6455::frame::FrameHeader;
use rfc6455::handshake::server::Request;
use rfc6455::handshake::{accept_digest, GUID};
use rfc6455::inspect::{inspect, parse_hex};
use rfc6455::mask::apply_mask;
use rfc6455::server;
use rfc6455::{accept_key, OpCode, Role};
use std::io::{Read, Write};
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
    Serve {
        /// The address to listen on.
        #[arg(long, default_value = "127.0.0.1:9001")]
        addr: std::net::SocketAddr,
        /// Accept upgrades only from these Origins (repeatable); others get 403.
        #[arg(long = "origin", value_name = "ORIGIN")]
        origins: Vec<String>,
        /// Require `?token=TOKEN` or `Authorization: Bearer TOKEN` (401 otherwise).
        #[arg(long)]
        token: Option<String>,
        /// Messages kept per room for late joiners and catch-up.
        #[arg(long, default_value_t = 100)]
        history: usize,
        /// Messages per second one connection may send (over it: close 1008); 0: no limit.
        #[arg(long, default_value_t = 50)]
        max_rate: u32,
        /// Log connection events (-v) or more (-vv).
        #[arg(short, long, action = clap::ArgAction::Count)]
        verbose: u8,
        /// Log every frame in and out, annotated, and the handshake heads.
        #[arg(long)]
        trace: bool,
    },
    /// Runs the echo server on the mio event loop: every text and binary message is
    /// sent back. Ctrl-C (or SIGTERM) closes every connection with 1001 and exits.
    Echo {
        /// The address to listen on.
        #[arg(long, default_value = "127.0.0.1:9001")]
        addr: std::net::SocketAddr,
        /// Log every connection event (-v) or more (-vv).
        #[arg(short, long, action = clap::ArgAction::Count)]
        verbose: u8,
        /// Log every frame in and out, annotated, and the handshake heads.
        #[arg(long)]
        trace: bool,
    },
    /// A terminal client, like wscat: each stdin line is sent as a text message and
    /// every message received is printed. Commands: /ping [TEXT], /close [CODE [REASON]].
    ///
    /// Example: rfc6455 client ws://127.0.0.1:9001/ --trace
    Client {
        /// The server's ws:// URL.
        url: String,
        /// Print every frame in and out, annotated, and the handshake.
        #[arg(long)]
        trace: bool,
    },
    /// Decodes frames from hex bytes and explains every bit (RFC 6455 §5.2).
    ///
    /// Example: rfc6455 decode 81 85 37 fa 21 3d 7f 9f 4d 51 58
    Decode {
        /// Hex bytes (spaces, commas, colons and 0x prefixes are ignored); `-` reads
        /// them from standard input.
        #[arg(required = true)]
        hex: Vec<String>,
        /// Who sent the bytes; by default the first frame's MASK bit decides.
        #[arg(long, value_enum)]
        from: Option<Sender>,
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
    /// Computes Sec-WebSocket-Accept for a Sec-WebSocket-Key, step by step (§4.2.2).
    ///
    /// Example: rfc6455 accept dGhlIHNhbXBsZSBub25jZQ==
    Accept {
        /// The client's Sec-WebSocket-Key.
        key: String,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Sender {
    Client,
    Server,
}

#[derive(clap::Args)]
#[group(required = true, multiple = false)]
struct Payload {
    /// A text message.
    #[arg(long)]
    text: Option<String>,
    /// A binary message, in hex.
    #[arg(long, value_name = "HEX")]
    binary: Option<String>,
    /// A ping with this text payload.
    #[arg(long)]
    ping: Option<String>,
    /// A pong with this text payload.
    #[arg(long)]
    pong: Option<String>,
    /// A close frame with this status code (add --reason).
    #[arg(long, value_name = "CODE")]
    close: Option<u16>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve {
            addr,
            origins,
            token,
            history,
            max_rate,
            verbose,
            trace,
        } => serve(
            addr,
            chat::ChatConfig {
                origins,
                token,
                history,
            },
            max_rate,
            verbose,
            trace,
        ),
        Command::Echo {
            addr,
            verbose,
            trace,
        } => echo(addr, verbose, trace),
        Command::Client { url, trace } => client(&url, trace),
        Command::Decode { hex, from } => decode(&hex, from),
        Command::Encode {
            payload,
            reason,
            mask,
            client,
            fragment,
        } => encode(
            &payload,
            reason.as_deref(),
            mask.as_deref(),
            client,
            fragment,
        ),
        Command::Accept { key } => Ok(accept_steps(&key)),
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

fn decode(hex: &[String], from: Option<Sender>) -> Result<String, String> {
    let text = if hex == ["-"] {
        let mut input = String::new();
        std::io::stdin()
            .read_to_string(&mut input)
            .map_err(|e| e.to_string())?;
        input
    } else {
        hex.join(" ")
    };
    let bytes = parse_hex(&text)?;
    let sender = from.map(|s| match s {
        Sender::Client => Role::Client,
        Sender::Server => Role::Server,
    });
    Ok(inspect(&bytes, sender))
}

fn encode(
    payload: &Payload,
    reason: Option<&str>,
    mask: Option<&str>,
    client: bool,
    fragment: Option<usize>,
) -> Result<String, String> {
    let (opcode, data) = if let Some(text) = &payload.text {
        (OpCode::Text, text.as_bytes().to_vec())
    } else if let Some(hex) = &payload.binary {
        (OpCode::Binary, parse_hex(hex)?)
    } else if let Some(text) = &payload.ping {
        (OpCode::Ping, text.as_bytes().to_vec())
    } else if let Some(text) = &payload.pong {
        (OpCode::Pong, text.as_bytes().to_vec())
    } else if let Some(code) = payload.close {
        let mut data = code.to_be_bytes().to_vec();
        data.extend_from_slice(reason.unwrap_or("").as_bytes());
        (OpCode::Close, data)
    } else {
        unreachable!("clap requires one payload option")
    };
    let key = match (mask, client) {
        (Some(hex), _) => {
            let bytes = parse_hex(hex)?;
            let key: [u8; 4] = bytes
                .try_into()
                .map_err(|_| "a masking key is 4 bytes: 8 hex digits".to_string())?;
            Some(key)
        }
        (None, true) => {
            let mut key = [0u8; 4];
            getrandom::fill(&mut key).map_err(|e| e.to_string())?;
            Some(key)
        }
        (None, false) => None,
    };
    let pieces: Vec<&[u8]> = match fragment {
        Some(0) => return Err("--fragment needs at least 1 byte per fragment".into()),
        Some(n) if !opcode.is_control() && data.len() > n => data.chunks(n).collect(),
        _ => vec![&data[..]],
    };
    let mut wire = Vec::new();
    for (i, piece) in pieces.iter().enumerate() {
        let header = FrameHeader {
            fin: i + 1 == pieces.len(),
            rsv: 0,
            opcode: if i == 0 { opcode } else { OpCode::Continuation },
            masking_key: key,
            payload_len: piece.len() as u64,
        };
        let (head, n) = header.encode();
        wire.extend_from_slice(&head[..n]);
        let start = wire.len();
        wire.extend_from_slice(piece);
        if let Some(key) = key {
            apply_mask(&mut wire[start..], key, 0);
        }
    }
    let hex: Vec<String> = wire.iter().map(|b| format!("{b:02x}")).collect();
    let sender = if key.is_some() {
        Role::Client
    } else {
        Role::Server
    };
    Ok(format!(
        "{}\n\n{}",
        hex.join(" "),
        inspect(&wire, Some(sender))
    ))
}

fn accept_steps(key: &str) -> String {
    let digest = accept_digest(key);
    let digest_hex: Vec<String> = digest.iter().map(|b| format!("{b:02x}")).collect();
    let mut out = String::new();
    out.push_str("RFC 6455 §4.2.2: Sec-WebSocket-Accept = base64(SHA-1(key + GUID))\n");
    out.push_str(&format!("1. key:          {key}\n"));
    out.push_str(&format!("2. + GUID:       {key}{GUID}\n"));
    out.push_str(&format!("3. SHA-1:        {}\n", digest_hex.join(" ")));
    out.push_str(&format!("4. base64:       {}\n", accept_key(key)));
    out.push_str(&format!("Sec-WebSocket-Accept: {}\n", accept_key(key)));
    out
}

/// Logs to stderr: `log` records at or above the level chosen with -v.
struct StderrLogger;

impl log::Log for StderrLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }
    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            eprintln!("{:5} {}", record.level(), record.args());
        }
    }
    fn flush(&self) {}
}

fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => log::LevelFilter::Warn,
        1 => log::LevelFilter::Info,
        _ => log::LevelFilter::Debug,
    };
    if log::set_logger(&StderrLogger).is_ok() {
        log::set_max_level(level);
    }
}

/// Shuts the server down gracefully on SIGINT or SIGTERM.
fn shutdown_on_signals(handle: server::Handle) -> Result<(), String> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals =
        signal_hook::iterator::Signals::new([SIGINT, SIGTERM]).map_err(|e| e.to_string())?;
    std::thread::spawn(move || {
        if signals.forever().next().is_some() {
            eprintln!("shutting down: closing every connection with 1001");
            handle.shutdown();
        }
    });
    Ok(())
}

struct EchoHandler;

impl server::Handler for EchoHandler {
    type Data = ();

    fn upgrade(&mut self, _request: &Request) -> Result<server::Accept<()>, u16> {
        Ok(server::Accept::new(()))
    }

    fn message(
        &mut self,
        ctx: &mut server::Ctx<'_, ()>,
        id: server::ConnId,
        message: server::Message,
    ) {
        ctx.send(id, &message);
    }
}

fn echo(addr: std::net::SocketAddr, verbose: u8, trace: bool) -> Result<String, String> {
    init_logging(if trace { verbose.max(1) } else { verbose });
    let config = server::ServerConfig {
        // Autobahn's 9.* cases send messages of up to 16 MiB and expect them back.
        connection: rfc6455::Config {
            max_frame_size: 64 << 20,
            max_message_size: 64 << 20,
            trace,
            ..rfc6455::Config::default()
        },
        max_queued_output: 128 << 20,
        ..server::ServerConfig::default()
    };
    run_server(addr, config, EchoHandler, |local| {
        format!("echo server (mio event loop) listening on ws://{local}/")
    })
}

/// Binds, announces, shuts down gracefully on SIGINT/SIGTERM, and runs `handler`.
fn run_server<H: server::Handler>(
    addr: std::net::SocketAddr,
    config: server::ServerConfig,
    handler: H,
    banner: impl FnOnce(std::net::SocketAddr) -> String,
) -> Result<String, String> {
    let server = server::Server::bind(addr, config).map_err(|e| format!("bind {addr}: {e}"))?;
    eprintln!(
        "{}",
        banner(server.local_addr().map_err(|e| e.to_string())?)
    );
    shutdown_on_signals(server.handle())?;
    server.run(handler).map_err(|e| e.to_string())?;
    Ok(String::new())
}

/// `rfc6455 client`: stdin lines out, messages in, on one thread that polls the socket
/// with a short read timeout between lines.
fn client(url: &str, trace: bool) -> Result<String, String> {
    use rfc6455::blocking::{self, Error};
    use rfc6455::{CloseCode, Event};
    use std::io::BufRead;
    use std::sync::mpsc;

    let config = rfc6455::Config {
        trace,
        ..rfc6455::Config::default()
    };
    let mut ws = blocking::connect_with(url, config, &[]).map_err(|e| e.to_string())?;
    if let Some((request, response)) = ws.handshake_heads() {
        for (arrow, head) in [("->", request), ("<-", response)] {
            for line in String::from_utf8_lossy(head).lines() {
                eprintln!("{arrow} {line}");
            }
        }
    }
    eprintln!("connected to {url} (type lines; /ping, /close CODE REASON, Ctrl-D to quit)");
    let (lines_tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    ws.get_mut()
        .set_read_timeout(Some(std::time::Duration::from_millis(50)))
        .map_err(|e| e.to_string())?;
    let mut stdin_open = true;
    loop {
        let result = ws.read();
        if trace {
            for frame in ws.take_trace() {
                eprintln!("{frame}");
            }
        }
        match result {
            Ok(Event::Text(text)) => println!("< {text}"),
            Ok(Event::Binary(data)) => println!("< binary, {} bytes", data.len()),
            Ok(Event::Ping(p)) => println!("< ping {}", String::from_utf8_lossy(&p)),
            Ok(Event::Pong(p)) => println!("< pong {}", String::from_utf8_lossy(&p)),
            Ok(Event::Close(frame)) => match frame {
                Some(f) => println!("< close {} {:?}", f.code, f.reason),
                None => println!("< close (no status)"),
            },
            Err(Error::Closed) => return Ok(String::new()),
            Err(Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e.to_string()),
        }
        while stdin_open {
            let line = match lines.try_recv() {
                Ok(line) => line,
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => {
                    stdin_open = false;
                    if !ws.connection().is_closed() {
                        let _ = ws.close(CloseCode::NORMAL, "");
                    }
                    break;
                }
            };
            let sent = if let Some(text) = line.strip_prefix("/ping") {
                ws.send_ping(text.trim().as_bytes())
            } else if let Some(rest) = line.strip_prefix("/close") {
                let mut parts = rest.trim().splitn(2, ' ');
                let code = parts.next().and_then(|c| c.parse().ok()).unwrap_or(1000);
                ws.close(CloseCode(code), parts.next().unwrap_or(""))
            } else {
                ws.send_text(&line)
            };
            if let Err(e) = sent {
                eprintln!("cannot send: {e}");
            }
            if trace {
                for frame in ws.take_trace() {
                    eprintln!("{frame}");
                }
            }
        }
    }
}

fn serve(
    addr: std::net::SocketAddr,
    config: chat::ChatConfig,
    max_rate: u32,
    verbose: u8,
    trace: bool,
) -> Result<String, String> {
    init_logging(if trace { verbose.max(1) } else { verbose });
    let server_config = server::ServerConfig {
        connection: rfc6455::Config {
            max_frame_size: 64 * 1024,
            max_message_size: 64 * 1024,
            trace,
            ..rfc6455::Config::default()
        },
        max_messages_per_second: (max_rate > 0).then_some(max_rate),
        ..server::ServerConfig::default()
    };
    run_server(addr, server_config, chat::Chat::new(config), |local| {
        format!(
            "rooms server on ws://{local}/ - chat page at http://{local}/ - metrics at http://{local}/metrics"
        )
    })
}
