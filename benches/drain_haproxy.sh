#!/usr/bin/env bash
# A drain measured behind HAProxy (issue #33): CLIENTS connections, all on node A, and
# node B idle beside it, both behind HAProxy (two HAProxy processes, CLIENTS/2 each:
# a process may hold 20,000 files here, and HAProxy needs two per client). A publisher
# load goes on (100 msg/s to 10-member rooms); then A is stopped, twice from scratch:
#   drain     SIGTERM: 1012 to its clients spread over --drain-seconds (10)
#   at once   SIGINT: 1001 to all at once
# The clients (cli/examples/roomload.rs --reconnect) come back at once on a close frame,
# as the chat page does, through HAProxy onto B, with `since`. Reports B's peak accepts
# in one second (its open files, sampled every 0.2 s), how long the move took, the
# close codes, and the messages lost, duplicated or reordered (all must be 0).
#
#   bash benches/drain_haproxy.sh [CLIENTS]   # default 10000
#
# Not in CI (about two minutes). Needs redis-server and haproxy (tests/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
clients="${1:-10000}"
cargo build --release -p rfc6455-cli --bin rfc6455 --example roomload --quiet
# shellcheck source=benches/lib.sh
. benches/lib.sh
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  pids=()
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
files() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }

# run SIGNAL: one measurement; prints its line.
run() {
  local signal=$1 r a b dir gens=() half=$((clients / 2 / 10 * 10))
  r=$(free_port); a=$(free_port); b=$(free_port); dir=$(mktemp -d)
  redis-server --port "$r" --bind 127.0.0.1 --save '' --appendonly no >/dev/null & pids+=($!)
  wait_for_port "$r"
  local node=(serve --threads 1 --max-rate 0 --max-connections 19000 --max-rooms 40000
    --redis "redis://127.0.0.1:$r/" --drain-seconds 10)
  target/release/rfc6455 "${node[@]}" --addr "127.0.0.1:$a" 2>/dev/null & pids+=($!); local apid=$!
  wait_for_port "$a"
  local fronts=()
  for i in 0 1; do
    local f; f=$(free_port); fronts+=("$f")
    sed -e "s/maxconn 4096/maxconn $((half + 1000))/" -e "s/bind 127.0.0.1:8080/bind 127.0.0.1:$f/" \
      -e '/^    server /d' deploy/haproxy.cfg > "$dir/h$i.cfg"
    printf '    server a 127.0.0.1:%s check inter 1s fall 2 rise 2\n    server b 127.0.0.1:%s check inter 1s fall 2 rise 2\n' \
      "$a" "$b" >> "$dir/h$i.cfg"
    haproxy -db -f "$dir/h$i.cfg" >/dev/null 2>&1 & pids+=($!)
    wait_for_port "$f"
  done
  for i in 0 1; do
    target/release/examples/roomload "ws://127.0.0.1:${fronts[$i]}/" --first $((i * half)) \
      --connections "$half" --rate 50 --reconnect --warmup 0 --seconds 40 > "$dir/g$i" & gens+=($!)
  done
  until [ "$(files "$apid")" -ge $((half * 2)) ]; do sleep 0.5; done
  target/release/rfc6455 "${node[@]}" --addr "127.0.0.1:$b" 2>/dev/null & pids+=($!); local bpid=$!
  wait_for_port "$b"; sleep 3  # HAProxy sees B up (rise 2, every 1 s)
  kill "-$signal" "$apid"
  local t0 samples=()
  t0=$(date +%s.%N)
  for _ in $(seq 1 100); do samples+=("$(files "$bpid")"); sleep 0.2; done
  for g in "${gens[@]}"; do wait "$g"; done
  # The most files B gained in any second (5 samples), and when it held them all.
  local peak
  peak=$(printf '%s\n' "${samples[@]}" | awk '{a[NR]=$1} END {for (i = 6; i <= NR; i++) if (a[i] - a[i-5] > m) m = a[i] - a[i-5]; print m + 0}')
  local total; total=$(cat "$dir"/g* | awk '/^connections/ {for (i = 1; i < NF; i++) if ($i == "lost" || $i == "duplicated" || $i == "reordered") s[$i] += $(i+1)} END {printf "lost %d duplicated %d reordered %d", s["lost"], s["duplicated"], s["reordered"]}')
  local moved; moved=$(cat "$dir"/g* | awk '/^reconnected/ {n += $2; if ($6 > o) o = $6} END {printf "reconnected %d, over %.1f s", n, o}')
  local codes; codes=$(grep -h -o 'close_codes .*' "$dir"/g* | tr '\n' ' ')
  printf '%-8s B peak accepts/s %6d  %s  %s  %s\n' "$signal" "$peak" "$moved" "$total" "$codes"
  cleanup
}

echo "drain behind HAProxy: $clients clients on node A, then A stopped; B takes them"
run TERM
run INT
