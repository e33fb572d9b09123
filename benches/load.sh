#!/usr/bin/env bash
# Echo load, side by side on loopback: our mio event-loop server (`rfc6455 echo`) with
# one loop, with two loops (`--threads 2`, both `--balance` modes), with one loop that
# busy-polls for 100 µs before it sleeps (`--busy-poll 100`), our blocking
# thread-per-connection server (examples/echo_server), and the peers: a tungstenite
# thread-per-connection server (examples/tungstenite_echo), tokio-tungstenite on the
# multi-threaded runtime (benches/peers, a crate of its own) and Node `ws`
# (benches/node/echo.js), each driven by examples/loadgen with the same workloads, one
# server at a time.
#
#   bash benches/load.sh [ROUNDS] [all|echo|fanout|tls]   # default 3 rounds, all; medians printed
#
# Then fan-out through `rfc6455 serve` against Node `ws` with a room loop
# (benches/node/rooms.js), WebSocket members (one and two loops, with and without
# deflate), and Server-Sent Events streams against WebSocket members. Then
# echo over TLS against tungstenite over rustls, and new TLS connections per second.
#
# Prints messages/s, MB/s, p50/p99 round trip and CPU time per message (of the load
# generator and of the server, from /proc) per server and workload, and the ratio of
# each figure to the peers'. Each figure is the median of ROUNDS runs after one run
# that is not counted. The load generator shares the machine's cores with the server:
# compare ratios, not absolute numbers; where generator + server CPU per message fill
# both cores, msg/s is bounded by their sum and server CPU per message is the figure
# that tells servers apart.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-3}"
# Which part to run: all (default), echo, fanout (WebSocket and SSE) or tls.
only="${2:-all}"
section() { [ "$only" = all ] || [ "$only" = "$1" ]; }

cargo build --release --workspace --examples --bins --features rfc6455/tls --quiet
cargo build --release --quiet --manifest-path benches/peers/Cargo.toml
peers=benches/peers/target/release
[ -d benches/node/node_modules/ws ] || (cd benches/node && npm install --no-audit --no-fund --silent)

pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT

# shellcheck source=benches/lib.sh
. benches/lib.sh

hz=$(getconf CLK_TCK)
declare -A pid_of=()
# start_server PORT COMMAND...: starts a server in the background, known by its port.
start_server() { local port=$1; shift; "$@" 2>/dev/null & pids+=($!); pid_of[$port]=$!; }
# measured PORT LOADGEN_ARGS...: one loadgen run (--raw) against the server on PORT,
# with a ninth column: the server's CPU time per message, in µs (its share of the
# machine; the eighth is the load generator's).
measured() {
  local port=$1; shift
  local before after line
  before=$(cpu_ticks "${pid_of[$port]}")
  line=$(target/release/examples/loadgen "$@" --raw)
  after=$(cpu_ticks "${pid_of[$port]}")
  awk -v t=$((after - before)) -v hz="$hz" '{printf "%s %.2f\n", $0, t * 1e6 / hz / ($7 > 0 ? $7 : 1)}' <<<"$line"
}

if section echo; then
start_server 9101 target/release/rfc6455 echo --addr 127.0.0.1:9101 --max-rate 0 --threads 1
start_server 9102 target/release/examples/echo_server 127.0.0.1:9102
start_server 9103 target/release/examples/tungstenite_echo 127.0.0.1:9103
start_server 9105 target/release/rfc6455 echo --addr 127.0.0.1:9105 --max-rate 0 --threads 2
start_server 9106 target/release/rfc6455 echo --addr 127.0.0.1:9106 --max-rate 0 --threads 2 --balance reuse-port
start_server 9109 $peers/tokio_tungstenite_echo 127.0.0.1:9109
start_server 9110 node benches/node/echo.js 127.0.0.1:9110
# One loop that polls for 100 µs after each turn before it sleeps (ServerConfig::busy_poll).
start_server 9111 target/release/rfc6455 echo --addr 127.0.0.1:9111 --max-rate 0 --threads 1 --busy-poll 100
for port in 9101 9102 9103 9105 9106 9109 9110 9111; do wait_for_port $port; done

# name: loadgen arguments
workloads=(
  "latency 1x16B depth1:-c 1 -s 16 -d 1 -m 20000"
  "50 conns x16B depth16:-c 50 -s 16 -d 16 -m 4000"
  "10 conns x64KiB depth4:-c 10 -s 65536 -d 4 -m 4000"
)
servers=("mio:9101" "mio-2loops:9105" "mio-2reuse:9106" "mio-spin:9111" "blocking:9102"
         "tungstenite:9103" "tokio-tung:9109" "node-ws:9110")


echo "gen_us, srv_us: CPU time (user + system) per message of the load generator and of"
echo "the server; the two share the machine's cores"
printf '%-24s %-12s %12s %9s %9s %9s %7s %7s\n' workload server msg/s MB/s p50_us p99_us gen_us srv_us
for workload in "${workloads[@]}"; do
  name="${workload%%:*}"; args="${workload#*:}"
  declare -A rate=() p99=() cpu=()
  for server in "${servers[@]}"; do
    sname="${server%%:*}"; port="${server#*:}"
    # One run first, not counted: the first run after a pause is often far slower
    # (seen: 24.7 k msg/s, then 41.9, 41.9 and 45.3 k from the same server).
    # shellcheck disable=SC2086
    measured "$port" "ws://127.0.0.1:$port/" $args -t 20 >/dev/null
    results=()
    for _ in $(seq 1 "$rounds"); do
      # shellcheck disable=SC2086
      results+=("$(measured "$port" "ws://127.0.0.1:$port/" $args -t 20)")
    done
    r=$(printf '%s\n' "${results[@]}" | awk '{print $1}' | median)
    mb=$(printf '%s\n' "${results[@]}" | awk '{print $2}' | median)
    p50=$(printf '%s\n' "${results[@]}" | awk '{print $3}' | median)
    p=$(printf '%s\n' "${results[@]}" | awk '{print $4}' | median)
    gen=$(printf '%s\n' "${results[@]}" | awk '{print $8}' | median)
    srv=$(printf '%s\n' "${results[@]}" | awk '{print $9}' | median)
    errors=$(printf '%s\n' "${results[@]}" | awk '{s += $6} END {print s}')
    rate[$sname]=$r; p99[$sname]=$p; cpu[$sname]=$srv
    line=$(printf '%-24s %-12s %12s %9s %9s %9s %7s %7s' "$name" "$sname" "$r" "$mb" "$p50" "$p" "$gen" "$srv")
    [ "$errors" != 0 ] && line="$line  ($errors errors)"
    echo "$line"
  done
  # Ours against each peer: msg/s ratio (higher is better), p99 and server CPU per
  # message ratios (lower is better).
  for sname in mio mio-2loops mio-2reuse mio-spin blocking; do
    for peer in tungstenite tokio-tung node-ws; do
      awk -v n="$name" -v s="$sname" -v p="$peer" -v a="${rate[$sname]}" -v b="${rate[$peer]}" \
          -v c="${p99[$sname]}" -v d="${p99[$peer]}" -v e="${cpu[$sname]}" -v f="${cpu[$peer]}" \
          'BEGIN { printf "%-24s %-12s vs %-12s %.2fx msg/s, p99 %.2fx, server CPU/msg %.2fx\n", n, s, p, a / b, c / d, e / f }'
    done
  done
done
fi

if section fanout; then
echo
echo "fan-out against Node ws with a room loop: one publisher, 200 messages of 64 B, to a"
echo "room of 1000 members (rfc6455 serve, one loop, no deflate; benches/node/rooms.js);"
echo "median of $rounds runs each"
target/release/rfc6455 serve --addr 127.0.0.1:9115 --max-rate 0 --threads 1 --no-deflate 2>/dev/null & pids+=($!)
node benches/node/rooms.js 127.0.0.1:9114 2>/dev/null & pids+=($!)
wait_for_port 9115; wait_for_port 9114
printf '%-12s %14s %9s %9s %7s\n' server deliveries/s p50_us p99_us short
declare -A room_rate=() room_p99=()
for server in "rfc6455:9115" "node-ws:9114"; do
  sname="${server%%:*}"; port="${server#*:}"
  results=()
  for _ in $(seq 1 "$rounds"); do
    results+=("$(target/release/examples/loadgen ws://127.0.0.1:$port/ --fanout 1000 --publish 200 --raw)")
  done
  col() { printf '%s\n' "${results[@]}" | awk -v c="$1" '{print $c}' | median; }
  room_rate[$sname]=$(col 1); room_p99[$sname]=$(col 3)
  short=$(printf '%s\n' "${results[@]}" | awk '{s += $5} END {print s}')
  printf '%-12s %14s %9s %9s %7s\n' "$sname" "${room_rate[$sname]}" "$(col 2)" "${room_p99[$sname]}" "$short"
done
awk -v a="${room_rate[rfc6455]}" -v b="${room_rate[node-ws]}" -v c="${room_p99[rfc6455]}" -v d="${room_p99[node-ws]}" \
  'BEGIN { printf "rfc6455      vs node-ws     %.2fx deliveries/s, p99 %.2fx\n", a / b, c / d }'

echo
echo "fan-out: one publisher, 200 messages, to a room of 1000 members (rfc6455 serve),"
echo "without and with permessage-deflate (each broadcast compressed once for all members),"
echo "with one event loop and with two (members spread over both)"
target/release/rfc6455 serve --addr 127.0.0.1:9104 --max-rate 0 --threads 1 2>/dev/null & pids+=($!)
target/release/rfc6455 serve --addr 127.0.0.1:9107 --max-rate 0 --threads 2 2>/dev/null & pids+=($!)
wait_for_port 9104; wait_for_port 9107
for port in 9104 9107; do
  loops=$([ $port = 9104 ] && echo 1 || echo 2)
  echo "-- $loops loop(s)"
  target/release/examples/loadgen ws://127.0.0.1:$port/ --fanout 1000 --publish 200
  target/release/examples/loadgen ws://127.0.0.1:$port/ --fanout 1000 --publish 200 --deflate
done

echo
echo "fan-out to 1000 Server-Sent Events streams vs 1000 WebSocket members of one room"
echo "(one publisher, 200 messages of 64 B, one loop; median of $rounds runs each)"
target/release/rfc6455 serve --addr 127.0.0.1:9108 --max-rate 0 --threads 1 2>/dev/null & pids+=($!)
wait_for_port 9108
printf '%-12s %14s %9s %9s %7s\n' members deliveries/s p50_us p99_us short
declare -A fan=()
for kind in websocket sse; do
  results=()
  for _ in $(seq 1 "$rounds"); do
    flag=(); [ "$kind" = sse ] && flag=(--sse)
    results+=("$(target/release/examples/loadgen ws://127.0.0.1:9108/ --fanout 1000 --publish 200 --raw "${flag[@]}")")
  done
  col() { printf '%s\n' "${results[@]}" | awk -v c="$1" '{print $c}' | median; }
  fan[$kind]=$(col 1)
  short=$(printf '%s\n' "${results[@]}" | awk '{s += $5} END {print s}')
  printf '%-12s %14s %9s %9s %7s\n' "$kind" "${fan[$kind]}" "$(col 2)" "$(col 3)" "$short"
done
awk -v a="${fan[sse]}" -v b="${fan[websocket]}" \
  'BEGIN { printf "sse          %.2fx the deliveries/s of WebSocket members\n", a / b }'

fi
if section tls; then
echo
echo "over TLS (wss://; rustls with the ring provider, TLS 1.3, one certificate for both):"
echo "our event loop (one loop, two loops) and tungstenite over rustls (a thread per connection);"
echo "then new connections per second: TCP + TLS handshake + WebSocket handshake + close,"
echo "4 clients opening one after another for 5 s (median of $rounds runs)"
tls_dir=target/tls-bench
bash deploy/local-cert.sh "$tls_dir" 2
# Ports of their own: the echo section's servers (9101-9111) still run when all is run.
start_server 9116 target/release/rfc6455 echo --addr 127.0.0.1:9116 --max-rate 0 --threads 1 \
  --tls-cert "$tls_dir/cert.pem" --tls-key "$tls_dir/key.pem"
start_server 9117 target/release/rfc6455 echo --addr 127.0.0.1:9117 --max-rate 0 --threads 2 \
  --tls-cert "$tls_dir/cert.pem" --tls-key "$tls_dir/key.pem"
start_server 9118 target/release/examples/tungstenite_echo 127.0.0.1:9118 "$tls_dir/cert.pem" "$tls_dir/key.pem"
wait_for_port 9116; wait_for_port 9117; wait_for_port 9118

# loadgen_median PORT ARGS...: the median of each column (per s, MB/s, p50, p99, and CPU
# per message of generator and server) of `rounds` runs against the server on PORT.
loadgen_median() {
  local port=$1; shift
  local results=()
  measured "$port" "$@" >/dev/null # a first run, not counted (see the echo section)
  for _ in $(seq 1 "$rounds"); do
    results+=("$(measured "$port" "$@")")
  done
  for c in 1 2 3 4 8 9; do
    printf '%s\n' "${results[@]}" | awk -v c="$c" '{print $c}' | median
  done | paste -sd' '
  printf '%s\n' "${results[@]}" | awk '{s += $6} END {if (s) print s " errors"}' >&2
}

tls_servers=("mio-tls:9116" "mio-tls-2loops:9117" "tungstenite-tls:9118")
tls_workloads=(
  "50 conns x16B depth16:-c 50 -s 16 -d 16 -m 4000 -t 20"
  "10 conns x64KiB depth4:-c 10 -s 65536 -d 4 -m 4000 -t 20"
  "handshakes/s (4 clients):-c 4 --handshakes -t 5"
)
printf '%-26s %-16s %12s %9s %9s %9s %7s %7s\n' workload server "per s" MB/s p50_us p99_us gen_us srv_us
for workload in "${tls_workloads[@]}"; do
  name="${workload%%:*}"; args="${workload#*:}"
  declare -A tls_rate=() tls_p99=() tls_cpu=()
  for server in "${tls_servers[@]}"; do
    sname="${server%%:*}"; port="${server#*:}"
    # shellcheck disable=SC2086
    read -r r mb p50 p99 gen srv < <(loadgen_median "$port" "wss://localhost:$port/" --ca "$tls_dir/cert.pem" $args)
    tls_rate[$sname]=$r; tls_p99[$sname]=$p99; tls_cpu[$sname]=$srv
    printf '%-26s %-16s %12s %9s %9s %9s %7s %7s\n' "$name" "$sname" "$r" "$mb" "$p50" "$p99" "$gen" "$srv"
  done
  for sname in mio-tls mio-tls-2loops; do
    awk -v n="$name" -v s="$sname" -v a="${tls_rate[$sname]}" -v b="${tls_rate[tungstenite-tls]}" \
        -v c="${tls_p99[$sname]}" -v d="${tls_p99[tungstenite-tls]}" \
        -v e="${tls_cpu[$sname]}" -v f="${tls_cpu[tungstenite-tls]}" \
        'BEGIN { printf "%-26s %-16s %12s  %.2fx per s, p99 %.2fx, server CPU/msg %.2fx of tungstenite-tls\n", n, s, "", a / b, c / d, e / f }'
  done
done
fi
