#!/usr/bin/env bash
# Runs the Autobahn TestSuite against rfc6455 and fails unless every case run passes
# strictly (OK or INFORMATIONAL, for the behaviour and the closing behaviour). 517
# cases per agent with AUTOBAHN_ALL=1; see below for what CI leaves out.
#
#   autobahn/run.sh server   wstest's fuzzingclient tests our servers (autobahn/fuzzingclient.json):
#                            `rfc6455 echo` (the mio event loop), also over TLS (wss://, a
#                            certificate made with openssl); examples/echo_server (blocking);
#                            examples/tokio_echo (the sans-IO core driven by tokio). The
#                            permessage-deflate cases (12.*, 13.*) are the slowest for wstest:
#                            in CI only the event loop runs them (the other agents reach the
#                            same core and the same negotiation code); AUTOBAHN_ALL=1 runs
#                            all 517 cases for every agent
#   autobahn/run.sh client   wstest's fuzzingserver tests our client (autobahn/fuzzingserver.json)
#   autobahn/run.sh all      both
#
# wstest is single-threaded Python and the bottleneck (our agents idle meanwhile), so
# each agent gets a wstest process of its own and they run side by side.
#
# wstest comes from Docker (crossbario/autobahn-testsuite) when a Docker engine answers,
# else from a local install that autobahn/install-wstest.sh makes under ~/.cache.
# Reports land in autobahn/reports/{server/AGENT,client}/ (index.html for a browser).
#
# Every socket wstest listens on binds 127.0.0.1 (autobahn/loopback/sitecustomize.py:
# wstest has no option for it), and its report web server does not run (webport 0).
set -euo pipefail

mode="${1:-}"
case "$mode" in
  server|client|all) ;;
  *) echo "usage: $0 server|client|all" >&2; exit 2 ;;
esac

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
  docker_run() {
    exec docker run --rm --name "rfc6455-wstest-$$-$1" --net=host -v "$root:$root" -w "$root" \
      -e PYTHONPATH="$root/autobahn/loopback" crossbario/autobahn-testsuite wstest "${@:2}"
  }
  wstest=(docker_run)
else
  wstest_bin="$(bash "$root/autobahn/install-wstest.sh")"   # installs once, then just answers
  export WSTEST_PYTHONPATH="$root/autobahn/loopback"
  # exec: in a background subshell, $! is then wstest itself, which cleanup can stop.
  local_run() { exec "$wstest_bin" "${@:2}"; }
  wstest=(local_run)
fi

# Every process started here is stopped on the way out, whatever happens.
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  pids=()
  docker ps -q --filter "name=rfc6455-wstest-$$-" 2>/dev/null | xargs -r docker rm -f >/dev/null 2>&1 || true
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

# `tls` for the examples that serve wss:// (the application turns it on as well).
cargo build --release --workspace --examples --bins --features rfc6455/tls --quiet
mkdir -p autobahn/reports
start=$(date +%s)
runs=()      # "name pid log" of each wstest run
indexes=()   # the index.json of each report

if [ "$mode" != client ]; then
  rm -rf autobahn/reports/server
  # The testees: the blocking echo server, the event loop (plain and TLS), tokio.
  target/release/examples/echo_server 127.0.0.1:9002 2>/dev/null &
  pids+=($!)
  # Autobahn's 9.* cases send messages of up to 16 MiB as fast as they can: the
  # echo server's modest defaults (1 MiB, 10,000 messages/s) are raised for it.
  target/release/rfc6455 echo --addr 127.0.0.1:9003 --max-message 67108864 --max-rate 0 2>/dev/null &
  pids+=($!)
  # The event loop again over TLS (deploy/local-cert.sh; wstest does not check it).
  tls_dir=autobahn/reports/tls
  bash deploy/local-cert.sh "$tls_dir" 2
  target/release/rfc6455 echo --addr 127.0.0.1:9006 --max-message 67108864 --max-rate 0 \
    --tls-cert "$tls_dir/cert.pem" --tls-key "$tls_dir/key.pem" 2>/dev/null &
  pids+=($!)
  # The core under tokio: examples/tokio_echo.rs, a driver written outside the crate.
  target/release/examples/tokio_echo 127.0.0.1:9007 2>/dev/null &
  pids+=($!)
  wait_for_port 9002
  wait_for_port 9003
  wait_for_port 9006
  wait_for_port 9007
  # One spec (and wstest) per agent, from autobahn/fuzzingclient.json; AUTOBAHN_AGENTS
  # (names, space-separated) runs only those.
  agents="${AUTOBAHN_AGENTS:-$(python3 -c 'import json; print(" ".join(s["agent"] for s in json.load(open("autobahn/fuzzingclient.json"))["servers"]))')}"
  for agent in $agents; do
    spec="autobahn/reports/spec-$agent.json"
    python3 - "$agent" "$spec" <<'PY'
import json, os, sys
agent, out = sys.argv[1], sys.argv[2]
spec = json.load(open("autobahn/fuzzingclient.json"))
spec["servers"] = [s for s in spec["servers"] if s["agent"] == agent]
# An agent's own "exclude" (not a wstest key) goes to the spec's exclude-cases, unless
# AUTOBAHN_ALL is set.
skip = spec["servers"][0].pop("exclude", [])
if not os.environ.get("AUTOBAHN_ALL"):
    spec["exclude-cases"] = spec.get("exclude-cases", []) + skip
spec["outdir"] = "./autobahn/reports/server/" + agent
json.dump(spec, open(out, "w"), indent=1)
PY
    log="autobahn/reports/wstest-$agent.log"
    "${wstest[@]}" "$agent" -m fuzzingclient -s "$spec" >"$log" 2>&1 &
    runs+=("$agent $! $log")
    indexes+=("autobahn/reports/server/$agent/index.json")
  done
fi

if [ "$mode" != server ]; then
  rm -rf autobahn/reports/client
  webport=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1])).get("webport", 0))' \
    autobahn/fuzzingserver.json)
  "${wstest[@]}" client -m fuzzingserver -s autobahn/fuzzingserver.json --webport "$webport" \
    >autobahn/reports/wstest-fuzzingserver.log 2>&1 &
  pids+=($!)
  wait_for_port 9001
  target/release/examples/autobahn_client ws://127.0.0.1:9001 >autobahn/reports/client.log 2>&1 &
  runs+=("client $! autobahn/reports/client.log")
  indexes+=("autobahn/reports/client/index.json")
fi

failed=0
for run in "${runs[@]}"; do
  read -r name pid log <<<"$run"
  if wait "$pid"; then
    echo "autobahn $name: finished after $(( $(date +%s) - start )) s"
  else
    echo "autobahn $name: exited with an error" >&2
    tail -20 "$log" >&2
    failed=1
  fi
done
cleanup

python3 - "${indexes[@]}" <<'PY' || failed=1
import collections, json, os, sys

passing = {"OK", "INFORMATIONAL"}
failed = False

def case_key(case):
    return [int(part) for part in case.split(".")]

for path in sys.argv[1:]:
    if not os.path.exists(path):
        print("no results in %s" % path)
        failed = True
        continue
    with open(path) as f:
        index = json.load(f)
    if not index:
        print("no results in %s" % path)
        failed = True
    for agent, cases in sorted(index.items()):
        counts = collections.Counter(result["behavior"] for result in cases.values())
        close_counts = collections.Counter(result["behaviorClose"] for result in cases.values())
        seconds = sum(result.get("duration", 0) for result in cases.values()) / 1000.0
        print("%s: %d cases (%.0f s of cases)" % (agent, len(cases), seconds))
        print("  behavior:      " + ", ".join("%s %d" % kv for kv in sorted(counts.items())))
        print("  behaviorClose: " + ", ".join("%s %d" % kv for kv in sorted(close_counts.items())))
        for case in sorted(cases, key=case_key):
            result = cases[case]
            if result["behavior"] not in passing or result["behaviorClose"] not in passing:
                failed = True
                print("  %-8s behavior %-13s behaviorClose %-13s %s" % (
                    case, result["behavior"], result["behaviorClose"], result.get("reportfile", "")))
sys.exit(1 if failed else 0)
PY
echo "autobahn $mode: $(( $(date +%s) - start )) s in all"
exit $failed
