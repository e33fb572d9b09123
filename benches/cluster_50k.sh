#!/usr/bin/env bash
# One pod's share of Centrifugo's million-connection test, on this machine (issue #33):
# three `rfc6455 serve --threads 1` nodes on a Redis Cluster of three primaries, and
# 50,000 connections from load generators (cli/examples/roomload.rs) in several
# processes (a process may hold 20,000 files here). Each user is in a personal room and
# in one 10-member group room spread over the nodes; the generators publish ~2,780
# 100-byte messages a second to the groups (~25,000 deliveries/s) and close and reopen
# 170 connections a second, each coming back with `since`. After a warm-up, 60 s are
# measured. Reports the delivery latency (publisher's send to each member's receive),
# messages lost, duplicated and reordered, each node's RSS per connection, CPU per
# delivery of the nodes, Redis and the generators, and Redis commands per message.
# The same round then runs on Socket.IO 4 with @socket.io/redis-adapter's sharded
# adapter (benches/node/socketio_rooms.js, three Node processes, a fresh cluster), with
# the same generator in its Socket.IO mode: side by side, in one sitting.
#
# Then the idle test: the most connections one node holds under the 20,000-file cap
# with its heartbeat (a ping every 25 s) running, and its RSS per connection.
#
#   bash benches/cluster_50k.sh [CONNECTIONS] [SECONDS] [IDLE_CONNECTIONS]
#   # defaults: 50000 60 19000; RATE=messages/s CHURN=reconnects/s to change the load;
#   # PEERS="rfc6455 socketio" (the default) for the rounds to run;
#   # SERVE_BIN=path runs another build of the server (a before/after in one sitting)
#
# Not in CI: it takes minutes. Needs redis-server and redis-cli (tests/setup.sh), and
# node and npm for the Socket.IO round.
# Everything listens on 127.0.0.1, on ports the kernel picks; the generators share
# the two cores with the nodes and Redis.
set -euo pipefail
cd "$(dirname "$0")/.."
connections="${1:-50000}"
seconds="${2:-60}"
idle="${3:-19000}"
generators=4
rate="${RATE:-2780}"    # messages/s in all: each reaches 9 members
churn="${CHURN:-170}"   # reconnects/s in all
warmup=10

peers="${PEERS:-rfc6455 socketio}"
serve_bin="${SERVE_BIN:-target/release/rfc6455}"
cargo build --release -p rfc6455-cli --bin rfc6455 --example roomload --quiet
case " $peers " in *" socketio "*) (cd benches/node && npm install --no-audit --no-fund --silent) ;; esac
# shellcheck source=benches/lib.sh
. benches/lib.sh

pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; pids=(); }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
# Round trips the nodes made to Redis so far (their /metrics), all nodes together.
round_trips() {
  local total=0 p
  for p in "$@"; do
    local v; v=$(curl -s --max-time 10 "http://127.0.0.1:$p/metrics" | awk '/^rfc6455_redis_round_trips_total / {print $2}')
    # A node too busy to answer within 10 s: no figure (not a wrong one).
    [ -n "$v" ] || { echo "no /metrics from node $p within 10 s" >&2; echo n/a; return; }
    total=$((total + v))
  done
  echo "$total"
}
# Commands Redis ran so far, those inside scripts too (INFO commandstats), all
# primaries together.
redis_calls() {
  local total=0 p
  for p in "$@"; do
    total=$((total + $(redis-cli -p "$p" info commandstats | awk -F'[=,]' '/^cmdstat_/ {s += $2} END {print s}')))
  done
  echo "$total"
}

# round PEER: a fresh Redis Cluster, three nodes of PEER (rfc6455 or socketio), the
# generators, and the figures.
round() {
local peer="$1"
dir=$(mktemp -d)
rports=(); seeds=(); rpids=()
for _ in 1 2 3; do
  p=$(cluster_port); rports+=("$p"); seeds+=("redis://127.0.0.1:$p/")
  (cd "$dir" && exec redis-server --port "$p" --bind 127.0.0.1 --save '' --appendonly no \
    --cluster-enabled yes --cluster-config-file "nodes-$p.conf" >/dev/null) & pids+=($!); rpids+=($!)
  wait_for_port "$p"
done
redis-cli --cluster create "${rports[@]/#/127.0.0.1:}" --cluster-yes >/dev/null
until redis-cli -p "${rports[0]}" cluster info | grep -q cluster_state:ok; do sleep 0.1; done
seedlist=$(IFS=,; echo "${seeds[*]}")
hostports=$(IFS=,; echo "${rports[*]/#/127.0.0.1:}")

nports=(); npids=(); urls=(); mode=()
for _ in 1 2 3; do
  p=$(free_port); nports+=("$p"); urls+=("ws://127.0.0.1:$p/")
  if [ "$peer" = socketio ]; then
    mode=(--socketio)
    node benches/node/socketio_rooms.js "127.0.0.1:$p" "$hostports" 2>/dev/null & pids+=($!); npids+=($!)
  else
    "$serve_bin" serve --addr "127.0.0.1:$p" --threads 1 --max-rate 0 \
      --max-connections 19000 --max-rooms 40000 --redis-cluster "$seedlist" 2>/dev/null & pids+=($!); npids+=($!)
  fi
  wait_for_port "$p"
done
rss_before=(); for pid in "${npids[@]}"; do rss_before+=("$(rss_kib "$pid")"); done

echo "== $peer: 3 nodes, 3 Redis primaries; $connections connections from $generators generators; warm-up ${warmup}s, ${seconds}s measured"
per=$((connections / generators))
out=$(mktemp -d)
gpids=()
for i in $(seq 0 $((generators - 1))); do
  target/release/examples/roomload "${urls[@]}" --first $((i * per)) --connections "$per" \
    --rate "$(awk -v r=$rate -v g=$generators 'BEGIN {print r / g}')" \
    --churn "$(awk -v c=$churn -v g=$generators 'BEGIN {print c / g}')" \
    --warmup "$warmup" --seconds "$seconds" ${mode[@]+"${mode[@]}"} > "$out/$i" 2> "$out/$i.err" & gpids+=($!)
done
# The measured window starts when every generator has connected (each says so on
# stderr) and warmed up: sample CPU and Redis there.
until [ "$(cat "$out"/*.err 2>/dev/null | grep -c '^connected')" -ge "$generators" ]; do
  for pid in "${gpids[@]}"; do kill -0 "$pid" 2>/dev/null || { echo "a generator ended early:"; cat "$out"/*.err; exit 1; }; done
  sleep 1
done
sleep "$warmup"
trips() { if [ "$peer" = socketio ]; then echo n/a; else round_trips "$@"; fi; }
t0=$(date +%s.%N); calls0=$(redis_calls "${rports[@]}"); trips0=$(trips "${nports[@]}")
cpu0=(); for pid in "${npids[@]}" "${rpids[@]}"; do cpu0+=("$(cpu_ticks "$pid")"); done
rss_loaded=(); for pid in "${npids[@]}"; do rss_loaded+=("$(rss_kib "$pid")"); done
sleep "$seconds"
t1=$(date +%s.%N); calls1=$(redis_calls "${rports[@]}"); trips1=$(trips "${nports[@]}")
cpu1=(); for pid in "${npids[@]}" "${rpids[@]}"; do cpu1+=("$(cpu_ticks "$pid")"); done
for pid in "${gpids[@]}"; do wait "$pid"; done
# Why connections ended and whether Redis faltered, from each node (ours only).
if [ "$peer" = rfc6455 ]; then
  for p in "${nports[@]}"; do
    # A node still too busy to answer within 10 s says so (and the round goes on).
    { curl -s --max-time 10 "http://127.0.0.1:$p/metrics" || echo "no answer within 10 s"; } | awk -v p="$p" '
      /^rfc6455_(slow_consumer_events|mailbox_overflows|write_timeouts|budget_refusals|redis_reconnects|redis_shed|redis_errors|chat_acks_overdue)_total / {s = s " " $1 "=" $2}
      /^no answer/ {s = " " $0}
      END {print "node :" p ":" s}'
  done
fi
for i in $(seq 0 $((generators - 1))); do cat "$out/$i"; done > "$out/all"
sum() { awk -v k="$1" '{for (i = 1; i < NF; i++) if ($i == k) s += $(i + 1)} END {print s + 0}' "$out/all"; }
worst() { awk -v k="$1" '{for (i = 1; i < NF; i++) if ($i == k && $(i + 1) > m) m = $(i + 1)} END {print m + 0}' "$out/all"; }
published=$(sum published); deliveries=$(sum deliveries)
hz=$(getconf CLK_TCK)
node_ticks=0; for i in 0 1 2; do node_ticks=$((node_ticks + ${cpu1[$i]} - ${cpu0[$i]})); done
redis_ticks=0; for i in 3 4 5; do redis_ticks=$((redis_ticks + ${cpu1[$i]} - ${cpu0[$i]})); done
echo "per generator:"; sed 's/^/  /' "$out/all"
awk -v d="$deliveries" -v p="$published" -v s="$seconds" -v nt="$node_ticks" -v rt="$redis_ticks" -v hz="$hz" \
  -v c0="$calls0" -v c1="$calls1" -v r0="$trips0" -v r1="$trips1" -v t0="$t0" -v t1="$t1" 'BEGIN {
  w = t1 - t0
  printf "deliveries/s %.0f  messages/s %.0f\n", d / s, p / s
  printf "CPU per delivery: nodes %.1f us, Redis %.1f us (window %.1f s)\n", nt / hz * 1e6 / (d / s * w), rt / hz * 1e6 / (d / s * w), w
  trips = (r0 == "n/a" || r1 == "n/a") ? "n/a" : sprintf("%.2f", (r1 - r0) / (p / s * w))
  printf "Redis per message: %s round trips from the nodes (churn included), %.1f commands run (inside scripts too)\n", trips, (c1 - c0) / (p / s * w)
}'
echo "latency (worst generator): p50 $(worst p50_ms) ms  p99 $(worst p99_ms) ms  max $(worst max_ms) ms"
echo "lost $(sum lost) (and $(sum lost_after_close) after the server closed a connection)  duplicated $(sum duplicated)  reordered $(sum reordered)  reconnects $(sum churns)  connections dropped $(sum errors)  requests refused $(sum refused) (a hello or join refused: reopened $(sum retried))"
echo "generators' CPU per delivery: $(awk '{for (i = 1; i < NF; i++) if ($i == "cpu_us_per_delivery") {s += $(i + 1); n++}} END {printf "%.1f us", s / n}' "$out/all")"
for i in 0 1 2; do
  conns=$(( $(ls /proc/"${npids[$i]}"/fd | wc -l) ))
  echo "node $i: RSS $((rss_before[i] / 1024)) MiB idle, $((rss_loaded[i] / 1024)) MiB loaded: $(( (rss_loaded[i] - rss_before[i]) * 1024 / (connections / 3) )) B per connection"
done
cleanup
rm -rf "$dir"
}

for peer in $peers; do round "$peer"; done

# The idle test: one node, no Redis, as many connections as the file cap allows, held
# through a heartbeat round; three rows tell a connection's cost from its rooms':
# `echo` with bare WebSockets, `serve` with bare WebSockets, `serve` with each user
# named and in a personal room and a group room.
[ "$idle" -gt 0 ] || exit 0
out=$(mktemp -d)
# idle_row LABEL GENERATOR_FLAGS -- SERVER ARGS...
idle_row() {
  local label="$1" flags="$2"; shift 3
  local p; p=$(free_port)
  "$serve_bin" "$@" --addr "127.0.0.1:$p" --threads 1 --max-connections 19500 2>/dev/null & pids+=($!)
  local node=$!
  wait_for_port "$p"
  local before; before=$(rss_kib "$node")
  local half=$((idle / 2 / 10 * 10)) ipids=() i
  for i in 0 1; do
    # shellcheck disable=SC2086
    target/release/examples/roomload "ws://127.0.0.1:$p/" --first $((i * half)) --connections "$half" \
      --idle $flags --warmup 0 --seconds 40 > "$out/idle$i" & ipids+=($!)
  done
  sleep 30
  local held after; held=$(ls /proc/"$node"/fd | wc -l); after=$(rss_kib "$node")
  for i in "${ipids[@]}"; do wait "$i"; done
  kill "$node" 2>/dev/null || true
  echo "idle, $label: $((half * 2)) connections ($held files open) through a heartbeat round: RSS $((before / 1024)) -> $((after / 1024)) MiB, $(( (after - before) * 1024 / (half * 2) )) B per connection"
  cat "$out"/idle* | sed 's/^/  /'
}
idle_row "echo, bare WebSockets" "--bare" -- echo
idle_row "serve, bare WebSockets" "--bare" -- serve --max-rooms 40000
idle_row "serve, each named and in a personal and a group room" "" -- serve --max-rooms 40000
