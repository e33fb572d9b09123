//! Incremental UTF-8 validation of text messages (RFC 6455 §5.6, §8.1).
//!
//! A text message must be valid UTF-8 as a whole, but it arrives in frames, and a
//! frame arrives in reads: a code point may be split anywhere. RFC 6455 §8.1 says an
//! endpoint that sees invalid UTF-8 must fail the connection; failing as soon as the
//! offending byte arrives, rather than at the end of the message, is what the Autobahn
//! TestSuite's cases 6.4.x check. [`Utf8Validator`] keeps at most three bytes of an
//! unfinished code point between calls and rejects a byte the moment no valid
//! continuation of the input can exist.

use std::fmt;

/// Validates UTF-8 fed in pieces, failing on the first byte that cannot start or
/// continue a valid sequence.
///
/// ```
/// use rfc6455::utf8::Utf8Validator;
///
/// // "€" is e2 82 ac: split anywhere, it is still valid.
/// let mut v = Utf8Validator::new();
/// v.feed(&[b'a', 0xe2]).unwrap();
/// assert!(!v.is_complete()); // in the middle of a code point
/// v.feed(&[0x82, 0xac]).unwrap();
/// assert!(v.is_complete());
///
/// // e0 80 can never become valid (an overlong encoding): rejected at once.
/// let mut v = Utf8Validator::new();
/// assert!(v.feed(&[0xe0]).is_ok());
/// assert!(v.feed(&[0x80]).is_err());
/// ```
#[derive(Debug, Clone, Default)]
pub struct Utf8Validator {
    /// The bytes of a code point begun in an earlier piece (at most 3 are kept).
    partial: [u8; 4],
    partial_len: u8,
}

/// The input is not UTF-8, and no continuation can make it so.
///
/// ```
/// use rfc6455::utf8::{Utf8Error, Utf8Validator};
///
/// // 0xff never appears in UTF-8 (RFC 3629 §1).
/// assert_eq!(Utf8Validator::new().feed(&[0xff]), Err(Utf8Error));
/// assert_eq!(Utf8Error.to_string(), "invalid UTF-8");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utf8Error;

impl fmt::Display for Utf8Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid UTF-8")
    }
}

impl std::error::Error for Utf8Error {}

impl Utf8Validator {
    /// A validator at the start of a message.
    ///
    /// ```
    /// use rfc6455::utf8::Utf8Validator;
    ///
    /// let mut v = Utf8Validator::new();
    /// assert!(v.is_complete()); // an empty message is valid text
    /// assert!(v.feed("κόσμε".as_bytes()).is_ok());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Validates the next piece of the message.
    ///
    /// Returns an error as soon as the bytes seen so far cannot be the prefix of any
    /// valid UTF-8 text. After an error the validator's state is unspecified.
    ///
    /// ```
    /// use rfc6455::utf8::Utf8Validator;
    ///
    /// // Autobahn case 6.4.1: "κόσμε", then ed a0 80 (a UTF-16 surrogate, not UTF-8).
    /// let mut v = Utf8Validator::new();
    /// v.feed("κόσμε".as_bytes()).unwrap();
    /// v.feed(&[0xed]).unwrap(); // could still begin a valid character
    /// assert!(v.feed(&[0xa0]).is_err()); // fails on this byte (RFC 6455 §8.1)
    /// ```
    pub fn feed(&mut self, mut input: &[u8]) -> Result<(), Utf8Error> {
        if self.partial_len > 0 {
            let have = usize::from(self.partial_len);
            // The kept bytes are a valid prefix, so the first one is a lead byte.
            let width = sequence_width(self.partial[0]);
            let take = (width - have).min(input.len());
            self.partial[have..have + take].copy_from_slice(&input[..take]);
            match std::str::from_utf8(&self.partial[..have + take]) {
                Ok(_) => {
                    self.partial_len = 0;
                    input = &input[take..];
                }
                // Still a valid prefix: the whole input went into the partial sequence.
                Err(e) if e.error_len().is_none() => {
                    self.partial_len = (have + take) as u8;
                    return Ok(());
                }
                Err(_) => return Err(Utf8Error),
            }
        }
        // simdutf8 validates mixed multi-byte text ~8x faster than std on this machine
        // (benches/codec.rs, group `utf8`); `compat` reports where an error is, as std does.
        match simdutf8::compat::from_utf8(input) {
            Ok(_) => Ok(()),
            // `error_len() == None`: the input ends inside a sequence that is valid so far.
            Err(e) if e.error_len().is_none() => {
                let tail = &input[e.valid_up_to()..];
                self.partial[..tail.len()].copy_from_slice(tail);
                self.partial_len = tail.len() as u8;
                Ok(())
            }
            Err(_) => Err(Utf8Error),
        }
    }

    /// True when the input so far ends on a code point boundary: a text message may
    /// end here (RFC 6455 §5.6).
    ///
    /// ```
    /// use rfc6455::utf8::Utf8Validator;
    ///
    /// // "𝄞" is f0 9d 84 9e: a message may not end after its first three bytes.
    /// let mut v = Utf8Validator::new();
    /// v.feed(&[0xf0, 0x9d, 0x84]).unwrap();
    /// assert!(!v.is_complete());
    /// v.feed(&[0x9e]).unwrap();
    /// assert!(v.is_complete());
    /// ```
    pub fn is_complete(&self) -> bool {
        self.partial_len == 0
    }

    /// Forgets any partial sequence, ready for the next message.
    ///
    /// ```
    /// use rfc6455::utf8::Utf8Validator;
    ///
    /// let mut v = Utf8Validator::new();
    /// v.feed(&[0xe2, 0x82]).unwrap(); // the start of "€"
    /// v.reset(); // e.g. the connection failed and a new message starts
    /// assert!(v.is_complete());
    /// assert!(v.feed(b"a").is_ok()); // not taken as the end of "€"
    /// ```
    pub fn reset(&mut self) {
        self.partial_len = 0;
    }
}

/// The length of the UTF-8 sequence that `lead` starts (RFC 3629 §4).
fn sequence_width(lead: u8) -> usize {
    match lead {
        0x00..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        _ => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid_in_pieces(bytes: &[u8], split: &[usize]) -> Result<bool, Utf8Error> {
        let mut v = Utf8Validator::new();
        let mut last = 0;
        for &at in split {
            v.feed(&bytes[last..at])?;
            last = at;
        }
        v.feed(&bytes[last..])?;
        Ok(v.is_complete())
    }

    #[test]
    fn valid_text_split_at_every_byte() {
        let text = "κόσμε · €100 · 𝄞 music".as_bytes();
        for i in 0..=text.len() {
            for j in i..=text.len() {
                assert_eq!(valid_in_pieces(text, &[i, j]), Ok(true), "split {i},{j}");
            }
        }
    }

    #[test]
    fn fails_on_the_offending_byte() {
        // Autobahn 6.4.1: "κόσμε" followed by ed a0 80 (a UTF-16 surrogate) then "edited".
        let mut v = Utf8Validator::new();
        v.feed("κόσμε".as_bytes()).unwrap();
        v.feed(&[0xed]).unwrap();
        assert_eq!(v.feed(&[0xa0]), Err(Utf8Error));
    }

    #[test]
    fn rejects_overlongs_surrogates_and_out_of_range() {
        for bad in [
            &[0xc0, 0xaf][..],
            &[0xe0, 0x80, 0xaf],
            &[0xed, 0xa0, 0x80],
            &[0xf4, 0x90, 0x80, 0x80],
            &[0xf5],
            &[0xff],
            &[0x80],
        ] {
            for split in 0..=bad.len() {
                assert_eq!(valid_in_pieces(bad, &[split]), Err(Utf8Error), "{bad:x?}");
            }
        }
    }

    #[test]
    fn unfinished_sequence_is_not_complete() {
        assert_eq!(valid_in_pieces(&[0xf0, 0x9d, 0x84], &[1]), Ok(false));
    }
}
