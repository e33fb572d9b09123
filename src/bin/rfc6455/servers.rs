//! `rfc6455 serve` and `rfc6455 echo`: the event-loop server with the rooms handler or
//! an echo handler, logging, and a graceful shutdown on SIGINT/SIGTERM.

use crate::chat;
use rfc6455::deflate::DeflateConfig;
use rfc6455::handshake::server::Request;
use rfc6455::server;

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

pub fn echo(
    addr: std::net::SocketAddr,
    verbose: u8,
    trace: bool,
    deflate: bool,
) -> Result<String, String> {
    init_logging(if trace { verbose.max(1) } else { verbose });
    let config = server::ServerConfig {
        // Autobahn's 9.* cases send messages of up to 16 MiB and expect them back.
        connection: rfc6455::Config {
            max_frame_size: 64 << 20,
            max_message_size: 64 << 20,
            trace,
            deflate: deflate.then(DeflateConfig::default),
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

pub fn serve(
    addr: std::net::SocketAddr,
    config: chat::ChatConfig,
    max_rate: u32,
    verbose: u8,
    trace: bool,
    deflate: bool,
) -> Result<String, String> {
    init_logging(if trace { verbose.max(1) } else { verbose });
    let server_config = server::ServerConfig {
        connection: rfc6455::Config {
            max_frame_size: 64 * 1024,
            max_message_size: 64 * 1024,
            trace,
            deflate: deflate.then(DeflateConfig::default),
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
