//! Golden-output tests of the learning tools: `rfc6455 decode`, `encode` and `accept`,
//! on the RFC 6455 examples and on frames that break each rule.

mod support;

use std::process::Command;

fn run(args: &[&str]) -> (String, bool) {
    let output = Command::new(env!("CARGO_BIN_EXE_rfc6455"))
        .args(args)
        .output()
        .expect("the binary runs");
    let text =
        String::from_utf8(output.stdout).unwrap() + &String::from_utf8(output.stderr).unwrap();
    (text, output.status.success())
}

fn ok(args: &[&str]) -> String {
    let (text, success) = run(args);
    assert!(success, "{args:?} failed: {text}");
    text
}

#[test]
fn decode_the_masked_hello_of_section_5_7() {
    assert_eq!(
        ok(&["decode", "81 85 37 fa 21 3d 7f 9f 4d 51 58"]),
        "\
frame 1 at byte 0:
  81  10000001  FIN=1 RSV1=0 RSV2=0 RSV3=0 opcode=0x1 text
  85  10000101  MASK=1 payload length 5 (7-bit length)
  37 fa 21 3d  masking key
  payload, masked: 7f 9f 4d 51 58
  a whole message, 5 payload bytes
  unmasked: \"Hello\"
11 bytes, 1 frame, 0 violations
"
    );
}

#[test]
fn decode_the_fragmented_hello_and_a_ping() {
    assert_eq!(
        ok(&[
            "decode",
            "0x01,0x03,0x48,0x65,0x6c",
            "80026c6f",
            "89 05 48 65 6c 6c 6f"
        ]),
        "\
frame 1 at byte 0:
  01  00000001  FIN=0 RSV1=0 RSV2=0 RSV3=0 opcode=0x1 text
  03  00000011  MASK=0 payload length 3 (7-bit length)
  first fragment of a message, 3 payload bytes
  unmasked: \"Hel\"
frame 2 at byte 5:
  80  10000000  FIN=1 RSV1=0 RSV2=0 RSV3=0 opcode=0x0 continuation
  02  00000010  MASK=0 payload length 2 (7-bit length)
  last fragment of a message, 2 payload bytes
  unmasked: \"lo\"
frame 3 at byte 9:
  89  10001001  FIN=1 RSV1=0 RSV2=0 RSV3=0 opcode=0x9 ping
  05  00000101  MASK=0 payload length 5 (7-bit length)
  control frame, 5 payload bytes
  unmasked: \"Hello\"
16 bytes, 3 frames, 0 violations
"
    );
}

#[test]
fn decode_the_length_encodings() {
    let out = ok(&["decode", "82 7e 01 00"]);
    assert!(out.contains("  7e  01111110  MASK=0 payload length 126: a 16-bit length follows\n"));
    assert!(out.contains("  01 00  extended payload length = 256 (16-bit)\n"));
    assert!(out.contains("incomplete payload: 0 of 256 bytes present, 256 more bytes needed"));
    let out = ok(&["decode", "82 7f 00 00 00 00 00 01 00 00"]);
    assert!(out.contains("  00 00 00 00 00 01 00 00  extended payload length = 65536 (64-bit)\n"));
}

#[test]
fn decode_partial_input_says_what_is_missing() {
    let out = ok(&["decode", "81"]);
    assert!(
        out.contains("incomplete header: 1 more byte needed"),
        "{out}"
    );
    let out = ok(&["decode", "81 85 37 fa"]);
    assert!(
        out.contains("incomplete header: 2 more bytes needed"),
        "{out}"
    );
}

#[test]
fn decode_names_every_violation_with_its_section() {
    let cases: [(&str, &str); 13] = [
        (
            "c1 80 00 00 00 00",
            "reserved bits set (100) without an extension (RFC 6455 §5.2)",
        ),
        ("83 80 00 00 00 00", "reserved opcode 0x3 (RFC 6455 §5.2)"),
        (
            "89 7e 00 7e",
            "control frame payload of 126 bytes (over 125) (RFC 6455 §5.5)",
        ),
        ("09 00", "fragmented control frame (RFC 6455 §5.5)"),
        (
            "81 80 00 00 00 00 81 00",
            "unmasked frame from a client (RFC 6455 §5.1)",
        ),
        (
            "80 00",
            "continuation frame with no message to continue (RFC 6455 §5.4)",
        ),
        (
            "01 00 81 00",
            "new data frame inside a fragmented message (RFC 6455 §5.4)",
        ),
        (
            "81 01 ff",
            "invalid UTF-8 in a text message (RFC 6455 §8.1)",
        ),
        ("88 01 03", "close payload of one byte (RFC 6455 §5.5.1)"),
        (
            "88 02 03 ed",
            "close code 1005 is not allowed on the wire (RFC 6455 §7.4)",
        ),
        (
            "88 03 03 e8 ff",
            "close reason is not UTF-8 (RFC 6455 §5.5.1)",
        ),
        (
            "88 00 81 00",
            "a frame after the Close frame (RFC 6455 §5.5.1)",
        ),
        (
            "82 7e 00 05",
            "payload length not encoded in the minimal number of bytes (RFC 6455 §5.2)",
        ),
    ];
    for (hex, message) in cases {
        let out = ok(&["decode", hex]);
        assert!(out.contains(&format!("  ✗ {message}\n")), "{hex}:\n{out}");
    }
    let out = ok(&["decode", "82 7f 80 00 00 00 00 00 00 00"]);
    assert!(out.contains("the most significant bit"), "{out}");
    assert!(out.contains("decoding stops"), "{out}");
}

#[test]
fn decode_with_an_explicit_sender() {
    let out = ok(&[
        "decode",
        "--from",
        "server",
        "81 85 37 fa 21 3d 7f 9f 4d 51 58",
    ]);
    assert!(
        out.contains("✗ masked frame from a server (RFC 6455 §5.1)"),
        "{out}"
    );
}

#[test]
fn decode_rejects_bad_hex() {
    let (out, success) = run(&["decode", "8"]);
    assert!(!success);
    assert!(out.contains("odd number of hex digits"), "{out}");
    let (out, success) = run(&["decode", "zz"]);
    assert!(!success);
    assert!(out.contains("is not a hex byte"), "{out}");
}

#[test]
fn encode_reproduces_the_examples_of_section_5_7() {
    let first_line = |out: String| out.lines().next().unwrap().to_string();
    assert_eq!(
        first_line(ok(&["encode", "--text", "Hello"])),
        "81 05 48 65 6c 6c 6f"
    );
    assert_eq!(
        first_line(ok(&["encode", "--text", "Hello", "--mask", "37fa213d"])),
        "81 85 37 fa 21 3d 7f 9f 4d 51 58"
    );
    assert_eq!(
        first_line(ok(&["encode", "--text", "Hello", "--fragment", "3"])),
        "01 03 48 65 6c 80 02 6c 6f"
    );
    assert_eq!(
        first_line(ok(&["encode", "--ping", "Hello"])),
        "89 05 48 65 6c 6c 6f"
    );
    assert_eq!(
        first_line(ok(&["encode", "--pong", "Hello", "--mask", "37 fa 21 3d"])),
        "8a 85 37 fa 21 3d 7f 9f 4d 51 58"
    );
    assert_eq!(
        first_line(ok(&["encode", "--close", "1000", "--reason", "bye"])),
        "88 05 03 e8 62 79 65"
    );
    let out = ok(&["encode", "--binary", "00ff", "--client"]);
    assert!(out.starts_with("82 82 "), "{out}");
    assert!(out.contains("unmasked: 00 ff\n"), "{out}");
}

#[test]
fn encode_annotates_what_it_printed() {
    let out = ok(&["encode", "--text", "Hello", "--mask", "37fa213d"]);
    assert!(out.contains("  37 fa 21 3d  masking key\n"), "{out}");
    assert!(out.contains("  unmasked: \"Hello\"\n"), "{out}");
    assert!(out.ends_with("11 bytes, 1 frame, 0 violations\n"), "{out}");
}

#[test]
fn encode_refuses_a_bad_key() {
    let (out, success) = run(&["encode", "--text", "x", "--mask", "37fa21"]);
    assert!(!success);
    assert!(out.contains("a masking key is 4 bytes"), "{out}");
}

#[test]
fn accept_shows_the_steps_of_section_4_2_2() {
    assert_eq!(
        ok(&["accept", "dGhlIHNhbXBsZSBub25jZQ=="]),
        "\
RFC 6455 §4.2.2: Sec-WebSocket-Accept = base64(SHA-1(key + GUID))
1. key:          dGhlIHNhbXBsZSBub25jZQ==
2. + GUID:       dGhlIHNhbXBsZSBub25jZQ==258EAFA5-E914-47DA-95CA-C5AB0DC85B11
3. SHA-1:        b3 7a 4f 2c c0 62 4f 16 90 f6 46 06 cf 38 59 45 b2 be c4 ea
4. base64:       s3pPLMBiTxaQ9kYGzzhZRbK+xOo=
Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=
"
    );
}

#[test]
fn trace_shows_the_handshake_and_every_frame_on_both_ends() {
    use std::io::Write;
    use std::process::Stdio;
    let mut server =
        support::ServerProcess::start(env!("CARGO_BIN_EXE_rfc6455"), &["echo", "--trace"]);
    let addr = server.addr.clone();
    let mut client = Command::new(env!("CARGO_BIN_EXE_rfc6455"))
        .args(["client", &format!("ws://{addr}/trace"), "--trace"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    client
        .stdin
        .take()
        .unwrap()
        .write_all(b"Hello\n/ping hi\n")
        .unwrap();
    let output = client.wait_with_output().unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stdout.contains("< Hello\n"), "{stdout}");
    assert!(stdout.contains("< pong hi\n"), "{stdout}");
    assert!(stderr.contains("-> GET /trace HTTP/1.1\n"), "{stderr}");
    assert!(
        stderr.contains("<- HTTP/1.1 101 Switching Protocols\n"),
        "{stderr}"
    );
    assert!(
        stderr.contains("-> FIN=1 text (0x1) len=5 (7-bit) mask="),
        "{stderr}"
    );
    assert!(
        stderr.contains("<- FIN=1 text (0x1) len=5 (7-bit) unmasked \"Hello\""),
        "{stderr}"
    );

    let log = server.stop();
    assert!(log.contains("<- GET /trace HTTP/1.1"), "{log}");
    assert!(log.contains("-> HTTP/1.1 101 Switching Protocols"), "{log}");
    assert!(
        log.contains("<- FIN=1 ping (0x9) len=2 (7-bit) mask="),
        "{log}"
    );
    assert!(
        log.contains("-> FIN=1 pong (0xa) len=2 (7-bit) unmasked \"hi\""),
        "{log}"
    );
    assert!(log.contains("code=1000 (normal closure)"), "{log}");
}

#[test]
fn a_plain_get_on_the_echo_endpoint_is_told_to_upgrade() {
    use std::io::{Read, Write};
    let server = support::ServerProcess::start(env!("CARGO_BIN_EXE_rfc6455"), &["echo"]);
    let addr = &server.addr;
    // What `curl -i http://ADDR/` sends.
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: curl/8\r\nAccept: */*\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    drop(server);
    assert!(
        response.starts_with("HTTP/1.1 426 Upgrade Required\r\n"),
        "{response}"
    );
    assert!(
        response.contains("\r\nUpgrade: websocket\r\n"),
        "{response}"
    );
    assert!(
        response.contains("\r\nConnection: Upgrade\r\n"),
        "{response}"
    );
}

#[test]
fn decode_deflate_inflates_the_examples_of_rfc_7692() {
    // §7.2.3.1 then §7.2.3.2 (the second refers to the first), and RSV1 on a ping.
    let report = ok(&[
        "decode",
        "--deflate",
        "c1 07 f2 48 cd c9 c9 07 00",
        "c1 05 f2 00 11 00 00",
        "c9 00",
    ]);
    assert_eq!(
        report,
        "\
frame 1 at byte 0:
  c1  11000001  FIN=1 RSV1=1 RSV2=0 RSV3=0 opcode=0x1 text
  07  00000111  MASK=0 payload length 7 (7-bit length)
  a whole message, 7 payload bytes
  compressed: f2 48 cd c9 c9 07 00
  inflated: 7 -> 5 bytes: \"Hello\"
frame 2 at byte 9:
  c1  11000001  FIN=1 RSV1=1 RSV2=0 RSV3=0 opcode=0x1 text
  05  00000101  MASK=0 payload length 5 (7-bit length)
  a whole message, 5 payload bytes
  compressed: f2 00 11 00 00
  inflated: 5 -> 5 bytes: \"Hello\"
frame 3 at byte 16:
  c9  11001001  FIN=1 RSV1=1 RSV2=0 RSV3=0 opcode=0x9 ping
  00  00000000  MASK=0 payload length 0 (7-bit length)
  ✗ RSV1 (compressed) set on a control frame (RFC 7692 §6.1)
  control frame, 0 payload bytes
18 bytes, 3 frames, 1 violation
"
    );
    // Without --deflate, RSV1 is a reserved bit.
    assert!(ok(&["decode", "c1 07 f2 48 cd c9 c9 07 00"])
        .contains("reserved bits set (100) without an extension (RFC 6455 §5.2)"));
}
