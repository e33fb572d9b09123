"""One WebSocket client of `rfc6455 echo`: the handshake, then N masked text messages
("hello"), each sent once the echo of the one before is back (so that each is one turn
of the server's loop), then the TCP close.

    python3 client.py PORT N [PAUSE]   # PAUSE: seconds between the handshake and the first
"""
import os
import socket
import sys
import time

port, n = int(sys.argv[1]), int(sys.argv[2])
pause = float(sys.argv[3]) if len(sys.argv) > 3 else 0
s = socket.create_connection(("127.0.0.1", port))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
s.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
head = b""
while b"\r\n\r\n" not in head:
    head += s.recv(4096)
assert head.startswith(b"HTTP/1.1 101 "), head
time.sleep(pause)
payload = b"hello"
for _ in range(n):
    key = os.urandom(4)
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    s.sendall(bytes([0x81, 0x80 | len(payload)]) + key + masked)
    echo = b""
    while len(echo) < 2 + len(payload):
        echo += s.recv(4096)
    assert echo == b"\x81\x05hello", echo
print(f"{n} echoes")
time.sleep(pause)
s.close()
