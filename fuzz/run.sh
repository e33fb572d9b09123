#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 60) and prints, per target, the
# executions per second, the total executions and the coverage libFuzzer reports.
#
#   bash fuzz/run.sh [--asan] [SECONDS] [TARGET...]
#
# Uses cargo-fuzz (installed if missing) on the stable toolchain without a sanitizer: the
# crate is safe Rust but for one `unsafe` line (`mask::extend_unmasked`, checked under
# miri), so AddressSanitizer finds little in it that safe Rust's own checks do not, and is
# several times slower. --asan builds with AddressSanitizer on nightly instead (installed
# if missing), for that line and for the code that is not ours and is not safe Rust: zlib-rs under permessage-deflate, simdutf8's SIMD, mio and socket2 under the event
# loop, tungstenite under the diff_* targets. Seeds come from fuzz/corpus/TARGET (never
# written to); what the fuzzer finds goes to fuzz/target/corpus/TARGET; crashes to
# fuzz/artifacts/TARGET. Exits non-zero if any target fails.
set -euo pipefail
cd "$(dirname "$0")"

sanitizer="${FUZZ_SANITIZER:-none}"
rss_limit=512
# The default toolchain (stable works without a sanitizer); FUZZ_TOOLCHAIN=nightly to pick one.
toolchain=()
[ -n "${FUZZ_TOOLCHAIN:-}" ] && toolchain=(+"$FUZZ_TOOLCHAIN")
if [ "${1:-}" = "--asan" ]; then
  shift
  sanitizer=address
  toolchain=(+nightly)
  rss_limit=2048 # ASan's shadow memory and quarantine
  rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
fi

seconds="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(frame_header handshake_request handshake_response connection_server
           connection_client utf8 roundtrip inspect connection_deflate extensions tap
           client_handshake send_api diff_frames diff_handshake event_loop connection_lent token)
fi

command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
cargo ${toolchain[@]+"${toolchain[@]}"} fuzz build --sanitizer "$sanitizer" >&2

failed=0
summary=()
for target in "${targets[@]}"; do
  work="target/corpus/$target"
  mkdir -p "$work"
  # Per-target options: a dictionary of HTTP words for the head parsers; the event-loop
  # scripts start at full length (their ops are useless in libFuzzer's first short inputs).
  extra=()
  case "$target" in
    handshake_* | extensions) extra=(-dict=handshake.dict) ;;
    diff_handshake) extra=(-dict=handshake.dict -max_len=1024) ;;
    event_loop) extra=(-len_control=0 -max_len=2048) ;;
  esac
  log="target/fuzz-$target.log"
  echo "==> $target for ${seconds}s" >&2
  if cargo ${toolchain[@]+"${toolchain[@]}"} fuzz run --sanitizer "$sanitizer" "$target" "$work" "corpus/$target" -- \
      -max_total_time="$seconds" -print_final_stats=1 -rss_limit_mb=$rss_limit \
      ${extra[@]+"${extra[@]}"} >"$log" 2>&1; then
    status=ok
  else
    status=FAILED
    failed=1
    tail -40 "$log" >&2
  fi
  # The last status line: "#RUNS DONE cov: C ft: F corp: ... exec/s: E rss: R".
  done_line=$(grep -E '^#[0-9]+' "$log" | tail -1)
  runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo "?")
  execs=$(grep -oE 'stat::average_exec_per_sec: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo "?")
  cov=$(echo "$done_line" | grep -oE 'cov: [0-9]+' | grep -oE '[0-9]+' || echo "?")
  ft=$(echo "$done_line" | grep -oE 'ft: [0-9]+' | grep -oE '[0-9]+' || echo "?")
  rss=$(grep -oE 'stat::peak_rss_mb: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo "?")
  summary+=("$(printf '%-20s %-7s %12s %10s %6s %7s %6s' "$target" "$status" "$runs" "$execs" "$cov" "$ft" "$rss")")
  # The differential targets name each known difference they meet (fuzz/differences.rs).
  grep -h '^known difference:' "$log" | sort -u | sed "s/^/  $target: /" >&2 || true
done

printf '\n%-20s %-7s %12s %10s %6s %7s %6s\n' target status executions exec/s cov ft rss_mb
printf '%s\n' "${summary[@]}"
exit $failed
