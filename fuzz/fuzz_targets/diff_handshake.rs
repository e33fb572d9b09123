// Differential: the same bytes as a client's opening handshake (RFC 6455 §4.2.1) to our
// `HeadReader` + `Request::parse` and to tungstenite's server handshake (`tungstenite::
// accept` over an in-memory stream). Both must accept or both reject, and when both
// accept, their 101s must carry the same Sec-WebSocket-Accept (§4.2.2). The only
// disagreements allowed are the classes in `differences.rs`; any other fails the target.
#![no_main]

#[path = "../differences.rs"]
mod differences;

use libfuzzer_sys::fuzz_target;
use rfc6455::handshake::HeadReader;

fuzz_target!(|data: &[u8]| {
    // Only a complete head is compared: both read up to the blank line, and tungstenite
    // refuses bytes after it before the 101 (they would be frames sent too early).
    let mut reader = HeadReader::new(8192);
    let Ok(Some(head_len)) = reader.push(data) else {
        return;
    };
    let head = &data[..head_len];

    let ours = differences::our_handshake(head);
    let theirs = differences::their_handshake(head);

    if !differences::same_verdict(&ours, &theirs) {
        match differences::classify_handshake(head, &ours, &theirs) {
            Some(difference) => difference.note(),
            None => panic!(
                "our handshake and tungstenite's disagree on {:?}: ours {ours:?}, theirs {theirs:?}",
                String::from_utf8_lossy(head)
            ),
        }
    }
});
