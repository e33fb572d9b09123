//! Arbitrary bytes into the frame header parser (RFC 6455 §5.2): never a panic; a
//! complete header re-encodes to exactly the bytes it came from; an incomplete one says
//! how many bytes are missing, and that many more never leave it short. The frame
//! rules (`rfc6455::rules`) fail a header with the first of the violations the
//! learning tools list for it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rfc6455::frame::{FrameHeader, Parsed, MAX_HEADER_LEN};
use rfc6455::rules::{FrameRules, InProgress};
use rfc6455::Role;

fuzz_target!(|data: &[u8]| {
    match FrameHeader::parse(data) {
        Ok(Parsed::Complete(header, len)) => {
            assert!((2..=MAX_HEADER_LEN).contains(&len));
            assert_eq!(header.encoded_len(), len);
            let (bytes, n) = header.encode();
            assert_eq!(&bytes[..n], &data[..len], "re-encoding differs");
            for role in [Role::Client, Role::Server] {
                let _ = header.check(role, 0);
                let _ = header.check(role, 0b111);
                for deflate in [false, true] {
                    let rules = FrameRules::new(role)
                        .deflate(deflate)
                        .max_frame_size(1 << 20)
                        .max_message_size(1 << 24);
                    let message = InProgress {
                        compressed: deflate,
                        len: 1 << 23,
                    };
                    for in_progress in [None, Some(message)] {
                        let first = rules.violations(&header, in_progress).next();
                        assert_eq!(rules.check(&header, in_progress).err(), first);
                    }
                }
            }
        }
        Ok(Parsed::Incomplete(missing)) => {
            assert!(missing >= 1 && data.len() + missing <= MAX_HEADER_LEN);
            // Supplying exactly the missing bytes moves it on (possibly to another
            // Incomplete once the length byte says more is needed, never backwards).
            let mut longer = data.to_vec();
            longer.resize(data.len() + missing, 0);
            if let Ok(Parsed::Incomplete(more)) = FrameHeader::parse(&longer) {
                assert!(longer.len() + more <= MAX_HEADER_LEN);
            }
        }
        Err(err) => assert_eq!(err.close_code().0, 1002),
    }
});
