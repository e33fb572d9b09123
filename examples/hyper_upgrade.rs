//! WebSocket inside a hyper server: hyper parses HTTP and serves ordinary requests;
//! an upgrade request is validated by `rfc6455` from hyper's own `http::Request`
//! (feature `http`), answered with the `http::Response` it builds, and the upgraded
//! stream is then driven by the sans-IO [`Connection`] (the echo loop of
//! `examples/tokio_echo.rs`). One port, plain HTTP and WebSocket side by side.
//!
//! ```text
//! cargo run --example hyper_upgrade --features http -- 127.0.0.1:9001
//! curl http://127.0.0.1:9001/                      # plain HTTP, served by hyper
//! cargo run -- client ws://127.0.0.1:9001/          # WebSocket, echoed by rfc6455
//! ```
//!
//! `tests/hyper_upgrade.rs` runs this server and talks to it.

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rfc6455::deflate::DeflateConfig;
use rfc6455::handshake::server::Request;
use rfc6455::{Config, Connection, Role};
use std::convert::Infallible;
use tokio::net::TcpListener;

#[path = "tokio_echo.rs"]
#[allow(dead_code)] // its `main` is not ours
mod tokio_echo;

#[allow(dead_code)] // tests/hyper_upgrade.rs includes this file and calls `serve`
#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or("127.0.0.1:9001".into());
    let listener = TcpListener::bind(&addr).await?;
    let addr = listener.local_addr()?;
    eprintln!("hyper on http://{addr}/, WebSocket echo on ws://{addr}/");
    serve(listener).await
}

/// Serves every connection the listener accepts: HTTP/1.1 with upgrades.
pub async fn serve(listener: TcpListener) -> std::io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            let connection = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service_fn(answer))
                .with_upgrades();
            if let Err(e) = connection.await {
                eprintln!("connection: {e}");
            }
        });
    }
}

/// One HTTP request: a WebSocket upgrade, or a page.
async fn answer(
    mut request: hyper::Request<Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    // Not a WebSocket request at all (any method, any version): the application's.
    if !Request::is_upgrade(&request) {
        let page = "hyper serves this page; ws:// on the same port is echoed by rfc6455\n";
        return Ok(hyper::Response::new(Full::new(Bytes::from(page))));
    }
    let upgrade = match Request::from_http(&request) {
        Ok(upgrade) => upgrade,
        // A broken upgrade: the status the RFC asks for (400, 405, 426...).
        Err(refused) => {
            return Ok(refused
                .http_response()
                .map(|body| Full::new(Bytes::from(body))))
        }
    };
    let (response, deflate) = upgrade.http_response(None, Some(&DeflateConfig::default()));
    // Once hyper has sent the 101, the connection is handed over as a byte stream.
    let upgraded = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        match upgraded.await {
            Ok(stream) => {
                let ws = Connection::with_deflate(Role::Server, Config::default(), deflate);
                if let Err(e) = tokio_echo::echo_frames(&mut TokioIo::new(stream), ws).await {
                    eprintln!("websocket: {e}");
                }
            }
            Err(e) => eprintln!("upgrade: {e}"),
        }
    });
    Ok(response.map(|()| Full::new(Bytes::new())))
}
