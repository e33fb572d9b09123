//! The event loop never raises SIGPIPE. A Rust `main` ignores the signal, but a
//! library's host may not (a C program, libFuzzer's main): there a write to a socket
//! whose peer is gone would kill the process. This test binary restores the default
//! action, so a write that raises the signal ends it.
#![cfg(feature = "server")]

use rfc6455::handshake::server::Request;
use rfc6455::server::{Accept, ConnId, Ctx, Handler, Received, Refusal, Server, ServerConfig};
use std::io::Write;
use std::net::TcpStream;
use std::thread;
use std::time::Duration;

/// Answers any message with 4 MiB, in 64 KiB messages.
struct Flood;

impl Handler for Flood {
    type Data = ();

    fn upgrade(&mut self, _request: &Request) -> Result<Accept<()>, Refusal> {
        Ok(Accept::new(()))
    }

    fn message(&mut self, ctx: &mut Ctx<'_, ()>, id: ConnId, _message: Received<'_>) {
        let chunk = vec![7u8; 64 * 1024];
        for _ in 0..64 {
            ctx.send_binary(id, &chunk);
        }
    }
}

#[test]
fn writing_to_a_vanished_peer_raises_no_sigpipe() {
    // SAFETY: setting a signal's disposition to its default, before any thread of
    // ours starts; nothing else in this binary changes signals.
    #[allow(unsafe_code)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let config = ServerConfig {
        max_queued_output: 64 << 20,
        shutdown_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    };
    let server = Server::bind("127.0.0.1:0".parse().unwrap(), config).unwrap();
    let addr = server.local_addr().unwrap();
    let handle = server.handle();
    let thread = thread::spawn(move || server.run(Flood).unwrap());
    for _ in 0..20 {
        let mut client = rfc6455::blocking::connect(&format!("ws://{addr}/")).unwrap();
        client.send_text("go").unwrap();
        // Gone without reading: the server's writes meet a closed, then reset,
        // connection (an error the server may first see on a read, then EPIPE).
        let stream: &TcpStream = client.get_ref().tcp();
        stream.shutdown(std::net::Shutdown::Both).unwrap();
        drop(client);
        thread::sleep(Duration::from_millis(50));
    }
    // Still here: one more connection is served.
    let mut client = rfc6455::blocking::connect(&format!("ws://{addr}/")).unwrap();
    client.send_text("go").unwrap();
    assert!(matches!(client.read().unwrap(), rfc6455::Event::Binary(data) if data.len() == 65536));
    client.get_mut().flush().unwrap();
    handle.shutdown();
    thread.join().unwrap();
}
