#!/usr/bin/env bash
# permessage-deflate throughput side by side: our codec (criterion, benches/deflate.rs)
# and Node `ws` (benches/node/deflate.js) on the same payloads, level 6, window 15.
#
#   bash benches/deflate.sh
#
# Installs `ws` from npm into benches/node/node_modules the first time.
set -euo pipefail
cd "$(dirname "$0")/.."

[ -d benches/node/node_modules/ws ] || (cd benches/node && npm install --no-audit --no-fund --silent)

echo "== rfc6455 (criterion medians; sizes on the wire on stderr)"
cargo bench --bench deflate -- --warm-up-time 1 --measurement-time 3 --noplot 2>&1 |
  grep -E "bytes ->|^deflate_|thrpt:" | sed 's/^ *//'
echo
echo "== Node ws $(node -p "require('./benches/node/node_modules/ws/package.json').version") ($(node --version))"
node benches/node/deflate.js
