#!/usr/bin/env bash
# Peer benchmark of issue 8: the same orders API, routes, tokens and request mix, on loopback,
# in one run, against
#   unprotected  examples/axum_orders_unprotected.rs (no security: the baseline)
#   zt-axum      examples/axum_orders.rs (zt, dev mode: it mints the tokens and serves the JWKS)
#   zt-actix     examples/actix_orders.rs (zt, keys from the zt-axum demo's JWKS file)
#   peer         benches/peer (axum 0.7 + jwt-authorizer + tower_governor + jsonschema by
#                hand: the stack a user assembles today; FOR COMPARISON ONLY)
# with wrk, and prints requests/s, p50 and p99 latency and each one's ratio to the
# unprotected service.
#
# Scenarios (every GET run comes before any POST run, so the lists stay empty everywhere):
#   get   GET /orders with one cached token (alice, orders:read)
#   post  POST /orders with a valid JSON order (alice, orders:read orders:write), three
#         bodies in turn (scripts/bench_post.lua): body validation on every request
#
# The zt demos run with quotas of 1M/s (ZT_RATE, ZT_RATE_ANON): the limiter decides on
# every request but never throttles the benchmark; the peer's tower_governor quota is as
# loose (1M burst, 1M/s). Rate limiting is in the request path of both (its cost is measured).
#
# Stage costs (issues 3, 4, 6): the zt axum demo with one stage switched off, in the same run:
#   zt-no-contract  ZT_CONTRACT=off (no OpenAPI enforcement: parameters, bodies)
#   zt-no-limits    ZT_LIMITS=off (no rate limits, no lockout)
#   zt-no-observe   ZT_OBSERVE=off (no monitoring: detection, KPIs, inventory)
#   zt-no-cache     ZT_TOKEN_CACHE=off (no verified-token cache: every request verifies the
#                   token's ES256 signature, as the peer's jwt-authorizer does; every other
#                   stage stays on). Issue 17's cache-off figure:
#                   SERVICES="unprotected zt-no-cache peer" scripts/bench_peers.sh
# SERVICES="unprotected zt-axum zt-no-contract zt-no-limits zt-no-observe" scripts/bench_peers.sh
# prints, besides the table, zt-axum's throughput as a fraction of each variant's.
#
# Usage: scripts/bench_peers.sh
# Environment:
#   DURATION     wrk duration of each measured run (default 10s)
#   ROUNDS       measured rounds per scenario (default 1); the table shows the median
#   THREADS      wrk threads (default 2)
#   CONNECTIONS  wrk connections (default 32)
#   SCENARIOS    default "get post"
#   SERVICES     default "unprotected zt-axum zt-actix peer" (any of those and the zt-no-* variants)
# Interface: the zt-no-* variants are the axum demo started with the variable named above;
# each switches one thing off for measuring it and must never be used in production.
#   RUST_LOG     log filter of every server (default info, as the demos ship)
#
# Only ever targets 127.0.0.1. Installs wrk and curl with apt-get when missing (needs root).
# The machine is small (2 CPUs shared by wrk and the server): compare ratios within one run.
set -euo pipefail

cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-1}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-32}
SCENARIOS=${SCENARIOS:-get post}
export RUST_LOG=${RUST_LOG:-info}
BASE_ADDR=127.0.0.1:18281
AXUM_ADDR=127.0.0.1:18282
ACTIX_ADDR=127.0.0.1:18283
PEER_ADDR=127.0.0.1:18284
read -r -a SERVICES <<<"${SERVICES:-unprotected zt-axum zt-actix peer}"
declare -A ADDR=([unprotected]=$BASE_ADDR [zt-axum]=$AXUM_ADDR [zt-actix]=$ACTIX_ADDR [peer]=$PEER_ADDR
    [zt-no-contract]=127.0.0.1:18285 [zt-no-limits]=127.0.0.1:18286 [zt-no-observe]=127.0.0.1:18287
    [zt-no-cache]=127.0.0.1:18288)
# The environment that switches a variant's stage off (the demos read these variables:
# examples/orders/mod.rs, `Config::from_env`).
declare -A STAGE_OFF=([zt-no-contract]=ZT_CONTRACT=off [zt-no-limits]=ZT_LIMITS=off [zt-no-observe]=ZT_OBSERVE=off
    [zt-no-cache]=ZT_TOKEN_CACHE=off)
for service in "${SERVICES[@]}"; do
    [[ -n ${ADDR[$service]:-} ]] || { echo "unknown service $service" >&2; exit 2; }
done
# wanted NAME: whether NAME is measured in this run.
wanted() {
    local s
    for s in "${SERVICES[@]}"; do [[ $s == "$1" ]] && return 0; done
    return 1
}

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
cargo build --release --example axum_orders --example actix_orders --example axum_orders_unprotected >&2
# The peer is its own workspace; sharing the target directory reuses the common crates.
if wanted peer; then
    cargo build --release --manifest-path benches/peer/Cargo.toml --target-dir target >&2
fi

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

# wait_up NAME ADDR: until GET /health answers 200 (at most 30 s).
wait_up() {
    local name=$1 addr=$2
    for _ in $(seq 1 300); do
        if [[ $(curl -s -o /dev/null -w '%{http_code}' "http://$addr/health" || true) == 200 ]]; then
            return 0
        fi
        sleep 0.1
    done
    echo "$name did not start on $addr:" >&2
    cat "$work/$name".{out,err} >&2 || true
    exit 1
}

clean_env=(env -u ZT_JWKS -u ZT_MODE -u ZT_ISSUER -u ZT_AUDIENCE -u ZT_POLICY -u ZT_REDIS_URL
    -u ZT_TLS_CERT -u ZT_TLS_KEY -u ZT_CLIENT_CA -u ZT_TRUSTED_PROXIES)

quotas=(ZT_RATE=1000000/s ZT_RATE_ANON=1000000/s)
# zt axum demo in dev mode first: it mints the tokens and serves the JWKS everyone verifies with.
"${clean_env[@]}" ZT_LISTEN=$AXUM_ADDR ZT_METRICS_LISTEN=127.0.0.1:18292 "${quotas[@]}" \
    target/release/examples/axum_orders >"$work/zt-axum.out" 2>"$work/zt-axum.err" &
pids+=($!)
wait_up zt-axum $AXUM_ADDR
mapfile -t TOKENS < <(grep '^TOKEN=' "$work/zt-axum.err" | cut -d= -f2)
if ((${#TOKENS[@]} < 3)); then
    echo "no TOKEN= lines from the zt axum demo" >&2
    cat "$work/zt-axum.err" >&2
    exit 1
fi
READ_TOKEN=${TOKENS[0]}  # alice: orders:read
WRITE_TOKEN=${TOKENS[1]} # alice: orders:read orders:write
curl -sf "http://$AXUM_ADDR/.well-known/jwks.json" -o "$work/jwks.json"

if wanted zt-actix; then
    "${clean_env[@]}" ZT_LISTEN=$ACTIX_ADDR ZT_METRICS_LISTEN=127.0.0.1:18293 "${quotas[@]}" \
        ZT_JWKS="$work/jwks.json" target/release/examples/actix_orders >"$work/zt-actix.out" 2>"$work/zt-actix.err" &
    pids+=($!)
fi
if wanted peer; then
    "${clean_env[@]}" ZT_LISTEN=$PEER_ADDR ZT_JWKS="$work/jwks.json" \
        target/release/zt-peer-bench >"$work/peer.out" 2>"$work/peer.err" &
    pids+=($!)
fi
metrics_port=18294
for variant in "${!STAGE_OFF[@]}"; do
    wanted "$variant" || continue
    metrics_port=$((metrics_port + 1))
    "${clean_env[@]}" ZT_LISTEN=${ADDR[$variant]} ZT_METRICS_LISTEN=127.0.0.1:$metrics_port "${quotas[@]}" \
        "${STAGE_OFF[$variant]}" ZT_JWKS="$work/jwks.json" target/release/examples/axum_orders \
        >"$work/$variant.out" 2>"$work/$variant.err" &
    pids+=($!)
done
"${clean_env[@]}" ZT_LISTEN=$BASE_ADDR target/release/examples/axum_orders_unprotected \
    >"$work/unprotected.out" 2>"$work/unprotected.err" &
pids+=($!)
for service in "${SERVICES[@]}"; do
    [[ $service == zt-axum ]] || wait_up "$service" "${ADDR[$service]}"
done
wanted unprotected || wait_up unprotected $BASE_ADDR

# Every service answers what we think before anything is measured.
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
for service in "${SERVICES[@]}"; do
    [[ $service == unprotected ]] && continue
    addr=${ADDR[$service]}
    [[ $(code "http://$addr/orders") == 401 ]] ||
        { echo "$service: GET /orders without a token is not 401" >&2; exit 1; }
    [[ $(code -H "Authorization: Bearer $READ_TOKEN" "http://$addr/orders") == 200 ]] ||
        { echo "$service: GET /orders with the read token is not 200" >&2; exit 1; }
    [[ $(code -X POST -H "Authorization: Bearer $READ_TOKEN" -H 'content-type: application/json' \
        -d '{"item":"a","quantity":1}' "http://$addr/orders") == 403 ]] ||
        { echo "$service: POST /orders with the read token is not 403" >&2; exit 1; }
    # Without the contract stage an invalid order reaches the handler (which answers 500).
    [[ $service == zt-no-contract ]] && continue
    [[ $(code -X POST -H "Authorization: Bearer $WRITE_TOKEN" -H 'content-type: application/json' \
        -d '{"item":"a","quantity":0}' "http://$addr/orders") == 400 ]] ||
        { echo "$service: POST /orders with quantity 0 is not 400" >&2; exit 1; }
done
[[ $(code "http://$BASE_ADDR/orders") == 200 ]] || { echo "unprotected: GET /orders is not 200" >&2; exit 1; }

# to_ms VALUE: wrk's 812.00us / 1.23ms / 1.02s / 2.00m in milliseconds.
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000
        printf "%.3f", n
    }'
}

# run SCENARIO SERVICE DURATION: one wrk run; prints "rps p50_ms p99_ms non2xx".
run() {
    local scenario=$1 service=$2 duration=$3 addr=${ADDR[$2]}
    local args=(-t"$THREADS" -c"$CONNECTIONS" -d"$duration" --latency)
    case $scenario in
    get) args+=(-H "Authorization: Bearer $READ_TOKEN" "http://$addr/orders") ;;
    post) args+=(-H "Authorization: Bearer $WRITE_TOKEN" -H "Content-Type: application/json"
        -s scripts/bench_post.lua "http://$addr/orders") ;;
    *) echo "unknown scenario $scenario" >&2; exit 2 ;;
    esac
    local out
    out=$(wrk "${args[@]}")
    local rps p50 p99 non2xx
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    non2xx=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' <<<"$out")
    if [[ -z $rps || -z $p50 || -z $p99 ]]; then
        echo "$scenario/$service: unexpected wrk output:" >&2
        echo "$out" >&2
        exit 1
    fi
    echo "$rps $(to_ms "$p50") $(to_ms "$p99") ${non2xx:-0}"
}

echo "== machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
echo "== wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency, $ROUNDS round(s) per scenario, RUST_LOG=$RUST_LOG;" \
    "zt demos with ZT_RATE=1000000/s ZT_RATE_ANON=1000000/s; services: ${SERVICES[*]}"
results="$work/results"
: >"$results"
for scenario in $SCENARIOS; do
    echo "== $scenario: warm-up (2s per service, not counted)" >&2
    for service in "${SERVICES[@]}"; do
        run "$scenario" "$service" 2s >/dev/null
    done
    for round in $(seq 1 "$ROUNDS"); do
        for service in "${SERVICES[@]}"; do
            line=$(run "$scenario" "$service" "$DURATION")
            echo "$scenario $service $round $line" >>"$results"
            echo "   $scenario round $round $service: $line (req/s p50_ms p99_ms non-2xx)" >&2
        done
    done
done

# The table: per scenario and service, the median over rounds of each figure, and its ratio
# to the unprotected service's median.
echo
python3 - "$results" <<'EOF'
import statistics, sys
rows = {}
order = []
for line in open(sys.argv[1]):
    scenario, service, _round, rps, p50, p99, non2xx = line.split()
    key = (scenario, service)
    if key not in rows:
        rows[key] = []
        order.append(key)
    rows[key].append((float(rps), float(p50), float(p99), int(non2xx)))
print(f"{'scenario':8} {'service':12} {'req/s':>10} {'x unprot':>8} {'p50 ms':>8} {'x unprot':>8} {'p99 ms':>8} {'x unprot':>8} {'non-2xx':>8}")
def median(scenario, service, i):
    return statistics.median(r[i] for r in rows[(scenario, service)])
for scenario, service in order:
    med = [median(scenario, service, i) for i in range(3)]
    bad = sum(r[3] for r in rows[(scenario, service)])
    base = [median(scenario, "unprotected", i) if (scenario, "unprotected") in rows else float("nan") for i in range(3)]
    ratio = [m / b if b else float("nan") for m, b in zip(med, base)]
    print(f"{scenario:8} {service:12} {med[0]:10.0f} {ratio[0]:8.3f} {med[1]:8.3f} {ratio[1]:8.2f} {med[2]:8.3f} {ratio[2]:8.2f} {bad:8d}")
print("\nratios: req/s as a fraction of the unprotected service (higher is better); latencies as a multiple (lower is better).")
print("peer = axum 0.7 + jwt-authorizer 0.15 + tower_governor 0.5 + jsonschema by hand (benches/peer, comparison only).")
variants = [(s, v) for s, v in order if v.startswith("zt-no-") and (s, "zt-axum") in rows]
if variants:
    print("\nstage cost: zt-axum req/s as a fraction of the same demo with the stage off (1.0 = free)")
    for scenario, variant in variants:
        full, off = median(scenario, "zt-axum", 0), median(scenario, variant, 0)
        print(f"{scenario:8} {variant:16} {full:10.0f} / {off:10.0f} = {full / off:.3f}")
EOF
if awk '$7 != 0 {bad = 1} END {exit !bad}' "$results"; then
    echo "WARNING: some runs saw non-2xx answers (see the non-2xx column): those figures are not comparable" >&2
fi
