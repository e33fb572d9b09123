#!/bin/sh
# The calls from poll to sendmsg of one echoed text message, under gdb:
#   sh benches/calls/gdb.sh BINARY PORT OUT.json [NAMES]
# BINARY: `rfc6455` built in debug (every call in the source is a frame), or in release
# with debug info (CARGO_PROFILE_RELEASE_DEBUG=true; then NAMES: the function names of
# the debug build, which CALLS_SAVE_NAMES=FILE writes). Then: python3 spans.py OUT.json
set -e
here=$(dirname "$0")
rm -f "$3" "$3.log"
CALLS_OUT=$3 CALLS_NAMES=${4:-} gdb -q -batch -x "$here/gdb_calls.py" -ex run \
  --args "$1" echo --threads 1 --addr "127.0.0.1:$2" >"$3.log" 2>&1 &
gdb_pid=$!
until grep -q listening "$3.log" 2>/dev/null; do sleep 1; done
python3 "$here/client.py" "$2" 1 3 || true
kill "$gdb_pid"
wait "$gdb_pid" 2>/dev/null || true
