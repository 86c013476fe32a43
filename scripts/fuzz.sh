#!/usr/bin/env bash
# Bounded fuzzing of zt (issue 8): runs every cargo-fuzz target in fuzz/ for a fixed time,
# fails on any crash, panic, timeout, out-of-memory or leak, and prints a summary.
#
# Usage: scripts/fuzz.sh [seconds-per-target, default 600] [target ...]
#   scripts/fuzz.sh            # the full run: 10 minutes per target (about an hour)
#   scripts/fuzz.sh 20         # the CI smoke run: 20 s per target (plus the build)
#   scripts/fuzz.sh 60 bearer  # one target
#
# Environment:
#   FUZZ_SANITIZER   address (default) or none (plain libFuzzer, about 2x the executions)
#   FUZZ_TOOLCHAIN   a rustup toolchain to build with (e.g. nightly). Unset (default): the
#                    stable toolchain with RUSTC_BOOTSTRAP=1, which lets stable rustc take the
#                    -Z sanitizer/coverage flags cargo-fuzz passes. That is for this test
#                    build only; nothing shipped is built that way.
#   FUZZ_TIMEOUT     seconds one input may take before it counts as a hang (default 10)
#   FUZZ_RSS_MB      memory ceiling of a fuzzing process in MiB (default 2048)
#
# The committed seeds are fuzz/corpus/<target>/ (read only here); what the fuzzer finds goes
# to fuzz/corpus-work/<target>/ (git-ignored, kept between runs); a failing input is written
# to fuzz/artifacts/<target>/ and named in the summary. Reproduce one with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run <target> <artifact>      (from fuzz/)
# Installs cargo-fuzz from crates.io when missing. Runs one target at a time (one core).
set -euo pipefail

cd "$(dirname "$0")/../fuzz"

SECONDS_PER_TARGET=${1:-600}
shift || true
ALL_TARGETS=(canonicalize bearer contract_request contract_load policy_load graphql_request)
if (($#)); then
    TARGETS=("$@")
else
    TARGETS=("${ALL_TARGETS[@]}")
fi
SANITIZER=${FUZZ_SANITIZER:-address}
TIMEOUT=${FUZZ_TIMEOUT:-10}
RSS_MB=${FUZZ_RSS_MB:-2048}

if ! [[ $SECONDS_PER_TARGET =~ ^[0-9]+$ ]] || ((SECONDS_PER_TARGET < 1)); then
    echo "usage: scripts/fuzz.sh [seconds-per-target] [target ...]" >&2
    exit 2
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz (crates.io)" >&2
    cargo install cargo-fuzz --locked
fi

# Each sanitizer builds into its own directory, so switching does not rebuild everything.
target_dir=()
if [[ $SANITIZER != address ]]; then
    target_dir=(--target-dir "target/sanitizer-$SANITIZER")
fi

# fuzz build|run ARGS...: cargo fuzz with the toolchain and target directory chosen above.
fuzz() {
    local command=$1
    shift
    if [[ -n ${FUZZ_TOOLCHAIN:-} ]]; then
        cargo "+$FUZZ_TOOLCHAIN" fuzz "$command" "${target_dir[@]}" "$@"
    else
        RUSTC_BOOTSTRAP=1 cargo fuzz "$command" "${target_dir[@]}" "$@"
    fi
}

# Largest input per target: documents and policies are bigger than paths and headers.
max_len() {
    case $1 in
    contract_load | policy_load) echo 16384 ;;
    graphql_request) echo 20000 ;; # past the 16 KiB document limit
    bearer) echo 9000 ;; # past the 8192-byte token limit
    *) echo 4096 ;;
    esac
}

echo "== building (sanitizer: $SANITIZER)" >&2
if ((${#TARGETS[@]} == 1)); then
    fuzz build -s "$SANITIZER" "${TARGETS[0]}" >&2
else
    fuzz build -s "$SANITIZER" >&2
fi

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
failed=0
rows=()
for target in "${TARGETS[@]}"; do
    if [[ ! -d corpus/$target ]]; then
        echo "unknown target $target (no fuzz/corpus/$target)" >&2
        exit 2
    fi
    mkdir -p "corpus-work/$target"
    log="$logs/$target.log"
    echo "== $target: ${SECONDS_PER_TARGET}s" >&2
    status=ok
    # The first corpus directory receives new inputs; the seeds are only read.
    if ! fuzz run -s "$SANITIZER" "$target" "corpus-work/$target" "corpus/$target" -- \
        -max_total_time="$SECONDS_PER_TARGET" -timeout="$TIMEOUT" -rss_limit_mb="$RSS_MB" \
        -max_len="$(max_len "$target")" -print_final_stats=1 >"$log" 2>&1; then
        status=FAILED
        failed=1
    fi
    execs=$(awk -F: '/^stat::number_of_executed_units/ {gsub(/ /, "", $NF); print $NF}' "$log" | tail -1)
    rss=$(awk -F: '/^stat::peak_rss_mb/ {gsub(/ /, "", $NF); print $NF}' "$log" | tail -1)
    rate=$(awk -F: '/^stat::average_exec_per_sec/ {gsub(/ /, "", $NF); print $NF}' "$log" | tail -1)
    cov=$(grep -Eo 'cov: [0-9]+' "$log" | tail -1 | awk '{print $2}')
    corpus=$(find "corpus-work/$target" -type f | wc -l)
    kind=""
    artifact=""
    if [[ $status != ok ]]; then
        kind=$(grep -Eo 'libFuzzer: (deadly signal|timeout|out-of-memory[^ ]*|fuzz target exited|[a-z-]+)' "$log" | head -1 || true)
        grep -q "ERROR: LeakSanitizer" "$log" && kind="leak"
        grep -q "panicked at" "$log" && kind="panic: $(grep -m1 -A1 'panicked at' "$log" | tr '\n' ' ')"
        artifact=$(grep -Eo "Test unit written to [^ ]+" "$log" | head -1 | sed 's/Test unit written to //' || true)
        echo "---- $target failed; the end of its log:" >&2
        tail -40 "$log" >&2
    fi
    rows+=("$(printf '%-17s %-7s %12s %9s %6s %8s %8s  %s %s' "$target" "$status" "${execs:-?}" "${rate:-?}" \
        "${cov:-?}" "$corpus" "${rss:-?}" "$kind" "$artifact")")
done

echo
echo "== fuzz summary: ${SECONDS_PER_TARGET}s per target, sanitizer $SANITIZER, timeout ${TIMEOUT}s, rss limit ${RSS_MB} MiB"
printf '%-17s %-7s %12s %9s %6s %8s %8s  %s\n' target result executions exec/s cov corpus rss_mb "failure / artifact"
printf '%s\n' "${rows[@]}"
if ((failed)); then
    echo "FAILED: reproduce with RUSTC_BOOTSTRAP=1 cargo fuzz run <target> <artifact> (in fuzz/)"
    exit 1
fi
echo "OK: 0 crashes, 0 panics, 0 timeouts, 0 out-of-memory"
