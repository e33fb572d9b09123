//! A thread-per-connection echo server on tungstenite (a dev-dependency), the reference
//! point of `benches/load.sh`. Built the way its README shows.
//!
//! ```text
//! cargo run --release --example tungstenite_echo -- 127.0.0.1:9004
//! ```

use std::net::TcpListener;

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9004".to_string());
    let listener = TcpListener::bind(&addr)?;
    eprintln!("tungstenite echo server on ws://{addr}/");
    for stream in listener.incoming() {
        let stream = stream?;
        stream.set_nodelay(true)?;
        std::thread::spawn(move || {
            let Ok(mut ws) = tungstenite::accept(stream) else {
                return;
            };
            while let Ok(message) = ws.read() {
                if (message.is_text() || message.is_binary()) && ws.send(message).is_err() {
                    return;
                }
            }
        });
    }
    Ok(())
}
