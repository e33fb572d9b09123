#!/bin/sh
# Calls per echoed message, counted by valgrind's callgrind (what runs: inlined calls
# are no calls): the server under callgrind, one client echoing N text messages one at
# a time, then a graceful shutdown.
#   sh benches/calls/callgrind.sh BINARY PORT N OUT; python3 callgrind.py OUT N
set -e
here=$(dirname "$0")
rm -f "$4" "$4.log"
valgrind --tool=callgrind --callgrind-out-file="$4" "$1" echo --threads 1 \
  --addr "127.0.0.1:$2" >"$4.log" 2>&1 &
vg=$!
until grep -q listening "$4.log" 2>/dev/null; do sleep 1; done
python3 "$here/client.py" "$2" "$3"
kill -INT "$vg"
wait "$vg" || true
