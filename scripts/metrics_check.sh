#!/usr/bin/env bash
# Scrapes the axum demo's Prometheus endpoint after some allowed and denied traffic and
# checks the exposition with `promtool check metrics` (Debian package `prometheus`).
set -euo pipefail
cd "$(dirname "$0")/.."
# Free loopback ports, so a busy machine never makes this fail for a port clash.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PORT="${ZT_METRICS_CHECK_PORT:-$(free_port)}"
METRICS="127.0.0.1:$(free_port)"
BIN="${ZT_AXUM_DEMO:-target/debug/examples/axum_orders}"
[ -x "$BIN" ] || cargo build -q --example axum_orders
command -v promtool >/dev/null || { echo "promtool not installed (apt-get install prometheus)"; exit 1; }
LOG=$(mktemp)
ZT_LISTEN="127.0.0.1:$PORT" ZT_METRICS_LISTEN="$METRICS" RUST_LOG=warn "$BIN" 2>"$LOG" &
PID=$!
trap 'kill $PID 2>/dev/null || true; rm -f "$LOG"' EXIT
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break
  sleep 0.1
done
TOKEN=$(grep '^TOKEN=' "$LOG" | sed -n 1p | cut -d= -f2 || true)
[ -n "$TOKEN" ] || { echo "the demo did not start (no dev token); its output:"; cat "$LOG"; exit 1; }
base="http://127.0.0.1:$PORT"
curl -s -o /dev/null "$base/orders"                                   # 401
curl -s -o /dev/null -H "Authorization: Bearer $TOKEN" "$base/orders" # 200
curl -s -o /dev/null -H "Authorization: Bearer $TOKEN" -X DELETE "$base/orders/1" # 403
curl -s -o /dev/null -H "Authorization: Bearer garbage" "$base/orders" # 401 (auth failure)
curl -s -o /dev/null "$base/nope"                                      # 404
OUT=$(mktemp)
curl -fsS "http://$METRICS/metrics" > "$OUT"
grep -q '^zt_requests_total' "$OUT" || { echo "no zt_requests_total in the scrape"; cat "$OUT"; exit 1; }
promtool check metrics < "$OUT"
echo "metrics: $(grep -c '^zt_' "$OUT") zt samples, promtool check passed"
rm -f "$OUT"
