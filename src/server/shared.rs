//! Frames encoded once and queued by reference for many connections (broadcasts).

use crate::frame::FrameHeader;
use crate::OpCode;
use std::collections::VecDeque;
use std::sync::Arc;

/// A server frame (unmasked, RFC 6455 §5.1) encoded once and shared by reference among
/// any number of connections: a broadcast costs one encoding and no per-recipient copy.
///
/// ```
/// use rfc6455::server::SharedFrame;
///
/// let frame = SharedFrame::text("Hello");
/// assert_eq!(frame.bytes(), [0x81, 0x05, b'H', b'e', b'l', b'l', b'o']);
/// assert_eq!(frame.payload_len(), 5);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedFrame {
    pub(super) bytes: Arc<[u8]>,
    pub(super) header_len: usize,
}

impl SharedFrame {
    /// A text message in one frame.
    pub fn text(text: &str) -> Self {
        Self::encode(OpCode::Text, text.as_bytes())
    }

    /// A binary message in one frame.
    pub fn binary(data: &[u8]) -> Self {
        Self::encode(OpCode::Binary, data)
    }

    fn encode(opcode: OpCode, payload: &[u8]) -> Self {
        let header = FrameHeader {
            fin: true,
            rsv: 0,
            opcode,
            masking_key: None,
            payload_len: payload.len() as u64,
        };
        let (head, header_len) = header.encode();
        let mut bytes = Vec::with_capacity(header_len + payload.len());
        bytes.extend_from_slice(&head[..header_len]);
        bytes.extend_from_slice(payload);
        SharedFrame {
            bytes: bytes.into(),
            header_len,
        }
    }

    /// The frame on the wire.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The payload's length (for statistics).
    pub fn payload_len(&self) -> usize {
        self.bytes.len() - self.header_len
    }
}

/// Bytes still to write in a connection's queue of shared chunks.
pub(super) fn shared_len(queue: &VecDeque<(Arc<[u8]>, usize)>) -> usize {
    queue
        .iter()
        .map(|(chunk, written)| chunk.len() - written)
        .sum()
}
