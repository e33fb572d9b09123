//! Frames encoded once and queued by reference for many connections (broadcasts),
//! and compressed once for all the connections that negotiated the same
//! permessage-deflate parameters without context takeover (RFC 7692 §7.1.1.1: then a
//! message's compressed bytes depend on nothing but the message).

use crate::deflate::codec::compress_message;
use crate::deflate::Negotiated;
use crate::frame::FrameHeader;
use crate::{MessageKind, OpCode};
use flate2::{Compress, Compression};
use std::sync::{Arc, OnceLock};

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
///
/// For connections with permessage-deflate, the server compresses the message the
/// first time such a connection is sent it, and the other connections with the same
/// level and window get the same compressed frame.
#[derive(Debug, Clone)]
pub struct SharedFrame {
    pub(super) bytes: Arc<[u8]>,
    pub(super) header_len: usize,
    /// The compressed frame, made for the first deflate recipient.
    compressed: Arc<OnceLock<Compressed>>,
}

impl PartialEq for SharedFrame {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for SharedFrame {}

/// A frame compressed with one level and window.
#[derive(Debug)]
struct Compressed {
    level: u32,
    window_bits: u8,
    /// `None`: it does not shrink, the plain frame goes.
    frame: Option<Arc<[u8]>>,
}

/// What a connection with permessage-deflate is sent for a shared frame.
pub(super) enum Variant {
    /// These bytes, shared (plain or compressed).
    Shared(Arc<[u8]>),
    /// Its own compression (context takeover, or other parameters): the message to
    /// send through its `Connection`.
    Own(MessageKind, Arc<[u8]>, usize),
}

/// The loop's compressor: one for all connections that do not take over context (the
/// server default), for broadcasts and direct sends alike, reset after every message
/// and rebuilt only when the parameters change. A connection then holds no compressor
/// of its own, however busy (the uWebSockets "shared compressor").
#[derive(Default)]
pub(super) struct BroadcastCompressor {
    stream: Option<(u32, u8, Compress)>,
    /// Where a direct send is compressed.
    pub(super) scratch: Vec<u8>,
}

impl BroadcastCompressor {
    /// Compresses one message for a connection that agreed `deflate` without context
    /// takeover; `false` when it should go uncompressed (under the threshold, a window
    /// zlib cannot use, or it does not shrink). The result is in `scratch`.
    pub(super) fn compress_for(&mut self, deflate: &Negotiated, payload: &[u8]) -> bool {
        debug_assert!(deflate.local_no_context_takeover);
        if payload.len() < deflate.threshold || deflate.local_max_window_bits < 9 {
            return false;
        }
        let mut out = std::mem::take(&mut self.scratch);
        out.clear();
        self.compress(
            deflate.level.min(9),
            deflate.local_max_window_bits,
            payload,
            &mut out,
        );
        let shrank = out.len() < payload.len();
        self.scratch = out;
        shrank
    }

    fn compress(&mut self, level: u32, window_bits: u8, payload: &[u8], out: &mut Vec<u8>) {
        if !matches!(&self.stream, Some((l, w, _)) if *l == level && *w == window_bits) {
            let stream =
                Compress::new_with_window_bits(Compression::new(level), false, window_bits);
            self.stream = Some((level, window_bits, stream));
        }
        let (_, _, stream) = self.stream.as_mut().expect("set above");
        compress_message(stream, payload, out);
        stream.reset();
    }
}

impl SharedFrame {
    /// A text message in one frame.
    ///
    /// ```
    /// use rfc6455::server::SharedFrame;
    ///
    /// // 126 bytes and more: the length takes the 16-bit form, 126 then 2 bytes (RFC 6455 §5.2).
    /// let frame = SharedFrame::text(&"a".repeat(126));
    /// assert_eq!(frame.bytes()[..4], [0x81, 126, 0, 126]);
    /// ```
    pub fn text(text: &str) -> Self {
        Self::encode(OpCode::Text, text.as_bytes())
    }

    /// A binary message in one frame.
    ///
    /// ```
    /// use rfc6455::server::SharedFrame;
    ///
    /// // FIN and opcode 0x2 (binary), no mask: a server's frame (RFC 6455 §5.1, §5.2).
    /// assert_eq!(SharedFrame::binary(&[1, 2, 3]).bytes(), [0x82, 0x03, 1, 2, 3]);
    /// ```
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
            compressed: Arc::new(OnceLock::new()),
        }
    }

    fn kind(&self) -> MessageKind {
        match OpCode::from_bits(self.bytes[0] & 0x0f) {
            OpCode::Binary => MessageKind::Binary,
            _ => MessageKind::Text,
        }
    }

    /// What a connection that negotiated `deflate` is sent: the plain frame (a message
    /// under the threshold, or one that does not shrink), the frame compressed once for
    /// everyone with the same parameters, or, with context takeover or other
    /// parameters, the message for the connection to compress itself.
    pub(super) fn variant(
        &self,
        deflate: &Negotiated,
        compressor: &mut BroadcastCompressor,
    ) -> Variant {
        let payload_len = self.payload_len();
        if payload_len < deflate.threshold || deflate.local_max_window_bits < 9 {
            return Variant::Shared(self.bytes.clone());
        }
        let (level, window_bits) = (deflate.level.min(9), deflate.local_max_window_bits);
        let own = || Variant::Own(self.kind(), self.bytes.clone(), self.header_len);
        if !deflate.local_no_context_takeover {
            return own();
        }
        let made = self.compressed.get_or_init(|| {
            let payload = &self.bytes[self.header_len..];
            let mut compressed = Vec::new();
            compressor.compress(level, window_bits, payload, &mut compressed);
            let frame = (compressed.len() < payload.len()).then(|| {
                let header = FrameHeader {
                    fin: true,
                    rsv: 0b100,
                    opcode: OpCode::from_bits(self.bytes[0] & 0x0f),
                    masking_key: None,
                    payload_len: compressed.len() as u64,
                };
                let (head, head_len) = header.encode();
                let mut bytes = Vec::with_capacity(head_len + compressed.len());
                bytes.extend_from_slice(&head[..head_len]);
                bytes.extend_from_slice(&compressed);
                Arc::from(bytes)
            });
            Compressed {
                level,
                window_bits,
                frame,
            }
        });
        if made.level != level || made.window_bits != window_bits {
            return own();
        }
        Variant::Shared(made.frame.clone().unwrap_or_else(|| self.bytes.clone()))
    }

    /// Whether the frame was compressed for deflate connections (for tests and
    /// statistics): `Some(size)` of the compressed frame, `None` if not (yet) or if it
    /// did not shrink.
    ///
    /// ```
    /// # use rfc6455::deflate::DeflateConfig;
    /// # use rfc6455::server::{ConnId, Ctx, Handler, Refusal, SharedFrame};
    /// # use std::sync::mpsc;
    /// # use rfc6455::server::{Accept, Server, ServerConfig};
    /// struct Sizes(mpsc::Sender<Option<usize>>);
    /// impl Handler for Sizes {
    /// #   type Data = ();
    /// #   fn upgrade(&mut self, _: &rfc6455::handshake::server::Request) -> Result<Accept<()>, Refusal> {
    /// #       Ok(Accept::new(()))
    /// #   }
    ///     fn open(&mut self, ctx: &mut Ctx<'_, ()>, id: ConnId) {
    ///         let frame = SharedFrame::text(&"all work and no play ".repeat(50));
    ///         ctx.send_shared(id, &frame);
    ///         self.0.send(frame.compressed_len()).unwrap();
    ///     }
    /// }
    /// # let server = Server::bind("127.0.0.1:0".parse().unwrap(), ServerConfig::default())?;
    /// # let (addr, handle) = (server.local_addr()?, server.handle());
    /// # let url = format!("ws://{addr}/");
    /// # let (tx, sizes) = mpsc::channel();
    /// # let server_thread = std::thread::spawn(move || server.run(Sizes(tx)));
    /// // A client that negotiates permessage-deflate (RFC 7692): the frame is compressed
    /// // for it, once, and kept for the others with the same parameters.
    /// let config = rfc6455::Config { deflate: Some(DeflateConfig::default()), ..Default::default() };
    /// let mut ws = rfc6455::blocking::connect_with(&url, config, &[])?;
    /// let compressed = sizes.recv()?.unwrap();
    /// assert!(compressed < 100); // 1050 bytes of one phrase over and over
    /// assert_eq!(ws.read()?, rfc6455::Event::Text("all work and no play ".repeat(50)));
    /// # drop(ws);
    /// # handle.shutdown();
    /// # server_thread.join().unwrap()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn compressed_len(&self) -> Option<usize> {
        self.compressed.get()?.frame.as_ref().map(|f| f.len())
    }

    /// The frame on the wire.
    ///
    /// ```
    /// use rfc6455::server::SharedFrame;
    /// use rfc6455::{Connection, Role};
    ///
    /// // The very bytes a server's own Connection writes for the message.
    /// let mut conn = Connection::new(Role::Server);
    /// conn.send_text("Hello")?;
    /// assert_eq!(SharedFrame::text("Hello").bytes(), conn.pending_output());
    /// # Ok::<(), rfc6455::SendError>(())
    /// ```
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The payload's length (for statistics).
    ///
    /// ```
    /// use rfc6455::server::SharedFrame;
    ///
    /// let frame = SharedFrame::binary(&[0; 200]);
    /// assert_eq!(frame.payload_len(), 200); // what `Stats::bytes_out` counts
    /// assert_eq!(frame.bytes().len(), 204); // with the header: 2 bytes, then a 16-bit length
    /// ```
    pub fn payload_len(&self) -> usize {
        self.bytes.len() - self.header_len
    }
}
