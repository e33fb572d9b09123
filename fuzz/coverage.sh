#!/usr/bin/env bash
# Line coverage reached by the fuzz corpora: every target is run over its corpus
# (fuzz/corpus/TARGET) with `cargo fuzz coverage`, the profiles are merged, and the lines of
# the sans-IO core and of the event-loop server are counted per file.
#
#   bash fuzz/coverage.sh [--missing] [TARGET...]
#
# --missing also lists the core's uncovered lines (file:line). Needs the nightly toolchain
# with llvm-tools (added here if missing; Debian's llvm does not read nightly's profiles)
# and cargo-fuzz. Output: a table, and fuzz/coverage/TARGET.lcov for other tools.
set -euo pipefail
cd "$(dirname "$0")"

missing=0
if [ "${1:-}" = "--missing" ]; then
  missing=1
  shift
fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=($(sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.toml | grep -v '^rfc6455-fuzz$'))
fi

command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
rustup component list --toolchain nightly --installed | grep -q '^llvm-tools' ||
  rustup component add llvm-tools-preview --toolchain nightly
bin_dir="$(rustc +nightly --print sysroot)/lib/rustlib/$(rustc +nightly -vV | sed -n 's/^host: //p')/bin"
host="$(rustc +nightly -vV | sed -n 's/^host: //p')"

for target in "${targets[@]}"; do
  echo "==> $target" >&2
  cargo +nightly fuzz coverage "$target" "corpus/$target" >"target/coverage-$target.log" 2>&1 ||
    { tail -20 "target/coverage-$target.log" >&2; exit 1; }
  # One report per target, over its own binary (cargo fuzz puts the instrumented binaries
  # under the crate's own target/ directory); the lines reached are their union. Merging
  # the profiles of separately built binaries instead loses counters ("mismatched data").
  "$bin_dir/llvm-cov" export -format=lcov -instr-profile="coverage/$target/coverage.profdata" \
    "target/$host/coverage/$host/release/$target" \
    --ignore-filename-regex='/\.cargo/|/rustc/|/fuzz/|/tests/' >"coverage/$target.lcov"
done

# One row per file of the core and of the server: lines instrumented, lines reached,
# percent; the core's total (frame, connection, handshake, utf8, close) and the server's.
python3 - "$missing" <<'PY'
import re, sys
from collections import defaultdict
lines, hit = defaultdict(set), defaultdict(set)
current = None
import glob
rows = [row for path in sorted(glob.glob("coverage/*.lcov")) for row in open(path)]
for row in rows:
    if row.startswith("SF:"):
        current = re.sub(r".*/src/", "src/", row[3:].strip())
    elif row.startswith("DA:"):
        number, count = row[3:].split(",")[:2]
        lines[current].add(int(number))
        if int(count) > 0:
            hit[current].add(int(number))
core = lambda f: re.fullmatch(r"src/(frame|connection|utf8|close)\.rs|src/handshake/.*", f)
server = lambda f: f.startswith("src/server/")
totals = {"CORE (sans-IO)": [0, 0], "SERVER (src/server/)": [0, 0]}
print(f"{'file':<34} {'lines':>7} {'reached':>7} {'cover':>7}")
for f in sorted(lines):
    if not (core(f) or server(f)):
        continue
    n, h = len(lines[f]), len(hit[f])
    print(f"{f:<34} {n:>7} {h:>7} {100 * h / n:>6.1f}%")
    t = totals["CORE (sans-IO)" if core(f) else "SERVER (src/server/)"]
    t[0] += n
    t[1] += h
for name, (n, h) in totals.items():
    print(f"{name:<34} {n:>7} {h:>7} {100 * h / max(n, 1):>6.1f}%")
if sys.argv[1] == "1":
    print("\nuncovered lines of the core (file:line):")
    for f in sorted(lines):
        if core(f):
            for number in sorted(lines[f] - hit[f]):
                print(f"{f}:{number}")
PY
