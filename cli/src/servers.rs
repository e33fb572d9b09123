//! `rfc6455 serve` and `rfc6455 echo`: the event-loop server with the rooms handler or
//! an echo handler, logging, and a graceful shutdown on SIGINT/SIGTERM.

use crate::chat;
use rfc6455::deflate::DeflateConfig;
use rfc6455::handshake::server::Request;
use rfc6455::server;
use rfc6455::tls::rustls;
use std::time::Duration;

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

/// SIGTERM (what an orchestrator sends before a restart) drains over `drain`;
/// SIGINT (Ctrl-C), or a second signal during a drain, shuts down at once (1001).
fn shutdown_on_signals(handle: server::Handle, drain: Duration) -> Result<(), String> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals =
        signal_hook::iterator::Signals::new([SIGINT, SIGTERM]).map_err(|e| e.to_string())?;
    std::thread::spawn(move || {
        let mut draining = false;
        for signal in signals.forever() {
            if signal == SIGTERM && !draining {
                eprintln!("draining: closing every connection with 1012 over {drain:?}");
                handle.drain(drain);
                draining = true;
            } else {
                eprintln!("shutting down: closing every connection with 1001");
                handle.shutdown();
                return;
            }
        }
    });
    Ok(())
}

struct EchoHandler;

impl server::Handler for EchoHandler {
    type Data = ();

    fn upgrade(&mut self, _request: &Request) -> Result<server::Accept<()>, server::Refusal> {
        Ok(server::Accept::new(()))
    }

    /// Lent, answered from the loop's buffer: no allocation per message.
    fn message(
        &mut self,
        ctx: &mut server::Ctx<'_, ()>,
        id: server::ConnId,
        message: server::Received<'_>,
    ) {
        ctx.send(id, message);
    }
}

/// What `serve` and `echo` share on the command line.
#[derive(clap::Args, Debug)]
pub struct ServerArgs {
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1:9001")]
    addr: std::net::SocketAddr,
    /// Log connection events (-v) or more (-vv).
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Log every frame in and out, annotated, and the handshake heads.
    #[arg(long)]
    trace: bool,
    /// Decline permessage-deflate (RFC 7692), which is negotiated by default.
    #[arg(long)]
    no_deflate: bool,
    /// Event loops, one thread each [default: the number of cores].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    threads: Option<u16>,
    /// How connections are spread over the loops.
    #[arg(long, value_enum, default_value_t = BalanceArg::LeastConnections)]
    balance: BalanceArg,
    /// After handling events, keep polling this many microseconds before sleeping:
    /// lower latency for a core's worth of CPU while traffic flows.
    #[arg(long, value_name = "MICROS")]
    busy_poll: Option<u64>,
    /// Connections open at once, WebSocket and event streams, all loops together
    /// (beyond: 503).
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    max_connections: usize,
    /// Connections that have not finished their request yet (head, body, TLS
    /// handshake), all loops together; beyond, a new connection is closed at once.
    #[arg(long, value_name = "N", default_value_t = 1024)]
    max_handshaking: usize,
    /// Connections from one IP address at once (beyond, a new one is closed at
    /// once) [default: no limit: users behind one NAT or proxy share an address].
    #[arg(long, value_name = "N")]
    max_connections_per_ip: Option<usize>,
    /// Event streams (SSE) open at once, counted in --max-connections too
    /// [default: half of --max-connections].
    #[arg(long, value_name = "N")]
    max_streams: Option<usize>,
    /// A connection whose queued output has not shrunk for this long is dropped
    /// (1008 "write timeout"): its peer stopped reading.
    #[arg(long, value_name = "SECONDS", default_value_t = 30.0, value_parser = crate::parse_seconds)]
    write_timeout: f64,
    /// Output queued for all connections together; a send past it is refused, and
    /// the connection it was for closed with 1008 "server output budget".
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 30)]
    max_queued_total: usize,
    /// On SIGTERM: /healthz answers 503 at once, new connections are refused, and the
    /// open ones are closed with 1012 spread over this long, so that their clients
    /// come back on the other nodes gradually. (SIGINT closes all at once, with 1001.)
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0, value_parser = crate::parse_seconds)]
    drain_seconds: f64,
    /// Serve TLS (https:// and wss://) with this certificate chain (PEM, the leaf
    /// first).
    #[arg(long, value_name = "CERT.pem", requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "KEY.pem", requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum BalanceArg {
    /// Loop 0 accepts and hands each connection to the loop with the fewest.
    LeastConnections,
    /// A listening socket per loop (SO_REUSEPORT); the kernel spreads connections.
    ReusePort,
}

impl ServerArgs {
    /// The TLS configuration from --tls-cert and --tls-key, if given.
    fn tls(&self) -> Result<Option<std::sync::Arc<rustls::ServerConfig>>, String> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => rfc6455::tls::server_config(cert, key)
                .map(Some)
                .map_err(|e| e.to_string()),
            _ => Ok(None),
        }
    }

    /// Whether the server speaks TLS (--tls-cert given).
    pub fn tls_enabled(&self) -> bool {
        self.tls_cert.is_some()
    }

    /// `ws` or `wss`, `http` or `https`: for the banner.
    fn schemes(&self) -> (&'static str, &'static str) {
        if self.tls_enabled() {
            ("wss", "https")
        } else {
            ("ws", "http")
        }
    }

    /// The server's configuration with these options applied to `connection`.
    fn config(&self, connection: rfc6455::Config) -> Result<server::ServerConfig, String> {
        init_logging(if self.trace {
            self.verbose.max(1)
        } else {
            self.verbose
        });
        let threads = self.threads.map_or_else(
            || std::thread::available_parallelism().map_or(1, |n| n.get()),
            usize::from,
        );
        Ok(server::ServerConfig {
            tls: self.tls()?,
            connection: rfc6455::Config {
                trace: self.trace,
                deflate: (!self.no_deflate).then(DeflateConfig::default),
                ..connection
            },
            threads,
            busy_poll: self.busy_poll.map(std::time::Duration::from_micros),
            max_connections: self.max_connections,
            max_handshaking: self.max_handshaking,
            max_connections_per_ip: self.max_connections_per_ip,
            max_streams: self.max_streams,
            write_timeout: std::time::Duration::from_secs_f64(self.write_timeout),
            max_total_queued_output: self.max_queued_total,
            balance: match self.balance {
                BalanceArg::LeastConnections => server::Balance::LeastConnections,
                BalanceArg::ReusePort => server::Balance::ReusePort,
            },
            ..server::ServerConfig::default()
        })
    }
}

/// `echo`'s own limits: modest by default, raised by the Autobahn agent (its 9.*
/// cases send messages of up to 16 MiB, as fast as they can).
#[derive(clap::Args, Debug)]
pub struct EchoArgs {
    /// The largest message (and frame) accepted, in bytes (1009 beyond); queued
    /// output may reach twice it, plus 1 MiB.
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 20)]
    max_message: usize,
    /// Messages (pings included) per second a connection may send, 0 for no limit
    /// (1008 beyond).
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    max_rate: u32,
}

pub fn echo(args: &ServerArgs, limits: &EchoArgs) -> Result<String, String> {
    let config = server::ServerConfig {
        max_queued_output: limits.max_message.saturating_mul(2).saturating_add(1 << 20),
        max_messages_per_second: (limits.max_rate > 0).then_some(limits.max_rate),
        ..args.config(rfc6455::Config {
            max_frame_size: limits.max_message,
            max_message_size: limits.max_message,
            ..rfc6455::Config::default()
        })?
    };
    let (ws, _) = args.schemes();
    run_server(
        (args.addr, Duration::from_secs_f64(args.drain_seconds)),
        config,
        |_| Ok(|_| EchoHandler),
        |local| format!("echo server (mio event loop) listening on {ws}://{local}/"),
    )
}

/// Binds, announces, shuts down gracefully on SIGINT/SIGTERM, and runs a handler on
/// each loop: `setup` gets the server's handle and gives what makes them.
fn run_server<H: server::Handler, F: FnMut(usize) -> H + Send>(
    (addr, drain): (std::net::SocketAddr, Duration),
    config: server::ServerConfig,
    setup: impl FnOnce(server::Handle) -> Result<F, String>,
    banner: impl FnOnce(std::net::SocketAddr) -> String,
) -> Result<String, String> {
    let threads = config.threads;
    let server = server::Server::bind(addr, config).map_err(|e| format!("bind {addr}: {e}"))?;
    let local = server.local_addr().map_err(|e| e.to_string())?;
    let make_handler = setup(server.handle())?;
    let loops = if threads == 1 {
        "1 event loop".to_string()
    } else {
        format!("{threads} event loops")
    };
    eprintln!("{} ({loops})", banner(local));
    shutdown_on_signals(server.handle(), drain)?;
    server.run_with(make_handler).map_err(|e| e.to_string())?;
    Ok(String::new())
}

pub fn serve(
    args: &ServerArgs,
    config: chat::ChatConfig,
    max_rate: u32,
    redis: Option<chat::redis::RedisOptions>,
) -> Result<String, String> {
    let server_config = server::ServerConfig {
        max_messages_per_second: (max_rate > 0).then_some(max_rate),
        // The largest valid request is a message of MAX_TEXT bytes escaped as JSON
        // (at most 6 bytes a character for control characters, `\u0001`), with its
        // room and id: well under 32 KiB. A larger message is nobody's request.
        ..args.config(rfc6455::Config {
            max_frame_size: chat::MAX_REQUEST,
            max_message_size: chat::MAX_REQUEST,
            ..rfc6455::Config::default()
        })?
    };
    let (ws, http) = args.schemes();
    run_server(
        (args.addr, Duration::from_secs_f64(args.drain_seconds)),
        server_config,
        |handle| {
            let chat = match redis {
                None => chat::Chat::new(config),
                Some(options) => chat::Chat::with_redis(config, &options, handle)?,
            };
            Ok(move |_| chat.clone())
        },
        |local| {
            format!(
            "rooms server on {ws}://{local}/ - chat page at {http}://{local}/ - metrics at {http}://{local}/metrics"
        )
        },
    )
}
