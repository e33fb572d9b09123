#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, unit/property/end-to-end
# tests, and the Autobahn TestSuite against our server and our client.
#
#   bash tests/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings

step "cargo test"
cargo test

step "Autobahn TestSuite: our servers"
bash autobahn/run.sh server

step "Autobahn TestSuite: our client"
bash autobahn/run.sh client

step "all passed"
