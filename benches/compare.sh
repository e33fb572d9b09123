#!/usr/bin/env bash
# Before and after a change, side by side in one sitting: the codec benchmarks and the
# echo and fan-out load of `rfc6455 echo` / `rfc6455 serve`, from two checkouts. Rounds
# alternate between the two builds, so that the machine's drift falls on both alike.
# Run it with the same checkout twice to measure the noise.
#
#   git worktree add /tmp/before <rev>
#   bash benches/compare.sh /tmp/before . [ROUNDS] [all|codec|load]   # default 5, all
#
# Codec: criterion's median estimate (ns) of each decode/encode/reassemble row, each
# checkout's bench run in turn (criterion runs its own samples). Load: messages/s and
# server CPU per message (µs, from /proc) of examples/loadgen against each build's
# server, the median of ROUNDS runs after one uncounted run each.
set -euo pipefail
before=$(cd "$1" && pwd); after=$(cd "$2" && pwd); rounds="${3:-5}"; only="${4:-all}"
cd "$(dirname "$0")/.."
estimates=""
. benches/lib.sh
for tree in "$before" "$after"; do
  (cd "$tree" && cargo build --release --workspace --examples --bins --features rfc6455/tls --quiet)
done

if [ "$only" != load ]; then
echo "== codec (cargo bench --bench codec; median ns per iteration)"
# Each side's estimates are copied out before the other side runs: with the same
# checkout given twice (the noise), both runs write the same target/criterion.
estimates=$(mktemp -d)
for side in before after; do
  tree=$before; [ "$side" = after ] && tree=$after
  (cd "$tree" && cargo bench --bench codec --quiet -- 'decode|encode|reassemble' >/dev/null 2>&1)
  mkdir -p "$estimates/$side"
  for group in decode encode reassemble; do cp -r "$tree/target/criterion/$group" "$estimates/$side/"; done
done
python3 - "$estimates/before" "$estimates/after" <<'PY'
import json, os, sys
rows = {}
for side, root in (("before", sys.argv[1]), ("after", sys.argv[2])):
    for group in ("decode", "encode", "reassemble"):
        for dirpath, _, files in os.walk(os.path.join(root, group)):
            if "estimates.json" in files and dirpath.endswith("/new"):
                name = os.path.relpath(os.path.dirname(dirpath), root)
                with open(os.path.join(dirpath, "estimates.json")) as f:
                    rows.setdefault(name, {})[side] = json.load(f)["median"]["point_estimate"]
print(f"{'benchmark':52} {'before':>10} {'after':>10} {'after/before':>12}")
for name in sorted(rows):
    r = rows[name]
    peer = any(p in name for p in ("tungstenite", "memcpy"))
    if peer or "before" not in r or "after" not in r:
        continue
    print(f"{name:52} {r['before']:10.1f} {r['after']:10.1f} {r['after'] / r['before']:12.3f}")
PY
fi
[ "$only" = codec ] && { rm -rf "$estimates"; exit 0; }

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  [ -z "$estimates" ] || rm -rf "$estimates"
}
trap cleanup EXIT
hz=$(getconf CLK_TCK)
loadgen="$after/target/release/examples/loadgen"
# measured PID ARGS...: one loadgen run (--raw) and the server's CPU µs per message.
measured() {
  local pid=$1; shift
  local t0 t1 line
  t0=$(cpu_ticks "$pid"); line=$("$loadgen" "$@" --raw); t1=$(cpu_ticks "$pid")
  awk -v t=$((t1 - t0)) -v hz="$hz" '{printf "%s %.2f\n", $0, t * 1e6 / hz / ($7 > 0 ? $7 : 1)}' <<<"$line"
}

echo
echo "== echo load (rfc6455 echo, one loop; msg/s and server CPU µs/msg, median of $rounds)"
"$before/target/release/rfc6455" echo --addr 127.0.0.1:9131 --max-rate 0 --threads 1 2>/dev/null & pids+=($!); bpid=$!
"$after/target/release/rfc6455" echo --addr 127.0.0.1:9132 --max-rate 0 --threads 1 2>/dev/null & pids+=($!); apid=$!
wait_for_port 9131; wait_for_port 9132
workloads=(
  "latency 1x16B depth1:-c 1 -s 16 -d 1 -m 20000"
  "50 conns x16B depth16:-c 50 -s 16 -d 16 -m 4000"
  "10 conns x64KiB depth4:-c 10 -s 65536 -d 4 -m 4000"
)
printf '%-24s %12s %12s %8s %9s %9s %8s\n' workload before/s after/s ratio b_srv_us a_srv_us ratio
for workload in "${workloads[@]}"; do
  name="${workload%%:*}"; args="${workload#*:}"
  # shellcheck disable=SC2086
  { measured $bpid ws://127.0.0.1:9131/ $args -t 20; measured $apid ws://127.0.0.1:9132/ $args -t 20; } >/dev/null
  b=(); a=()
  for _ in $(seq 1 "$rounds"); do
    # shellcheck disable=SC2086
    b+=("$(measured $bpid ws://127.0.0.1:9131/ $args -t 20)")
    # shellcheck disable=SC2086
    a+=("$(measured $apid ws://127.0.0.1:9132/ $args -t 20)")
  done
  col() { local c=$1; shift; printf '%s\n' "$@" | awk -v c="$c" '{print $c}' | median; }
  br=$(col 1 "${b[@]}"); ar=$(col 1 "${a[@]}"); bc=$(col 9 "${b[@]}"); ac=$(col 9 "${a[@]}")
  awk -v n="$name" -v br="$br" -v ar="$ar" -v bc="$bc" -v ac="$ac" \
    'BEGIN { printf "%-24s %12s %12s %8.3f %9s %9s %8.3f\n", n, br, ar, ar / br, bc, ac, (bc > 0 ? ac / bc : 0) }'
done

echo
echo "== fan-out (rfc6455 serve, one loop, no deflate: 1 publisher, 200 x 64 B, 1000 members;"
echo "   deliveries/s, median of $rounds)"
"$before/target/release/rfc6455" serve --addr 127.0.0.1:9133 --max-rate 0 --threads 1 --no-deflate 2>/dev/null & pids+=($!)
"$after/target/release/rfc6455" serve --addr 127.0.0.1:9134 --max-rate 0 --threads 1 --no-deflate 2>/dev/null & pids+=($!)
wait_for_port 9133; wait_for_port 9134
b=(); a=()
for _ in $(seq 1 "$rounds"); do
  b+=("$("$loadgen" ws://127.0.0.1:9133/ --fanout 1000 --publish 200 --raw | awk '{print $1}')")
  a+=("$("$loadgen" ws://127.0.0.1:9134/ --fanout 1000 --publish 200 --raw | awk '{print $1}')")
done
br=$(printf '%s\n' "${b[@]}" | median); ar=$(printf '%s\n' "${a[@]}" | median)
awk -v br="$br" -v ar="$ar" 'BEGIN { printf "%-24s %12s %12s %8.3f\n", "fan-out 1000 members", br, ar, ar / br }'
