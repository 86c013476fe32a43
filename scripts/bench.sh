#!/usr/bin/env bash
# Runs the pipeline benchmarks (benches/pipeline.rs) RUNS times and prints the medians of
# every run, the ratios issue 2 sets targets for within each run, and their median over
# runs; then the interleaved zt / raw verification comparison (benches/verify_interleaved.rs).
# The machine is noisy: one run's ratios can move by 30 %, so look at the medians and at the
# interleaved ratio.
#
# Usage: scripts/bench.sh [extra criterion arguments, e.g. a filter like verify_cold]
# Environment: RUNS (default 3).
set -euo pipefail

cd "$(dirname "$0")/.."

RUNS=${RUNS:-3}
target=${CARGO_TARGET_DIR:-target}
out="$target/bench-runs"

cargo bench --bench pipeline --bench verify_interleaved --no-run
rm -rf "$out"
for run in $(seq 1 "$RUNS"); do
    echo "== run $run of $RUNS" >&2
    rm -rf "$target/criterion"
    cargo bench --bench pipeline -- "$@" >&2
    mkdir -p "$out"
    cp -r "$target/criterion" "$out/run$run"
done

python3 scripts/bench_medians.py "$out"/run*

# The zt / raw verification ratio measured interleaved, immune to slow drifts of the machine.
echo
cargo bench --bench verify_interleaved 2>&1 | grep -v -e '^ *Finished' -e '^ *Running' -e '^ *Compiling'
