#!/usr/bin/env python3
"""Import circles between the files of src/: each layer must use only the ones below it.

Reads every src/**/*.rs, takes the paths in its code (comments and string literals
removed): `use` statements (braced trees, `as`, `self`, globs) and paths written inline
(`crate::close::CloseCode`, `super::ConnId`). Each path is resolved to the file that
defines where it ends: a module's file, and through `pub use` re-exports to the file
that defines the item (`crate::Role` is frame.rs, not lib.rs). A file importing from
another is an edge; a `mod` declaration is not one (a parent declaring its children
is the module tree, not a use). Every cycle of that graph is reported, each edge with
the line that makes it.

    python3 tests/import_circles.py             # exit 1 when there is a cycle
    python3 tests/import_circles.py --graph     # also print every edge
    python3 tests/import_circles.py --known F   # exit 1 on a cycle not listed in F,
                                                # or on one listed there that is gone
    python3 tests/import_circles.py self-test   # shows that a circle is caught
    python3 tests/import_circles.py --src DIR   # another tree than ./src

`--known` is for debt written down (tests/import_circles.known, one cycle a line as
printed, `#` comments): a new circle fails, and so does a listed one that was broken,
so that the list is kept true.
"""

import os
import re
import sys
import tempfile

CHAR = re.compile(r"'(?:\\(?:u\{[0-9a-fA-F]{1,6}\}|x[0-9a-fA-F]{2}|.)|[^\\'\n])'")
RAW_STRING = re.compile(r'b?r(#*)"')


def strip(text):
    """The code without comments, string and char literals, nor the paths of
    `pub(in crate::x)` (a visibility, not a use): blanked, lines kept."""
    out, i, n = [], 0, len(text)

    def blank(s):
        return re.sub(r"[^\n]", " ", s)

    while i < n:
        c = text[i]
        if text.startswith("//", i):
            end = text.find("\n", i)
            end = n if end < 0 else end
            out.append(blank(text[i:end]))
            i = end
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(blank(text[i:j]))
            i = j
        elif (m := RAW_STRING.match(text, i)) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            close = '"' + m.group(1)
            end = text.find(close, m.end())
            end = n if end < 0 else end + len(close)
            out.append(blank(text[i:end]))
            i = end
        elif c == '"' or (c == "b" and text.startswith('b"', i) and not (i and (text[i - 1].isalnum() or text[i - 1] == "_"))):
            j = i + (2 if c == "b" else 1)
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(blank(text[i : j + 1]))
            i = j + 1
        elif c == "'" and (m := CHAR.match(text, i)):
            out.append(blank(m.group(0)))
            i = m.end()
        else:
            out.append(c)
            i += 1
    code = "".join(out)
    return re.sub(r"\bpub\s*\(\s*in\s+[^)]*\)", lambda m: "pub" + " " * (len(m.group(0)) - 3), code)


def expand(tree):
    """`a::{b, c::{d as e, self}}` -> [(['a','b'], 'b'), (['a','c','d'], 'e'), (['a','c'], 'c')]."""
    tokens = re.findall(r"::|[{},*]|\bas\b|[A-Za-z_][A-Za-z0-9_]*", tree)
    pos = 0

    def parse(prefix):
        nonlocal pos
        found, path = [], list(prefix)
        while pos < len(tokens):
            t = tokens[pos]
            if t == "{":
                pos += 1
                while pos < len(tokens) and tokens[pos] != "}":
                    found += parse(path)
                    if pos < len(tokens) and tokens[pos] == ",":
                        pos += 1
                pos += 1
                return found
            if t in (",", "}"):
                break
            if t == "::":
                pos += 1
                continue
            if t == "as":
                alias = tokens[pos + 1]
                pos += 2
                return found + [(path, alias)]
            pos += 1
            if t == "self":
                path = path if path else ["self"]
            else:
                path = path + [t]
        if path and path != list(prefix):
            found.append((path, path[-1]))
        elif path and path == list(prefix) and prefix:
            found.append((path, path[-1]))  # `{self}`
        return found

    result = []
    while pos < len(tokens):
        result += parse([])
        pos += 1
    return result


class Crate:
    def __init__(self, src):
        self.src = src
        self.modules = {}  # module path (tuple) -> file
        for root, _, files in os.walk(src):
            for name in files:
                if not name.endswith(".rs"):
                    continue
                rel = os.path.relpath(os.path.join(root, name), src)
                parts = rel[:-3].split(os.sep)
                if parts == ["lib"] or parts == ["main"]:
                    parts = []
                elif parts[-1] == "mod":
                    parts = parts[:-1]
                self.modules.setdefault(tuple(parts), os.path.join(src, rel))
        self.code = {f: strip(open(f, encoding="utf-8").read()) for f in self.modules.values()}
        self.module_of = {f: m for m, f in self.modules.items()}
        # Per module: name -> (module it is resolved from, path) of each `pub use`.
        self.reexports = {m: {} for m in self.modules}
        for m, f in self.modules.items():
            for use in self.uses(f):
                vis, start, path, alias = use[:4]
                if vis:
                    self.reexports[m][alias] = (self.base(m, start, path))

    def uses(self, file):
        """(is pub, offset, path, alias) of every leaf of every `use` in the file."""
        code = self.code[file]
        for m in re.finditer(r"(\bpub\s*(?:\([^)]*\))?\s*)?\buse\s+([^;]+);", code):
            for path, alias in expand(m.group(2)):
                yield bool(m.group(1)), m.start(2), path, alias

    def inline_mod_depth(self, file, offset):
        """How many inline `mod x { .. }` blocks of `file` enclose `offset`."""
        code, depth = self.code[file], 0
        for m in re.finditer(r"\bmod\s+\w+\s*\{", code):
            if m.start() > offset:
                break
            level, j = 1, m.end()
            while j < len(code) and level:
                level += {"{": 1, "}": -1}.get(code[j], 0)
                j += 1
            if j > offset:
                depth += 1
        return depth

    def base(self, module, offset, path, file=None):
        """Where a path starts: (module, rest of the path), or None for another crate."""
        file = file or self.modules[module]
        head, rest = path[0], path[1:]
        if head == "crate":
            return (), rest
        if head in ("self", "Self"):
            return module, rest
        if head == "super":
            inline = self.inline_mod_depth(file, offset)
            mod = module
            while path and path[0] == "super":
                if inline:
                    inline -= 1  # `super` of an inline module is this file
                else:
                    mod = mod[:-1]
                path = path[1:]
            return mod, path
        if module + (head,) in self.modules:
            return module, path  # a child module, named from its parent (2018 paths)
        return None

    def resolve(self, start, depth=0):
        """The file a path (module, segments) ends in, following `pub use`."""
        if start is None:
            return None
        mod, segs = start
        while segs:
            child = mod + (segs[0],)
            if child in self.modules:
                mod, segs = child, segs[1:]
                continue
            again = self.reexports[mod].get(segs[0])
            if again is not None and depth < 16:
                base = again
                if base is None:
                    return None  # an item of another crate, re-exported
                return self.resolve((base[0], base[1] + segs[1:]), depth + 1)
            break
        return self.modules[mod]

    def edges(self):
        """{(from file, to file): line} of every import between two files."""
        found = {}
        for file, code in self.code.items():
            module = self.module_of[file]
            paths = [(off, path) for _, off, path, _ in self.uses(file)]
            use_spans = [m.span() for m in re.finditer(r"\buse\s+[^;]+;", code)]
            for m in re.finditer(r"(?<![\w$:])(?:crate|super|self)(?:\s*::\s*[A-Za-z_]\w*)+", code):
                if any(a <= m.start() < b for a, b in use_spans):
                    continue
                paths.append((m.start(), re.findall(r"[A-Za-z_]\w*", m.group(0))))
            for off, path in paths:
                target = self.resolve(self.base(module, off, path, file))
                if target and target != file:
                    line = code.count("\n", 0, off) + 1
                    found.setdefault((file, target), line)
        return found


def cycles(edges):
    """Every elementary cycle (each once, from its smallest file)."""
    graph = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
    nodes = sorted(set(graph) | {b for _, b in edges})
    found = []
    for start in nodes:
        stack = [(start, [start])]
        while stack:
            node, path = stack.pop()
            for nxt in sorted(graph.get(node, ())):
                if nxt == start:
                    found.append(path)
                elif nxt > start and nxt not in path:
                    stack.append((nxt, path + [nxt]))
    return sorted(found, key=lambda c: (len(c), c))


def circles(found):
    """The cycles grouped by the files they share (one group per strongly connected set)."""
    groups = []
    for cycle in found:
        joined = [g for g in groups if any(set(cycle) & set(c) for c in g)]
        merged = [cycle] + [c for g in joined for c in g]
        groups = [g for g in groups if g not in joined] + [merged]
    return [sorted(g, key=lambda c: (len(c), c)) for g in groups]


def report(src, show_graph=False, out=sys.stdout, known=()):
    crate = Crate(src)
    edges = crate.edges()
    name = lambda f: os.path.relpath(f, os.path.dirname(os.path.abspath(src)))
    if show_graph:
        for (a, b), line in sorted(edges.items()):
            print(f"  {name(a)} -> {name(b)}  ({name(a)}:{line})", file=out)
    found = cycles(edges)
    for circle in circles(found):
        members = sorted({f for c in circle for f in c})
        print(f"circle of {len(members)} files ({len(circle)} cycles): {', '.join(name(f) for f in members)}", file=out)
        for cycle in circle:
            ring = cycle + [cycle[0]]
            line = " -> ".join(name(f) for f in ring)
            print(f"  {'known' if line in known else 'cycle'}: {line}", file=out)
            for a, b in zip(ring, ring[1:]):
                print(f"      {name(a)}:{edges[(a, b)]} imports {name(b)}", file=out)
    files = len(crate.modules)
    print(f"{files} files, {len(edges)} imports between them, {len(found)} cycle{'' if len(found) == 1 else 's'}", file=out)
    return [" -> ".join(name(f) for f in c + [c[0]]) for c in found]


def self_test():
    """A tree with a circle must fail, the same tree without it must pass."""
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "src")
        os.makedirs(os.path.join(src, "learn"))
        files = {
            "lib.rs": "mod close;\nmod error;\npub mod learn;\npub use close::CloseCode;\n",
            "close.rs": "/// Not an import: crate::error::ProtocolError\npub struct CloseCode;\n",
            "error.rs": 'use crate::CloseCode;\nconst S: &str = "crate::learn::tap";\n',
            "learn/mod.rs": "pub mod tap;\npub mod inspect;\n",
            "learn/tap.rs": "pub use crate::learn::shared::Violation;\n",
            "learn/inspect.rs": "use crate::learn::{tap::{self, Violation as V}};\n",
        }
        for path, text in files.items():
            with open(os.path.join(src, path), "w") as f:
                f.write(text)
        quiet = open(os.devnull, "w")
        assert report(src, out=quiet) == [], "no cycle expected"
        with open(os.path.join(src, "close.rs"), "a") as f:
            f.write("fn f() -> crate::error::X { todo!() }\n")
        with open(os.path.join(src, "learn/tap.rs"), "a") as f:
            f.write("mod t {\n    use super::super::inspect::X;\n}\n")
        found = report(src, out=quiet)
        expected = [
            "src/close.rs -> src/error.rs -> src/close.rs",
            "src/learn/inspect.rs -> src/learn/tap.rs -> src/learn/inspect.rs",
        ]
        assert found == expected, found
    print("self-test: a circle is reported, and none where there is none")


def main(argv):
    if argv[:1] == ["self-test"]:
        self_test()
        return 0
    src = "src"
    if "--src" in argv:
        src = argv[argv.index("--src") + 1]
    known = []
    if "--known" in argv:
        path = argv[argv.index("--known") + 1]
        with open(path, encoding="utf-8") as f:
            known = [l.strip() for l in f if l.strip() and not l.startswith("#")]
    found = report(src, show_graph="--graph" in argv, known=known)
    new = [c for c in found if c not in known]
    gone = [c for c in known if c not in found]
    for cycle in gone:
        print(f"gone (remove it from the list of known cycles): {cycle}")
    if known:
        print(f"{len(new)} new cycle{'' if len(new) == 1 else 's'}, {len(found) - len(new)} known, {len(gone)} gone")
    return 1 if new or gone else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
