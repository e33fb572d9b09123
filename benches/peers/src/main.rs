//! An echo server on tokio-tungstenite with tokio's multi-threaded runtime (one worker
//! per core), a task per connection, built the way its README shows: the peer that
//! `benches/load.sh` measures for async Rust.
//!
//! ```text
//! cargo run --release --manifest-path benches/peers/Cargo.toml -- 127.0.0.1:9109
//! ```

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;

#[tokio::main(flavor = "multi_thread")]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9109".into());
    let listener = TcpListener::bind(&addr).await?;
    eprintln!("tokio-tungstenite echo server on ws://{addr}/");
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        tokio::spawn(async move {
            let Ok(ws) = tokio_tungstenite::accept_async(stream).await else {
                return;
            };
            let (mut write, mut read) = ws.split();
            while let Some(Ok(message)) = read.next().await {
                if (message.is_text() || message.is_binary()) && write.send(message).await.is_err()
                {
                    return;
                }
            }
        });
    }
}
