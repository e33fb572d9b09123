// The sending half of `Connection` against a model of its documented rules, and the
// receiving half reading what it sent. Arbitrary calls — whole messages, fragments in
// any order, prepared payloads, pings and pongs of any length, Close with any code and
// reason, buffer releases — are made on one connection, with or without
// permessage-deflate (either context takeover, any threshold), tracing on or off. Each
// call's result must be what the model says (RFC 6455 §5.4 fragment order, §5.5 control
// payloads ≤ 125 bytes, §5.5.1 nothing after Close, §7.4 codes that may be sent); the
// peer connection, reading the bytes in arbitrary pieces through `receive` or
// `input_buffer`/`commit_input`, must get exactly the messages the model expects, and
// fail with 1009 exactly where a message first passes its limit. Both traces must list
// every frame.
#![no_main]

#[path = "../../tests/support/invariants.rs"]
mod invariants;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use rfc6455::deflate::Negotiated;
use rfc6455::{CloseCode, CloseFrame, Config, Connection, Event, MessageKind, Role, SendError};

/// The receiver's frame and message limit: some messages pass it.
const LIMIT: usize = 1024;

#[derive(Arbitrary, Debug)]
enum Op {
    Text(String),
    Binary(Vec<u8>),
    /// A fragment: text (the string) or binary (the bytes), and FIN.
    Fragment(bool, String, Vec<u8>, bool),
    /// `send_prepared`, uncompressed, or compressed (refused unless agreed without
    /// context takeover; then skipped, since arbitrary bytes are not DEFLATE data).
    Prepared(bool, Vec<u8>, bool),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(u16, String),
    ReleaseIdle,
}

#[derive(Arbitrary, Debug)]
struct Input {
    client: bool,
    /// permessage-deflate: (sender's no_context_takeover, receiver's, threshold).
    deflate: Option<(bool, bool, u8)>,
    trace: bool,
    ops: Vec<Op>,
    reads: Vec<u8>,
    /// Read with `input_buffer`/`commit_input` instead of `receive`.
    zero_copy: bool,
}

/// What the model expects the peer to see.
#[derive(Default)]
struct Model {
    close_sent: bool,
    fragmented: Option<MessageKind>,
    partial: Vec<u8>,
    events: Vec<Event>,
    /// The receiver fails with 1009 here (a data message over `LIMIT`): nothing after.
    fails: bool,
    frames: usize,
}

impl Model {
    fn data_frame(&mut self, kind: MessageKind, payload: &[u8], fin: bool) {
        self.frames += 1;
        if self.fails {
            return;
        }
        self.partial.extend_from_slice(payload);
        if self.partial.len() > LIMIT {
            self.fails = true;
            return;
        }
        if fin {
            let payload = std::mem::take(&mut self.partial);
            self.events.push(match kind {
                MessageKind::Text => Event::Text(String::from_utf8(payload).unwrap()),
                MessageKind::Binary => Event::Binary(payload),
            });
        }
    }

    fn control(&mut self, event: Event) {
        self.frames += 1;
        if !self.fails {
            self.events.push(event);
        }
    }

    /// The result of sending a whole message.
    fn message(&mut self) -> Result<(), SendError> {
        if self.close_sent {
            Err(SendError::Closing)
        } else if self.fragmented.is_some() {
            Err(SendError::FragmentOrder)
        } else {
            Ok(())
        }
    }
}

fn kind(text: bool) -> MessageKind {
    if text {
        MessageKind::Text
    } else {
        MessageKind::Binary
    }
}

fuzz_target!(|input: Input| {
    let (role, peer_role) = if input.client {
        (Role::Client, Role::Server)
    } else {
        (Role::Server, Role::Client)
    };
    let agreed = input.deflate.map(|(local, remote, threshold)| Negotiated {
        local_no_context_takeover: local,
        remote_no_context_takeover: remote,
        threshold: threshold as usize,
        ..Negotiated::default()
    });
    // The receiver's view of the same agreement: local and remote swap.
    let peer_agreed = agreed.map(|n| Negotiated {
        local_no_context_takeover: n.remote_no_context_takeover,
        remote_no_context_takeover: n.local_no_context_takeover,
        local_max_window_bits: n.remote_max_window_bits,
        remote_max_window_bits: n.local_max_window_bits,
        ..n
    });
    let trace = Config {
        trace: input.trace,
        allowed_rsv: if agreed.is_some() { 0b100 } else { 0 },
        ..Config::default()
    };
    let mut sender = Connection::with_deflate(role, trace.clone(), agreed);
    assert_eq!(sender.role(), role);
    assert_eq!(sender.config(), &trace);
    let mut model = Model::default();
    for op in input.ops.iter().take(64) {
        let (result, expected) = match op {
            Op::Text(t) => {
                let expected = model.message();
                let result = sender.send_text(t);
                if result.is_ok() {
                    model.data_frame(MessageKind::Text, t.as_bytes(), true);
                }
                (result, expected)
            }
            Op::Binary(b) => {
                let expected = model.message();
                let result = sender.send_binary(b);
                if result.is_ok() {
                    model.data_frame(MessageKind::Binary, b, true);
                }
                (result, expected)
            }
            Op::Prepared(text, payload, compressed) => {
                let sendable = matches!(agreed, Some(n) if n.local_no_context_takeover);
                if *compressed && sendable {
                    continue;
                }
                let payload: &[u8] = if *text { b"prepared" } else { payload };
                let expected = match model.message() {
                    Ok(()) if *compressed => Err(SendError::CompressionNotAgreed),
                    other => other,
                };
                let result = sender.send_prepared(kind(*text), payload, *compressed);
                if result.is_ok() {
                    model.data_frame(kind(*text), payload, true);
                }
                (result, expected)
            }
            Op::Fragment(text, s, b, fin) => {
                let kind = kind(*text);
                let payload = if *text { s.as_bytes() } else { &b[..] };
                let expected = if model.close_sent {
                    Err(SendError::Closing)
                } else if model.fragmented.is_some_and(|k| k != kind) {
                    Err(SendError::FragmentOrder)
                } else {
                    Ok(())
                };
                let result = sender.send_fragment(kind, payload, *fin);
                if result.is_ok() {
                    model.fragmented = (!fin).then_some(kind);
                    model.data_frame(kind, payload, *fin);
                }
                (result, expected)
            }
            Op::Ping(p) | Op::Pong(p) => {
                let ping = matches!(op, Op::Ping(_));
                let expected = if model.close_sent {
                    Err(SendError::Closing)
                } else if p.len() > 125 {
                    Err(SendError::ControlPayloadTooLong(p.len()))
                } else {
                    Ok(())
                };
                let result = if ping {
                    sender.send_ping(p)
                } else {
                    sender.send_pong(p)
                };
                if result.is_ok() {
                    model.control(if ping {
                        Event::Ping(p.clone())
                    } else {
                        Event::Pong(p.clone())
                    });
                }
                (result, expected)
            }
            Op::Close(code, reason) => {
                let code = CloseCode(*code);
                let expected = if model.close_sent {
                    Err(SendError::Closing)
                } else if !code.is_valid_on_wire() {
                    Err(SendError::InvalidCloseCode(code.0))
                } else if reason.len() > 123 {
                    Err(SendError::ControlPayloadTooLong(2 + reason.len()))
                } else {
                    Ok(())
                };
                let result = sender.close(code, reason);
                if result.is_ok() {
                    model.close_sent = true;
                    model.control(Event::Close(Some(CloseFrame {
                        code,
                        reason: reason.clone(),
                    })));
                }
                (result, expected)
            }
            Op::ReleaseIdle => {
                sender.release_idle_buffers();
                continue;
            }
        };
        assert_eq!(result, expected, "{op:?}");
        if let Err(err) = result {
            assert!(!err.to_string().is_empty());
        }
    }
    assert_eq!(
        sender.can_send_data(),
        !model.close_sent && model.fragmented.is_none()
    );

    let wire = sender.pending_output().to_vec();
    invariants::check_output_with(role, &wire, agreed.is_some());
    if input.trace {
        let traced = sender.take_trace();
        assert_eq!(traced.len(), model.frames);
        assert!(traced
            .iter()
            .all(|t| t.outgoing && !t.to_string().is_empty()));
    }

    // The peer reads it all in the given pieces.
    let limits = Config {
        max_frame_size: LIMIT,
        max_message_size: LIMIT,
        ..trace
    };
    let mut receiver = Connection::with_deflate(peer_role, limits, peer_agreed);
    let (mut events, mut failed) = (Vec::new(), None);
    let mut rest = &wire[..];
    let mut sizes = input.reads.iter().cycle();
    while !rest.is_empty() && failed.is_none() {
        let n = sizes
            .next()
            .map_or(rest.len(), |&s| (s as usize).clamp(1, rest.len()));
        if input.zero_copy {
            receiver.input_buffer(n)[..n].copy_from_slice(&rest[..n]);
            receiver.commit_input(n);
        } else {
            receiver.receive(&rest[..n]);
        }
        rest = &rest[n..];
        loop {
            match receiver.next_event() {
                Ok(Some(event)) => events.push(event),
                Ok(None) => break,
                Err(err) => {
                    assert!(!err.to_string().is_empty());
                    failed = Some(err.close_code().0);
                    break;
                }
            }
        }
        if n.is_multiple_of(3) {
            receiver.release_idle_buffers();
        }
    }
    assert_eq!(events, model.events);
    assert_eq!(failed, model.fails.then_some(1009));
    assert_eq!(
        receiver.is_closed(),
        receiver.state() == rfc6455::State::Closed
    );
    if input.trace && !model.fails {
        let traced = receiver.take_trace();
        let incoming = traced.iter().filter(|t| !t.outgoing).count();
        assert_eq!(incoming, model.frames);
        assert!(traced.iter().all(|t| !t.to_string().is_empty()));
    }
});
