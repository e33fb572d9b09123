#!/usr/bin/env bash
# Instructions per decoded 16-byte frame, before and after a change, counted by
# valgrind's callgrind: the codec benchmark's smallest rows, where per-frame overhead is
# all there is, without the machine's noise (criterion's medians on this shared machine
# move by 2-10 % between two runs of one build).
#
#   bash benches/instructions/count.sh BEFORE_CHECKOUT AFTER_CHECKOUT
#
# The program (decode16.rs) is copied into each checkout's examples/ for the build and
# removed after. The setup (encoding the frames once) is counted too and is the same
# on both sides; the ratio of the totals is what to quote.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
frames=$((10 * 65536))
printf '%-8s %14s %14s %8s\n' api before/frame after/frame ratio
declare -A total
for side in before after; do
  tree=$(cd "$([ $side = before ] && echo "$1" || echo "$2")" && pwd)
  cp "$here/decode16.rs" "$tree/examples/instructions_decode16.rs"
  trap 'rm -f "$tree/examples/instructions_decode16.rs"' EXIT
  (cd "$tree" && cargo build --release --quiet --example instructions_decode16)
  rm -f "$tree/examples/instructions_decode16.rs"
  for api in owned lent receive; do
    out=$(mktemp)
    valgrind --tool=callgrind --callgrind-out-file="$out" \
      "$tree/target/release/examples/instructions_decode16" "$api" 2>&1 |
      sed -n 's/.*Collected : \([0-9]*\).*/\1/p' >"$out.total"
    total[$side.$api]=$(cat "$out.total")
    rm -f "$out" "$out.total"
  done
done
for api in owned lent receive; do
  awk -v api=$api -v b="${total[before.$api]}" -v a="${total[after.$api]}" -v n=$frames \
    'BEGIN { printf "%-8s %14.1f %14.1f %8.3f\n", api, b / n, a / n, a / b }'
done
