//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod invariants;

use std::net::{TcpListener, TcpStream};
use std::time::Duration;

/// A loopback address with a port free right now: bind port 0, note it, let it go.
pub fn free_addr() -> String {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("127.0.0.1:{port}")
}

/// Waits up to 5 s for something to listen on `addr`.
pub fn wait_until_listening(addr: &str) -> bool {
    for _ in 0..100 {
        if TcpStream::connect(addr).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}
