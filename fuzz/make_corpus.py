#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/corpus/TARGET/ (committed; small).

Seeds: the RFC 6455 §5.7 examples, length encodings at their boundaries, close frames
with a code of every class, fragmented messages with interleaved control frames, and
valid and invalid handshakes. Run again after changing it: python3 fuzz/make_corpus.py
"""
import hashlib
import os
import struct
import zlib

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
KEY = bytes([0x37, 0xFA, 0x21, 0x3D])


def frame(opcode, payload=b"", fin=True, rsv=0, masked=False, key=KEY):
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    n = len(payload)
    mask_bit = 0x80 if masked else 0
    if n < 126:
        head = bytes([b0, mask_bit | n])
    elif n < 65536:
        head = bytes([b0, mask_bit | 126]) + struct.pack(">H", n)
    else:
        head = bytes([b0, mask_bit | 127]) + struct.pack(">Q", n)
    if masked:
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        head += key
    return head + payload


def deflate(data):
    """A message compressed as RFC 7692 §7.2.1 says: raw DEFLATE, sync flush, tail off."""
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def close(code, reason=b""):
    return struct.pack(">H", code) + reason


def stream_frames(masked):
    """Frame sequences a peer of each role might send (masked = client to server)."""
    f = lambda *a, **k: frame(*a, masked=masked, **k)
    seqs = {
        "text_hello": f(0x1, b"Hello"),
        "binary_256": f(0x2, bytes(range(256))),
        "binary_64k_truncated": f(0x2, b"\xab" * 65536)[:300],
        "fragmented": f(0x1, b"Hel", fin=False) + f(0x9, b"ping") + f(0x0, b"lo"),
        "fragmented_utf8": f(0x1, "€".encode()[:1], fin=False) + f(0x0, "€".encode()[1:]),
        "ping_pong": f(0x9, b"Hello") + f(0xA, b"unsolicited"),
        "empty_messages": f(0x1) + f(0x2) + f(0x9) + f(0xA),
        "invalid_utf8": f(0x1, b"ok\xff"),
        "reserved_opcode": f(0x3) + f(0xB),
        "rsv_bits": f(0x1, b"x", rsv=4),
        "long_ping": f(0x9, b"p" * 126),
        "fragmented_ping": f(0x9, b"", fin=False),
        "lone_continuation": f(0x0, b"x"),
        "nested_message": f(0x1, b"a", fin=False) + f(0x2, b"b"),
        "msb_length": bytes([0x82, 0xFF | (0 if masked else 0)]) + b"\x80" + b"\0" * 7,
        "huge_length": bytes([0x82, 0xFF if masked else 0x7F]) + struct.pack(">Q", 1 << 40) + (KEY if masked else b""),
        "close_empty": f(0x8),
        "close_one_byte": f(0x8, b"\x03"),
        "close_bad_reason": f(0x8, close(1000, b"\xff")),
        "after_close": f(0x8, close(1000)) + f(0x1, b"late"),
    }
    for code in [999, 1000, 1001, 1002, 1003, 1004, 1005, 1006, 1007, 1011, 1014,
                 1015, 1016, 2999, 3000, 4999, 5000, 65535]:
        seqs["close_%d" % code] = f(0x8, close(code, b"bye"))
    # The peer's frames masked the wrong way round.
    seqs["wrong_masking"] = frame(0x1, b"Hello", masked=not masked)
    return seqs


def write(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as fh:
        fh.write(data)


def token_seeds():
    """Seeds of the `token` target: first byte 1|2 = built and signed with the fuzz
    secret, then HEADER NUL CLAIMS; first byte 0 = the raw text of a token."""
    import base64, hmac as hmac_mod, json
    secret = b"fuzz-secret-of-32-bytes-or-more!!"
    b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=")
    far = 4102444800  # 2100-01-01
    claims = [
        {"sub": "ada", "exp": far},
        {"sub": "ada", "name": "Ada", "rooms": ["lobby", "team-*"], "watch": ["news"], "exp": far},
        {"sub": "ada", "exp": far, "nbf": far},
        {"sub": "", "exp": far},
        {"exp": far},
        {"sub": "ada"},
        {"sub": "ada", "exp": 1},
        {"sub": 7, "exp": "soon"},
    ]
    headers = [{"alg": "HS256", "typ": "JWT"}, {"alg": "RS256"}, {"alg": "ES256"}, {"alg": "none"}, {"alg": "HS512"}]
    seeds = []
    for h in headers:
        for c in claims:
            seeds.append(bytes([3]) + json.dumps(h).encode() + b"\0" + json.dumps(c).encode())
    signed = b64(json.dumps(headers[0]).encode()) + b"." + b64(json.dumps(claims[1]).encode())
    mac = hmac_mod.new(secret, signed, "sha256").digest()
    seeds.append(bytes([0]) + signed + b"." + b64(mac))
    seeds.append(bytes([0]) + signed + b".")
    return seeds


def main():
    # RFC 6455 §5.7, verbatim.
    rfc = {
        "rfc_masked_hello": bytes([0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58]),
        "rfc_unmasked_hello": bytes([0x81, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F]),
        "rfc_fragmented": bytes([0x01, 0x03, 0x48, 0x65, 0x6C, 0x80, 0x02, 0x6C, 0x6F]),
        "rfc_ping": bytes([0x89, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F]),
        "rfc_pong": bytes([0x8A, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58]),
        "rfc_256": bytes([0x82, 0x7E, 0x01, 0x00]),
        "rfc_64k": bytes([0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0]),
    }
    for name, data in rfc.items():
        write("frame_header", name, data[:14])
    write("frame_header", "non_minimal_16", bytes([0x82, 0x7E, 0x00, 0x05]))
    write("frame_header", "non_minimal_64", bytes([0x82, 0x7F]) + struct.pack(">Q", 5))
    write("frame_header", "msb_64", bytes([0x82, 0x7F]) + struct.pack(">Q", 1 << 63))

    # Connection targets: byte 0 = number of chunk-size bytes, then sizes, then stream.
    for target, masked in [("connection_server", True), ("connection_client", False)]:
        for name, data in stream_frames(masked).items():
            write(target, name, b"\x00" + data)
            write(target, name + "_chunked", b"\x03\x01\x07\x02" + data)
    for name in ("rfc_masked_hello", "rfc_pong"):
        write("connection_server", name, b"\x00" + rfc[name])
    for name in ("rfc_unmasked_hello", "rfc_fragmented", "rfc_ping"):
        write("connection_client", name, b"\x00" + rfc[name])

    valid = (b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n"
             b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
             b"Origin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\n"
             b"Sec-WebSocket-Version: 13\r\n\r\n")
    requests = {
        "valid": valid,
        "valid_with_frame": valid + rfc["rfc_masked_hello"],
        "post": valid.replace(b"GET", b"POST"),
        "http10": valid.replace(b"HTTP/1.1", b"HTTP/1.0"),
        "no_host": valid.replace(b"Host: server.example.com\r\n", b""),
        "no_upgrade": valid.replace(b"Upgrade: websocket\r\n", b""),
        "connection_list": valid.replace(b"Connection: Upgrade", b"Connection: keep-alive, Upgrade"),
        "short_key": valid.replace(b"dGhlIHNhbXBsZSBub25jZQ==", b"c2hvcnQ="),
        "version_8": valid.replace(b"Version: 13", b"Version: 8"),
        "duplicate_key": valid.replace(b"\r\n\r\n", b"\r\nSec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEA==\r\n\r\n"),
        "not_http": b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03",
        # Request-target forms (RFC 7230 §5.3): absolute-form names a resource, the
        # others do not; empty lines before the request line; a head ending in bare LFs.
        "absolute_form": valid.replace(b"GET /chat", b"GET http://server.example.com/chat?x=1"),
        "absolute_form_no_path": valid.replace(b"GET /chat", b"GET ws://server.example.com"),
        "asterisk_form": valid.replace(b"GET /chat", b"GET *"),
        "leading_empty_lines": b"\r\n\n" + valid,
        "bare_lf": valid.replace(b"\r\n", b"\n"),
    }
    for name, data in requests.items():
        write("handshake_request", name, data)
        write("diff_handshake", name, data)

    response = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: chat\r\n\r\n")
    responses = {
        "valid": response,
        "no_protocol": response.replace(b"Sec-WebSocket-Protocol: chat\r\n", b""),
        "bad_accept": response.replace(b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", b"AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
        "forbidden": b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n",
        "extension": response.replace(b"\r\n\r\n", b"\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n"),
        "other_protocol": response.replace(b"chat\r\n", b"v9\r\n"),
    }
    for name, data in responses.items():
        write("handshake_response", name, data)

    texts = ["Hello", "€uro", "κόσμε", "𝄞 clef", "\ud7ff\ue000".encode("utf-8", "surrogatepass").decode("utf-8")]
    for i, t in enumerate(texts):
        write("utf8", "valid_%d" % i, bytes([i]) + t.encode())
    for i, bad in enumerate([b"\xed\xa0\x80", b"\xc0\xaf", b"\xf4\x90\x80\x80", b"\xe2\x82", b"ok\xff", b"\xf0\x9f\x98"]):
        write("utf8", "invalid_%d" % i, bytes([i + 1]) + bad)

    # The inspector reads raw frame bytes, from either side.
    for name, data in rfc.items():
        write("inspect", name, data)
    for name, data in stream_frames(True).items():
        write("inspect", "client_" + name, data)
    for name, data in stream_frames(False).items():
        write("inspect", "server_" + name, data)

    # permessage-deflate (RFC 7692 §7.2.3): byte 0 = role/takeover mode, then the
    # connection layout. "Hello" compressed, shared window, stored block, BFINAL, two
    # blocks, fragments, an empty last fragment, RSV1 on control and continuation.
    deflate_frames = {
        "hello": [(0x1, bytes.fromhex("f248cdc9c90700"), True, 4)],
        "hello_twice": [(0x1, bytes.fromhex("f248cdc9c90700"), True, 4), (0x1, bytes.fromhex("f20011 0000".replace(" ", "")), True, 4)],
        "stored": [(0x1, bytes.fromhex("000500faff48656c6c6f00"), True, 4)],
        "bfinal": [(0x1, bytes.fromhex("f348cdc9c9070000"), True, 4)],
        "two_blocks": [(0x1, bytes.fromhex("f24805000000ffffcac9c90700"), True, 4)],
        "fragments": [(0x1, bytes.fromhex("f248cd"), False, 4), (0x0, bytes.fromhex("c9c90700"), True, 0)],
        "empty_last": [(0x1, bytes.fromhex("f248cdc9c9070000 00ffff".replace(" ", "")), False, 4), (0x0, b"\x00", True, 0)],
        "rsv1_ping": [(0x9, b"", True, 4)],
        "rsv1_continuation": [(0x1, bytes.fromhex("f248cd"), False, 4), (0x0, bytes.fromhex("c9c90700"), True, 4)],
        "bad_data": [(0x2, b"\xff\xff", True, 4)],
        "binary_zeros": [(0x2, deflate(b"\x00" * 1000), True, 4)],
        "text_long": [(0x1, deflate(b"permessage-deflate " * 100), True, 4)],
    }
    for name, frames in deflate_frames.items():
        for mode, masked in [(0, True), (1, False), (2, True), (3, False)]:
            data = b"".join(frame(op, p, fin=fin, rsv=rsv, masked=masked) for op, p, fin, rsv in frames)
            write("connection_deflate", "%s_%d" % (name, mode), bytes([mode, 0]) + data)
            write("connection_deflate", "%s_%d_chunked" % (name, mode), bytes([mode, 3, 1, 7, 2]) + data)

    # The lent receive API against the owned one: chunk sizes as for the connection
    # targets, then an options byte (bit 0: client role, bit 1: deflate, bits 2-7:
    # how the calls read), then the stream.
    for name, data in stream_frames(True).items():
        write("connection_lent", "server_" + name, b"\x00\x00" + data)
        write("connection_lent", "server_mixed_" + name, b"\x03\x01\x07\x02" + bytes([0b0101 << 2]) + data)
    for name, data in stream_frames(False).items():
        write("connection_lent", "client_" + name, b"\x00\x01" + data)
    for name, frames in deflate_frames.items():
        for options, masked in [(0b10, True), (0b11, False)]:
            data = b"".join(frame(op, p, fin=fin, rsv=rsv, masked=masked) for op, p, fin, rsv in frames)
            write("connection_lent", "deflate_%s_%d" % (name, options), bytes([0, options]) + data)

    # The tap: byte 0 = config (bit 0: server sends, bit 1: deflate, the rest: preview
    # size / 4), byte 1 = piece size; then one direction of a conversation.
    for name, data in stream_frames(True).items():
        write("tap", "client_" + name, bytes([32 << 2, 3]) + data)
    for name, data in stream_frames(False).items():
        write("tap", "server_" + name, bytes([(8 << 2) | 1, 1]) + data)
    for name, frames in deflate_frames.items():
        for config, masked in [((16 << 2) | 2, True), ((16 << 2) | 3, False)]:
            data = b"".join(frame(op, p, fin=fin, rsv=rsv, masked=masked) for op, p, fin, rsv in frames)
            write("tap", "deflate_%s_%d" % (name, config & 1), bytes([config, 5]) + data)

    offers = {
        "chromium": b"permessage-deflate; client_max_window_bits",
        "firefox": b"permessage-deflate",
        "all": b"permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
               b"server_max_window_bits=10; client_max_window_bits=12",
        "quoted": b'permessage-deflate; client_max_window_bits="10"',
        "several": b"x-webkit-deflate-frame, permessage-deflate; server_max_window_bits=8\npermessage-deflate",
        "bad": b"permessage-deflate; server_max_window_bits=16; mystery; client_no_context_takeover=1",
    }
    for name, data in offers.items():
        write("extensions", name, data)

    for i, seed in enumerate(token_seeds()):
        write("token", f"seed-{i:02d}", seed)
    # roundtrip takes `arbitrary`-structured input: a few raw seeds are enough.
    for i in range(4):
        write("roundtrip", "seed_%d" % i, hashlib.sha256(b"seed%d" % i).digest() * 4)


if __name__ == "__main__":
    main()
