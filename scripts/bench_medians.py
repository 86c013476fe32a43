#!/usr/bin/env python3
"""Prints the criterion medians of `cargo bench --bench pipeline` runs and the ratios issue 2
sets targets for. Each argument is one run's criterion directory (default: target/criterion);
with several runs, every ratio is computed within each run and the median over runs is shown
as well.

Usage: scripts/bench_medians.py [CRITERION_DIR ...]
"""
import json
import pathlib
import statistics
import sys


def load(root):
    medians = {}
    for estimates in sorted(pathlib.Path(root).glob("**/new/estimates.json")):
        benchmark = json.loads((estimates.parent / "benchmark.json").read_text())
        medians[benchmark["full_id"]] = json.loads(estimates.read_text())["median"]["point_estimate"]
    if not medians:
        sys.exit(f"no criterion results under {root}: run `cargo bench --bench pipeline` first")
    return medians


def human(ns):
    if ns is None:
        return "-"
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} us"
    return f"{ns:.1f} ns"


runs = [load(root) for root in (sys.argv[1:] or ["target/criterion"])]
names = sorted({name for run in runs for name in run})
several = len(runs) > 1
heads = [f"run {i + 1}" for i in range(len(runs))] + (["median"] if several else [])


def row(label, values, fmt):
    cells = [fmt(v) for v in values]
    if several:
        present = [v for v in values if v is not None]
        cells.append(fmt(statistics.median(present)) if present else "-")
    print(f"{label:46}" + "".join(f"{c:>11}" for c in cells))


print(f"{'median time per iteration':46}" + "".join(f"{h:>11}" for h in heads))
for name in names:
    row(name, [run.get(name) for run in runs], human)


def ratio(run, num, den):
    return run[num] / run[den] if num in run and den in run else None


def difference(run, a, b):
    return run[a] - run[b] if a in run and b in run else None


def number(value):
    return "-" if value is None else f"{value:.3f}"


print()
print(f"{'ratios (within each run)':46}" + "".join(f"{h:>11}" for h in heads))
for alg in ("ES256", "RS256", "EdDSA"):
    row(
        f"verify_cold/{alg} zt / raw  (target <= 1.15)",
        [ratio(r, f"verify_cold/{alg}/zt", f"verify_cold/{alg}/jsonwebtoken_decode") for r in runs],
        number,
    )
row("axum oneshot zt / unprotected", [ratio(r, "axum/oneshot_zt", "axum/oneshot_unprotected") for r in runs], number)
row(
    "axum oneshot: zt adds",
    [difference(r, "axum/oneshot_zt", "axum/oneshot_unprotected") for r in runs],
    human,
)
row(
    "guard: info subscriber / none",
    [ratio(r, "guard/cached_token_info_subscriber", "guard/cached_token") for r in runs],
    number,
)
