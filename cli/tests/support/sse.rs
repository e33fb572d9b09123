//! Plain HTTP against the rooms server: a raw-socket Server-Sent Events client, one-shot
//! requests, and posting a message into a room.

use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

pub const ACCEPT: &str = "Accept: text/event-stream\r\n";

/// A raw-socket SSE client: the response head, then one event (up to a blank line)
/// at a time.
pub struct Stream {
    pub socket: TcpStream,
    pub buf: Vec<u8>,
}

impl Stream {
    /// Sends `GET path` with `headers` and reads the head: (the head, as text).
    pub fn open(addr: &str, path: &str, headers: &str) -> (Stream, String) {
        let mut socket = TcpStream::connect(addr).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        write!(socket, "GET {path} HTTP/1.1\r\nHost: x\r\n{headers}\r\n").unwrap();
        let mut stream = Stream {
            socket,
            buf: Vec::new(),
        };
        let head = stream.until(b"\r\n\r\n");
        (stream, head)
    }

    /// The bytes up to and including `end`.
    pub fn until(&mut self, end: &[u8]) -> String {
        loop {
            if let Some(at) = self.buf.windows(end.len()).position(|w| w == end) {
                let taken: Vec<u8> = self.buf.drain(..at + end.len()).collect();
                return String::from_utf8(taken).unwrap();
            }
            let mut chunk = [0u8; 65536];
            let n = self.socket.read(&mut chunk).expect("the stream goes on");
            assert!(n > 0, "the stream ended; unread: {:?}", self.buf);
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// The next event (its lines and the blank line after them).
    pub fn event(&mut self) -> String {
        self.until(b"\n\n")
    }

    /// The next message event (presence and comments skipped).
    pub fn message_event(&mut self) -> String {
        loop {
            let event = self.event();
            if event.starts_with("id: ") {
                return event;
            }
        }
    }

    /// The next event that is not a keep-alive comment.
    pub fn data_event(&mut self) -> String {
        loop {
            let event = self.event();
            if !event.starts_with(':') {
                return event;
            }
        }
    }
}

/// The seq of a message event's `id: EPOCH:SEQ`.
pub fn id_of(event: &str) -> u64 {
    event
        .strip_prefix("id: ")
        .and_then(|rest| rest.split('\n').next())
        .and_then(|id| id.rsplit(':').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no id in {event:?}"))
}

/// The whole `id` of a message event (`EPOCH:SEQ`), for `Last-Event-ID`.
pub fn full_id(event: &str) -> String {
    event
        .strip_prefix("id: ")
        .and_then(|rest| rest.split('\n').next())
        .unwrap_or_else(|| panic!("no id in {event:?}"))
        .to_string()
}

/// A request with `headers` and `body`: (status, head, body).
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &str,
    body: &[u8],
) -> (u16, String, String) {
    let mut socket = TcpStream::connect(addr).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let length = if body.is_empty() && method != "POST" {
        String::new()
    } else {
        format!("Content-Length: {}\r\n", body.len())
    };
    write!(
        socket,
        "{method} {path} HTTP/1.1\r\nHost: x\r\n{length}{headers}\r\n"
    )
    .unwrap();
    // A body refused on its head (413) may meet a closed socket.
    let _ = socket.write_all(body);
    let mut response = Vec::new();
    let _ = socket.read_to_end(&mut response);
    let response = String::from_utf8(response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    // Every header line of the head ends with CRLF.
    let head = format!("{head}\r\n");
    (head[9..12].parse().unwrap(), head, body.to_string())
}

pub fn post(addr: &str, room: &str, from: &str, text: &str) -> u64 {
    let body = json!({"from": from, "text": text}).to_string();
    let (status, head, body) = request(
        addr,
        "POST",
        &format!("/rooms/{room}/messages"),
        "Content-Type: application/json\r\n",
        body.as_bytes(),
    );
    assert_eq!(status, 202, "{head}\n{body}");
    serde_json::from_str::<Value>(&body).unwrap()["seq"]
        .as_u64()
        .unwrap()
}
