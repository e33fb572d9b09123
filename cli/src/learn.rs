//! The learning tools: `decode` explains frames bit by bit, `encode` builds them,
//! `accept` computes Sec-WebSocket-Accept step by step (RFC 6455 §4.2.2, §5.2).

use clap::ValueEnum;
use rfc6455::frame::FrameHeader;
use rfc6455::handshake::{accept_digest, GUID};
use rfc6455::learn::inspect::{inspect, inspect_with, parse_hex};
use rfc6455::mask::apply_mask;
use rfc6455::{accept_key, OpCode, Role};
use std::io::Read;

#[derive(Clone, Copy, ValueEnum)]
pub enum Sender {
    Client,
    Server,
}

#[derive(clap::Args)]
#[group(required = true, multiple = false)]
pub struct Payload {
    /// A text message.
    #[arg(long)]
    pub text: Option<String>,
    /// A binary message, in hex.
    #[arg(long, value_name = "HEX")]
    pub binary: Option<String>,
    /// A ping with this text payload.
    #[arg(long)]
    pub ping: Option<String>,
    /// A pong with this text payload.
    #[arg(long)]
    pub pong: Option<String>,
    /// A close frame with this status code (add --reason).
    #[arg(long, value_name = "CODE")]
    pub close: Option<u16>,
}

pub fn decode(hex: &[String], from: Option<Sender>, deflate: bool) -> Result<String, String> {
    let text = if hex == ["-"] {
        let mut input = String::new();
        std::io::stdin()
            .read_to_string(&mut input)
            .map_err(|e| e.to_string())?;
        input
    } else {
        hex.join(" ")
    };
    let bytes = parse_hex(&text)?;
    let sender = from.map(|s| match s {
        Sender::Client => Role::Client,
        Sender::Server => Role::Server,
    });
    Ok(inspect_with(&bytes, sender, deflate))
}

pub fn encode(
    payload: &Payload,
    reason: Option<&str>,
    mask: Option<&str>,
    client: bool,
    fragment: Option<usize>,
) -> Result<String, String> {
    let (opcode, data) = if let Some(text) = &payload.text {
        (OpCode::Text, text.as_bytes().to_vec())
    } else if let Some(hex) = &payload.binary {
        (OpCode::Binary, parse_hex(hex)?)
    } else if let Some(text) = &payload.ping {
        (OpCode::Ping, text.as_bytes().to_vec())
    } else if let Some(text) = &payload.pong {
        (OpCode::Pong, text.as_bytes().to_vec())
    } else if let Some(code) = payload.close {
        let mut data = code.to_be_bytes().to_vec();
        data.extend_from_slice(reason.unwrap_or("").as_bytes());
        (OpCode::Close, data)
    } else {
        unreachable!("clap requires one payload option")
    };
    let key = match (mask, client) {
        (Some(hex), _) => {
            let bytes = parse_hex(hex)?;
            let key: [u8; 4] = bytes
                .try_into()
                .map_err(|_| "a masking key is 4 bytes: 8 hex digits".to_string())?;
            Some(key)
        }
        (None, true) => {
            let mut key = [0u8; 4];
            getrandom::fill(&mut key).map_err(|e| e.to_string())?;
            Some(key)
        }
        (None, false) => None,
    };
    let pieces: Vec<&[u8]> = match fragment {
        Some(0) => return Err("--fragment needs at least 1 byte per fragment".into()),
        Some(n) if !opcode.is_control() && data.len() > n => data.chunks(n).collect(),
        _ => vec![&data[..]],
    };
    let mut wire = Vec::new();
    for (i, piece) in pieces.iter().enumerate() {
        let header = FrameHeader {
            fin: i + 1 == pieces.len(),
            rsv: 0,
            opcode: if i == 0 { opcode } else { OpCode::Continuation },
            masking_key: key,
            payload_len: piece.len() as u64,
        };
        let (head, n) = header.encode();
        wire.extend_from_slice(&head[..n]);
        let start = wire.len();
        wire.extend_from_slice(piece);
        if let Some(key) = key {
            apply_mask(&mut wire[start..], key, 0);
        }
    }
    let hex: Vec<String> = wire.iter().map(|b| format!("{b:02x}")).collect();
    let sender = if key.is_some() {
        Role::Client
    } else {
        Role::Server
    };
    Ok(format!(
        "{}\n\n{}",
        hex.join(" "),
        inspect(&wire, Some(sender))
    ))
}

pub fn accept_steps(key: &str) -> String {
    let digest = accept_digest(key);
    let digest_hex: Vec<String> = digest.iter().map(|b| format!("{b:02x}")).collect();
    let mut out = String::new();
    out.push_str("RFC 6455 §4.2.2: Sec-WebSocket-Accept = base64(SHA-1(key + GUID))\n");
    out.push_str(&format!("1. key:          {key}\n"));
    out.push_str(&format!("2. + GUID:       {key}{GUID}\n"));
    out.push_str(&format!("3. SHA-1:        {}\n", digest_hex.join(" ")));
    out.push_str(&format!("4. base64:       {}\n", accept_key(key)));
    out.push_str(&format!("Sec-WebSocket-Accept: {}\n", accept_key(key)));
    out
}
