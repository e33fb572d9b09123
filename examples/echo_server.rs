//! An echo server on the blocking driver: one thread per connection, every text and
//! binary message sent back as it came. It is the Autobahn TestSuite's server testee.
//!
//! ```text
//! cargo run --release --example echo_server -- 127.0.0.1:9001
//! ```

use rfc6455::blocking::{self, Error};
use rfc6455::deflate::DeflateConfig;
use rfc6455::{Config, Event};
use std::io::Read;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::Duration;

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9001".to_string());
    let listener = TcpListener::bind(&addr)?;
    eprintln!("echo server listening on ws://{}/", listener.local_addr()?);
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(stream) => stream,
            Err(e) => {
                eprintln!("accept failed: {e}");
                continue;
            }
        };
        std::thread::spawn(move || {
            let peer = stream.peer_addr().ok();
            if let Err(e) = serve(stream) {
                eprintln!("{peer:?}: {e}");
            }
        });
    }
    Ok(())
}

fn serve(stream: TcpStream) -> Result<(), Error> {
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
    let mut ws = blocking::accept_with(stream, config, |_request| Ok(None))?;
    let result = echo(&mut ws);
    close_transport(ws.get_mut());
    result
}

fn echo(ws: &mut blocking::WebSocket<TcpStream>) -> Result<(), Error> {
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
