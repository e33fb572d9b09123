//! A decompression bomb: a small compressed frame that inflates far past the message
//! limit gets 1009 at the limit, and the process's memory stays near the limit. In a
//! file of its own, so that this test process measures only itself.

use rfc6455::deflate::Negotiated;
use rfc6455::{CloseCode, Config, Connection, ProtocolError, Role};

/// A line of `/proc/self/status` in bytes: `VmRSS` (now) or `VmHWM` (the peak).
fn memory(field: &str) -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Starts the peak over from the present (Linux: "5" to `clear_refs`), so that the
/// peak measures only what comes next; `None` where that is not possible.
fn reset_peak() -> Option<usize> {
    std::fs::write("/proc/self/clear_refs", "5").ok()?;
    memory("VmRSS:")
}

#[test]
fn a_bomb_gets_1009_at_the_limit_without_inflating_past_it() {
    let negotiated = Negotiated {
        local_no_context_takeover: true,
        remote_no_context_takeover: true,
        level: 9,
        threshold: 0,
        ..Negotiated::default()
    };
    // 16 MiB of zeros in one message: about 16 KB on the wire. (Built with our own
    // compressing end, a client, so it is masked as a server expects.)
    let mut sender = Connection::with_deflate(Role::Client, Config::default(), Some(negotiated));
    let zeros = vec![0u8; 16 << 20];
    sender.send_binary(&zeros).unwrap();
    let one_piece = sender.pending_output().to_vec();
    drop(zeros);
    assert!(one_piece.len() < 50_000, "{} bytes", one_piece.len());

    let limit = 1 << 20;
    let config = Config {
        max_message_size: limit,
        ..Config::default()
    };
    let before = reset_peak();
    let mut server = Connection::with_deflate(Role::Server, config, Some(negotiated));
    server.receive(&one_piece);
    let err = server.next_event().unwrap_err();
    assert!(
        matches!(err, ProtocolError::MessageTooBig { len, max } if max == limit && len as usize == limit + 1),
        "{err:?}"
    );
    assert_eq!(err.close_code(), CloseCode::MESSAGE_TOO_BIG);
    // The Close frame with 1009 is queued.
    let close = server.pending_output();
    assert_eq!(close[0], 0x88);
    assert_eq!(close[2..4], 1009u16.to_be_bytes());
    if let (Some(before), Some(after)) = (before, memory("VmHWM:")) {
        // The inflated data never existed beyond the limit: the peak grew by the
        // limit and the inflate state, not by 16 MiB.
        let grown = after.saturating_sub(before);
        eprintln!("peak grew by {grown} bytes (limit {limit})");
        assert!(grown < 8 * limit, "peak RSS grew by {grown} bytes");
    }
}
