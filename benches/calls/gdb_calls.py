"""gdb -x gdb_calls.py: records, from each return of epoll_wait (mio's Poll::poll) to
each sendmsg, every call of a function of this project and of simdutf8 (the UTF-8
checks), with its caller and call site; writes the spans to $CALLS_OUT (JSON).

In a debug build nothing is inlined: each call written in the source is a frame. In a
release build (with debug info), calls inlined are marked so; pass the function names
of the debug build in $CALLS_NAMES, as gdb lists only the functions that kept a body.
$CALLS_SAVE_NAMES: where to write the names of this binary's functions.
"""
import json
import os

import gdb

OUT = os.environ["CALLS_OUT"]
record = None  # the calls since epoll_wait last returned
spans = []


def name_of(frame):
    function = frame.function()
    return function.name if function else (frame.name() or "?")


class Returned(gdb.Breakpoint):
    """At the return address of epoll_wait: a plain breakpoint, as a FinishBreakpoint
    does not fire when the caller is inlined (a release build)."""

    def stop(self):
        global record
        record = []
        return False


returns = set()


class Polled(gdb.Breakpoint):
    def stop(self):
        pc = gdb.newest_frame().older().pc()
        if pc not in returns:
            returns.add(pc)
            Returned(f"*{pc:#x}", internal=True)
        return False


class Call(gdb.Breakpoint):
    def stop(self):
        if record is None:
            return False
        frame = gdb.newest_frame()
        caller = frame.older()
        function = frame.function()
        site = caller.find_sal() if caller else None
        record.append({
            "fn": name_of(frame),
            "caller": name_of(caller) if caller else "",
            "file": function.symtab.filename if function and function.symtab else "?",
            "line": function.line if function else 0,
            "site": f"{site.symtab.filename if site and site.symtab else '?'}:{site.line if site else 0}",
            "inline": frame.type() == gdb.INLINE_FRAME,
            "cfa": int(caller.read_register("sp")) if caller else 0,
        })
        return False


class Sent(gdb.Breakpoint):
    def stop(self):
        global record
        if record is not None:
            spans.append(record)
            with open(OUT, "w") as out:
                json.dump(spans, out, indent=1)
            record = None
        return False


gdb.execute("set pagination off")
gdb.execute("set breakpoint pending on")
gdb.execute("set print thread-events off")
Polled("epoll_wait", internal=True)
Sent("sendmsg", internal=True)
Sent("writev", internal=True)
names = set()
for regex in [r"^rfc6455::", r"^rfc6455_cli::", r"^simdutf8::"]:
    for line in gdb.execute(f"info functions {regex}", to_string=True).splitlines():
        line = line.strip()
        if not line or line.startswith(("All functions", "File ", "Non-debugging")):
            continue
        if line.split()[0].rstrip(":").isdigit():  # "123:	static fn rfc6455::…(…);"
            line = line.split(None, 1)[1]
        name = line.replace("static ", "").replace("fn ", "", 1).split("(")[0].strip()
        if "::" in name:
            names.add(name.rstrip(";"))
if os.environ.get("CALLS_NAMES"):
    names |= set(open(os.environ["CALLS_NAMES"]).read().split("\n")) - {""}
if os.environ.get("CALLS_SAVE_NAMES"):
    open(os.environ["CALLS_SAVE_NAMES"], "w").write("\n".join(sorted(names)))
# Not on the path of a message: formatting (logs) and drops.
skip = ("::fmt", "core::fmt", "Debug", "Display", "drop_in_place", "log::")
count = 0
for name in sorted(names):
    if any(s in name for s in skip):
        continue
    try:
        Call(name, internal=True)
        count += 1
    except gdb.error:
        pass
print(f"breakpoints on {count} functions")
