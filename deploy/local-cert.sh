#!/usr/bin/env bash
# A self-signed certificate for trying TLS on one machine: valid for localhost and
# 127.0.0.1, an end-entity certificate (not a CA: rustls refuses a CA certificate
# presented as a server's). Writes DIR/cert.pem and DIR/key.pem (P-256).
#
#   bash deploy/local-cert.sh DIR [DAYS]      # default 30 days
#   rfc6455 serve --tls-cert DIR/cert.pem --tls-key DIR/key.pem
#   rfc6455 client wss://localhost:9001/ --ca DIR/cert.pem
#
# The tests, the benchmarks and the Autobahn run over TLS make theirs with it.
set -euo pipefail
dir="${1:?usage: $0 DIR [DAYS]}"
days="${2:-30}"
mkdir -p "$dir"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days "$days" \
  -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
  -addext basicConstraints=critical,CA:FALSE \
  -keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null
