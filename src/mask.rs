//! Payload masking (RFC 6455 §5.3).
//!
//! Every frame a client sends is masked: each payload octet `i` is XORed with octet
//! `i % 4` of a 32-bit masking key chosen fresh for that frame. Masking is not
//! encryption; it exists so that an attacker's script cannot make a browser emit
//! predictable bytes that a confused proxy would take for HTTP (RFC 6455 §10.3).
//!
//! The same function masks (client, sending) and unmasks (server, receiving): XOR is
//! its own inverse. Payloads arrive split across reads, so the function takes the
//! position of the slice within the frame payload and carries the key's phase over.

/// XORs `payload` in place with `masking_key`, where `payload` starts at byte `offset`
/// of the frame payload (RFC 6455 §5.3: `j = i MOD 4`).
///
/// Works eight bytes at a time on any alignment; applying it twice with the same key
/// and offset restores the input.
///
/// ```
/// use rfc6455::mask::apply_mask;
///
/// // RFC 6455 §5.7: a masked "Hello" with key 37 fa 21 3d.
/// let key = [0x37, 0xfa, 0x21, 0x3d];
/// let mut payload = *b"Hello";
/// apply_mask(&mut payload, key, 0);
/// assert_eq!(payload, [0x7f, 0x9f, 0x4d, 0x51, 0x58]);
///
/// // The same bytes unmasked in two pieces: the second piece starts at offset 2.
/// let (a, b) = payload.split_at_mut(2);
/// apply_mask(a, key, 0);
/// apply_mask(b, key, 2);
/// assert_eq!(&payload, b"Hello");
/// ```
#[inline]
pub fn apply_mask(payload: &mut [u8], masking_key: [u8; 4], offset: usize) {
    // Rotate the key so that key[0] applies to payload[0].
    let key = rotate_key(masking_key, offset);
    let key_word = key_word(key);

    // Word-at-a-time: 8-byte loads and stores at any alignment. Every 8-byte chunk
    // starts at a multiple of 8 from the slice start, so the key phase is the same
    // for every word and for the tail. The compiler unrolls and vectorises this loop.
    let mut words = payload.chunks_exact_mut(8);
    for word in &mut words {
        let value = u64::from_ne_bytes([
            word[0], word[1], word[2], word[3], word[4], word[5], word[6], word[7],
        ]) ^ key_word;
        word.copy_from_slice(&value.to_ne_bytes());
    }
    for (byte, k) in words.into_remainder().iter_mut().zip(key.iter().cycle()) {
        *byte ^= k;
    }
}

/// Appends `masked` to `out` unmasked, as [`apply_mask`] would leave it, in one pass:
/// a streamed payload is moved out of the input buffer and unmasked at once, rather
/// than copied (a `rep movsb` that is slow on misaligned buffers on some CPUs) and
/// then XORed in a second pass.
///
/// Crate-private; [`Connection::receive`](crate::Connection::receive) uses it:
///
/// ```
/// use rfc6455::{Connection, Event, Role};
///
/// // RFC 6455 §5.7's masked "Hello", its payload in two reads after the header: each
/// // piece is unmasked as it is appended, the key phase carried from one to the next.
/// let mut server = Connection::new(Role::Server);
/// server.receive(&[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f]);
/// server.receive(&[0x4d, 0x51, 0x58]);
/// assert_eq!(server.next_event(), Ok(Some(Event::Text("Hello".into()))));
/// ```
#[inline]
#[allow(unsafe_code)]
pub(crate) fn extend_unmasked(
    out: &mut Vec<u8>,
    masked: &[u8],
    masking_key: [u8; 4],
    offset: usize,
) {
    let key = rotate_key(masking_key, offset);
    let key_word = key_word(key);
    out.reserve(masked.len());
    let dst = &mut out.spare_capacity_mut()[..masked.len()];
    let mut dst_words = dst.chunks_exact_mut(8);
    let mut src_words = masked.chunks_exact(8);
    for (to, from) in (&mut dst_words).zip(&mut src_words) {
        let value = u64::from_ne_bytes([
            from[0], from[1], from[2], from[3], from[4], from[5], from[6], from[7],
        ]) ^ key_word;
        for (to, byte) in to.iter_mut().zip(value.to_ne_bytes()) {
            to.write(byte);
        }
    }
    let tail = dst_words.into_remainder().iter_mut();
    for ((to, from), k) in tail.zip(src_words.remainder()).zip(key.iter().cycle()) {
        to.write(from ^ k);
    }
    // SAFETY: the loops above wrote every one of the `masked.len()` bytes of spare
    // capacity that `dst` covers (whole words, then the remainder), so they are
    // initialised. Zeroing them first (`resize`) cost a fifth of the time of decoding
    // 64 KiB frames (`cargo bench --bench codec -- decode/.*/64KiB`); tested by
    // `extend_unmasked_matches_byte_loop_at_every_length_and_offset`.
    unsafe { out.set_len(out.len() + masked.len()) };
}

/// The key twice over, to XOR eight payload bytes at a time. Built from the key as
/// one `u32` (two copies side by side are the same eight bytes in either byte
/// order): assembling it byte by byte cost two dozen instructions, a quarter of
/// unmasking a 16-byte frame.
#[inline]
fn key_word(key: [u8; 4]) -> u64 {
    let key = u64::from(u32::from_ne_bytes(key));
    key << 32 | key
}

/// The masking key as seen from byte `offset` of the payload: its bytes rotated left
/// by `offset % 4`, done as one rotation of the key read as a `u32` in memory order.
#[inline]
fn rotate_key(masking_key: [u8; 4], offset: usize) -> [u8; 4] {
    let bits = 8 * (offset % 4) as u32;
    let word = u32::from_ne_bytes(masking_key);
    // Byte 0 is the lowest on a little-endian machine, the highest on a big one.
    let rotated = if cfg!(target_endian = "little") {
        word.rotate_right(bits)
    } else {
        word.rotate_left(bits)
    };
    rotated.to_ne_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(payload: &mut [u8], key: [u8; 4], offset: usize) {
        for (i, byte) in payload.iter_mut().enumerate() {
            *byte ^= key[(offset + i) % 4];
        }
    }

    /// The word tricks in `rotate_key` and `key_word` give the bytes RFC 6455 §5.3
    /// names: octet `i` of the payload meets octet `(offset + i) % 4` of the key.
    #[test]
    fn the_rotated_key_and_its_word_are_the_keys_bytes_in_order() {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        for offset in 0..9 {
            let rotated = rotate_key(key, offset);
            for (i, byte) in rotated.iter().enumerate() {
                assert_eq!(*byte, key[(offset + i) % 4], "offset {offset}");
            }
            let word = key_word(rotated).to_ne_bytes();
            assert_eq!(word[..4], rotated);
            assert_eq!(word[4..], rotated);
        }
    }

    #[test]
    fn extend_unmasked_matches_byte_loop_at_every_length_and_offset() {
        let key = [0x89, 0xab, 0xcd, 0xef];
        let data: Vec<u8> = (0..100u32).map(|i| (i * 13 + 5) as u8).collect();
        for len in 0..data.len() {
            for offset in 0..4 {
                let mut expected = vec![7u8; 3];
                expected.extend_from_slice(&data[..len]);
                reference(&mut expected[3..], key, offset);
                let mut out = vec![7u8; 3];
                extend_unmasked(&mut out, &data[..len], key, offset);
                assert_eq!(out, expected, "len {len} offset {offset}");
            }
        }
    }

    #[test]
    fn matches_byte_loop_at_every_length_offset_and_alignment() {
        let key = [0x01, 0x23, 0x45, 0x67];
        let data: Vec<u8> = (0..200u32).map(|i| (i * 7 + 3) as u8).collect();
        for start in 0..8 {
            for len in 0..(data.len() - start) {
                for offset in 0..4 {
                    let mut fast = data[start..start + len].to_vec();
                    let mut slow = fast.clone();
                    apply_mask(&mut fast, key, offset);
                    reference(&mut slow, key, offset);
                    assert_eq!(fast, slow, "start {start} len {len} offset {offset}");
                }
            }
        }
    }
}
