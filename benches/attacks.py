# Attacks on a server binary, for before/after figures of the resource-governance work
# (issue 36): abundant valid input from one machine, on loopback only. Each prints one
# JSON line. Not a test (tests/governance.rs and tests/chat_limits.rs assert the bounds);
# this measures any build, e.g. the last release against this one:
#
#   python3 benches/attacks.py ping_flood target/release/rfc6455 echo --threads 1
#   python3 benches/attacks.py half_open target/release/rfc6455 serve --threads 1
#   python3 benches/attacks.py fragments target/release/rfc6455 serve --threads 1 --max-rate 0
#   python3 benches/attacks.py sse_streams target/release/rfc6455 serve --max-connections 300
#   CHARS=682 python3 benches/attacks.py post_flood target/release/rfc6455 serve --max-rate 0
#   CHARS=682 python3 benches/attacks.py nonreading_members target/release/rfc6455 serve --max-rate 0 --history 1000
#   python3 benches/attacks.py sse_cpu target/release/rfc6455 serve --max-rate 0 --http-rate 0
#   python3 benches/attacks.py rooms_flood target/release/rfc6455 serve --max-rate 0
#
# The server binds 127.0.0.1:0 (its banner names the port); every loop is bounded in
# time or count, and the server is killed at the end.
import os, socket, sys, time, threading, subprocess, json, re

def start(binary, args):
    p = subprocess.Popen([binary] + args + ["--addr", "127.0.0.1:0"], stderr=subprocess.PIPE, text=True)
    while True:
        line = p.stderr.readline()
        if not line: raise SystemExit("server died")
        m = re.search(r"wss?://([0-9.]+:\d+)/", line)
        if m:
            threading.Thread(target=lambda: p.stderr.read(), daemon=True).start()
            host, port = m.group(1).split(":")
            return p, (host, int(port))

def rss(p):
    for l in open(f"/proc/{p.pid}/status"):
        if l.startswith("VmRSS:"): return int(l.split()[1])

def upgrade(addr):
    s = socket.create_connection(addr)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        head += s.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return s

KEY = bytes([0x11, 0x22, 0x33, 0x44])
def masked(fin, op, payload):
    f = bytes([(0x80 if fin else 0) | op])
    n = len(payload)
    if n < 126: f += bytes([0x80 | n])
    elif n <= 0xFFFF: f += bytes([0x80 | 126]) + n.to_bytes(2, "big")
    else: f += bytes([0x80 | 127]) + n.to_bytes(8, "big")
    return f + KEY + bytes(b ^ KEY[i % 4] for i, b in enumerate(payload))

def ping_flood(binary, args, seconds=5):
    p, addr = start(binary, args)
    s = upgrade(addr)
    s.settimeout(0.1)
    buf = masked(True, 9, b"p" * 125) * 8000
    before, peak, sent, t0 = rss(p), 0, 0, time.time()
    mv = memoryview(buf); at = 0
    while time.time() - t0 < seconds:
        try:
            n = s.send(mv[at:]); sent += n; at = (at + n) % len(buf)
        except (socket.timeout, BlockingIOError): pass
        except OSError: break
        peak = max(peak, rss(p))
    peak = max(peak, rss(p))
    p.kill()
    return dict(sent_mb=round(sent / 1e6), rss_before_kib=before, rss_peak_kib=peak)

def half_open(binary, args, n=2000):
    p, addr = start(binary, args)
    socks = [socket.create_connection(addr) for _ in range(n)]
    time.sleep(1.5)
    fds = len(os.listdir(f"/proc/{p.pid}/fd"))
    r = rss(p)
    p.kill()
    return dict(connections=n, server_fds=fds, rss_kib=r)

def fragments(binary, args, n=2000, size=30000):
    p, addr = start(binary, args)
    before = rss(p)
    frag = masked(False, 1, b"a" * size)
    socks = []
    for _ in range(n):
        s = upgrade(addr); s.sendall(frag); socks.append(s)
    ping = masked(True, 9, b"alive")
    for _ in range(5):
        for s in socks:
            try: s.sendall(ping)
            except OSError: pass
        time.sleep(0.5)
    after = rss(p)
    p.kill()
    return dict(connections=n, fragment=size, bytes_per_connection=(after - before) * 1024 // n)


def http(addr, method, path, headers=b"", body=b""):
    s = socket.create_connection(addr)
    s.sendall(f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n".encode() + headers + b"\r\n" + body)
    data = b""
    s.settimeout(5)
    try:
        while True:
            c = s.recv(65536)
            if not c: break
            data += c
    except socket.timeout: pass
    return int(data[9:12]) if len(data) >= 12 else 0

def sse_streams(binary, args, n=300):
    p, addr = start(binary, args)
    statuses = {}
    socks = []
    for _ in range(n):
        s = socket.create_connection(addr)
        s.sendall(b"GET /rooms/r/events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
        s.settimeout(2)
        st = int(s.recv(12)[9:12])
        statuses[st] = statuses.get(st, 0) + 1
        socks.append(s)
    ws = socket.create_connection(addr)
    ws.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    ws.settimeout(2)
    wsst = int(ws.recv(12)[9:12])
    p.kill()
    return dict(streams=statuses, websocket_upgrade=wsst)

def post_flood(binary, args, seconds=5):
    p, addr = start(binary, args)
    before = rss(p)
    t0, statuses, i = time.time(), {}, 0
    while time.time() - t0 < seconds:
        chars = int(os.environ.get("CHARS", "4096"))
        body = json.dumps({"from": "ci", "text": "\u0001" * chars}).encode()
        st = http(addr, "POST", f"/rooms/r{i % 1000}/messages", b"Content-Type: application/json\r\n", body)
        statuses[st] = statuses.get(st, 0) + 1
        i += 1
    after = rss(p)
    p.kill()
    return dict(posts=i, statuses=statuses, rss_growth_kib=after - before)

def ws_text(s, obj):
    s.sendall(masked(True, 1, json.dumps(obj).encode()))

def read_until(s, needle, limit=10):
    s.settimeout(limit); data = b""
    while needle not in data:
        c = s.recv(65536)
        if not c: break
        data += c
    return data

def tcp_mem():
    for l in open("/proc/net/sockstat"):
        if l.startswith("TCP:"):
            w = l.split(); return int(w[w.index("mem") + 1]) * 4096

def nonreading_members(binary, args, members=20):
    chars = int(os.environ.get("CHARS", "4096"))
    p, addr = start(binary, args)
    a = upgrade(addr)
    ws_text(a, {"type": "hello", "name": "ann", "id": 0}); read_until(a, b"ack")
    ws_text(a, {"type": "join", "room": "full", "id": 1}); read_until(a, b"presence")
    for i in range(1000):
        ws_text(a, {"type": "message", "room": "full", "text": "\u0001" * chars, "id": 100 + i})
        read_until(a, b'"id":%d' % (100 + i))
    r0, k0 = rss(p) * 1024, tcp_mem()
    socks = []
    for i in range(members):
        s = upgrade(addr)
        ws_text(s, {"type": "hello", "name": f"m{i}", "id": 0})
        ws_text(s, {"type": "join", "room": "full"})
        ws_text(s, {"type": "join", "room": "full"})
        socks.append(s)
    time.sleep(3)
    r1, k1 = rss(p) * 1024, tcp_mem()
    p.kill()
    return dict(members=members, per_member_bytes=((r1 - r0) + (k1 - k0)) // members,
                process_mb=(r1 - r0) // 1000000, kernel_mb=(k1 - k0) // 1000000)

def sse_cpu(binary, args, gets=200):
    p, addr = start(binary, args)
    body = json.dumps({"from": "ci", "text": "x" * 4000}).encode()
    for i in range(100):
        http(addr, "POST", "/rooms/r/messages", b"Content-Type: application/json\r\n", body)
    def cpu():
        f = open(f"/proc/{p.pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    c0 = cpu()
    for _ in range(gets):
        s = socket.create_connection(addr)
        s.sendall(b"GET /rooms/r/events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
        read_until(s, b"event: presence")
        s.close()
    c1 = cpu()
    p.kill()
    return dict(gets=gets, server_cpu_ms_per_get=round((c1 - c0) * 1000 / gets, 3))

def server_cpu(p):
    f = open(f"/proc/{p.pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")

def rooms_flood(binary, args, members=21, rooms=1000, messages=500):
    """Members join many rooms each; then what one bystander's message costs."""
    p, addr = start(binary, args)
    joined = 0
    socks = []
    for m in range(members):
        s = upgrade(addr)
        ws_text(s, {"type": "hello", "name": f"m{m}", "id": 0}); read_until(s, b"ack")
        for r in range(rooms):
            ws_text(s, {"type": "join", "room": f"r{m}-{r}", "id": r + 1})
            data = read_until(s, b'"id":%d' % (r + 1))
            joined += b'"type":"ack"' in data
        socks.append(s)
    b = upgrade(addr)
    ws_text(b, {"type": "hello", "name": "bystander", "id": 0}); read_until(b, b"ack")
    ws_text(b, {"type": "join", "room": "quiet", "id": 1}); read_until(b, b"presence")
    c0, t0 = server_cpu(p), time.time()
    for i in range(messages):
        ws_text(b, {"type": "message", "room": "quiet", "text": "hi", "id": 10 + i})
        read_until(b, b'"id":%d' % (10 + i))
    c1 = server_cpu(p)
    p.kill()
    return dict(joins=joined, bystander_cpu_us_per_message=round((c1 - c0) * 1e6 / messages))

if __name__ == "__main__":
    what, binary = sys.argv[1], sys.argv[2]
    args = sys.argv[3:]
    print(what, json.dumps(globals()[what](binary, args)))
