//! An echo server on the blocking driver: one thread per connection, every text and
//! binary message sent back as it came. It is the Autobahn TestSuite's server testee.
//!
//! ```text
//! cargo run --release --example echo_server -- 127.0.0.1:9001
//! ```
//!
//! Over TLS (`wss://`), with a certificate chain and its key (PEM):
//!
//! ```text
//! cargo run --release --example echo_server -- 127.0.0.1:9443 cert.pem key.pem
//! ```

use rfc6455::blocking::{self, Error};
use rfc6455::deflate::DeflateConfig;
use rfc6455::{Config, Event};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let addr = args.get(1).map_or("127.0.0.1:9001", String::as_str);
    let tls = match (args.get(2), args.get(3)) {
        (Some(cert), Some(key)) => Some(
            rfc6455::tls::server_config(cert.as_ref(), key.as_ref())
                .map_err(std::io::Error::other)?,
        ),
        _ => None,
    };
    let listener = TcpListener::bind(addr)?;
    let scheme = if tls.is_some() { "wss" } else { "ws" };
    eprintln!(
        "echo server listening on {scheme}://{}/",
        listener.local_addr()?
    );
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(stream) => stream,
            Err(e) => {
                eprintln!("accept failed: {e}");
                continue;
            }
        };
        let tls = tls.clone();
        std::thread::spawn(move || {
            let peer = stream.peer_addr().ok();
            if let Err(e) = serve(stream, tls) {
                eprintln!("{peer:?}: {e}");
            }
        });
    }
    Ok(())
}

fn serve(stream: TcpStream, tls: Option<Arc<rustls::ServerConfig>>) -> Result<(), Error> {
    stream.set_nodelay(true)?;
    // Autobahn's 9.* cases send messages of up to 16 MiB. permessage-deflate with
    // context takeover both ways (the event-loop testee uses the memory-flat defaults,
    // so that Autobahn's 12.*/13.* cases exercise both).
    let config = Config {
        max_frame_size: 64 << 20,
        max_message_size: 64 << 20,
        deflate: Some(DeflateConfig {
            no_context_takeover: false,
            request_no_context_takeover: false,
            ..DeflateConfig::default()
        }),
        ..Config::default()
    };
    if let Some(tls) = tls {
        let mut ws = blocking::accept_tls(stream, tls, config, |_request| Ok(None))?;
        let result = echo(&mut ws);
        // TLS ends with close_notify before the TCP FIN.
        let stream = ws.get_mut();
        stream.conn.send_close_notify();
        let _ = stream.flush();
        close_transport(&mut stream.sock);
        return result;
    }
    let mut ws = blocking::accept_with(stream, config, |_request| Ok(None))?;
    let result = echo(&mut ws);
    close_transport(ws.get_mut());
    result
}

fn echo<S: Read + Write>(ws: &mut blocking::WebSocket<S>) -> Result<(), Error> {
    loop {
        match ws.read() {
            Ok(Event::Text(text)) => ws.send_text(&text)?,
            Ok(Event::Binary(data)) => ws.send_binary(&data)?,
            Ok(Event::Ping(_) | Event::Pong(_)) => {}
            Ok(Event::Close(_)) | Err(Error::Closed) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

/// The server closes the TCP connection first (RFC 6455 §7.1.1). Shutting down the
/// write half sends a FIN after the Close frame; reading what the client still sends
/// before dropping the socket keeps the kernel from answering it with a reset, which
/// could destroy the Close frame before the client reads it.
fn close_transport(stream: &mut TcpStream) {
    let _ = stream.shutdown(Shutdown::Write);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut sink = [0u8; 4096];
    while let Ok(n) = stream.read(&mut sink) {
        if n == 0 {
            break;
        }
    }
}
