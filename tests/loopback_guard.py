#!/usr/bin/env python3
"""Watches every socket that the test suite's processes listen on, and fails if one
of them is reachable from beyond this machine (bound to anything but 127.0.0.0/8 or
::1). tests/run.sh starts it in the background around the whole suite.

    loopback_guard.py watch ROOT_PID REPORT   poll until ROOT_PID exits or SIGTERM;
                                              write a summary to REPORT
    loopback_guard.py check REPORT            exit 1 if REPORT names a violation
    loopback_guard.py self-test               prove the guard catches a listener it must

"A process of the suite" is ROOT_PID or any descendant of it (by the parent chain in
/proc). Listening means a TCP socket in LISTEN state, or a UDP socket bound with no
peer. Sockets are read from /proc/net/{tcp,tcp6,udp,udp6} and mapped to processes by
their inodes in /proc/PID/fd, so no tool beyond Python is needed.
"""

import os
import signal
import socket
import subprocess
import sys
import time

POLL_SECONDS = 0.2
TCP_LISTEN = "0A"
UDP_UNCONNECTED = "07"


def parse_address(hex_address):
    """'0100007F:1F90' -> ('127.0.0.1', 8080); IPv6 too."""
    host, port = hex_address.split(":")
    raw = bytes.fromhex(host)
    if len(raw) == 4:
        ip = socket.inet_ntop(socket.AF_INET, raw[::-1])
    else:
        # Four little-endian 32-bit words.
        words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
        ip = socket.inet_ntop(socket.AF_INET6, words)
    return ip, int(port, 16)


def is_loopback(ip):
    if ip.startswith("::ffff:"):
        ip = ip[len("::ffff:") :]
    return ip.startswith("127.") or ip == "::1"


def listening_sockets():
    """{inode: (proto, ip, port)} for listening TCP and unconnected UDP sockets."""
    found = {}
    for proto, state in (("tcp", TCP_LISTEN), ("tcp6", TCP_LISTEN), ("udp", UDP_UNCONNECTED), ("udp6", UDP_UNCONNECTED)):
        try:
            with open("/proc/net/" + proto) as table:
                next(table)
                for line in table:
                    fields = line.split()
                    if fields[3] != state:
                        continue
                    if proto.startswith("udp") and parse_address(fields[2])[1] != 0:
                        continue  # connected UDP: not listening
                    ip, port = parse_address(fields[1])
                    found[fields[9]] = (proto, ip, port)
        except OSError:
            continue
    return found


def socket_owners(inodes):
    """{inode: pid} for the inodes asked about."""
    owners = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        fd_dir = "/proc/%s/fd" % pid
        try:
            for fd in os.listdir(fd_dir):
                try:
                    link = os.readlink(os.path.join(fd_dir, fd))
                except OSError:
                    continue
                if link.startswith("socket:["):
                    inode = link[8:-1]
                    if inode in inodes:
                        owners[inode] = int(pid)
        except OSError:
            continue
    return owners


def parent(pid):
    try:
        with open("/proc/%d/stat" % pid) as stat:
            # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
            return int(stat.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def descends_from(pid, root):
    seen = 0
    while pid > 1 and seen < 64:
        if pid == root:
            return True
        pid = parent(pid)
        seen += 1
    return pid == root


def command_of(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()[:120]
    except OSError:
        return "?"


def scan(root, violations, allowed_seen, allowed=None):
    """Records the listening sockets of ROOT's process tree: those on an address that
    `allowed` accepts (by default: loopback) in `allowed_seen`, the others in
    `violations`."""
    allowed = allowed or is_loopback
    sockets = listening_sockets()
    if not sockets:
        return
    for inode, pid in socket_owners(set(sockets)).items():
        if not descends_from(pid, root):
            continue
        proto, ip, port = sockets[inode]
        key = (proto, ip, port, pid)
        if allowed(ip):
            allowed_seen.add(key)
        elif key not in violations:
            violations[key] = command_of(pid)


def watch(root, report):
    violations, loopback_seen = {}, set()
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    polls = 0
    while not stop and os.path.exists("/proc/%d" % root):
        scan(root, violations, loopback_seen)
        polls += 1
        time.sleep(POLL_SECONDS)
    with open(report, "w") as out:
        out.write("polls %d; loopback listeners seen %d; violations %d\n" % (polls, len(loopback_seen), len(violations)))
        for (proto, ip, port, pid), command in sorted(violations.items()):
            out.write("VIOLATION %s %s:%d pid %d: %s\n" % (proto, ip, port, pid, command))


def check(report):
    with open(report) as f:
        text = f.read()
    print("loopback guard: " + text.strip())
    return 1 if "VIOLATION" in text else 0


def self_test():
    """Proves the guard can fail, without opening anything to the network: address
    classes first, then the whole pipeline (/proc tables, socket owners, the process
    tree) on two children listening on 127.0.0.1 and 127.0.0.2, with only 127.0.0.2
    allowed: the first must be reported, the second not."""
    unspecified4 = socket.inet_ntop(socket.AF_INET, bytes(4))
    unspecified6 = socket.inet_ntop(socket.AF_INET6, bytes(16))
    cases = [("127.0.0.1", True), ("127.9.9.9", True), ("::1", True), ("::ffff:127.0.0.1", True),
             (unspecified4, False), (unspecified6, False), ("192.0.2.7", False), ("2001:db8::7", False),
             ("::ffff:192.0.2.7", False)]
    wrong = [(ip, want) for ip, want in cases if is_loopback(ip) != want]
    if wrong:
        print("loopback guard self-test FAILED: address classes %r" % wrong)
        return 1
    code = "import socket, time; s = socket.socket(); s.bind((%r, 0)); s.listen(); time.sleep(3)"
    children = [subprocess.Popen([sys.executable, "-c", code % host]) for host in ("127.0.0.1", "127.0.0.2")]
    violations, allowed_seen = {}, set()
    only_second = lambda ip: ip == "127.0.0.2"
    deadline = time.time() + 2.5
    while time.time() < deadline and not (violations and allowed_seen):
        scan(os.getpid(), violations, allowed_seen, only_second)
        time.sleep(0.05)
    for child in children:
        child.kill()
        child.wait()
    caught = [key for key in violations if key[1] == "127.0.0.1"]
    if not caught or not allowed_seen or len(violations) != 1:
        print("loopback guard self-test FAILED: violations %r, allowed %r" % (violations, allowed_seen))
        return 1
    print("loopback guard self-test: a listener outside the allowed addresses is caught, an allowed one is not")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["watch"] and len(sys.argv) == 4:
        watch(int(sys.argv[2]), sys.argv[3])
    elif sys.argv[1:2] == ["check"] and len(sys.argv) == 3:
        sys.exit(check(sys.argv[2]))
    elif sys.argv[1:] == ["self-test"]:
        sys.exit(self_test())
    else:
        sys.exit(__doc__)
