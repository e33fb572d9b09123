//! `rfc6455 tap`: a relay that shows every frame crossing it.
//!
//! Each accepted connection gets its own connection upstream. The opening handshake is
//! relayed with only `Host` rewritten (and the request target, when `--upstream` names
//! a path); after it, every byte goes through verbatim in both directions — no
//! re-masking, no re-framing — while a [`FrameTap`] per direction reads the frames and
//! one line per frame is printed. A violation is reported and still relayed: the peers
//! decide what to do with it.
//!
//! One mio event loop serves every connection, rather than a thread per pair: with
//! `wss://` upstream each pair has one rustls session that both directions go through,
//! which one thread owns without locks; and the loop gives bounded memory for free: a
//! side is read only while less than [`MAX_AHEAD`] bytes of it wait for the other side.

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use rfc6455::handshake::client::WsUrl;
use rfc6455::learn::tap::{preview, FrameTap, TapEvent, TapFrame};
use rfc6455::tls::rustls;
use rfc6455::{OpCode, Role};
use serde_json::json;
use slab::Slab;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What `rfc6455 tap` is asked to do.
pub struct TapOptions {
    pub listen: SocketAddr,
    pub upstream: String,
    pub json: bool,
    pub max_preview: usize,
    pub ca: Option<PathBuf>,
    /// Client connections relayed at once; beyond, a new one is closed at once.
    pub max_pairs: usize,
    /// A client that has not sent its whole request head by then is dropped.
    pub head_timeout: Duration,
}

const LISTENER: Token = Token(usize::MAX);
/// One read from a socket.
const READ_CHUNK: usize = 16 * 1024;
/// Bytes from one side not yet written to the other before that side is read again.
const MAX_AHEAD: usize = 64 * 1024;
/// An HTTP head is waited for up to this size; beyond it the pair is relayed raw.
const MAX_HEAD: usize = 64 * 1024;
/// Sent to a client whose upstream connection failed.
const BAD_GATEWAY: &[u8] =
    b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain; charset=utf-8\r\n\
    Content-Length: 38\r\nConnection: close\r\n\r\nrfc6455 tap: the upstream is not there\n";

/// Where the upstream is and how to reach it.
struct Upstream {
    url: WsUrl,
    addr: SocketAddr,
    /// `--upstream` has a path: it replaces each request's target.
    resource: Option<String>,
    tls: Option<Arc<rustls::ClientConfig>>,
}

/// The most `--max-preview` may ask: a preview is kept per frame in flight.
const MAX_PREVIEW: usize = 64 * 1024;

pub fn tap(options: &TapOptions) -> Result<String, String> {
    if options.max_preview > MAX_PREVIEW {
        return Err(format!("--max-preview: at most {MAX_PREVIEW} bytes"));
    }
    let url = WsUrl::parse(&options.upstream).map_err(|e| e.to_string())?;
    let addr = (url.host.as_str(), url.port)
        .to_socket_addrs()
        .map_err(|e| format!("{}: {e}", url.host))?
        .next()
        .ok_or_else(|| format!("{}: no address", url.host))?;
    let after_authority = options.upstream.splitn(4, '/').nth(3).unwrap_or("");
    let tls = if url.secure {
        Some(
            match &options.ca {
                Some(ca) => rfc6455::tls::client_config_with_ca(ca),
                None => rfc6455::tls::client_config(),
            }
            .map_err(|e| e.to_string())?,
        )
    } else {
        None
    };
    let upstream = Upstream {
        resource: (!after_authority.is_empty()).then(|| url.resource.clone()),
        url,
        addr,
        tls,
    };
    let mut listener = TcpListener::bind(options.listen).map_err(|e| e.to_string())?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    eprintln!(
        "rfc6455 tap: clients connect to ws://{local}/ (or http://{local}/), relayed to {}; \
         one line per frame on stdout, Ctrl-C stops",
        options.upstream
    );
    let mut poll = Poll::new().map_err(|e| e.to_string())?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)
        .map_err(|e| e.to_string())?;
    let mut relay = Relay {
        pairs: Slab::new(),
        next_id: 1,
        out: Printer {
            json: options.json,
            out: io::BufWriter::new(io::stdout()),
        },
        max_preview: options.max_preview,
        upstream,
        buf: vec![0; READ_CHUNK],
        max_pairs: options.max_pairs,
        head_timeout: options.head_timeout,
    };
    let mut events = Events::with_capacity(256);
    loop {
        // Woken at least once a second, to drop clients whose head is overdue.
        if let Err(e) = poll.poll(&mut events, Some(Duration::from_secs(1))) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e.to_string());
        }
        for event in &events {
            if event.token() == LISTENER {
                relay.accept(&listener, &poll);
            } else {
                relay.ready(event.token().0 / 2, &poll);
            }
        }
        relay.drop_overdue_heads(&poll);
        relay.out.flush();
    }
}

struct Relay {
    pairs: Slab<Pair>,
    next_id: u64,
    out: Printer,
    max_preview: usize,
    upstream: Upstream,
    buf: Vec<u8>,
    max_pairs: usize,
    head_timeout: Duration,
}

impl Relay {
    /// Ends the pairs whose client has not finished its request head in time (a
    /// client that sends nothing, or a byte now and then, holds two sockets).
    fn drop_overdue_heads(&mut self, poll: &Poll) {
        let overdue: Vec<usize> = self
            .pairs
            .iter()
            .filter(|(_, p)| {
                matches!(p.up.phase, Phase::Head(_)) && p.opened.elapsed() > self.head_timeout
            })
            .map(|(slot, _)| slot)
            .collect();
        for slot in overdue {
            let mut pair = self.pairs.remove(slot);
            let _ = poll.registry().deregister(&mut pair.client);
            let _ = poll.registry().deregister(pair.upstream.tcp());
            let why = format!("no request head within {:?}", self.head_timeout);
            self.out.close(&pair, Some(&why));
        }
    }

    fn accept(&mut self, listener: &TcpListener, poll: &Poll) {
        loop {
            let (client, peer) = match listener.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    eprintln!("rfc6455 tap: accept: {e}");
                    return;
                }
            };
            let id = self.next_id;
            self.next_id += 1;
            if self.pairs.len() >= self.max_pairs {
                // Closed at once: every pair holds two sockets and two buffers.
                let why = format!(
                    "{peer} refused: {} connections relayed (--max-pairs)",
                    self.pairs.len()
                );
                self.out.line(id, None, &why);
                drop(client);
                continue;
            }
            let socket = match self.connect_upstream() {
                Ok(socket) => socket,
                Err(e) => {
                    self.out
                        .line(id, None, &format!("upstream {}: {e}", self.upstream.addr));
                    continue;
                }
            };
            let slot = self.pairs.vacant_entry();
            let key = slot.key();
            let mut pair = Pair {
                id,
                opened: Instant::now(),
                client,
                upstream: socket,
                connected: false,
                up: Flow::new(Role::Client, self.max_preview),
                down: Flow::new(Role::Server, self.max_preview),
                key: None,
                failed: None,
            };
            let registry = poll.registry();
            let both = Interest::READABLE | Interest::WRITABLE;
            if registry
                .register(&mut pair.client, Token(key * 2), both)
                .is_err()
                || registry
                    .register(pair.upstream.tcp(), Token(key * 2 + 1), both)
                    .is_err()
            {
                continue;
            }
            self.out.open(id, peer, &self.upstream);
            slot.insert(pair);
        }
    }

    fn connect_upstream(&self) -> io::Result<UpstreamSocket> {
        let tcp = TcpStream::connect(self.upstream.addr)?;
        let _ = tcp.set_nodelay(true);
        Ok(match &self.upstream.tls {
            None => UpstreamSocket::Plain(tcp),
            Some(config) => {
                let name = rustls::pki_types::ServerName::try_from(self.upstream.url.host.clone())
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
                let session = rustls::ClientConnection::new(config.clone(), name)
                    .map_err(io::Error::other)?;
                UpstreamSocket::Tls(Box::new(TlsUpstream {
                    tcp,
                    session,
                    eof: false,
                    described: false,
                }))
            }
        })
    }

    /// Something happened on either socket of the pair in `slot`.
    fn ready(&mut self, slot: usize, poll: &Poll) {
        let Some(pair) = self.pairs.get_mut(slot) else {
            return;
        };
        let outcome = pair.pump(&mut self.out, &self.upstream, &mut self.buf);
        let ended = match outcome {
            Ok(false) => return,
            Ok(true) => None,
            Err(why) => Some(why),
        };
        let mut pair = self.pairs.remove(slot);
        let ended = ended.or(pair.failed.take());
        let _ = poll.registry().deregister(&mut pair.client);
        let _ = poll.registry().deregister(pair.upstream.tcp());
        self.out.close(&pair, ended.as_deref());
    }
}

/// One client, its upstream connection, and what flows between them.
struct Pair {
    id: u64,
    opened: Instant,
    client: TcpStream,
    upstream: UpstreamSocket,
    /// The upstream TCP connect finished.
    connected: bool,
    /// Client to server.
    up: Flow,
    /// Server to client.
    down: Flow,
    /// The request's Sec-WebSocket-Key, to check the answer (RFC 6455 §4.2.2).
    key: Option<String>,
    /// Why the upstream failed before answering (the client got a 502).
    failed: Option<String>,
}

/// One direction.
struct Flow {
    phase: Phase,
    /// Bytes waiting to be written to the other side, from `written` on.
    pending: Vec<u8>,
    written: usize,
    /// The source ended (its FIN, or TLS close_notify).
    ended: bool,
    /// The end was passed on (our FIN to the other side).
    shut: bool,
    /// Bytes relayed (heads included).
    relayed: u64,
    tap: FrameTap,
}

enum Phase {
    /// Reading the HTTP head (the bytes of it so far).
    Head(Vec<u8>),
    /// WebSocket frames, read by the tap.
    Frames,
    /// Anything else (an HTTP exchange that is not an upgrade, or lost frame
    /// boundaries): relayed and counted.
    Raw,
}

impl Flow {
    fn new(sender: Role, max_preview: usize) -> Flow {
        Flow {
            phase: Phase::Head(Vec::new()),
            pending: Vec::new(),
            written: 0,
            ended: false,
            shut: false,
            relayed: 0,
            tap: FrameTap::new(sender, max_preview),
        }
    }

    fn waiting(&self) -> usize {
        self.pending.len() - self.written
    }

    /// Writes what waits with `write`; true if some was written.
    fn drain(&mut self, mut write: impl FnMut(&[u8]) -> io::Result<usize>) -> io::Result<bool> {
        let mut progress = false;
        while self.written < self.pending.len() {
            match write(&self.pending[self.written..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.written += n;
                    self.relayed += n as u64;
                    progress = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.written == self.pending.len() {
            self.pending.clear();
            self.written = 0;
            if self.pending.capacity() > 2 * MAX_AHEAD {
                self.pending = Vec::new();
            }
        }
        Ok(progress)
    }
}

impl Pair {
    fn elapsed(&self) -> f64 {
        self.opened.elapsed().as_secs_f64()
    }

    /// Moves bytes both ways until nothing moves; true once both directions ended and
    /// were passed on; an error ends the pair (it says why).
    fn pump(
        &mut self,
        out: &mut Printer,
        upstream: &Upstream,
        buf: &mut [u8],
    ) -> Result<bool, String> {
        loop {
            let mut progress = false;
            if !self.up.ended && self.up.waiting() < MAX_AHEAD {
                match self.client.read(buf) {
                    Ok(0) => {
                        self.up.ended = true;
                        progress = true;
                    }
                    // After a 502 the client's bytes go nowhere.
                    Ok(_) if self.failed.is_some() => progress = true,
                    Ok(n) => {
                        self.relay(Role::Client, &buf[..n], out, upstream);
                        progress = true;
                    }
                    Err(e) if would_block(&e) => {}
                    Err(e) => return Err(format!("client: {e}")),
                }
            }
            if self.failed.is_none() {
                match self.upstream_step(out, upstream, buf) {
                    Ok(moved) => progress |= moved,
                    Err(why)
                        if self.down.relayed == 0 && matches!(self.down.phase, Phase::Head(_)) =>
                    {
                        // The upstream failed before it answered (connect, TLS): the
                        // client is told so, and the pair ends when it hangs up.
                        self.down.pending = BAD_GATEWAY.to_vec();
                        self.down.written = 0;
                        self.down.ended = true;
                        self.failed = Some(why);
                        progress = true;
                    }
                    Err(why) => return Err(why),
                }
            }
            let client = &mut self.client;
            progress |= self
                .down
                .drain(|b| client.write(b))
                .map_err(|e| format!("client: {e}"))?;
            if self.down.ended && self.down.waiting() == 0 && !self.down.shut {
                let _ = self.client.shutdown(Shutdown::Write);
                self.down.shut = true;
                progress = true;
            }
            if !progress {
                let up_done = self.up.shut || (self.failed.is_some() && self.up.ended);
                return Ok(up_done && self.down.shut);
            }
        }
    }

    /// The upstream's half of [`pump`](Self::pump): connect, read, write; true if
    /// anything moved.
    fn upstream_step(
        &mut self,
        out: &mut Printer,
        upstream: &Upstream,
        buf: &mut [u8],
    ) -> Result<bool, String> {
        let mut progress = false;
        if !self.connected {
            let tcp = self.upstream.tcp();
            if let Ok(Some(e)) | Err(e) = tcp.take_error() {
                return Err(format!("upstream {}: {e}", upstream.addr));
            }
            match tcp.peer_addr() {
                Ok(_) => self.connected = true,
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return Ok(false),
                Err(e) => return Err(format!("upstream {}: {e}", upstream.addr)),
            }
        }
        if !self.down.ended && self.down.waiting() < MAX_AHEAD {
            match self.upstream.read(buf) {
                Ok(0) => {
                    self.down.ended = true;
                    progress = true;
                }
                Ok(n) => {
                    self.relay(Role::Server, &buf[..n], out, upstream);
                    progress = true;
                }
                Err(e) if would_block(&e) => {}
                Err(e) => return Err(format!("upstream: {e}")),
            }
        }
        if let Some(line) = self.upstream.take_description() {
            out.line(self.id, Some(self.elapsed()), &line);
        }
        let socket = &mut self.upstream;
        progress |= self
            .up
            .drain(|b| socket.write(b))
            .map_err(|e| format!("upstream: {e}"))?;
        self.upstream
            .flush()
            .map_err(|e| format!("upstream: {e}"))?;
        if self.up.ended && self.up.waiting() == 0 && !self.up.shut {
            self.upstream.shutdown_write();
            self.up.shut = true;
            progress = true;
        }
        Ok(progress)
    }

    fn flow(&mut self, from: Role) -> &mut Flow {
        match from {
            Role::Client => &mut self.up,
            Role::Server => &mut self.down,
        }
    }

    /// Bytes `from` one side: its HTTP head (printed, and for a request rewritten),
    /// then frames (shown by the tap), or anything else; all queued for the other side.
    fn relay(&mut self, from: Role, bytes: &[u8], out: &mut Printer, upstream: &Upstream) {
        let (id, t) = (self.id, self.elapsed());
        let flow = self.flow(from);
        let Phase::Head(head) = &mut flow.phase else {
            if let Phase::Frames = flow.phase {
                let mut events = Vec::new();
                flow.tap.feed(bytes, &mut events);
                out.frames(id, t, from, &events);
            }
            flow.pending.extend_from_slice(bytes);
            return;
        };
        // The search resumes where the last one stopped (3 bytes back, for a
        // CRLFCRLF split across reads): a head sent a byte at a time is scanned once.
        let searched = head.len().saturating_sub(3);
        head.extend_from_slice(bytes);
        let Some(end) = head_end(head, searched) else {
            if head.len() > MAX_HEAD {
                let what = format!(
                    "{} no end of the HTTP head in 64 KiB: relayed as it is",
                    arrow(from)
                );
                flow.pending.append(head);
                flow.phase = Phase::Raw;
                out.line(id, Some(t), &what);
            }
            return;
        };
        let rest = head.split_off(end);
        let head = std::mem::take(head);
        let (head, frames) = match from {
            Role::Client => self.request_head(&head, out, upstream, t),
            Role::Server => {
                let upgraded = self.response_head(&head, out, t);
                (head, upgraded)
            }
        };
        let flow = self.flow(from);
        flow.pending.extend_from_slice(&head);
        flow.phase = if frames { Phase::Frames } else { Phase::Raw };
        if !rest.is_empty() {
            self.relay(from, &rest, out, upstream);
        }
    }

    /// Prints the request head and returns it as it goes upstream (`Host` rewritten,
    /// and the target when `--upstream` has a path), and whether it asks to upgrade.
    fn request_head(
        &mut self,
        head: &[u8],
        out: &mut Printer,
        upstream: &Upstream,
        t: f64,
    ) -> (Vec<u8>, bool) {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut request = httparse::Request::new(&mut headers);
        if let Err(e) = request.parse(head) {
            out.line(
                self.id,
                Some(t),
                &format!("→ not an HTTP request ({e}): relayed as it is"),
            );
            return (head.to_vec(), false);
        }
        let value = |name: &str| {
            request
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| String::from_utf8_lossy(h.value).into_owned())
        };
        let upgrade =
            value("upgrade").is_some_and(|v| v.to_ascii_lowercase().contains("websocket"));
        self.key = value("sec-websocket-key");
        let host = upstream.url.host_header();
        let mut rewritten = Vec::with_capacity(head.len() + 32);
        let mut notes = Vec::new();
        let text = String::from_utf8_lossy(head);
        for (i, line) in text.split("\r\n").enumerate() {
            if i > 0 {
                rewritten.extend_from_slice(b"\r\n");
            }
            let lower = line.to_ascii_lowercase();
            if i == 0 {
                if let (Some(resource), Some(method), Some(version)) =
                    (&upstream.resource, request.method, line.rsplit(' ').next())
                {
                    let target = request.path.unwrap_or("");
                    if target != resource {
                        notes.push(format!("target {target} → {resource}"));
                        rewritten
                            .extend_from_slice(format!("{method} {resource} {version}").as_bytes());
                        continue;
                    }
                }
            } else if lower.starts_with("host:") {
                let was = line[5..].trim();
                if was != host {
                    notes.push(format!("Host {was} → {host}"));
                    rewritten.extend_from_slice(format!("Host: {host}").as_bytes());
                    continue;
                }
            }
            rewritten.extend_from_slice(line.as_bytes());
        }
        out.head(self.id, t, Role::Client, &rewritten, upgrade, &notes, &[]);
        (rewritten, upgrade)
    }

    /// Prints the response head with the checks of RFC 6455 §4.2.2 and §9.1; true when
    /// it switches to WebSocket.
    fn response_head(&mut self, head: &[u8], out: &mut Printer, t: f64) -> bool {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut response = httparse::Response::new(&mut headers);
        if let Err(e) = response.parse(head) {
            out.line(
                self.id,
                Some(t),
                &format!("← not an HTTP response ({e}): relayed as it is"),
            );
            return false;
        }
        let upgraded = response.code == Some(101);
        let values = |name: &str| -> Vec<String> {
            response
                .headers
                .iter()
                .filter(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| String::from_utf8_lossy(h.value).into_owned())
                .collect()
        };
        let mut checks = Vec::new();
        if upgraded {
            let accept = values("sec-websocket-accept");
            match (&self.key, accept.first()) {
                (Some(key), Some(got)) if *got == rfc6455::accept_key(key) => {
                    checks.push(Check::Ok(
                        "Sec-WebSocket-Accept = base64(SHA-1(key + GUID)) (RFC 6455 §4.2.2)".into(),
                    ))
                }
                (Some(key), Some(got)) => checks.push(Check::Bad(format!(
                    "Sec-WebSocket-Accept is {got}, the key asks for {} (RFC 6455 §4.2.2)",
                    rfc6455::accept_key(key)
                ))),
                (None, _) => checks.push(Check::Bad(
                    "101 without a Sec-WebSocket-Key in the request (RFC 6455 §4.1)".into(),
                )),
                (Some(_), None) => checks.push(Check::Bad(
                    "101 without Sec-WebSocket-Accept (RFC 6455 §4.2.2)".into(),
                )),
            }
            let extensions = values("sec-websocket-extensions");
            let refs: Vec<&str> = extensions.iter().map(String::as_str).collect();
            let deflate = rfc6455::extensions::parse(&refs)
                .iter()
                .flatten()
                .any(|e| e.name.eq_ignore_ascii_case("permessage-deflate"));
            if deflate {
                self.up.tap.enable_deflate();
                self.down.tap.enable_deflate();
                checks.push(Check::Note(
                    "permessage-deflate agreed: messages with RSV1 are shown inflated (RFC 7692)"
                        .into(),
                ));
            }
        }
        if !upgraded && matches!(self.up.phase, Phase::Frames) {
            // The upgrade was refused: whatever the client sends now is not frames.
            self.up.phase = Phase::Raw;
        }
        out.head(
            self.id,
            t,
            Role::Server,
            head,
            upgraded || self.key.is_some(),
            &[],
            &checks,
        );
        upgraded
    }
}

fn would_block(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

/// Where the head ends (after its blank line), looking from `from` on.
fn head_end(bytes: &[u8], from: usize) -> Option<usize> {
    bytes[from..]
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| from + i + 4)
}

/// A line under a response head: a check passed, failed, or a note.
enum Check {
    Ok(String),
    Bad(String),
    Note(String),
}

/// The upstream connection: TCP, or TLS over it.
enum UpstreamSocket {
    Plain(TcpStream),
    Tls(Box<TlsUpstream>),
}

struct TlsUpstream {
    tcp: TcpStream,
    session: rustls::ClientConnection,
    eof: bool,
    described: bool,
}

impl UpstreamSocket {
    fn tcp(&mut self) -> &mut TcpStream {
        match self {
            UpstreamSocket::Plain(tcp) => tcp,
            UpstreamSocket::Tls(tls) => &mut tls.tcp,
        }
    }

    /// Reads plaintext; `Ok(0)` at the end.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let tls = match self {
            UpstreamSocket::Plain(tcp) => return tcp.read(buf),
            UpstreamSocket::Tls(tls) => tls,
        };
        loop {
            match tls.session.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // The end of TCP without close_notify: the WebSocket close handshake
                // says whether the conversation was complete (RFC 6455 §7.1.5).
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            if tls.eof {
                return Ok(0);
            }
            if tls.session.read_tls(&mut tls.tcp)? == 0 {
                tls.eof = true;
            }
            if let Err(e) = tls.session.process_new_packets() {
                // rustls queued an alert that tells the server why: try to send it.
                let _ = tls.session.write_tls(&mut tls.tcp);
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("TLS failed: {e}"),
                ));
            }
            tls.flush_records()?;
        }
    }

    /// Writes plaintext; `WouldBlock` during the TLS handshake and while earlier
    /// records wait for the socket (rustls then holds one write's worth at most).
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            UpstreamSocket::Plain(tcp) => tcp.write(buf),
            UpstreamSocket::Tls(tls) => {
                if tls.flush_records()? || tls.session.is_handshaking() {
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                let n = tls.session.writer().write(buf)?;
                tls.flush_records()?;
                Ok(n)
            }
        }
    }

    /// Sends the TLS records that wait (what does not fit waits for a writable event).
    fn flush(&mut self) -> io::Result<()> {
        match self {
            UpstreamSocket::Plain(_) => Ok(()),
            UpstreamSocket::Tls(tls) => tls.flush_records().map(|_| ()),
        }
    }

    /// Our end: TLS close_notify, then the TCP FIN.
    fn shutdown_write(&mut self) {
        if let UpstreamSocket::Tls(tls) = self {
            tls.session.send_close_notify();
            let _ = tls.flush_records();
        }
        let _ = self.tcp().shutdown(Shutdown::Write);
    }

    /// The TLS session, described once when its handshake is over.
    fn take_description(&mut self) -> Option<String> {
        let UpstreamSocket::Tls(tls) = self else {
            return None;
        };
        if tls.described || tls.session.is_handshaking() {
            return None;
        }
        tls.described = true;
        rfc6455::tls::describe(&tls.session, None).map(|d| format!("upstream {d}"))
    }
}

impl TlsUpstream {
    /// Writes the records rustls holds; true while some are left.
    fn flush_records(&mut self) -> io::Result<bool> {
        while self.session.wants_write() {
            match self.session.write_tls(&mut self.tcp) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(false)
    }
}

/// Prints the lines (or JSON objects) for every pair, in the order things happen.
struct Printer {
    json: bool,
    out: io::BufWriter<io::Stdout>,
}

/// How a line is prefixed: the connection, then the time since it opened.
fn prefix(id: u64, t: Option<f64>) -> String {
    match t {
        Some(t) => format!("#{id} +{t:.3}s"),
        None => format!("#{id}"),
    }
}

/// The start of a line that continues the one above (a head's lines, violations):
/// tagged with the connection too, and aligned under the arrow.
fn continuation(id: u64, t: f64) -> String {
    let tag = format!("#{id}");
    let width = prefix(id, Some(t)).chars().count() + 3;
    format!("{tag}{}", " ".repeat(width - tag.len()))
}

fn arrow(from: Role) -> &'static str {
    match from {
        Role::Client => "→",
        Role::Server => "←",
    }
}

fn side(from: Role) -> &'static str {
    match from {
        Role::Client => "client",
        Role::Server => "server",
    }
}

impl Printer {
    fn write(&mut self, text: &str) {
        // A closed pipe (`| head`) ends nothing but the output.
        let _ = self.out.write_all(text.as_bytes());
    }

    fn flush(&mut self) {
        let _ = self.out.flush();
    }

    fn object(&mut self, value: serde_json::Value) {
        let mut line = value.to_string();
        line.push('\n');
        self.write(&line);
    }

    fn line(&mut self, id: u64, t: Option<f64>, text: &str) {
        if self.json {
            self.object(json!({"conn": id, "t": t, "event": "note", "text": text}));
        } else {
            self.write(&format!("{} {text}\n", prefix(id, t)));
        }
    }

    fn open(&mut self, id: u64, peer: SocketAddr, upstream: &Upstream) {
        let to = format!(
            "{}://{}{}",
            if upstream.url.secure { "wss" } else { "ws" },
            upstream.url.host_header(),
            upstream.resource.as_deref().unwrap_or("")
        );
        if self.json {
            self.object(
                json!({"conn": id, "event": "open", "peer": peer.to_string(), "upstream": to}),
            );
        } else {
            self.write(&format!("#{id} open: {peer} → {to}\n"));
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn head(
        &mut self,
        id: u64,
        t: f64,
        from: Role,
        head: &[u8],
        full: bool,
        notes: &[String],
        checks: &[Check],
    ) {
        let text = String::from_utf8_lossy(head);
        let lines: Vec<&str> = text.trim_end_matches("\r\n").split("\r\n").collect();
        if self.json {
            let checks: Vec<_> = checks
                .iter()
                .map(|c| match c {
                    Check::Ok(s) => json!({"ok": true, "text": s}),
                    Check::Bad(s) => json!({"ok": false, "text": s}),
                    Check::Note(s) => json!({"note": s}),
                })
                .collect();
            let kind = if from == Role::Client {
                "request"
            } else {
                "response"
            };
            self.object(json!({
                "conn": id, "t": t, "event": kind, "from": side(from), "bytes": head.len(),
                "head": if full { lines.join("\n") } else { lines[0].to_string() },
                "rewritten": notes, "checks": checks,
            }));
            return;
        }
        let what = if from == Role::Client {
            "request"
        } else {
            "response"
        };
        let mut line = format!(
            "{} {} {what} head, {} bytes",
            prefix(id, Some(t)),
            arrow(from),
            head.len()
        );
        if !notes.is_empty() {
            line.push_str(&format!(" (rewritten: {})", notes.join(", ")));
        }
        if !full {
            line.push_str(&format!(
                ": {} (not an upgrade: relayed as it is)\n",
                lines[0]
            ));
            self.write(&line);
            return;
        }
        line.push('\n');
        let pad = continuation(id, t);
        for l in &lines {
            line.push_str(&format!("{pad}{l}\n"));
        }
        for check in checks {
            let (mark, s) = match check {
                Check::Ok(s) => ("✓", s),
                Check::Bad(s) => ("✗", s),
                Check::Note(s) => ("·", s),
            };
            line.push_str(&format!("{pad}{mark} {s}\n"));
        }
        self.write(&line);
    }

    fn frames(&mut self, id: u64, t: f64, from: Role, events: &[TapEvent]) {
        for event in events {
            match event {
                TapEvent::Frame(frame) => self.frame(id, t, from, frame),
                TapEvent::Unframeable { offset, error } => {
                    if self.json {
                        self.object(json!({
                            "conn": id, "t": t, "event": "unframeable", "from": side(from),
                            "offset": offset, "error": error.to_string(),
                        }));
                    } else {
                        let p = prefix(id, Some(t));
                        self.write(&format!(
                            "{p} {} ✗ at byte {offset}: {error}: the frames are lost, the rest is relayed as it is\n",
                            arrow(from)
                        ));
                    }
                }
            }
        }
    }

    fn frame(&mut self, id: u64, t: f64, from: Role, frame: &TapFrame) {
        if self.json {
            let h = &frame.header;
            let text_like = frame.message == Some(OpCode::Text)
                || matches!(h.opcode, OpCode::Ping | OpCode::Pong);
            let text =
                |bytes: &[u8]| text_like.then(|| String::from_utf8_lossy(bytes).into_owned());
            self.object(json!({
                "conn": id, "t": t, "event": "frame", "from": side(from),
                "index": frame.index, "offset": frame.offset,
                "fin": h.fin, "rsv": h.rsv, "opcode": h.opcode.name(), "opcode_bits": h.opcode.bits(),
                "mask": h.masking_key.map(|k| format!("{:02x}{:02x}{:02x}{:02x}", k[0], k[1], k[2], k[3])),
                "len": h.payload_len, "header_len": frame.header_len,
                "preview_hex": preview(&frame.preview, frame.preview.len() as u64, false),
                "preview_text": if frame.compressed { None } else { text(&frame.preview) },
                "compressed": frame.compressed,
                "inflated": frame.inflated.as_ref().map(|m| json!({
                    "compressed_len": m.compressed_len, "len": m.len,
                    "preview_text": text(&m.preview),
                    "preview_hex": preview(&m.preview, m.preview.len() as u64, false),
                })),
                "close": frame.close.as_ref().map(|c| json!({"code": c.code.0, "reason": c.reason})),
                "violations": frame.violations.iter()
                    .map(|v| json!({"rule": v.rule(), "section": v.section()}))
                    .collect::<Vec<_>>(),
            }));
            return;
        }
        let p = prefix(id, Some(t));
        let mut line = format!("{p} {} {frame}\n", arrow(from));
        let pad = continuation(id, t);
        for v in &frame.violations {
            line.push_str(&format!("{pad}✗ {v}\n"));
        }
        self.write(&line);
    }

    fn close(&mut self, pair: &Pair, why: Option<&str>) {
        let t = pair.elapsed();
        let cut = |flow: &Flow| flow.tap.unfinished();
        if self.json {
            self.object(json!({
                "conn": pair.id, "t": t, "event": "close", "error": why,
                "client": {"bytes": pair.up.relayed, "frames": pair.up.tap.frames(), "cut": cut(&pair.up)},
                "server": {"bytes": pair.down.relayed, "frames": pair.down.tap.frames(), "cut": cut(&pair.down)},
            }));
            return;
        }
        let mut line = format!(
            "{} closed{}: → {} bytes, {} frames; ← {} bytes, {} frames",
            prefix(pair.id, Some(t)),
            why.map(|w| format!(" ({w})")).unwrap_or_default(),
            pair.up.relayed,
            pair.up.tap.frames(),
            pair.down.relayed,
            pair.down.tap.frames(),
        );
        for (from, flow) in [(Role::Client, &pair.up), (Role::Server, &pair.down)] {
            if let Some(cut) = cut(flow) {
                line.push_str(&format!("; {} cut short: {cut}", arrow(from)));
            }
        }
        line.push('\n');
        self.write(&line);
    }
}
