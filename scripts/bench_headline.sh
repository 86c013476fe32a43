#!/usr/bin/env bash
# The headline figure of issue 8: `guard/whole_pipeline_cached_token` (every stage on, a
# cached token, GET /orders?limit=10), beside a fixed reference workload measured in the same
# process (`guard/reference_serde_json_1kib`: parsing 1 KiB of JSON). This VM's speed drifts
# by up to 2x from one minute to the next; the ratio between the two does not, so each round
# prints both medians and the ratio, and the summary the median of each over the rounds.
#
# Usage: scripts/bench_headline.sh            (ROUNDS=5 by default, 3 s of measurement each)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
bin=$(cargo bench --bench pipeline --no-run --message-format=json |
    python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "pipeline" and m.get("executable"):
        print(m["executable"])')
median() { python3 -c "import json;print(json.load(open('target/criterion/guard/$1/new/estimates.json'))['median']['point_estimate'])"; }
results=()
for round in $(seq 1 "$ROUNDS"); do
    "$bin" --bench 'guard/(whole_pipeline_cached_token|reference_serde_json_1kib)$' --measurement-time 3 >/dev/null 2>&1
    whole=$(median whole_pipeline_cached_token)
    reference=$(median reference_serde_json_1kib)
    results+=("$whole $reference")
    printf 'round %d: whole pipeline %.0f ns, reference %.0f ns, ratio %.3f\n' "$round" "$whole" "$reference" \
        "$(python3 -c "print($whole / $reference)")"
done
printf '%s\n' "${results[@]}" | python3 -c '
import statistics, sys
rows = [tuple(map(float, line.split())) for line in sys.stdin if line.strip()]
whole = statistics.median(r[0] for r in rows)
reference = statistics.median(r[1] for r in rows)
ratio = statistics.median(r[0] / r[1] for r in rows)
print(f"median of {len(rows)} rounds: whole pipeline {whole:.0f} ns, reference {reference:.0f} ns, ratio {ratio:.3f}")
print(f"fastest round: whole pipeline {min(r[0] for r in rows):.0f} ns")'
