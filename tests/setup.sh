#!/usr/bin/env bash
# Installs what the test suite needs and this machine lacks; tests/run.sh calls it
# first, so the README's one test command works on a fresh machine. Idempotent: what
# is already there is left alone, and a second run installs nothing.
#
#   bash tests/setup.sh
#
# What it may install, and why:
#   rustup (if there is no cargo), rustfmt, clippy      formatting and lint checks
#   Debian: python3, python3-pip (if missing)           the interop client, wstest's installer
#   Debian: chromium                                    the browser test of the chat page
#   Debian: redis-server, haproxy                       the cluster test (serve --redis behind a balancer)
#   Debian: openssl                                     the interop test's certificate (the README's command)
#   Debian: ca-certificates                             the platform roots a wss:// client trusts by default
#   Debian: curl                                        the docs' curl commands (cli/tests/docs_commands.rs)
#   Debian: build-essential (if there is no cc/c++)     ring's and libFuzzer's C/C++ parts
#   PyPI:   websockets (user site)                      the interop test's client
#   ~/.cache/rfc6455-wstest                             the Autobahn TestSuite (autobahn/install-wstest.sh)
#   cargo:  cargo-fuzz                                  the fuzz smoke run
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'setup: %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# Rust: the stable toolchain with rustfmt and clippy.
if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
  # shellcheck disable=SC1091
  . "$HOME/.cargo/env"
fi
if ! command -v cargo >/dev/null 2>&1; then
  say "installing Rust (rustup, stable, minimal profile)"
  curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
  # shellcheck disable=SC1091
  . "$HOME/.cargo/env"
fi
if command -v rustup >/dev/null 2>&1; then
  for component in rustfmt clippy; do
    if ! rustup component list --installed 2>/dev/null | grep -q "^$component"; then
      say "installing the $component component"
      rustup component add "$component" >/dev/null
    fi
  done
fi

# Debian packages.
need_apt=()
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
python3 -m pip --version >/dev/null 2>&1 || need_apt+=(python3-pip)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
command -v haproxy >/dev/null 2>&1 || need_apt+=(haproxy)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
{ command -v cc && command -v c++; } >/dev/null 2>&1 || need_apt+=(build-essential)
[ -s /etc/ssl/certs/ca-certificates.crt ] || need_apt+=(ca-certificates)
if [ ${#need_apt[@]} -gt 0 ]; then
  say "installing Debian packages: ${need_apt[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# Python `websockets` from PyPI, for the user (Debian's system Python refuses a plain
# user install without --break-system-packages).
# PyJWT with cryptography: the identity tests' tokens are made by it, not by us.
if ! python3 -c 'import jwt, cryptography' 2>/dev/null; then
  say "installing PyJWT and cryptography from PyPI (user site)"
  python3 -m pip install --quiet --user pyjwt cryptography 2>/dev/null ||
    python3 -m pip install --quiet --user --break-system-packages pyjwt cryptography
fi
if ! python3 -c 'import websockets' 2>/dev/null; then
  say "installing websockets from PyPI (user site)"
  python3 -m pip install --quiet --user websockets 2>/dev/null ||
    python3 -m pip install --quiet --user --break-system-packages websockets
fi

# The Autobahn TestSuite (Python 2.7 from Debian bullseye, under ~/.cache).
bash autobahn/install-wstest.sh >/dev/null

# cargo-fuzz, on the stable toolchain (fuzz/run.sh uses it without a sanitizer).
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  say "installing cargo-fuzz"
  cargo install cargo-fuzz --locked --quiet
fi

say "everything the tests need is here"
