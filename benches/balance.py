#!/usr/bin/env python3
"""How evenly `rfc6455 serve --threads 2` spreads connections over its two loops, with
each --balance mode: open N WebSocket connections, read the per-loop gauge of /metrics
(rfc6455_loop_open_connections), repeat with a fresh server.

    python3 benches/balance.py [TRIALS]      # default 10 trials per case

Prints, per mode and N, the median and worst share of the busier loop (50% is perfect).
Needs target/release/rfc6455 (cargo build --release). Everything on 127.0.0.1.
"""
import base64
import os
import re
import socket
import statistics
import subprocess
import sys

BINARY = os.path.join(os.path.dirname(__file__), "..", "target", "release", "rfc6455")


def start(balance):
    proc = subprocess.Popen(
        [BINARY, "serve", "--addr", "127.0.0.1:0", "--threads", "2", "--balance", balance],
        stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:
        m = re.search(r"ws://([0-9.]+):(\d+)/", line)
        if m:
            return proc, (m.group(1), int(m.group(2)))
    raise SystemExit("the server exited before listening")


def upgrade(addr):
    s = socket.create_connection(addr)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET / HTTP/1.1\r\nHost: {addr[0]}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
               "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        if not chunk:
            raise SystemExit("the server closed during the handshake")
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    return s


def per_loop(addr):
    s = socket.create_connection(addr)
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    body = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        body += chunk
    s.close()
    return [int(n) for n in re.findall(rb'rfc6455_loop_open_connections\{loop="\d+"\} (\d+)', body)]


def main():
    trials = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    print(f"{'balance':<18} {'conns':>6} {'median busier share':>20} {'worst':>7}")
    for balance in ["least-connections", "reuse-port"]:
        for n in [10, 50, 1000]:
            shares = []
            for _ in range(trials):
                proc, addr = start(balance)
                try:
                    conns = [upgrade(addr) for _ in range(n)]
                    counts = per_loop(addr)
                    assert sum(counts) == n, counts
                    shares.append(max(counts) / n)
                    for c in conns:
                        c.close()
                finally:
                    proc.kill()
                    proc.wait()
            print(f"{balance:<18} {n:>6} {statistics.median(shares):>19.1%} {max(shares):>7.1%}")


if __name__ == "__main__":
    main()
