//! A thread-per-connection echo server on tungstenite (a dev-dependency), the reference
//! point of `benches/load.sh`. Built the way its README shows.
//!
//! ```text
//! cargo run --release --example tungstenite_echo -- 127.0.0.1:9004
//! ```
//!
//! Over TLS, with a certificate chain and its key (PEM): tungstenite over a rustls
//! `StreamOwned`, the way its users serve `wss://` (its `rustls` features are for its
//! client), with the same rustls configuration and crypto provider as our servers.
//!
//! ```text
//! cargo run --release --example tungstenite_echo -- 127.0.0.1:9443 cert.pem key.pem
//! ```

use std::io::{Read, Write};
use std::net::TcpListener;

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let addr = args.get(1).map_or("127.0.0.1:9004", String::as_str);
    let tls = match (args.get(2), args.get(3)) {
        (Some(cert), Some(key)) => Some(
            rfc6455::tls::server_config(cert.as_ref(), key.as_ref())
                .map_err(std::io::Error::other)?,
        ),
        _ => None,
    };
    let listener = TcpListener::bind(addr)?;
    let scheme = if tls.is_some() { "wss" } else { "ws" };
    eprintln!("tungstenite echo server on {scheme}://{addr}/");
    for stream in listener.incoming() {
        let stream = stream?;
        stream.set_nodelay(true)?;
        let tls = tls.clone();
        std::thread::spawn(move || match tls {
            Some(tls) => {
                let Ok(session) = rustls::ServerConnection::new(tls) else {
                    return;
                };
                echo(rustls::StreamOwned::new(session, stream));
            }
            None => echo(stream),
        });
    }
    Ok(())
}

fn echo<S: Read + Write>(stream: S) {
    let Ok(mut ws) = tungstenite::accept(stream) else {
        return;
    };
    while let Ok(message) = ws.read() {
        if (message.is_text() || message.is_binary()) && ws.send(message).is_err() {
            return;
        }
    }
}
