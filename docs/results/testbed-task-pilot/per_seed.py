"""The pilot's per-seed table and its truncation check, from the committed run folders (no model is loaded).

    PYTHONPATH=. python3 docs/results/testbed-task-pilot/per_seed.py > docs/results/testbed-task-pilot/per_seed.md

Per cell and seed: tuned − base on the primary metric (constraint and task) and on constraint only, the tuned
model's degenerate share, the share of its answers cut at max_new_tokens, and mean words. Then bpo − uniform on
the primary metric with the report's verdict test, as committed and with every cut answer counted as not done
(the truncation reading issue 36 asks for).
"""

from __future__ import annotations

import dataclasses
import statistics
import sys
from pathlib import Path

from harness.analysis.comparisons import claim_tests
from harness.analysis.runs import load_runs
from harness.constraints.metrics import PRIMARY_METRIC

RUNS = Path(__file__).resolve().parent / "runs"


def main() -> None:
    runs = load_runs([RUNS])
    print("| cell | seed | tuned − base, constraint and task | tuned − base, constraint only | degenerate (tuned) | cut | words |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for run in sorted(runs, key=lambda r: (r.strategy, r.seed)):
        rows = run.folder.eval_outputs()
        suite = run.folder.metrics()["ifeval_heldout"]
        cut = sum(bool(r.get("tuned_truncated")) for r in rows) / len(rows)
        words = statistics.mean(len(r["tuned_output"].split()) for r in rows)
        print(f"| {run.title} | {run.seed} | {suite[f'paired_diff.{PRIMARY_METRIC}']['value']:+.3f} | "
              f"{suite['paired_diff.prompt_strict_acc']['value']:+.3f} | {suite['tuned.degenerate_share']['value']:.1%} | {cut:.1%} | {words:.1f} |")
    for label, cut_fails in (("as committed", False), ("a cut answer counted as not done", True)):
        variant = [_cut_fails(r) if cut_fails else r for r in runs]
        (test,) = claim_tests(variant, [("bpo", "uniform")], PRIMARY_METRIC)
        s = test["seeds_ci"]
        print(f"\nbpo − uniform, {PRIMARY_METRIC}, {label}: {s['diff']:+.3f} [{s['low']:+.3f}, {s['high']:+.3f}] over "
              f"{s['n_seeds']} seeds, p {s['p']:.3g}; per seed " + ", ".join(f"{d:+.3f}" for d in s["per_seed"]))


def _cut_fails(run):  # type: ignore[no-untyped-def]
    """The run with its primary outcome set to 0 on every prompt whose tuned answer was cut."""
    cut = {r["prompt_id"] for r in run.folder.eval_outputs() if r.get("tuned_truncated")}
    outcomes = {**run.outcomes, PRIMARY_METRIC: {p: (0.0 if p in cut else v) for p, v in run.outcomes[PRIMARY_METRIC].items()}}
    return dataclasses.replace(run, outcomes=outcomes)


if __name__ == "__main__":
    sys.exit(main())
