#!/usr/bin/env bash
# Runs the Autobahn TestSuite against rfc6455 and fails unless every case passes
# strictly (OK or INFORMATIONAL, for the behaviour and the closing behaviour).
#
#   autobahn/run.sh server   wstest's fuzzingclient tests our servers (autobahn/fuzzingclient.json):
#                            examples/echo_server (blocking) and `rfc6455 echo` (mio event loop)
#   autobahn/run.sh client   wstest's fuzzingserver tests our client (autobahn/fuzzingserver.json)
#
# wstest comes from Docker (crossbario/autobahn-testsuite) when a Docker engine answers,
# else from a local install that autobahn/install-wstest.sh makes under ~/.cache.
# Reports land in autobahn/reports/{server,client}/ (index.html for a browser).
#
# Every socket wstest listens on binds 127.0.0.1 (autobahn/loopback/sitecustomize.py:
# wstest has no option for it), and its report web server does not run (webport 0).
set -euo pipefail

mode="${1:-}"
case "$mode" in
  server|client) ;;
  *) echo "usage: $0 server|client" >&2; exit 2 ;;
esac

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
  container="rfc6455-wstest-$$"
  wstest=(docker run --rm --name "$container" --net=host -v "$root:$root" -w "$root"
          -e PYTHONPATH="$root/autobahn/loopback" crossbario/autobahn-testsuite wstest)
else
  container=""
  wstest=("$(bash "$root/autobahn/install-wstest.sh")")   # installs once, then just answers
  export WSTEST_PYTHONPATH="$root/autobahn/loopback"
fi

# Every process started here is stopped on the way out, whatever happens.
pids=()
cleanup() {
  [ -n "$container" ] && docker rm -f "$container" >/dev/null 2>&1
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  pids=()
}
trap cleanup EXIT

# Waits until something listens on 127.0.0.1:PORT.
wait_for_port() {
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "nothing listens on port $1" >&2
  return 1
}

cargo build --release --examples --bins --quiet
rm -rf "autobahn/reports/$mode"
start=$(date +%s)

if [ "$mode" = server ]; then
  # Two testees: the blocking echo server and the event-loop one.
  target/release/examples/echo_server 127.0.0.1:9002 2>/dev/null &
  pids+=($!)
  target/release/rfc6455 echo --addr 127.0.0.1:9003 2>/dev/null &
  pids+=($!)
  wait_for_port 9002
  wait_for_port 9003
  "${wstest[@]}" -m fuzzingclient -s autobahn/fuzzingclient.json
else
  webport=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1])).get("webport", 0))' \
    autobahn/fuzzingserver.json)
  "${wstest[@]}" -m fuzzingserver -s autobahn/fuzzingserver.json --webport "$webport" &
  pids+=($!)
  wait_for_port 9001
  target/release/examples/autobahn_client ws://127.0.0.1:9001 2>/dev/null
fi
echo "autobahn $mode: wstest finished in $(( $(date +%s) - start )) s"
cleanup

python3 - "autobahn/reports/$mode/index.json" <<'PY'
import collections, json, sys

with open(sys.argv[1]) as f:
    index = json.load(f)
passing = {"OK", "INFORMATIONAL"}
failed = False

def case_key(case):
    return [int(part) for part in case.split(".")]

for agent, cases in sorted(index.items()):
    counts = collections.Counter(result["behavior"] for result in cases.values())
    close_counts = collections.Counter(result["behaviorClose"] for result in cases.values())
    print("%s: %d cases" % (agent, len(cases)))
    print("  behavior:      " + ", ".join("%s %d" % kv for kv in sorted(counts.items())))
    print("  behaviorClose: " + ", ".join("%s %d" % kv for kv in sorted(close_counts.items())))
    for case in sorted(cases, key=case_key):
        result = cases[case]
        if result["behavior"] not in passing or result["behaviorClose"] not in passing:
            failed = True
            print("  %-8s behavior %-13s behaviorClose %-13s %s" % (
                case, result["behavior"], result["behaviorClose"], result.get("reportfile", "")))
if not index:
    print("no results")
    failed = True
sys.exit(1 if failed else 0)
PY
