//! Every way our implementation may legitimately disagree with tungstenite, in one place,
//! each with the RFC rule that allows it and which side the RFC favours. The differential
//! targets (`diff_frames`, `diff_handshake`) fail on any disagreement not listed here; a
//! listed one is printed once per run (`known difference: …`) and ends that input's
//! comparison.
//!
//! Found by the targets themselves: each class below was first a crash of a `diff_*`
//! target, then read against the RFC, then either listed here (both sides defensible, or
//! tungstenite wrong) or fixed in our code (we were wrong: the request target, empty lines
//! before a head, a head ending in bare LFs) with a regression test in
//! `tests/handshake_rejections.rs`. `tests/differential.rs` shows one input per class.
//!
//! The file also holds both sides' drivers (`Ours`/`Theirs` for frames,
//! `our_handshake`/`their_handshake`), so the targets and the tests compare the same way.
#![allow(dead_code)]

use rfc6455::handshake::server::RequestError;
use rfc6455::{Config, Connection, Event, ProtocolError, Role};
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use tungstenite::protocol::{Role as TRole, WebSocket, WebSocketConfig};
use tungstenite::{Error as TError, Message};

/// The most header lines our request parser takes (`MAX_HEADERS` in
/// src/handshake/mod.rs, not public): more is 431.
const OUR_MAX_HEADERS: usize = 64;

/// One element of a verdict, as both sides can give it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Text(Vec<u8>),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<(u16, Vec<u8>)>),
    /// The connection failed with this close code.
    Fail(u16),
}

/// tungstenite's transport: bytes we put in, `WouldBlock` when there are none; what it
/// writes is kept (a handshake's response is compared, a connection's replies are not).
#[derive(Default)]
pub struct Pipe {
    input: Vec<u8>,
    read: usize,
    output: Vec<u8>,
}

impl Read for Pipe {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let rest = &self.input[self.read..];
        if rest.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        self.read += n;
        Ok(n)
    }
}

impl Write for Pipe {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Our side of the frame comparison: a `Connection`, its outcomes, and the error that
/// failed it.
pub struct Ours {
    pub conn: Connection,
    /// The error that failed the connection, for the difference classes.
    pub error: Option<ProtocolError>,
    /// Failed, or a Close arrived: nothing more is compared.
    pub done: bool,
}

impl Ours {
    pub fn new(role: Role, config: Config) -> Self {
        Ours {
            conn: Connection::with_config(role, config),
            error: None,
            done: false,
        }
    }

    /// Feeds bytes; appends what they completed to `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<Outcome>) {
        if self.done {
            return;
        }
        self.conn.receive(bytes);
        loop {
            match self.conn.next_event() {
                Ok(Some(event)) => {
                    let close = matches!(event, Event::Close(_));
                    out.push(match event {
                        Event::Text(t) => Outcome::Text(t.into_bytes()),
                        Event::Binary(b) => Outcome::Binary(b),
                        Event::Ping(p) => Outcome::Ping(p),
                        Event::Pong(p) => Outcome::Pong(p),
                        Event::Close(f) => {
                            Outcome::Close(f.map(|f| (f.code.0, f.reason.into_bytes())))
                        }
                    });
                    if close {
                        self.done = true;
                        return;
                    }
                }
                Ok(None) => return,
                Err(err) => {
                    out.push(Outcome::Fail(err.close_code().0));
                    self.error = Some(err);
                    self.done = true;
                    return;
                }
            }
        }
    }
}

/// tungstenite's side: a `WebSocket` over an in-memory stream.
pub struct Theirs {
    pub ws: WebSocket<Pipe>,
    pub done: bool,
}

impl Theirs {
    /// A tungstenite `WebSocket` in `role` with the same limits as ours.
    pub fn new(role: Role, max_frame: usize, max_message: usize) -> Self {
        let config = WebSocketConfig::default()
            .max_frame_size(Some(max_frame))
            .max_message_size(Some(max_message));
        let role = match role {
            Role::Client => TRole::Client,
            Role::Server => TRole::Server,
        };
        Theirs {
            ws: WebSocket::from_raw_socket(Pipe::default(), role, Some(config)),
            done: false,
        }
    }

    /// Feeds bytes; appends what they completed to `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<Outcome>) {
        if self.done {
            return;
        }
        self.ws.get_mut().input.extend_from_slice(bytes);
        loop {
            match self.ws.read() {
                Ok(message) => {
                    let close = matches!(message, Message::Close(_));
                    out.push(match message {
                        Message::Text(t) => Outcome::Text(t.as_bytes().to_vec()),
                        Message::Binary(b) => Outcome::Binary(b.to_vec()),
                        Message::Ping(p) => Outcome::Ping(p.to_vec()),
                        Message::Pong(p) => Outcome::Pong(p.to_vec()),
                        Message::Close(f) => Outcome::Close(
                            f.map(|f| (u16::from(f.code), f.reason.as_bytes().to_vec())),
                        ),
                        Message::Frame(_) => unreachable!("read never returns a raw frame"),
                    });
                    if close {
                        self.done = true;
                        return;
                    }
                }
                Err(TError::Io(err)) if err.kind() == io::ErrorKind::WouldBlock => return,
                Err(err) => {
                    out.push(Outcome::Fail(match err {
                        TError::Protocol(_) => 1002,
                        TError::Utf8(_) => 1007,
                        TError::Capacity(_) => 1009,
                        other => panic!("tungstenite: unexpected error {other:?}"),
                    }));
                    self.done = true;
                    return;
                }
            }
        }
    }
}

/// What the frame target knows about the frame whose end it compares at.
#[derive(Debug)]
pub struct Frame {
    /// FIN, RSV1-3 and opcode as sent.
    pub first: u8,
    /// The payload length as the header announces it.
    pub declared: u64,
    /// A 64-bit length with its most significant bit set.
    pub msb_set: bool,
    /// The length in more bytes than needed.
    pub non_minimal: bool,
    /// The announced length is over both sides' frame size limit.
    pub over_limit: bool,
    /// False when the stream ended inside this frame.
    pub whole: bool,
    /// The payload, unmasked.
    pub payload: Vec<u8>,
}

/// The known classes of disagreement over frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameDifference {
    /// The stream ended inside a frame whose header (or, for text, whose payload so far)
    /// already broke a rule: we fail at once, tungstenite reads the whole frame before
    /// judging it and so is still waiting. RFC 6455 §5.2's header rules need nothing past
    /// the header, and §8.1 asks to fail "as soon as" invalid UTF-8 is seen: failing early is
    /// what the RFC asks; waiting is allowed. Not a disagreement on the verdict.
    EarlyVerdict,
    /// A 64-bit length with its most significant bit set: we fail with 1002 (RFC 6455 §5.2:
    /// "the most significant bit MUST be 0" — a framing error), tungstenite reads a length
    /// over its limit and fails with 1009. Both fail the connection; the RFC's class is
    /// ours.
    LengthMsbSet,
    /// A length not in its minimal encoding: we fail with 1002, tungstenite accepts the
    /// frame. RFC 6455 §5.2: "the minimal number of bytes MUST be used to encode the
    /// length" — a sender's MUST; a receiver may enforce it (we do, as Autobahn's strict
    /// peers do) or not. Neither side is wrong; we are the stricter.
    NonMinimalLength,
    /// A Close with a code that must not be sent (RFC 6455 §7.4.1, §7.4.2: e.g. 1005,
    /// 1006, 1016–2999, below 1000): we fail with 1002 at once; tungstenite gives the
    /// application a Close it rewrites to 1002 "Protocol violation" and answers with a
    /// Close 1002. The peer sees the same Close 1002 from both: a difference of shape.
    InvalidCloseCode,
    /// A header that breaks two rules at once, one of them the frame size limit: we name
    /// the RFC 6455 §5.2 rule (1002), tungstenite the size (1009), which it checks first.
    /// The RFC does not order the checks; both fail the connection.
    TwoViolationsInHeader,
    /// A Close whose code must not be sent and whose reason is not UTF-8: we name the code
    /// (1002, RFC 6455 §7.4), tungstenite the reason (1007, §8.1), which it decodes first.
    /// Two violations, no order in the RFC; both fail the connection.
    TwoViolationsInClose,
}

impl FrameDifference {
    const ALL: [FrameDifference; 6] = [
        FrameDifference::EarlyVerdict,
        FrameDifference::LengthMsbSet,
        FrameDifference::NonMinimalLength,
        FrameDifference::InvalidCloseCode,
        FrameDifference::TwoViolationsInHeader,
        FrameDifference::TwoViolationsInClose,
    ];

    /// Prints the class once per process, so a fuzz log shows which ones occur.
    pub fn note(self) {
        static SEEN: [AtomicBool; 6] = [const { AtomicBool::new(false) }; 6];
        let i = Self::ALL.iter().position(|d| *d == self).unwrap();
        note_once(&SEEN[i], &self);
    }
}

fn note_once(seen: &AtomicBool, what: &dyn std::fmt::Debug) {
    if !seen.swap(true, Ordering::Relaxed) {
        eprintln!("known difference: {what:?}");
    }
}

/// Names the known class of a disagreement over one frame: `ours` and `theirs` are what
/// each side produced while the frame's bytes were fed, `error` our failure if any.
/// `None`: an unknown disagreement, a finding.
pub fn classify_frame(
    frame: &Frame,
    ours: &[Outcome],
    theirs: &[Outcome],
    error: Option<&ProtocolError>,
) -> Option<FrameDifference> {
    // A frame gives at most one outcome per side, but strip what agrees anyway.
    let common = ours.iter().zip(theirs).take_while(|(a, b)| a == b).count();
    let (ours, theirs) = (&ours[common..], &theirs[common..]);
    match error {
        Some(ProtocolError::PayloadLengthMsbSet) if frame.msb_set => {
            (theirs == [Outcome::Fail(1009)] || theirs.is_empty() && !frame.whole)
                .then_some(FrameDifference::LengthMsbSet)
        }
        Some(ProtocolError::NonMinimalLength) if frame.non_minimal => {
            Some(FrameDifference::NonMinimalLength)
        }
        Some(ProtocolError::InvalidCloseCode(_))
            if frame.whole
                && theirs == [Outcome::Close(Some((1002, b"Protocol violation".to_vec())))] =>
        {
            Some(FrameDifference::InvalidCloseCode)
        }
        Some(ProtocolError::InvalidCloseCode(_))
            if frame.whole
                && theirs == [Outcome::Fail(1007)]
                && std::str::from_utf8(&frame.payload[2..]).is_err() =>
        {
            Some(FrameDifference::TwoViolationsInClose)
        }
        Some(err)
            if frame.over_limit
                && err.close_code().0 == 1002
                && theirs == [Outcome::Fail(1009)] =>
        {
            Some(FrameDifference::TwoViolationsInHeader)
        }
        Some(_) if !frame.whole && theirs.is_empty() && matches!(ours, [Outcome::Fail(_)]) => {
            Some(FrameDifference::EarlyVerdict)
        }
        _ => None,
    }
}

/// What a server made of an opening handshake.
#[derive(Debug)]
pub enum HandshakeVerdict<E> {
    /// A 101 with this Sec-WebSocket-Accept.
    Accept(Vec<u8>),
    /// Refused, for this reason.
    Reject(E),
}

/// The value of `name` in a response head, case-insensitively.
fn header<'a>(head: &'a [u8], name: &str) -> Option<&'a [u8]> {
    head.split(|&b| b == b'\n').find_map(|line| {
        let colon = line.iter().position(|&b| b == b':')?;
        let (n, v) = line.split_at(colon);
        n.eq_ignore_ascii_case(name.as_bytes())
            .then(|| v[1..].trim_ascii())
    })
}

/// Our server's verdict on a complete head: `Request::parse`, then the 101's accept value.
pub fn our_handshake(head: &[u8]) -> HandshakeVerdict<RequestError> {
    match rfc6455::handshake::server::Request::parse(head) {
        Ok(request) => {
            let response = request.accept(None);
            let accept = header(&response, "Sec-WebSocket-Accept").expect("our 101 has an accept");
            HandshakeVerdict::Accept(accept.to_vec())
        }
        Err(err) => HandshakeVerdict::Reject(err),
    }
}

/// tungstenite's verdict on a complete head: `tungstenite::accept` over an in-memory stream.
pub fn their_handshake(head: &[u8]) -> HandshakeVerdict<tungstenite::Error> {
    let pipe = Pipe {
        input: head.to_vec(),
        ..Pipe::default()
    };
    match tungstenite::accept(pipe) {
        Ok(ws) => {
            let accept = header(&ws.get_ref().output, "Sec-WebSocket-Accept")
                .expect("their 101 has an accept");
            HandshakeVerdict::Accept(accept.to_vec())
        }
        Err(tungstenite::HandshakeError::Failure(err)) => HandshakeVerdict::Reject(err),
        Err(tungstenite::HandshakeError::Interrupted(_)) => {
            panic!("tungstenite wants more than a complete head: {head:?}")
        }
    }
}

/// Both accept with the same Sec-WebSocket-Accept, or both refuse (for any reason: only
/// the verdict is compared, the status code is each server's own choice).
pub fn same_verdict<A, B>(ours: &HandshakeVerdict<A>, theirs: &HandshakeVerdict<B>) -> bool {
    match (ours, theirs) {
        (HandshakeVerdict::Accept(a), HandshakeVerdict::Accept(b)) => a == b,
        (HandshakeVerdict::Reject(_), HandshakeVerdict::Reject(_)) => true,
        _ => false,
    }
}

/// The known classes of disagreement over an opening handshake. In each, tungstenite
/// accepts what RFC 6455 §4.2.1 says a server must refuse, or refuses what it allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeDifference {
    /// No Host header (or an empty one): we answer 400, tungstenite accepts. RFC 6455
    /// §4.1 item 4 makes Host part of the handshake and §4.2.1 item 2 lists it among what
    /// the server must find, else 400. **tungstenite is wrong.**
    MissingHost,
    /// A Sec-WebSocket-Key that is not base64 of 16 bytes: we answer 400, tungstenite
    /// hashes whatever it got. RFC 6455 §4.2.1 item 5 requires "a base64-encoded value
    /// that, when decoded, is 16 bytes in length". **tungstenite is wrong.**
    KeyNotSixteenBytes,
    /// Host, Sec-WebSocket-Key or Sec-WebSocket-Version sent twice: we refuse, tungstenite
    /// uses the first. RFC 6455 §11.3.1: the key "MUST NOT appear more than once in an
    /// HTTP request"; RFC 7230 §5.4: a request with several Host fields gets 400; a
    /// repeated version is an unlisted value (§4.2.2 item 4). **tungstenite is wrong.**
    RepeatedHeader,
    /// A Connection header whose comma-separated tokens do not include `upgrade`, though
    /// its space-separated words do (`Connection: keep-alive Upgrade`): we refuse,
    /// tungstenite splits on spaces too and accepts. Connection is a comma-separated list
    /// of tokens (RFC 7230 §6.1; RFC 6455 §4.2.1 item 4 asks for the token `Upgrade` in
    /// it); a space is not a separator there. **tungstenite is lax.**
    ConnectionNotAList,
    /// The `upgrade` (or `websocket`) token in the second Connection (Upgrade) line, not the
    /// first: we accept, tungstenite reads only the first line and refuses. RFC 7230
    /// §3.2.2: several lines of a list header mean their comma-joined values; RFC 6455
    /// §4.1 says Connection "MUST include" the token, not that it be first.
    /// **tungstenite is wrong.**
    ListOverSeveralLines,
    /// `Upgrade: websocket, h2c`: we accept, tungstenite wants the value to be exactly
    /// `websocket`. Upgrade is a list of protocols (RFC 7230 §6.7); RFC 6455 §4.2.1 item 3
    /// asks for one "containing the value websocket". **tungstenite is too strict.**
    UpgradeList,
    /// A Connection or Upgrade value with bytes ≥ 0x80 (obs-text, RFC 7230 §3.2.6)
    /// besides the token: tungstenite cannot read the value as a string and refuses; we
    /// find the token among the others. Both defensible; ours reads the field as RFC 7230
    /// allows.
    HeaderValueNotAscii,
    /// A request target that is neither a path (`/chat`) nor an absolute http(s)/ws(s) URI
    /// (`*`, `host:80`, `-chat`): we answer 400, tungstenite accepts whatever its URI type
    /// parses. RFC 6455 §4.1 item 2 and §3: the target is the /resource name/, "/" path
    /// ["?" query]. **tungstenite is lax.** (We accepted `GET 15/chat` too until this
    /// target found it.)
    TargetNotAResourceName,
    /// A path with bytes RFC 3986 does not allow unescaped (`` ` ``, `{`, `|`, `"`, bytes
    /// ≥ 0x80), which httparse passes: tungstenite's URI type refuses it, we hand it to the
    /// application as the resource name. RFC 7230 §3.1.1: a server SHOULD answer an
    /// invalid request-line with 400 — tungstenite follows the SHOULD; we are lenient on
    /// purpose, like httparse and common HTTP servers, since the name is only the
    /// application's to route on. Neither is wrong.
    TargetCharacters,
    /// More header lines than our limit (64, `MAX_HEADERS` in src/handshake/mod.rs) but not
    /// tungstenite's (124): we answer 431 (RFC 6585 §5), it accepts. A resource limit,
    /// each side's own choice.
    HeaderLimit,
}

impl HandshakeDifference {
    const ALL: [HandshakeDifference; 10] = [
        HandshakeDifference::MissingHost,
        HandshakeDifference::KeyNotSixteenBytes,
        HandshakeDifference::RepeatedHeader,
        HandshakeDifference::ConnectionNotAList,
        HandshakeDifference::ListOverSeveralLines,
        HandshakeDifference::UpgradeList,
        HandshakeDifference::HeaderValueNotAscii,
        HandshakeDifference::TargetNotAResourceName,
        HandshakeDifference::TargetCharacters,
        HandshakeDifference::HeaderLimit,
    ];

    /// Prints the class once per process.
    pub fn note(self) {
        static SEEN: [AtomicBool; 10] = [const { AtomicBool::new(false) }; 10];
        let i = Self::ALL.iter().position(|d| *d == self).unwrap();
        note_once(&SEEN[i], &self);
    }
}

/// The values of every header called `name` in a request head.
fn values<'a>(head: &'a [u8], name: &str) -> Vec<&'a [u8]> {
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut request = httparse::Request::new(&mut headers);
    if request.parse(head).is_err() {
        return Vec::new();
    }
    request
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
        .collect()
}

/// How many header lines a head has (up to 128).
fn values_count(head: &[u8]) -> usize {
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut request = httparse::Request::new(&mut headers);
    let _ = request.parse(head);
    request
        .headers
        .iter()
        .filter(|h| !h.name.is_empty())
        .count()
}

/// Names the known class of a disagreement over a complete request head. `None`: an
/// unknown disagreement, a finding.
pub fn classify_handshake(
    head: &[u8],
    ours: &HandshakeVerdict<RequestError>,
    theirs: &HandshakeVerdict<tungstenite::Error>,
) -> Option<HandshakeDifference> {
    match (ours, theirs) {
        // We refuse what tungstenite accepts: the head must break a rule it does not check
        // (whichever we reported first).
        (HandshakeVerdict::Reject(RequestError::HeadTooLarge), HandshakeVerdict::Accept(_)) => {
            (values_count(head) > OUR_MAX_HEADERS).then_some(HandshakeDifference::HeaderLimit)
        }
        (HandshakeVerdict::Reject(_), HandshakeVerdict::Accept(_)) => {
            unchecked_by_tungstenite(head)
        }
        // tungstenite refuses what we accept: it must be one of the readings it gets wrong.
        (
            HandshakeVerdict::Accept(_),
            HandshakeVerdict::Reject(tungstenite::Error::HttpFormat(_)),
        ) => {
            let mut headers = [httparse::EMPTY_HEADER; 128];
            let mut request = httparse::Request::new(&mut headers);
            let _ = request.parse(head);
            let target = request.path.unwrap_or_default();
            target
                .bytes()
                .any(|b| !(b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?%".contains(&b)))
                .then_some(HandshakeDifference::TargetCharacters)
        }
        (
            HandshakeVerdict::Accept(_),
            HandshakeVerdict::Reject(tungstenite::Error::Protocol(err)),
        ) => {
            use tungstenite::error::ProtocolError as P;
            let name = match err {
                P::MissingConnectionUpgradeHeader => "Connection",
                P::MissingUpgradeWebSocketHeader => "Upgrade",
                _ => return None,
            };
            first_line_only(head, name)
        }
        _ => None,
    }
}

/// Why tungstenite missed the token in header `name` (`Connection`: `upgrade`, `Upgrade`:
/// `websocket`) that we found.
fn first_line_only(head: &[u8], name: &str) -> Option<HandshakeDifference> {
    let lines = values(head, name);
    let first = lines.first()?;
    if std::str::from_utf8(first).is_err() || first.iter().any(|&b| b >= 0x80) {
        return Some(HandshakeDifference::HeaderValueNotAscii);
    }
    if name == "Upgrade" && first.split(|&b| b == b',').count() > 1 {
        return Some(HandshakeDifference::UpgradeList);
    }
    (lines.len() > 1).then_some(HandshakeDifference::ListOverSeveralLines)
}

/// The first RFC rule `head` breaks among those tungstenite does not check.
fn unchecked_by_tungstenite(head: &[u8]) -> Option<HandshakeDifference> {
    use base64::Engine;
    let host = values(head, "Host");
    let key = values(head, "Sec-WebSocket-Key");
    if host.len() > 1 || key.len() > 1 || values(head, "Sec-WebSocket-Version").len() > 1 {
        return Some(HandshakeDifference::RepeatedHeader);
    }
    if host.iter().all(|v| v.is_empty()) {
        return Some(HandshakeDifference::MissingHost);
    }
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut request = httparse::Request::new(&mut headers);
    let _ = request.parse(head);
    let target = request.path.unwrap_or_default();
    let absolute = target.split_once("://").is_some_and(|(scheme, rest)| {
        ["http", "https", "ws", "wss"].contains(&scheme.to_ascii_lowercase().as_str())
            && !rest.starts_with(['/', '?'])
            && !rest.is_empty()
    });
    if !target.starts_with('/') && !absolute {
        return Some(HandshakeDifference::TargetNotAResourceName);
    }
    let connection_lists_upgrade = values(head, "Connection").iter().any(|v| {
        v.split(|&b| b == b',')
            .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"upgrade"))
    });
    if !connection_lists_upgrade {
        return Some(HandshakeDifference::ConnectionNotAList);
    }
    let decoded = key
        .first()
        .map(|k| base64::engine::general_purpose::STANDARD.decode(k.trim_ascii()));
    if !matches!(decoded, Some(Ok(k)) if k.len() == 16) {
        return Some(HandshakeDifference::KeyNotSixteenBytes);
    }
    None
}
