#!/usr/bin/env bash
# Load test of issue 2: GET /orders on the axum orders demo behind zt (dev mode, cached
# token) against the same API without zt (examples/axum_orders_unprotected.rs), with wrk.
# Both get the same request, Authorization header included (the baseline ignores it), so
# the difference is zt's work only. Runs alternate (baseline, zt, baseline, zt, ...) to
# spread the machine's noise. Prints requests/s of every run and the throughput ratio
# zt / unprotected (target >= 0.85).
#
# Usage: scripts/load.sh
# Environment:
#   DURATION     wrk duration of each measured run (default 10s)
#   ROUNDS       measured rounds, each one baseline run then one zt run (default 3)
#   THREADS      wrk threads (default 2)
#   CONNECTIONS  wrk connections (default 32)
#   RUST_LOG     log filter of both servers (default info, as the demo ships)
#
# Only ever targets 127.0.0.1. Installs wrk (and curl) with apt-get when missing (needs root).
set -euo pipefail

cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-32}
export RUST_LOG=${RUST_LOG:-info}
ZT_ADDR=127.0.0.1:18080
BASE_ADDR=127.0.0.1:18081

missing=()
for tool in wrk curl; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if ((${#missing[@]})); then
    echo "== installing ${missing[*]}" >&2
    if ! apt-get install -y "${missing[@]}" >/dev/null 2>&1; then
        apt-get update >/dev/null
        apt-get install -y "${missing[@]}" >/dev/null
    fi
fi

echo "== building (release)" >&2
cargo build --release --example axum_orders --example axum_orders_unprotected

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

# The zt demo in dev mode: no ZT_JWKS, so it generates a key and prints tokens.
# Rate limits stay on (the limiter runs on every request) but generous enough never to
# throttle the benchmark; ZT_LOAD_RATE=off measures without them.
env -u ZT_JWKS -u ZT_MODE -u ZT_ISSUER -u ZT_AUDIENCE ZT_LISTEN=$ZT_ADDR \
    ZT_RATE="${ZT_LOAD_RATE:-1000000/s}" ZT_RATE_ANON="${ZT_LOAD_RATE:-1000000/s}" \
    ZT_METRICS_LISTEN="${ZT_LOAD_METRICS:-127.0.0.1:19464}" \
    target/release/examples/axum_orders >"$work/zt.out" 2>"$work/zt.err" &
pids+=($!)
zt_pid=$!
ZT_LISTEN=$BASE_ADDR target/release/examples/axum_orders_unprotected \
    >"$work/base.out" 2>"$work/base.err" &
pids+=($!)
base_pid=$!

# status PATH ADDR [TOKEN]: the HTTP status of a GET.
status() {
    local auth=()
    if [[ -n ${3:-} ]]; then
        auth=(-H "Authorization: Bearer $3")
    fi
    curl -s -o /dev/null -w '%{http_code}' --max-time 2 "${auth[@]}" "http://$2$1" || true
}

wait_healthy() {
    local addr=$1 pid=$2 log=$3
    for _ in $(seq 1 100); do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "server for $addr exited:" >&2
            cat "$log" >&2
            exit 1
        fi
        if [[ $(status /health "$addr") == 200 ]]; then
            return 0
        fi
        sleep 0.1
    done
    echo "server for $addr did not answer /health in 10 s" >&2
    cat "$log" >&2
    exit 1
}
wait_healthy $ZT_ADDR $zt_pid "$work/zt.err"
wait_healthy $BASE_ADDR $base_pid "$work/base.err"

# The first dev token: alice with scope orders:read, what GET /orders needs.
TOKEN=$(grep -m1 '^TOKEN=' "$work/zt.err" | cut -d= -f2-)
if [[ -z $TOKEN ]]; then
    echo "no TOKEN= line from the zt demo" >&2
    cat "$work/zt.err" >&2
    exit 1
fi

# Make sure each side answers what we think before measuring it.
[[ $(status /orders $ZT_ADDR) == 401 ]] || { echo "zt demo: GET /orders without a token is not 401" >&2; exit 1; }
[[ $(status /orders $ZT_ADDR "$TOKEN") == 200 ]] || { echo "zt demo: GET /orders with the token is not 200" >&2; exit 1; }
[[ $(status /orders $BASE_ADDR) == 200 ]] || { echo "baseline: GET /orders is not 200" >&2; exit 1; }

# run NAME ADDR DURATION [TOKEN]: one wrk run, prints its requests/s.
run() {
    local name=$1 addr=$2 duration=$3 token=${4:-}
    local header=()
    if [[ -n $token ]]; then
        header=(-H "Authorization: Bearer $token")
    fi
    local out
    out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$duration" "${header[@]}" "http://$addr/orders")
    if grep -q 'Non-2xx or 3xx responses' <<<"$out"; then
        echo "$name: wrk saw error responses:" >&2
        echo "$out" >&2
        exit 1
    fi
    local rps
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    if [[ -z $rps ]]; then
        echo "$name: no Requests/sec in wrk output:" >&2
        echo "$out" >&2
        exit 1
    fi
    echo "$rps"
}

echo "== machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
echo "== wrk -t$THREADS -c$CONNECTIONS -d$DURATION GET /orders, same Authorization header to both, RUST_LOG=$RUST_LOG, $ROUNDS rounds"
echo "== warm-up (2s each, not counted)"
run unprotected $BASE_ADDR 2s "$TOKEN" >/dev/null
run zt $ZT_ADDR 2s "$TOKEN" >/dev/null

results=()
for round in $(seq 1 "$ROUNDS"); do
    base=$(run unprotected $BASE_ADDR "$DURATION" "$TOKEN")
    zt=$(run zt $ZT_ADDR "$DURATION" "$TOKEN")
    printf 'round %s  unprotected %10.1f req/s  zt %10.1f req/s  ratio %.3f\n' \
        "$round" "$base" "$zt" "$(awk -v b="$base" -v z="$zt" 'BEGIN {print z / b}')"
    results+=("$base $zt")
done

# Median of the per-round ratios (sort, then the middle), and the ratio of the means.
median=$(printf '%s\n' "${results[@]}" | awk '{ print $2 / $1 }' | sort -g |
    awk '{ r[NR] = $1 } END { print (NR % 2) ? r[(NR + 1) / 2] : (r[NR / 2] + r[NR / 2 + 1]) / 2 }')
printf '%s\n' "${results[@]}" | awk -v median="$median" '
    { b += $1; z += $2 }
    END {
        printf "mean     unprotected %10.1f req/s  zt %10.1f req/s\n", b / NR, z / NR
        printf "ratio zt/unprotected: %.3f of the means, %.3f median of the rounds (target >= 0.85)\n", z / b, median
    }'
