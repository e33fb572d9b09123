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
# Prints messages/s, MB/s and p50/p99 round trip per server and workload, and the ratio
# of each figure to tungstenite's. The load generator shares the machine's cores with
# the server: compare ratios, not absolute numbers.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-3}"
# Which part to run: all (default), echo, fanout (WebSocket and SSE) or tls.
only="${2:-all}"
section() { [ "$only" = all ] || [ "$only" = "$1" ]; }

cargo build --release --examples --bins --quiet
cargo build --release --quiet --manifest-path benches/peers/Cargo.toml
peers=benches/peers/target/release
[ -d benches/node/node_modules/ws ] || (cd benches/node && npm install --no-audit --no-fund --silent)

pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT

# shellcheck source=benches/lib.sh
. benches/lib.sh

if section echo; then
target/release/rfc6455 echo --addr 127.0.0.1:9101 --threads 1 2>/dev/null & pids+=($!)
target/release/examples/echo_server 127.0.0.1:9102 2>/dev/null & pids+=($!)
target/release/examples/tungstenite_echo 127.0.0.1:9103 2>/dev/null & pids+=($!)
target/release/rfc6455 echo --addr 127.0.0.1:9105 --threads 2 2>/dev/null & pids+=($!)
target/release/rfc6455 echo --addr 127.0.0.1:9106 --threads 2 --balance reuse-port 2>/dev/null & pids+=($!)
$peers/tokio_tungstenite_echo 127.0.0.1:9109 2>/dev/null & pids+=($!)
node benches/node/echo.js 127.0.0.1:9110 2>/dev/null & pids+=($!)
# One loop that polls for 100 µs after each turn before it sleeps (ServerConfig::busy_poll).
target/release/rfc6455 echo --addr 127.0.0.1:9111 --threads 1 --busy-poll 100 2>/dev/null & pids+=($!)
for port in 9101 9102 9103 9105 9106 9109 9110 9111; do wait_for_port $port; done

# name: loadgen arguments
workloads=(
  "latency 1x16B depth1:-c 1 -s 16 -d 1 -m 20000"
  "50 conns x16B depth16:-c 50 -s 16 -d 16 -m 4000"
  "10 conns x64KiB depth4:-c 10 -s 65536 -d 4 -m 400"
)
servers=("mio:9101" "mio-2loops:9105" "mio-2reuse:9106" "mio-spin:9111" "blocking:9102"
         "tungstenite:9103" "tokio-tung:9109" "node-ws:9110")


printf '%-24s %-12s %12s %9s %9s %9s\n' workload server msg/s MB/s p50_us p99_us
for workload in "${workloads[@]}"; do
  name="${workload%%:*}"; args="${workload#*:}"
  declare -A rate=() p99=()
  for server in "${servers[@]}"; do
    sname="${server%%:*}"; port="${server#*:}"
    results=()
    for _ in $(seq 1 "$rounds"); do
      # shellcheck disable=SC2086
      results+=("$(target/release/examples/loadgen "ws://127.0.0.1:$port/" $args -t 20 --raw)")
    done
    r=$(printf '%s\n' "${results[@]}" | awk '{print $1}' | median)
    mb=$(printf '%s\n' "${results[@]}" | awk '{print $2}' | median)
    p50=$(printf '%s\n' "${results[@]}" | awk '{print $3}' | median)
    p=$(printf '%s\n' "${results[@]}" | awk '{print $4}' | median)
    errors=$(printf '%s\n' "${results[@]}" | awk '{s += $6} END {print s}')
    rate[$sname]=$r; p99[$sname]=$p
    line=$(printf '%-24s %-12s %12s %9s %9s %9s' "$name" "$sname" "$r" "$mb" "$p50" "$p")
    [ "$errors" != 0 ] && line="$line  ($errors errors)"
    echo "$line"
  done
  # Ours against each peer: msg/s ratio (higher is better), p99 ratio (lower is better).
  for sname in mio mio-2loops mio-2reuse mio-spin blocking; do
    for peer in tungstenite tokio-tung node-ws; do
      awk -v n="$name" -v s="$sname" -v p="$peer" -v a="${rate[$sname]}" -v b="${rate[$peer]}" \
          -v c="${p99[$sname]}" -v d="${p99[$peer]}" \
          'BEGIN { printf "%-24s %-12s vs %-12s %.2fx msg/s, p99 %.2fx\n", n, s, p, a / b, c / d }'
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
target/release/rfc6455 echo --addr 127.0.0.1:9111 --threads 1 \
  --tls-cert "$tls_dir/cert.pem" --tls-key "$tls_dir/key.pem" 2>/dev/null & pids+=($!)
target/release/rfc6455 echo --addr 127.0.0.1:9112 --threads 2 \
  --tls-cert "$tls_dir/cert.pem" --tls-key "$tls_dir/key.pem" 2>/dev/null & pids+=($!)
target/release/examples/tungstenite_echo 127.0.0.1:9113 "$tls_dir/cert.pem" "$tls_dir/key.pem" 2>/dev/null & pids+=($!)
wait_for_port 9111; wait_for_port 9112; wait_for_port 9113

# The median of each column of `rounds` runs of loadgen with the given arguments.
loadgen_median() {
  local results=()
  for _ in $(seq 1 "$rounds"); do
    results+=("$(target/release/examples/loadgen "$@" --raw)")
  done
  for c in 1 2 3 4; do
    printf '%s\n' "${results[@]}" | awk -v c="$c" '{print $c}' | median
  done | paste -sd' '
  printf '%s\n' "${results[@]}" | awk '{s += $6} END {if (s) print s " errors"}' >&2
}

tls_servers=("mio-tls:9111" "mio-tls-2loops:9112" "tungstenite-tls:9113")
tls_workloads=(
  "50 conns x16B depth16:-c 50 -s 16 -d 16 -m 4000 -t 20"
  "10 conns x64KiB depth4:-c 10 -s 65536 -d 4 -m 400 -t 20"
  "handshakes/s (4 clients):-c 4 --handshakes -t 5"
)
printf '%-26s %-16s %12s %9s %9s %9s\n' workload server "per s" MB/s p50_us p99_us
for workload in "${tls_workloads[@]}"; do
  name="${workload%%:*}"; args="${workload#*:}"
  declare -A tls_rate=() tls_p99=()
  for server in "${tls_servers[@]}"; do
    sname="${server%%:*}"; port="${server#*:}"
    # shellcheck disable=SC2086
    read -r r mb p50 p99 < <(loadgen_median "wss://localhost:$port/" --ca "$tls_dir/cert.pem" $args)
    tls_rate[$sname]=$r; tls_p99[$sname]=$p99
    printf '%-26s %-16s %12s %9s %9s %9s\n' "$name" "$sname" "$r" "$mb" "$p50" "$p99"
  done
  for sname in mio-tls mio-tls-2loops; do
    awk -v n="$name" -v s="$sname" -v a="${tls_rate[$sname]}" -v b="${tls_rate[tungstenite-tls]}" \
        -v c="${tls_p99[$sname]}" -v d="${tls_p99[tungstenite-tls]}" \
        'BEGIN { printf "%-26s %-16s %12s  %.2fx per s, p99 %.2fx of tungstenite-tls\n", n, s, "", a / b, c / d }'
  done
done
fi
