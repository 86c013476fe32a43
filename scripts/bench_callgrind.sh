#!/usr/bin/env bash
# Instruction counts per request of the axum demo under load (issue 17): the release demo
# runs under valgrind's callgrind while wrk sends `GET /orders` with a cached token (every
# stage on, RUST_LOG=info as the demo ships) for a few seconds; then each function's
# inclusive count is divided by the calls it got. Deterministic to about 1% (unlike req/s
# on this shared 2-core machine), so a change's effect shows even when the machine is busy.
#
# Usage: scripts/bench_callgrind.sh [BINARY] [VAR=value ...]
#   BINARY   the demo to measure (default: target/release/examples/axum_orders, built here)
#   VAR=...  extra environment for the demo, e.g. ZT_TOKEN_CACHE=off
# Environment: DURATION (wrk seconds under valgrind, default 8), OUT (callgrind file to keep).
#
# Only ever targets 127.0.0.1. Installs valgrind, wrk and curl with apt-get when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-8}
bin=${1:-}
[[ $# -gt 0 ]] && shift
missing=()
for tool in valgrind wrk curl; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if ((${#missing[@]})); then
    apt-get install -y "${missing[@]}" >/dev/null 2>&1 || { apt-get update >/dev/null; apt-get install -y "${missing[@]}" >/dev/null; }
fi
if [[ -z $bin ]]; then
    cargo build --release --example axum_orders >&2
    bin=target/release/examples/axum_orders
fi

work=$(mktemp -d)
out=${OUT:-$work/callgrind.out}
pid=
cleanup() {
    [[ -n $pid ]] && kill "$pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

addr=127.0.0.1:18382
env -u ZT_JWKS -u ZT_MODE -u ZT_POLICY -u ZT_REDIS_URL "$@" ZT_LISTEN=$addr ZT_METRICS_LISTEN=127.0.0.1:18392 \
    ZT_RATE=1000000/s ZT_RATE_ANON=1000000/s RUST_LOG=${RUST_LOG:-info} \
    valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" >"$work/out" 2>"$work/err" &
pid=$!
for _ in $(seq 1 300); do
    curl -sf -o /dev/null "http://$addr/health" && break
    sleep 0.2
done
token=$(grep '^TOKEN=' "$work/err" | head -1 | cut -d= -f2)
[[ -n $token ]] || { echo "the demo printed no TOKEN= line" >&2; cat "$work/err" >&2; exit 1; }
[[ $(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" "http://$addr/orders") == 200 ]] ||
    { echo "GET /orders with the token is not 200" >&2; exit 1; }
wrk -t1 -c4 -d"${DURATION}s" -H "Authorization: Bearer $token" "http://$addr/orders" | grep -E 'requests in' >&2
# SIGTERM: valgrind writes the profile as the demo exits.
kill -TERM "$pid"
wait "$pid" 2>/dev/null || true
pid=

# Inclusive counts and calls of each function, from callgrind_annotate's caller tree.
callgrind_annotate --inclusive=yes --tree=caller --threshold=100 "$out" 2>/dev/null | python3 -c '
import re, sys
wanted = [
    ("whole request (hyper Dispatcher::poll_catch)", r"Dispatcher<D,Bs,I,T>::poll_catch$"),
    ("hyper: parse the request", r"Http1Transaction>::parse$"),
    ("hyper: encode the response", r"Http1Transaction>::encode$"),
    ("zt-tower: ZeroTrustService::call (decision, boxing)", r"ZeroTrustService<S> as tower_service::Service<.*>>::call$"),
    ("  zt: Guard::check", r"Guard>::check$"),
    ("zt-tower: dispatch (after the decision, app included)", r"zt_tower::layer::dispatch::\{\{closure\}\}$"),
    ("  app: axum Router::call_with_state", r"axum::routing::Router<S>::call_with_state$"),
    ("  zt: ReadResponse::finish (response phase)", r"ReadResponse::finish$"),
    ("    zt: ResponseSpec::withhold (x-zt-scopes)", r"ResponseSpec::withhold$"),
    ("    zt: Observation::finish (observer record)", r"Observation::finish$"),
    ("  zt-tower: add_headers", r"zt_tower::layer::add_headers$"),
]
totals, calls, callers = {}, {}, []
for line in sys.stdin:
    m = re.match(r"\s*([\d,]+) \([^)]*\)\s+<\s+.*? \(([\d,]+)x\)", line)
    if m:
        callers.append(int(m.group(2).replace(",", "")))
        continue
    m = re.match(r"\s*([\d,]+) \([^)]*\)\s+\*\s+(.*?)(?: \[.*)?$", line)
    if m:
        name = m.group(2)
        for label, rx in wanted:
            if label not in totals and re.search(rx, name):
                totals[label] = int(m.group(1).replace(",", ""))
                calls[label] = sum(callers)
    if not line.strip() or m:
        callers = []
for label, _ in wanted:
    if label in totals and calls[label]:
        print(f"{totals[label] / calls[label]:>10,.0f} Ir/call  {calls[label]:>7} calls  {label}")
'
