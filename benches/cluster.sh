#!/usr/bin/env bash
# Fan-out across nodes (issue #14): one publisher, 1,000 members of one room, 64-byte
# texts, in three set-ups side by side, each started fresh for every round:
#   one node       `rfc6455 serve` alone, rooms in memory
#   one node+redis the same node with `--redis` (every message through a Lua script)
#   two nodes      two `serve --redis` processes sharing one redis-server; members
#                  alternate between them, the publisher is on the first
#   two nodes+cluster  the same two nodes on a Redis Cluster of three primaries
#                  (`--redis-cluster`: the room's shard, SPUBLISH/SSUBSCRIBE)
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

# node PORT [FLAGS...]: a rooms server with one loop, no rate limit.
node() {
  local port=$1; shift
  target/release/rfc6455 serve --addr "127.0.0.1:$port" --threads 1 --max-rate 0 \
    "$@" 2>/dev/null & pids+=($!)
  wait_for_port "$port"
}


# redis_cluster: three primaries made into a cluster; sets `seeds` to
# --redis-cluster's value. (Not in a command substitution: the servers it starts
# must be in `pids`, and must not hold a substitution's pipe open.)
redis_cluster() {
  local dir ports=() list=()
  dir=$(mktemp -d)
  for _ in 1 2 3; do
    local p; p=$(cluster_port); ports+=("$p"); list+=("redis://127.0.0.1:$p/")
    (cd "$dir" && exec redis-server --port "$p" --bind 127.0.0.1 --save '' --appendonly no \
      --cluster-enabled yes --cluster-config-file "nodes-$p.conf" >/dev/null 2>&1) & pids+=($!)
    wait_for_port "$p"
  done
  redis-cli --cluster create "${ports[@]/#/127.0.0.1:}" --cluster-yes >/dev/null 2>&1
  until redis-cli -p "${ports[0]}" cluster info | grep -q cluster_state:ok; do sleep 0.1; done
  seeds=$(IFS=,; echo "${list[*]}")
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
      wait_for_port "$r"; node "$a" --redis "redis://127.0.0.1:$r/"
      target/release/examples/loadgen "ws://127.0.0.1:$a/" --raw \
        --fanout "$members" --publish "$messages" --metrics "127.0.0.1:$a" ;;
    two-nodes)
      redis-server --port "$r" --bind 127.0.0.1 --save '' --appendonly no >/dev/null & pids+=($!)
      wait_for_port "$r"; node "$a" --redis "redis://127.0.0.1:$r/"
      node "$b" --redis "redis://127.0.0.1:$r/"
      target/release/examples/loadgen "ws://127.0.0.1:$a/" --raw \
        --fanout "$members" --publish "$messages" --spread "ws://127.0.0.1:$b/" \
        --metrics "127.0.0.1:$a" --metrics "127.0.0.1:$b" ;;
    two-nodes+cluster)
      local seeds; redis_cluster
      node "$a" --redis-cluster "$seeds"; node "$b" --redis-cluster "$seeds"
      target/release/examples/loadgen "ws://127.0.0.1:$a/" --raw \
        --fanout "$members" --publish "$messages" --spread "ws://127.0.0.1:$b/" \
        --metrics "127.0.0.1:$a" --metrics "127.0.0.1:$b" ;;
  esac
  cleanup
}

echo "fan-out: 1 publisher, $members members, $messages messages of 64 B; median of $rounds rounds"
printf '%-18s %14s %9s %9s %7s %12s\n' setup deliveries/s p50_us p99_us short trips/msg
declare -A rate
setups=(one-node one-node+redis two-nodes)
# An older build (before --redis-cluster) is measured without the cluster set-up.
target/release/rfc6455 serve --help | grep -q -- --redis-cluster && setups+=(two-nodes+cluster)
for setup in "${setups[@]}"; do
  results=()
  for _ in $(seq 1 "$rounds"); do results+=("$(run "$setup")"); done
  col() { printf '%s\n' "${results[@]}" | awk -v c="$1" '{print $c}' | median; }
  rate[$setup]=$(col 1)
  short=$(printf '%s\n' "${results[@]}" | awk '{s += $5} END {print s}')
  printf '%-18s %14s %9s %9s %7s %12s\n' "$setup" "${rate[$setup]}" "$(col 2)" "$(col 3)" "$short" "$(col 6)"
done
for setup in "${setups[@]:1}"; do
  awk -v s="$setup" -v a="${rate[$setup]}" -v b="${rate[one-node]}" \
    'BEGIN { printf "%-18s %.2fx the deliveries/s of one node alone\n", s, a / b }'
done
