#!/usr/bin/env bash
# Line coverage reached by the fuzz corpora: every target is run over its corpus
# (fuzz/corpus/TARGET) with `cargo fuzz coverage`, the profiles are merged, and the lines of
# the sans-IO core and of the event-loop server are counted per file.
#
#   bash fuzz/coverage.sh [--missing] [TARGET...]
#
# --missing also lists the core's uncovered lines (file:line). Needs the nightly toolchain
# with llvm-tools (added here if missing; Debian's llvm does not read nightly's profiles)
# and cargo-fuzz. Output: a table, and fuzz/coverage/lcov.info for other tools.
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

objects=()
profiles=()
for target in "${targets[@]}"; do
  echo "==> $target" >&2
  cargo +nightly fuzz coverage "$target" "corpus/$target" >"target/coverage-$target.log" 2>&1 ||
    { tail -20 "target/coverage-$target.log" >&2; exit 1; }
  profiles+=("coverage/$target/coverage.profdata")
  # cargo fuzz puts the instrumented binaries under the crate's own target/ directory.
  objects+=(-object "target/$host/coverage/$host/release/$target")
done

rm -f coverage/missing.txt
"$bin_dir/llvm-profdata" merge -sparse "${profiles[@]}" -o coverage/merged.profdata
"$bin_dir/llvm-cov" export -format=lcov -instr-profile=coverage/merged.profdata \
  "${objects[@]:1}" --ignore-filename-regex='/\.cargo/|/rustc/|/fuzz/|/tests/' >coverage/lcov.info

# One row per file of the crate: lines instrumented, lines reached, percent; the core's
# total (frame, connection, handshake, utf8, close) and the server's.
awk -v missing="$missing" '
  /^SF:/ { file = substr($0, 4); sub(/.*\/src\//, "src/", file) }
  /^DA:/ {
    split(substr($0, 4), f, ",")
    key = file SUBSEP f[1]
    if (!(key in seen)) { seen[key] = 1; lines[file]++ }
    if (f[2] > 0 && !(key in hit)) { hit[key] = 1; reached[file]++ }
  }
  END {
    printf "%-34s %7s %7s %7s\n", "file", "lines", "reached", "cover"
    n = asorti(lines, files)
    for (i = 1; i <= n; i++) {
      f = files[i]
      core = (f ~ /^src\/(frame|connection|utf8|close)\.rs$/ || f ~ /^src\/handshake\//)
      server = (f ~ /^src\/server\//)
      if (!core && !server) continue
      printf "%-34s %7d %7d %6.1f%%\n", f, lines[f], reached[f], 100 * reached[f] / lines[f]
      if (core) { cl += lines[f]; cr += reached[f] }
      if (server) { sl += lines[f]; sr += reached[f] }
    }
    printf "%-34s %7d %7d %6.1f%%\n", "CORE (sans-IO)", cl, cr, 100 * cr / cl
    printf "%-34s %7d %7d %6.1f%%\n", "SERVER (src/server/)", sl, sr, 100 * sr / sl
    for (key in seen) {
      split(key, k, SUBSEP)
      if (!(key in hit) && (k[1] ~ /^src\/(frame|connection|utf8|close)\.rs$/ || k[1] ~ /^src\/handshake\//))
        print k[1] ":" k[2] > "coverage/missing.txt"
    }
  }' coverage/lcov.info
if [ "$missing" = 1 ] && [ -s coverage/missing.txt ]; then
  echo
  echo "uncovered lines of the core (file:line):"
  sort -t: -k1,1 -k2,2n coverage/missing.txt
fi
