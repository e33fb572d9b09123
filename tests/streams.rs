//! The library's plain-HTTP side over real sockets: request bodies and their limits,
//! responses that stay open (`Reply::Stream`) fed from the loop and from other
//! threads, ended by the handler, by the peer, or refused over the connection limit.
#![cfg(feature = "server")]

use rfc6455::handshake::server::Request;
use rfc6455::server::{
    Accept, CloseInfo, ConnId, Ctx, Handle, Handler, HttpRequest, HttpResponse, Refusal, Reply,
    Server, ServerConfig,
};
use rfc6455::CloseCode;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// `GET /feed` opens a stream (its data: the path); `POST /echo` answers the body;
/// `GET /close` ends every stream with 1000 "done" after a last line.
#[derive(Clone)]
struct Feeds {
    streams: Arc<Mutex<Vec<ConnId>>>,
    ended: mpsc::Sender<(String, CloseInfo)>,
}

impl Handler for Feeds {
    type Data = String;

    fn upgrade(&mut self, _request: &Request) -> Result<Accept<String>, Refusal> {
        Err(404.into())
    }

    fn request(
        &mut self,
        ctx: &mut Ctx<'_, String>,
        id: ConnId,
        request: &HttpRequest,
    ) -> Option<Reply<String>> {
        match (request.method.as_str(), request.path()) {
            ("GET", "/feed") => {
                self.streams.lock().unwrap().push(id);
                let head = HttpResponse::with_type(200, "text/plain", b"hello\n".to_vec());
                Some(Reply::Stream {
                    head,
                    data: request.path().to_string(),
                })
            }
            ("POST", "/echo") => Some(Reply::Response(HttpResponse::with_type(
                200,
                "application/octet-stream",
                request.body.clone(),
            ))),
            ("GET", "/close") => {
                let last: Arc<[u8]> = b"last\n"[..].into();
                for id in self.streams.lock().unwrap().drain(..) {
                    assert!(ctx.send_stream(id, &last));
                    ctx.close(id, CloseCode::NORMAL, "done");
                }
                Some(Reply::Response(HttpResponse::text(200, "closed\n")))
            }
            _ => None,
        }
    }

    fn close(&mut self, _ctx: &mut Ctx<'_, String>, id: ConnId, data: String, info: CloseInfo) {
        self.streams.lock().unwrap().retain(|s| *s != id);
        let _ = self.ended.send((data, info));
    }
}

struct Running {
    addr: SocketAddr,
    handle: Handle,
    feeds: Feeds,
    ended: mpsc::Receiver<(String, CloseInfo)>,
    thread: Option<JoinHandle<std::io::Result<()>>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.handle.shutdown();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn start(config: ServerConfig) -> Running {
    let server = Server::bind("127.0.0.1:0".parse().unwrap(), config).unwrap();
    let (tx, ended) = mpsc::channel();
    let feeds = Feeds {
        streams: Arc::default(),
        ended: tx,
    };
    let addr = server.local_addr().unwrap();
    let handle = server.handle();
    let handlers = feeds.clone();
    let thread = thread::spawn(move || server.run_with(move |_| handlers.clone()));
    Running {
        addr,
        handle,
        feeds,
        ended,
        thread: Some(thread),
    }
}

/// Sends a request, returns the socket after reading the head (and the head).
fn open(addr: SocketAddr, request: &str) -> (TcpStream, String) {
    let mut socket = TcpStream::connect(addr).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    socket.write_all(request.as_bytes()).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(socket.read(&mut byte).unwrap(), 1, "the head ended early");
        head.push(byte[0]);
    }
    (socket, String::from_utf8(head).unwrap())
}

fn read_exact(socket: &mut TcpStream, n: usize) -> String {
    let mut buf = vec![0; n];
    socket.read_exact(&mut buf).unwrap();
    String::from_utf8(buf).unwrap()
}

const FEED: &str = "GET /feed HTTP/1.1\r\nHost: x\r\n\r\n";

#[test]
fn a_stream_gets_what_any_thread_sends_until_the_handler_ends_it() {
    let server = start(ServerConfig {
        threads: 2,
        ..ServerConfig::default()
    });
    let mut streams: Vec<TcpStream> = (0..2)
        .map(|_| {
            let (mut socket, head) = open(server.addr, FEED);
            assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
            assert!(!head.contains("Content-Length"), "{head}");
            assert_eq!(read_exact(&mut socket, 6), "hello\n");
            socket
        })
        .collect();
    let ids = server.feeds.streams.lock().unwrap().clone();
    assert_eq!(ids.len(), 2);
    // From a thread that is no loop, one buffer for both.
    let line: Arc<[u8]> = b"from afar\n"[..].into();
    for &id in &ids {
        assert!(server.handle.send_stream(id, &line));
    }
    for socket in &mut streams {
        assert_eq!(read_exact(socket, 10), "from afar\n");
    }
    let (_, head) = open(server.addr, "GET /close HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"));
    for socket in &mut streams {
        let mut rest = String::new();
        socket.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "last\n", "what was queued, then the end");
    }
    for _ in 0..2 {
        let (data, info) = server.ended.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(data, "/feed");
        assert_eq!(
            (info.code, info.reason.as_str(), info.clean),
            (CloseCode::NORMAL, "done", true)
        );
    }
}

#[test]
fn a_peer_that_goes_away_ends_its_stream() {
    let server = start(ServerConfig::default());
    let (socket, _) = open(server.addr, FEED);
    drop(socket);
    let (data, info) = server.ended.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(data, "/feed");
    assert_eq!(
        (info.code, info.clean),
        (CloseCode::ABNORMAL_CLOSURE, false)
    );
    assert!(server.feeds.streams.lock().unwrap().is_empty());
}

#[test]
fn a_body_is_given_whole_within_its_limit() {
    let server = start(ServerConfig {
        max_body: 100,
        ..ServerConfig::default()
    });
    let post = |body: &[u8], headers: &str| {
        let mut socket = TcpStream::connect(server.addr).unwrap();
        write!(socket, "POST /echo HTTP/1.1\r\nHost: x\r\n{headers}\r\n").unwrap();
        let _ = socket.write_all(body);
        let mut response = Vec::new();
        let _ = socket.read_to_end(&mut response);
        String::from_utf8_lossy(&response).into_owned()
    };
    let body = [b'b'; 100];
    let response = post(&body, "Content-Length: 100\r\n");
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(response.ends_with(&"b".repeat(100)), "{response}");
    let response = post(&[b'b'; 101], "Content-Length: 101\r\n");
    assert!(response.starts_with("HTTP/1.1 413 "), "{response}");
    let response = post(b"", "Transfer-Encoding: chunked\r\n");
    assert!(
        response.starts_with("HTTP/1.1 411 Length Required\r\n"),
        "{response}"
    );
    let response = post(b"", "Content-Length: 1\r\nContent-Length: 2\r\n");
    assert!(response.starts_with("HTTP/1.1 400 "), "{response}");
}

#[test]
fn streams_count_against_the_connection_limit() {
    let server = start(ServerConfig {
        max_connections: 1,
        ..ServerConfig::default()
    });
    let (_first, head) = open(server.addr, FEED);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"));
    let (_second, head) = open(server.addr, FEED);
    assert!(head.starts_with("HTTP/1.1 503 "), "{head}");
    // The handler had registered it: it gets its data back, and why.
    let (data, info) = server.ended.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(
        (data.as_str(), info.code),
        ("/feed", CloseCode::TRY_AGAIN_LATER)
    );
    assert_eq!(server.feeds.streams.lock().unwrap().len(), 1);
}
