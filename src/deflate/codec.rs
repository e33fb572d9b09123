//! Compressing and inflating message payloads (RFC 7692 §7.2), on zlib-rs through
//! `flate2`'s raw DEFLATE streams.
//!
//! Sending (§7.2.1): the message is compressed with a sync flush, which ends the
//! output with an empty stored block, `00 00 ff ff`; those four bytes are removed.
//! Receiving (§7.2.2): the payloads of the message's frames are inflated as they
//! arrive, and the four bytes are appended at its end. Inflating is done in bounded
//! steps and stops as soon as the output would pass the message limit, so a small
//! frame that inflates to gigabytes (a "bomb") costs no more than the limit.
//!
//! Both states are allocated only when a message needs them and can be dropped when
//! the connection is idle, unless context takeover obliges this end to keep them.

use super::Negotiated;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// The tail that a sync flush leaves and that the receiver puts back (RFC 7692 §7.2.1).
pub(crate) const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// How much output one inflate step may produce.
const INFLATE_STEP: usize = 16 * 1024;

/// Why an inflate failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InflateError {
    /// Not DEFLATE data (RFC 7692 §7.2.2: fail the connection, 1007).
    Invalid,
    /// The inflated message would exceed this many bytes.
    TooBig(usize),
}

/// This end's compressor for one connection (or one shared by many, see
/// [`compress_message`]).
#[derive(Debug)]
pub(crate) struct Deflater {
    stream: Option<Compress>,
    level: u32,
    window_bits: u8,
    no_context_takeover: bool,
}

impl Deflater {
    pub(crate) fn new(negotiated: &Negotiated) -> Self {
        Deflater {
            stream: None,
            level: negotiated.level.min(9),
            window_bits: negotiated.local_max_window_bits,
            no_context_takeover: negotiated.local_no_context_takeover,
        }
    }

    /// Whether this end can compress at all: zlib's smallest window is 9 bits, so a
    /// peer that limits it to 8 gets uncompressed messages.
    pub(crate) fn can_compress(&self) -> bool {
        self.window_bits >= 9
    }

    /// Appends `payload` compressed, without the `00 00 ff ff` tail, to `out`.
    pub(crate) fn compress(&mut self, payload: &[u8], out: &mut Vec<u8>) {
        let (level, bits) = (self.level, self.window_bits.max(9));
        let stream = self.stream.get_or_insert_with(|| {
            Compress::new_with_window_bits(Compression::new(level), false, bits)
        });
        compress_message(stream, payload, out);
        if self.no_context_takeover {
            stream.reset();
        }
    }

    /// Drops the compressor between messages when no context is carried over.
    pub(crate) fn release_idle(&mut self) {
        if self.no_context_takeover {
            self.stream = None;
        }
    }
}

/// Compresses one message with `stream`: a sync flush, then the tail removed.
pub(crate) fn compress_message(stream: &mut Compress, payload: &[u8], out: &mut Vec<u8>) {
    let start_in = stream.total_in();
    let start = out.len();
    out.reserve(payload.len() / 2 + 64);
    loop {
        let consumed = (stream.total_in() - start_in) as usize;
        stream
            .compress_vec(&payload[consumed..], out, FlushCompress::Sync)
            .expect("compressing into a Vec cannot fail");
        // The flush is complete once all the input is in and the output had room to
        // spare (zlib stops only when it runs out of one or the other).
        let all_in = (stream.total_in() - start_in) as usize == payload.len();
        if all_in && out.len() < out.capacity() {
            break;
        }
        out.reserve(out.capacity() - start + 64);
    }
    // A sync flush ends with 00 00 ff ff, except when there is nothing to flush: zlib
    // emits nothing for a sync flush without input right after another one (e.g. a
    // second empty message under context takeover). An empty payload would not do:
    // the receiver appends 00 00 ff ff and would read 0x00 as a block header and the
    // tail as a wrong LEN. RFC 7692 §7.2.3.6: an empty message is the single byte 0x00
    // (with the tail, an empty stored block, which leaves both windows as they are).
    if out.len() == start {
        out.push(0x00);
        return;
    }
    debug_assert!(
        out[start..].ends_with(&TAIL),
        "a sync flush ends with 00 00 ff ff"
    );
    if out[start..].ends_with(&TAIL) {
        out.truncate(out.len() - TAIL.len());
    }
}

/// This end's inflater for one connection.
#[derive(Debug)]
pub(crate) struct Inflater {
    stream: Option<Decompress>,
    window_bits: u8,
    no_context_takeover: bool,
    /// The DEFLATE stream ended (a final block) inside the current message: what
    /// follows in it is ignored, and the next message starts a new stream.
    ended: bool,
}

impl Inflater {
    pub(crate) fn new(negotiated: &Negotiated) -> Self {
        Inflater {
            stream: None,
            // A bigger window than the peer's always inflates its data; zlib's
            // smallest is 9.
            window_bits: negotiated.remote_max_window_bits.max(9),
            no_context_takeover: negotiated.remote_no_context_takeover,
            ended: false,
        }
    }

    /// Inflates a piece of a message's compressed payload onto `out`, which must not
    /// grow past `max` bytes; `on_output` sees each new piece of output (for UTF-8
    /// checks as it arrives).
    pub(crate) fn inflate(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        max: usize,
        on_output: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Result<(), InflateError> {
        if self.ended {
            // After a final block (BFINAL, RFC 7692 §7.2.3.4) the stream is over: what
            // follows in the message, like the tail the receiver appends, is ignored.
            return Ok(());
        }
        let bits = self.window_bits;
        let stream = self
            .stream
            .get_or_insert_with(|| Decompress::new_with_window_bits(false, bits));
        let start_in = stream.total_in();
        loop {
            if out.len() == out.capacity() {
                if out.len() > max {
                    return Err(InflateError::TooBig(out.len()));
                }
                // Grow geometrically, but never past one byte over the limit: passing
                // the limit is seen without allocating beyond it.
                let target = (out.capacity() * 2)
                    .max(out.len() + INFLATE_STEP)
                    .min(max + 1);
                out.reserve_exact(target - out.len());
            }
            let consumed = (stream.total_in() - start_in) as usize;
            let before = out.len();
            let status = stream
                .decompress_vec(&input[consumed..], out, FlushDecompress::None)
                .map_err(|_| InflateError::Invalid)?;
            if out.len() > max {
                return Err(InflateError::TooBig(out.len()));
            }
            if out.len() > before && !on_output(&out[before..]) {
                return Err(InflateError::Invalid);
            }
            let consumed_now = (stream.total_in() - start_in) as usize;
            if status == Status::StreamEnd {
                self.ended = true;
                return Ok(());
            }
            let output_full = out.len() == out.capacity();
            if consumed_now == input.len() && !output_full {
                return Ok(());
            }
            if !output_full && consumed_now == consumed && out.len() == before {
                // Room and input, and no progress: the data is corrupt.
                return Err(InflateError::Invalid);
            }
        }
    }

    /// Ends a message: the tail goes in (RFC 7692 §7.2.2), and the state is reset when
    /// the peer does not carry its context over, or its stream ended.
    pub(crate) fn finish(
        &mut self,
        out: &mut Vec<u8>,
        max: usize,
        on_output: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Result<(), InflateError> {
        if !self.ended {
            self.inflate(&TAIL, out, max, on_output)?;
        }
        self.end_message();
        Ok(())
    }

    /// Forgets a message (finished or failed).
    pub(crate) fn end_message(&mut self) {
        if self.no_context_takeover || self.ended {
            if let Some(stream) = &mut self.stream {
                stream.reset(false);
            }
        }
        self.ended = false;
    }

    /// Drops the inflate state between messages when no context is carried over.
    pub(crate) fn release_idle(&mut self) {
        if self.no_context_takeover {
            self.stream = None;
        }
    }
}

impl Deflater {
    /// Whether a compressor is allocated now.
    #[cfg(test)]
    pub(crate) fn holds_state(&self) -> bool {
        self.stream.is_some()
    }
}

impl Inflater {
    /// Whether inflate state is allocated now.
    #[cfg(test)]
    pub(crate) fn holds_state(&self) -> bool {
        self.stream.is_some()
    }
}
