#!/usr/bin/env bash
# Fan-out across nodes (issue #14): one publisher, 1,000 members of one room, 64-byte
# texts, in three set-ups side by side, each started fresh for every round:
#   one node       `rfc6455 serve` alone, rooms in memory
#   one node+redis the same node with `--redis` (every message through a Lua script)
#   two nodes      two `serve --redis` processes sharing one redis-server; members
#                  alternate between them, the publisher is on the first
# Every node runs one event loop (`--threads 1`), so that two nodes are two loops.
# Prints the median deliveries/s and delivery latency (p50/p99) of ROUNDS runs, and
# the Redis round trips per published message (all nodes' /metrics, while publishing).
#
#   bash benches/cluster.sh [ROUNDS] [MEMBERS] [MESSAGES]   # defaults: 3 1000 200
#
# Needs redis-server (tests/setup.sh installs it). Everything listens on 127.0.0.1,
# on ports the kernel picks. The load generator shares the machine's cores with the
# nodes and Redis: compare the set-ups with each other, not with other machines.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-3}"
members="${2:-1000}"
messages="${3:-200}"

cargo build --release --workspace --examples --bins --features rfc6455/tls --quiet

pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; pids=(); }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# shellcheck source=benches/lib.sh
. benches/lib.sh

# node PORT [REDIS_PORT]: a rooms server with one loop, no rate limit.
node() {
  local extra=()
  [ -n "${2:-}" ] && extra=(--redis "redis://127.0.0.1:$2/")
  target/release/rfc6455 serve --addr "127.0.0.1:$1" --threads 1 --max-rate 0 \
    "${extra[@]}" 2>/dev/null & pids+=($!)
  wait_for_port "$1"
}

# run SETUP: one fan-out run, prints loadgen's raw line.
run() {
  trap cleanup EXIT  # it runs in a subshell: stop what it started, even on failure
  local a b r
  a=$(free_port); b=$(free_port); r=$(free_port)
  case "$1" in
    one-node)
      node "$a"
      target/release/examples/loadgen "ws://127.0.0.1:$a/" --raw \
        --fanout "$members" --publish "$messages" ;;
    one-node+redis)
      redis-server --port "$r" --bind 127.0.0.1 --save '' --appendonly no >/dev/null & pids+=($!)
      wait_for_port "$r"; node "$a" "$r"
      target/release/examples/loadgen "ws://127.0.0.1:$a/" --raw \
        --fanout "$members" --publish "$messages" --metrics "127.0.0.1:$a" ;;
    two-nodes)
      redis-server --port "$r" --bind 127.0.0.1 --save '' --appendonly no >/dev/null & pids+=($!)
      wait_for_port "$r"; node "$a" "$r"; node "$b" "$r"
      target/release/examples/loadgen "ws://127.0.0.1:$a/" --raw \
        --fanout "$members" --publish "$messages" --spread "ws://127.0.0.1:$b/" \
        --metrics "127.0.0.1:$a" --metrics "127.0.0.1:$b" ;;
  esac
  cleanup
}

echo "fan-out: 1 publisher, $members members, $messages messages of 64 B; median of $rounds rounds"
printf '%-16s %14s %9s %9s %7s %12s\n' setup deliveries/s p50_us p99_us short trips/msg
declare -A rate
for setup in one-node one-node+redis two-nodes; do
  results=()
  for _ in $(seq 1 "$rounds"); do results+=("$(run "$setup")"); done
  col() { printf '%s\n' "${results[@]}" | awk -v c="$1" '{print $c}' | median; }
  rate[$setup]=$(col 1)
  short=$(printf '%s\n' "${results[@]}" | awk '{s += $5} END {print s}')
  printf '%-16s %14s %9s %9s %7s %12s\n' "$setup" "${rate[$setup]}" "$(col 2)" "$(col 3)" "$short" "$(col 6)"
done
for setup in one-node+redis two-nodes; do
  awk -v s="$setup" -v a="${rate[$setup]}" -v b="${rate[one-node]}" \
    'BEGIN { printf "%-16s %.2fx the deliveries/s of one node alone\n", s, a / b }'
done
