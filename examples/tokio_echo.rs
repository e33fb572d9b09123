//! An echo server on tokio, driving the crate's sans-IO core: tokio owns the sockets
//! and the tasks, `rfc6455` owns the protocol. The library has no runtime in it; this
//! file is the whole driver (the lines between `DRIVER` marks), and it passes the
//! Autobahn TestSuite strictly as the fourth server agent of `autobahn/run.sh`.
//!
//! ```text
//! cargo run --release --example tokio_echo -- 127.0.0.1:9001
//! ```
//!
//! What it leaves out, as an example: timeouts (a client that never finishes its head
//! or never speaks is kept; wrap the reads in `tokio::time::timeout`) and a limit on
//! unread output (it writes everything before it reads again, so TCP pushes back).
//!
//! The same shape works for any I/O: read bytes, hand them to
//! [`Connection::receive`], take events with [`Connection::next_event`], write what
//! [`Connection::pending_output`] holds and [`Connection::consume_output`] it.

use rfc6455::deflate::DeflateConfig;
use rfc6455::handshake::server::{reject, Request};
use rfc6455::handshake::{HeadReader, HeadTooLarge};
use rfc6455::{Config, Connection, Event, Role};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or("127.0.0.1:9001".into());
    let listener = TcpListener::bind(&addr).await?;
    eprintln!(
        "tokio echo server listening on ws://{}/",
        listener.local_addr()?
    );
    loop {
        let (stream, peer) = listener.accept().await?;
        tokio::spawn(async move {
            if let Err(e) = echo(stream).await {
                eprintln!("{peer}: {e}");
            }
        });
    }
}

// DRIVER: from here to the end mark, the whole of what tokio needs.

/// Largest request head accepted (431 beyond, RFC 6585).
const MAX_HEAD: usize = 8 * 1024;

/// One connection: the opening handshake (RFC 6455 §4.2), then messages echoed until
/// either side closes or the peer breaks the protocol.
async fn echo(mut stream: TcpStream) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut buf = vec![0u8; 8 * 1024];

    // 1. The request head, however it is split across reads.
    let mut head = HeadReader::new(MAX_HEAD);
    let head_len = loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        match head.push(&buf[..n]) {
            Ok(Some(len)) => break len,
            Ok(None) => {}
            Err(HeadTooLarge) => {
                stream
                    .write_all(&reject(431, &[], "head too large"))
                    .await?;
                return stream.shutdown().await;
            }
        }
    };

    // 2. Parse and answer it: 101 (with permessage-deflate when offered) or an error
    //    status that says what was wrong.
    let request = match Request::parse(&head.buffer()[..head_len]) {
        Ok(request) => request,
        Err(e) => {
            stream.write_all(&e.response()).await?;
            return stream.shutdown().await;
        }
    };
    let (response, deflate) = request.accept_negotiating(None, Some(&DeflateConfig::default()));
    stream.write_all(&response).await?;

    // 3. The connection: bytes that came after the head are its first input.
    let mut ws = Connection::with_deflate(Role::Server, Config::default(), deflate);
    ws.receive(&head.take_rest());
    echo_frames(&mut stream, ws).await
}

/// Echoes messages over an upgraded stream (here a `TcpStream`; in
/// `examples/hyper_upgrade.rs`, hyper's upgraded connection) until either side closes
/// or the peer breaks the protocol.
pub async fn echo_frames<S>(stream: &mut S, mut ws: Connection) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // Every event the bytes so far make; a protocol error has queued its Close
        // (with the right code) and ends the loop after it is written.
        let failed = loop {
            match ws.next_event() {
                // A send fails only once closing has begun: nothing to echo then.
                Ok(Some(Event::Text(text))) => _ = ws.send_text(&text),
                Ok(Some(Event::Binary(data))) => _ = ws.send_binary(&data),
                // Pings are answered by the core, and so is a Close.
                Ok(Some(_)) => {}
                Ok(None) => break false,
                Err(_) => break true,
            }
        };
        // Everything the core queued: echoes, pongs, Close frames.
        while !ws.pending_output().is_empty() {
            match stream.write(ws.pending_output()).await? {
                0 => return Err(std::io::ErrorKind::WriteZero.into()),
                n => ws.consume_output(n),
            }
        }
        // The server closes the TCP connection first once Close frames crossed
        // (RFC 6455 §7.1.1), or at once after a protocol error (§7.1.7).
        if failed || ws.is_closed() {
            return stream.shutdown().await;
        }
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        ws.receive(&buf[..n]);
    }
}

// DRIVER: end.
