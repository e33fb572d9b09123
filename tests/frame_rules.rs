//! `rfc6455::rules` against the connection: for every header shape, in every context
//! (role, permessage-deflate, extension bits, limits, a message in progress or not,
//! compressed or not), a `Connection` fails with exactly the error `FrameRules::check`
//! gives, and with none of the frame rules' errors when the check passes.

use rfc6455::deflate::Negotiated;
use rfc6455::frame::FrameHeader;
use rfc6455::rules::{FrameRules, InProgress};
use rfc6455::{Config, Connection, OpCode, ProtocolError, Role};

const MAX_FRAME: usize = 100;
const MAX_MESSAGE: usize = 120;

/// `header` on the wire, its payload zeros (masked with a zero key when it has one).
fn wire(header: FrameHeader) -> Vec<u8> {
    let (head, n) = header.encode();
    let mut out = head[..n].to_vec();
    out.resize(n + header.payload_len as usize, 0);
    out
}

/// The first fragment of a message in progress, as the peer of `receiver` sends it:
/// 40 bytes of text, or RFC 7692 §7.2.3.1's compressed "Hello".
fn first_fragment(receiver: Role, compressed: bool) -> (Vec<u8>, InProgress) {
    let masking_key = (receiver == Role::Server).then_some([0; 4]);
    let payload: &[u8] = if compressed {
        &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]
    } else {
        &[b'a'; 40]
    };
    let header = FrameHeader {
        fin: false,
        rsv: if compressed { 0b100 } else { 0 },
        opcode: OpCode::Text,
        masking_key,
        payload_len: payload.len() as u64,
    };
    let (head, n) = header.encode();
    let mut bytes = head[..n].to_vec();
    bytes.extend(payload);
    let len = if compressed { 0 } else { payload.len() as u64 };
    (bytes, InProgress { compressed, len })
}

/// The first error of a connection fed `bytes`, if any.
fn first_error(conn: &mut Connection, bytes: &[u8]) -> Option<ProtocolError> {
    conn.receive(bytes);
    loop {
        match conn.next_event() {
            Ok(Some(_)) => continue,
            Ok(None) => return None,
            Err(err) => return Some(err),
        }
    }
}

/// The errors that are the frame rules' (the others come from payloads: UTF-8, Close
/// payloads, DEFLATE data).
fn is_a_frame_rule(err: &ProtocolError) -> bool {
    !matches!(
        err,
        ProtocolError::InvalidUtf8
            | ProtocolError::CloseFrameOneByte
            | ProtocolError::InvalidCloseCode(_)
            | ProtocolError::InvalidCloseReason
            | ProtocolError::InvalidDeflateData
    )
}

#[test]
fn the_connection_fails_with_the_first_rule_broken() {
    let mut compared = 0;
    for receiver in [Role::Client, Role::Server] {
        for deflate in [false, true] {
            for allowed_rsv in [0, 0b001] {
                let config = Config {
                    allowed_rsv,
                    max_frame_size: MAX_FRAME,
                    max_message_size: MAX_MESSAGE,
                    ..Config::default()
                };
                let rules = FrameRules::new(receiver)
                    .allowed_rsv(allowed_rsv)
                    .deflate(deflate)
                    .max_frame_size(MAX_FRAME)
                    .max_message_size(MAX_MESSAGE);
                let mut states = vec![None, Some(false)];
                if deflate {
                    states.push(Some(true));
                }
                for state in states {
                    for opcode in 0..16 {
                        for rsv in 0..8 {
                            for fin in [false, true] {
                                for masked in [false, true] {
                                    for len in [0, 5, 81, 101, 125, 126] {
                                        let header = FrameHeader {
                                            fin,
                                            rsv,
                                            opcode: OpCode::from_bits(opcode),
                                            masking_key: masked.then_some([0; 4]),
                                            payload_len: len,
                                        };
                                        let negotiated = deflate.then(Negotiated::default);
                                        let mut conn = Connection::with_deflate(
                                            receiver,
                                            config.clone(),
                                            negotiated,
                                        );
                                        let in_progress = state.map(|compressed| {
                                            let (bytes, in_progress) =
                                                first_fragment(receiver, compressed);
                                            assert_eq!(first_error(&mut conn, &bytes), None);
                                            in_progress
                                        });
                                        let got = first_error(&mut conn, &wire(header));
                                        match rules.check(&header, in_progress) {
                                            Err(expected) => assert_eq!(
                                                got,
                                                Some(expected),
                                                "{header:?} after {in_progress:?}, {receiver:?}, deflate {deflate}, rsv {allowed_rsv:03b}"
                                            ),
                                            Ok(_) => assert!(
                                                !got.as_ref().is_some_and(is_a_frame_rule),
                                                "{got:?} for {header:?} after {in_progress:?}, {receiver:?}, deflate {deflate}"
                                            ),
                                        }
                                        compared += 1;
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    assert_eq!(compared, 2 * 2 * 2 * 16 * 8 * 2 * 2 * 6 * 5 / 2);
}
