"""Calls per echoed message from a callgrind file: every function of the project, of
simdutf8 and the system calls of the path that is called at least every other message,
with its calls divided by N (one whole turn of the loop each: poll to poll).

    python3 callgrind.py OUT N
"""
import collections
import re
import sys

path, n = sys.argv[1], int(sys.argv[2])
names, calls, callee = {}, collections.Counter(), None


def name(token):
    match = re.match(r"\((\d+)\)(?: (.*))?", token)
    if not match:
        return token
    if match.group(2):
        names[match.group(1)] = match.group(2)
    return names.get(match.group(1), token)


for line in open(path, errors="replace"):
    if line.startswith(("fn=", "cfn=")):
        named = name(line.split("=", 1)[1].rstrip("\n"))
        if line.startswith("cfn="):
            callee = named
    elif line.startswith("calls="):
        calls[callee] += int(line[6:].split()[0])


def short(name):
    for _ in range(5):
        name = re.sub(r"<[^<>]*>", "", name)
    return name


keep = re.compile(r"rfc6455|simdutf8|^(epoll_wait|sendmsg|recv|read|writev)$")
rows = sorted(((c / n, f) for f, c in calls.items() if keep.search(f) and c / n >= 0.5),
              key=lambda row: (-row[0], row[1]))
server = [row for row in rows if "::server::" in row[1] or "::servers::" in row[1]]
print(f"functions called per message: {len(rows)}, calls: {sum(r[0] for r in rows):.1f}; "
      f"of the server: {len(server)}, calls: {sum(r[0] for r in server):.1f}")
for per, function in rows:
    print(f"  {per:5.2f}  {short(function)}")
