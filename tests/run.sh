#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, unit/property/end-to-end
# tests, the Autobahn TestSuite against our server and our client, and a short run
# of every fuzz target. It first installs what is missing (tests/setup.sh), and it
# fails if any process it started listens beyond loopback (tests/loopback_guard.py).
#
#   bash tests/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."

started=$(date +%s)
# Each step says when it began (seconds into the run), so a slow step shows in the log.
step() { printf '\n==> [%4d s] %s\n' "$(( $(date +%s) - started ))" "$*"; }

step "setup: install what is missing (tests/setup.sh)"
bash tests/setup.sh
# shellcheck disable=SC1091
command -v cargo >/dev/null 2>&1 || . "$HOME/.cargo/env"

step "loopback guard: every listening socket of this run must be on 127.0.0.1"
python3 tests/loopback_guard.py self-test
guard_report="$(mktemp)"
python3 tests/loopback_guard.py watch $$ "$guard_report" & guard_pid=$!

step "import circles: no file of src/ imports one that imports it back (tests/import_circles.py)"
python3 tests/import_circles.py self-test
python3 tests/import_circles.py --known tests/import_circles.known

step "cargo fmt --check"
cargo fmt --all -- --check
(cd fuzz && cargo fmt -- --check)

# --all-targets: the benchmarks and examples are compiled and linted here too (a full
# optimized build of the benchmarks, `cargo bench --no-run`, took 3 minutes of CI).
step "cargo clippy --workspace --all-targets --all-features -- -D warnings"
cargo clippy --workspace --all-targets --all-features -- -D warnings

step "the library alone builds with each feature set (no default features, each one, all)"
for features in "--no-default-features" "--no-default-features --features server" \
  "--no-default-features --features tls" "--no-default-features --features http"; do
  # shellcheck disable=SC2086
  cargo check --quiet -p rfc6455 --lib $features
done

step "cargo doc: no warning, and a runnable example on every public item"
RUSTDOCFLAGS="-D warnings" cargo doc --quiet --no-deps --all-features -p rfc6455
# rustdoc's missing_doc_code_examples lint is unstable, and CI machines have one (stable)
# toolchain: RUSTC_BOOTSTRAP lets this one check use it. It changes nothing that is built
# or shipped; it runs into a target directory of its own so that no other build is redone.
# This toolchain's rustdoc also counts `impl` blocks as items wanting an example; those
# carry no API of their own (their methods are checked), so they are the one exception.
touch src/lib.rs
RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR=target/doc-examples cargo rustdoc --quiet --lib --all-features -- \
  -Z unstable-options -Zcrate-attr="feature(rustdoc_missing_doc_code_examples)" \
  -W rustdoc::missing-doc-code-examples 2>target/doc-examples.log || { cat target/doc-examples.log; exit 1; }
python3 - target/doc-examples.log <<'PY'
import re, sys
report = open(sys.argv[1]).read()
missing = []
for block in re.split(r"\n(?=warning|error)", report):
    if not block.startswith(("warning", "error")) or re.match(r"warning: `rfc6455` \(lib doc\) generated", block):
        continue
    code = re.search(r"^\s*\d+ \|\s*/?\s*(.*)$", block, re.M)
    if block.startswith("warning: missing code example") and code and code.group(1).startswith("impl"):
        continue
    missing.append(block)
if missing:
    print("\n".join(missing))
    sys.exit("rustdoc: %d public items without an example, or other warnings" % len(missing))
print("every public item has an example")
PY

step "cargo test --workspace --all-features (the library, its doctests and examples; the application)"
cargo test --workspace --all-features

step "resource governance against release builds (the bounds are stated for them)"
cargo build --release --workspace --examples --bins --features rfc6455/tls --quiet
cargo test --release -p rfc6455-cli --test governance

step "the README's \`cargo run\` at the workspace root runs the application"
cargo run --release --quiet -- accept dGhlIHNhbXBsZSBub25jZQ== | grep "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" >/dev/null

# interop URL SERVER... : starts each SERVER command (in the background), runs the Python
# websockets client (200 connections, permessage-deflate, every message checked) against
# each URL in turn (the i-th URL is the i-th server's), then stops the servers.
# Arguments after `--ca FILE` go to every client.
interop() {
  local urls=() servers=() pids=() client_args=()
  while [ $# -gt 0 ]; do
    case "$1" in
      --ca) client_args=(--ca "$2"); shift 2 ;;
      ws://*|wss://*) urls+=("$1"); shift ;;
      *) servers+=("$1"); shift ;;
    esac
  done
  for server in "${servers[@]}"; do
    bash -c "exec $server" 2>/dev/null & pids+=($!)
  done
  # shellcheck disable=SC2064
  trap "kill ${pids[*]} 2>/dev/null || true" EXIT
  sleep 0.5
  for url in "${urls[@]}"; do
    python3 tests/interop/websockets_client.py "$url" 200 "${client_args[@]}"
  done
  kill "${pids[@]}" 2>/dev/null || true
  trap - EXIT
}

step "interop: the Python websockets client against both of our servers"
interop ws://127.0.0.1:9401/ "target/release/rfc6455 echo --addr 127.0.0.1:9401" \
  ws://127.0.0.1:9402/ "target/release/examples/echo_server 127.0.0.1:9402"

step "interop: the same client against the core under other drivers (examples/own_mio_loop.rs, examples/tokio_echo.rs)"
interop ws://127.0.0.1:9405/ "target/release/examples/own_mio_loop 127.0.0.1:9405" \
  ws://127.0.0.1:9406/ "target/release/examples/tokio_echo 127.0.0.1:9406"

step "interop over TLS: the Python websockets client (OpenSSL) over wss:// against both servers"
# A certificate made the way the README shows (deploy/local-cert.sh: self-signed, for
# localhost and 127.0.0.1).
tls_dir=target/tls-interop
bash deploy/local-cert.sh "$tls_dir" 2
interop --ca "$tls_dir/cert.pem" \
  wss://localhost:9403/ "target/release/rfc6455 echo --addr 127.0.0.1:9403 --tls-cert $tls_dir/cert.pem --tls-key $tls_dir/key.pem" \
  wss://localhost:9404/ "target/release/examples/echo_server 127.0.0.1:9404 $tls_dir/cert.pem $tls_dir/key.pem"

step "browser: the rooms page at 1280x800 and 390x844 in headless Chromium (screenshots in target/screenshots/)"
target/release/examples/browser_check

step "Autobahn TestSuite: our servers (event loop, also over TLS; blocking; the core under tokio) and our client, side by side"
bash autobahn/run.sh all

step "fuzz smoke: every target for ${FUZZ_SMOKE_SECONDS:-10} s"
bash fuzz/run.sh "${FUZZ_SMOKE_SECONDS:-10}"

step "loopback guard: what the suite listened on"
kill "$guard_pid" && wait "$guard_pid" || true
python3 tests/loopback_guard.py check "$guard_report"

step "all passed"
