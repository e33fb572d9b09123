//! A WebSocket echo server on your own mio loop, over the sans-IO [`Connection`]: the
//! file to copy when you already have an event loop and want WebSocket on it. It has
//! the shape of mio's `examples/tcp_server.rs`; what is added is the opening handshake
//! and handing bytes to the core and back.
//!
//! ```text
//! cargo run --example own_mio_loop -- 127.0.0.1:9001
//! ```
//!
//! (The crate's own event-loop server, `rfc6455::server`, adds what a production
//! server needs on top of this: timers, heartbeats, backpressure, limits, TLS.)

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Registry, Token};
use rfc6455::deflate::DeflateConfig;
use rfc6455::handshake::server::{reject, Request};
use rfc6455::handshake::{HeadReader, HeadTooLarge};
use rfc6455::{Config, Connection, Event, Role};
use std::collections::HashMap;
use std::io::{self, Read, Write};

const SERVER: Token = Token(0);
/// Largest request head accepted (431 beyond, RFC 6585).
const MAX_HEAD: usize = 8 * 1024;
/// Unsent bytes above which a connection is not read (backpressure).
const MAX_UNSENT: usize = 1 << 20;

/// A client: first its request head, then a WebSocket connection.
struct Client {
    stream: TcpStream,
    phase: Phase,
    /// Our HTTP answer (the 101, or an error status) while it is being written; the
    /// connection's frames follow it.
    answer: Vec<u8>,
    /// The peer sent its FIN: nothing more to read.
    peer_done: bool,
}

enum Phase {
    /// Reading the HTTP Upgrade request (RFC 6455 §4.2.1).
    Handshake(HeadReader),
    /// Answered with 101: frames both ways. (Boxed: a connection is larger than a
    /// head reader, and most clients spend their life in this phase.)
    Open(Box<Connection>),
    /// Answered with an error status: the socket closes once it is written.
    Refused,
}

fn main() -> io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or("127.0.0.1:9001".into());
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(128);
    let mut server = TcpListener::bind(addr.parse().map_err(io::Error::other)?)?;
    poll.registry()
        .register(&mut server, SERVER, Interest::READABLE)?;
    eprintln!("echo server on a mio loop: ws://{}/", server.local_addr()?);

    let mut clients: HashMap<Token, Client> = HashMap::new();
    let mut next = Token(SERVER.0 + 1);
    loop {
        poll.poll(&mut events, None)?;
        for event in events.iter() {
            if event.token() == SERVER {
                // Accept everything that is waiting (mio is edge-triggered).
                loop {
                    let (mut stream, _) = match server.accept() {
                        Ok(accepted) => accepted,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        // Out of file descriptors, say: the others are still served.
                        Err(e) => {
                            eprintln!("accept: {e}");
                            break;
                        }
                    };
                    let token = next;
                    next.0 += 1;
                    // A socket that cannot be registered is dropped, not the server.
                    if poll
                        .registry()
                        .register(&mut stream, token, Interest::READABLE)
                        .is_ok()
                    {
                        clients.insert(token, Client::new(stream));
                    }
                }
            } else if let Some(client) = clients.get_mut(&event.token()) {
                if client.handle(poll.registry(), event.token()) {
                    let mut gone = clients.remove(&event.token()).unwrap();
                    let _ = poll.registry().deregister(&mut gone.stream);
                }
            }
        }
    }
}

impl Client {
    fn new(stream: TcpStream) -> Client {
        let phase = Phase::Handshake(HeadReader::new(MAX_HEAD));
        let answer = Vec::new();
        Client {
            stream,
            phase,
            answer,
            peer_done: false,
        }
    }

    /// Reads what is there, lets the core answer, writes what it can. Returns true
    /// when the connection is finished and should be dropped.
    ///
    /// Reading stops while more than `MAX_UNSENT` bytes wait to be written, so a peer
    /// that sends and never reads meets TCP's backpressure instead of growing our
    /// memory; it resumes here when the socket is writable again (mio is
    /// edge-triggered: nothing else would say that the waiting bytes are still there).
    fn handle(&mut self, registry: &Registry, token: Token) -> bool {
        let mut buf = [0u8; 16 * 1024];
        let unsent = loop {
            let mut full = false;
            while !self.peer_done {
                if self.unsent() > MAX_UNSENT {
                    full = true;
                    break;
                }
                match self.stream.read(&mut buf) {
                    // The peer's FIN: answer what it sent (its Close gets our Close,
                    // RFC 6455 §5.5.1), then close.
                    Ok(0) => self.peer_done = true,
                    Ok(n) => self.received(&buf[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => return true,
                }
            }
            // The HTTP answer first, then the frames the core queued.
            match self.write() {
                Err(_) => return true,
                Ok(unsent) if unsent || !full => break unsent,
                Ok(_) => {} // written out: read on
            }
        };
        let interest = match unsent {
            true => Interest::READABLE | Interest::WRITABLE,
            false => Interest::READABLE,
        };
        if registry
            .reregister(&mut self.stream, token, interest)
            .is_err()
        {
            return true;
        }
        !unsent
            && match &self.phase {
                Phase::Handshake(_) => self.peer_done,
                // Close frames crossed (RFC 6455 §7.1.1) or the peer broke the protocol
                // (§7.1.7): the server closes the TCP connection once its frames are out.
                Phase::Open(ws) => ws.is_closed() || self.peer_done,
                Phase::Refused => true,
            }
    }

    /// Bytes waiting to be written.
    fn unsent(&self) -> usize {
        let frames = match &self.phase {
            Phase::Open(ws) => ws.pending_output().len(),
            _ => 0,
        };
        self.answer.len() + frames
    }

    /// Writes until everything is out or the socket is full; `Ok(true)`: bytes remain.
    fn write(&mut self) -> io::Result<bool> {
        while !self.answer.is_empty() {
            let n = write_some(&mut self.stream, &self.answer)?;
            if n == 0 {
                return Ok(true);
            }
            self.answer.drain(..n);
        }
        if let Phase::Open(ws) = &mut self.phase {
            while !ws.pending_output().is_empty() {
                let n = write_some(&mut self.stream, ws.pending_output())?;
                if n == 0 {
                    return Ok(true);
                }
                ws.consume_output(n);
            }
        }
        Ok(false)
    }

    /// Bytes from the peer: to the head until it is complete, then to the core.
    fn received(&mut self, bytes: &[u8]) {
        match &mut self.phase {
            Phase::Handshake(head) => match head.push(bytes) {
                Ok(None) => {}
                Ok(Some(len)) => match Request::parse(&head.buffer()[..len]) {
                    Ok(request) => {
                        // 101, with permessage-deflate (RFC 7692) if the client offers it.
                        let deflate = DeflateConfig::default();
                        let (answer, agreed) = request.accept_negotiating(None, Some(&deflate));
                        self.answer = answer;
                        let mut ws =
                            Connection::with_deflate(Role::Server, Config::default(), agreed);
                        // Bytes that came right after the head are frames already.
                        ws.receive(&head.take_rest());
                        echo(&mut ws);
                        self.phase = Phase::Open(Box::new(ws));
                    }
                    Err(e) => {
                        // 400, 405, 426...: the status says what was wrong.
                        self.answer = e.response();
                        self.phase = Phase::Refused;
                    }
                },
                Err(HeadTooLarge) => {
                    self.answer = reject(431, &[], "request head too large");
                    self.phase = Phase::Refused;
                }
            },
            Phase::Open(ws) => {
                ws.receive(bytes);
                echo(ws);
            }
            Phase::Refused => {} // what a refused peer sends next is not read
        }
    }
}

/// The application: every message the bytes so far complete is sent back. Pings are
/// answered by the core itself, and so is the peer's Close. A protocol error has
/// queued a Close with its code (RFC 6455 §7.4.1) and closed the connection.
fn echo(ws: &mut Connection) {
    // A send fails only once closing has begun: nothing to echo then.
    while let Ok(Some(event)) = ws.next_event() {
        match event {
            Event::Text(text) => _ = ws.send_text(&text),
            Event::Binary(data) => _ = ws.send_binary(&data),
            Event::Ping(_) | Event::Pong(_) | Event::Close(_) => {}
        }
    }
}

/// One write: the bytes taken, or 0 when the socket is full.
fn write_some(stream: &mut TcpStream, bytes: &[u8]) -> io::Result<usize> {
    loop {
        match stream.write(bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(0),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}
