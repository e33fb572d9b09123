"""The last span that gdb_calls.py recorded (an echoed message: from the return of
epoll_wait to its sendmsg), summed up: the calls of the server (src/server/), the
calls it makes into the core, the handler (cli/src/) and simdutf8, in order.

    python3 spans.py OUT.json [--release]
"""
import json
import re
import sys

span = json.load(open(sys.argv[1]))[-1]
if "--release" in sys.argv:
    # Inlined calls are no calls; a function may have several breakpoint locations hit
    # one after the other in one call (same function, same caller stack pointer).
    kept = []
    for call in span:
        if call["inline"] or (kept and (kept[-1]["fn"], kept[-1]["cfa"]) == (call["fn"], call["cfa"])):
            continue
        kept.append(call)
    span = kept


def short(name):
    for _ in range(5):
        name = re.sub(r"<[^<>]*>", "", name)
    return name.replace("{impl#0}::", "").replace("rfc6455::", "")


def rel(path):
    return re.sub(r".*?/?(cli/src/|src/)", r"\1", path, count=1)


def where(path):
    path = rel(path)
    if path.startswith("src/server/"):
        return "server"
    if path.startswith("cli/src/") or path.startswith("src/servers.rs"):
        return "handler"
    return "other"


server, out, files, lines = 0, 0, set(), []
for call in span:
    kind, caller = where(call["file"]), where(call["site"].rsplit(":", 1)[0])
    if kind == "server":
        server += 1
        files.add(rel(call["file"]))
        lines.append(f"  {short(call['fn'])}  [{rel(call['file'])}:{call['line']}]  called at {rel(call['site'])}")
    elif caller in ("server", "handler") and kind != caller:
        out += 1
        what = "handler" if kind == "handler" else ("simdutf8" if "simdutf8" in call["fn"] else "core")
        lines.append(f"  -> {what}: {short(call['fn'])}  called at {rel(call['site'])}")
checks = [rel(c["site"]) for c in span if c["fn"] == "simdutf8::basic::from_utf8"]
print(f"calls of the server: {server}, in {len(files)} files: {', '.join(sorted(files))}")
print(f"calls out of the server (core, handler, simdutf8): {out}; in all {server + out}")
print(f"UTF-8 checks (simdutf8::basic::from_utf8): {len(checks)}, at {', '.join(checks)}")
print("\n".join(lines))
