//! A small interactive client: each line of stdin is sent as a text message and every
//! message received is printed. `/ping`, `/close [CODE [REASON]]` and `/quit` are
//! commands.
//!
//! ```text
//! cargo run --example client -- ws://127.0.0.1:9001/
//! ```

use rfc6455::blocking::{self, Error};
use rfc6455::{CloseCode, Event};
use std::io::BufRead;
use std::sync::mpsc;

fn main() -> Result<(), Error> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "ws://127.0.0.1:9001/".to_string());
    let mut ws = blocking::connect(&url)?;
    eprintln!("connected to {url}");

    // Lines come from a thread; the socket is polled between them with a short read
    // timeout, so that one thread owns the WebSocket.
    let (lines_tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    ws.get_mut()
        .set_read_timeout(Some(std::time::Duration::from_millis(50)))?;

    let mut stdin_open = true;
    loop {
        match ws.read() {
            Ok(Event::Text(text)) => println!("< {text}"),
            Ok(Event::Binary(data)) => println!("< binary, {} bytes", data.len()),
            Ok(Event::Ping(payload)) => println!("< ping {payload:?}"),
            Ok(Event::Pong(payload)) => println!("< pong {payload:?}"),
            Ok(Event::Close(frame)) => println!("< close {frame:?}"),
            Err(Error::Closed) => return Ok(()),
            Err(Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e),
        }
        while stdin_open {
            match lines.try_recv() {
                Ok(line) => command(&mut ws, &line)?,
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => {
                    stdin_open = false;
                    if !ws.connection().is_closed() {
                        let _ = ws.close(CloseCode::NORMAL, "");
                    }
                }
            }
        }
    }
}

fn command(ws: &mut blocking::WebSocket<std::net::TcpStream>, line: &str) -> Result<(), Error> {
    if line == "/ping" {
        return ws.send_ping(b"ping");
    }
    if line == "/quit" {
        std::process::exit(0);
    }
    if let Some(rest) = line.strip_prefix("/close") {
        let mut parts = rest.trim().splitn(2, ' ');
        let code = parts.next().and_then(|c| c.parse().ok()).unwrap_or(1000);
        let reason = parts.next().unwrap_or("");
        return ws.close(CloseCode(code), reason);
    }
    ws.send_text(line)
}
