"""The comparison report over many runs: leaderboard, paired tests against a baseline, plots.

Everything is read from run folders (manifest.json, metrics.json, selection.json,
eval_outputs.jsonl), so a report is a pure function of finished runs. Numbers are never
filled in: a metric a run did not compute is shown as missing, not dropped.
"""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.config import BenchError
from harness.io import read_json, write_json, write_text
from harness.power import run_outcomes

PAIRED_METRICS = {
    "prompt_strict_acc": "ifeval_heldout/prompt_strict_acc: per held-out prompt, all its constraints followed (greedy output)",
    "preference_accuracy": "preference_heldout/preference_accuracy: per held-out prompt, the share of its held-out pairs "
    "the tuned model's implicit reward ranks right",
    "mean_verifiable_reward": "ifeval_heldout/mean_verifiable_reward: per held-out prompt, the share of its constraints "
    "a sampled output follows, averaged over evaluate.samples samples",
}
"""The per-prompt outcomes the paired tests compare, where runs recorded them."""
PLOTTED = ("prompt_strict_acc", "instruction_strict_acc", "win_rate", "score", "lc_win_rate")
"""Metrics plotted against budget when a suite reports them."""


@dataclass
class RunSummary:
    path: Path
    strategy: str
    budget: int
    seed: int
    status: str
    metrics: dict[str, dict[str, Any]]  # "suite/metric" -> record
    breadth: float | None
    mean_depth: float | None
    outcomes: dict[str, dict[str, float]] = field(default_factory=dict)  # metric -> held-out prompt id -> tuned outcome

    @property
    def name(self) -> str:
        return self.path.name


def load_run(run_dir: Path) -> RunSummary:
    run_dir = Path(run_dir)
    if not (run_dir / "manifest.json").is_file():
        raise BenchError(f"{run_dir} has no manifest.json: pass folders written by `bench run`.")
    manifest = read_json(run_dir / "manifest.json")
    config = manifest.get("config", {})
    selection = read_json(run_dir / "selection.json") if (run_dir / "selection.json").is_file() else {}
    diag = selection.get("diagnostics", {})
    metrics: dict[str, dict] = {}
    if (run_dir / "metrics.json").is_file():
        for suite, table in read_json(run_dir / "metrics.json").items():
            for name, record in table.items():
                metrics[f"{suite}/{name.removeprefix('tuned.')}" if name.startswith("tuned.") else f"{suite}/{name}"] = record
    histogram = diag.get("depth_histogram") or {}
    n_prompts = sum(histogram.values())
    mean_depth = sum(int(d) * c for d, c in histogram.items()) / n_prompts if n_prompts else None
    return RunSummary(
        path=run_dir,
        strategy=str(selection.get("strategy", config.get("select", {}).get("strategy", "?"))),
        budget=int(selection.get("budget", config.get("select", {}).get("budget", 0))),
        seed=int(manifest.get("seed", config.get("seed", 0))),
        status=str(manifest.get("status", "?")),
        metrics=metrics,
        breadth=diag.get("breadth"),
        mean_depth=mean_depth,
        outcomes=run_outcomes(run_dir),
    )


def metric_rows(runs: list[RunSummary]) -> list[dict[str, Any]]:
    """One row per run x suite x metric (the metrics.csv / metrics.json of a comparison)."""
    rows = []
    for run in runs:
        for key, record in sorted(run.metrics.items()):
            suite, metric = key.split("/", 1)
            rows.append(
                {
                    "run": run.name, "strategy": run.strategy, "budget": run.budget, "seed": run.seed, "suite": suite,
                    "metric": metric, **{k: record.get(k) for k in ("value", "ci_low", "ci_high", "n", "judge", "weak_judge")},
                }
            )
    return rows


def _t_quantile(df: int) -> float:
    from scipy import stats

    return float(stats.t.ppf(0.975, df))


def leaderboard(runs: list[RunSummary], metrics: list[str]) -> list[dict[str, Any]]:
    """Per (strategy, budget): mean over seeds and a 95% t-interval across seeds for each metric.

    With one seed there is no spread across seeds: the run's own (bootstrap) CI is shown and
    marked as such.
    """
    groups: dict[tuple[str, int], list[RunSummary]] = defaultdict(list)
    for run in runs:
        groups[(run.strategy, run.budget)].append(run)
    rows = []
    for (strategy, budget), members in sorted(groups.items()):
        row: dict[str, Any] = {"strategy": strategy, "budget": budget, "seeds": sorted(r.seed for r in members), "cells": {}}
        for key in metrics:
            values = [r.metrics[key]["value"] for r in members if key in r.metrics and _finite(r.metrics[key].get("value"))]
            if not values:
                row["cells"][key] = None
            elif len(values) == 1:
                rec = next(r.metrics[key] for r in members if key in r.metrics)
                row["cells"][key] = {"mean": values[0], "low": rec.get("ci_low"), "high": rec.get("ci_high"), "n_seeds": 1, "kind": "run CI"}
            else:
                mean, sd = float(np.mean(values)), float(np.std(values, ddof=1))
                half = _t_quantile(len(values) - 1) * sd / math.sqrt(len(values))
                row["cells"][key] = {"mean": mean, "low": mean - half, "high": mean + half, "n_seeds": len(values), "kind": "across seeds"}
        rows.append(row)
    return rows


CONTROL = "control_shuffled"


def _paired(members: list[RunSummary], reference: list[RunSummary], metric: str, rng: np.random.Generator, n_boot: int) -> dict[str, Any]:
    """Mean per-prompt difference (members − reference, each averaged over its seeds), bootstrapped over prompts.

    That interval holds the runs fixed: it says whether these runs differ, not whether another
    set of seeds (other pools, other training noise) would. Where both sides ran the same seeds
    (one pool per seed, so seed s of each strategy is a matched pair), the per-seed differences
    also give a t-interval across seeds, which includes run-to-run variation (wide at 3 seeds).
    """
    prompts = sorted(set.intersection(*(set(r.outcomes[metric]) for r in members + reference)))
    if not prompts:
        return {"missing": "no held-out prompts shared by these runs (pairs reserved from each seed's own pool differ by seed; "
                "evaluate.preference_k samples pairs every run shares)"}
    diff = np.array([np.mean([r.outcomes[metric][p] for r in members]) - np.mean([r.outcomes[metric][p] for r in reference]) for p in prompts])
    boots = diff[rng.integers(0, len(diff), (n_boot, len(diff)))].mean(axis=1)
    low, high = np.percentile(boots, [2.5, 97.5])
    result = {
        "diff": float(diff.mean()), "low": float(low), "high": float(high),
        "p": min(1.0, 2 * min(float((boots <= 0).mean()), float((boots >= 0).mean()))),
        "n_prompts": len(prompts), "significant": bool(low > 0 or high < 0),
    }
    ours, theirs = ({r.seed: r for r in group} for group in (members, reference))
    matched = sorted(set(ours) & set(theirs))
    if len(matched) >= 2:
        per_seed = [float(np.mean([ours[s].outcomes[metric][p] - theirs[s].outcomes[metric][p] for p in prompts])) for s in matched]
        half = _t_quantile(len(per_seed) - 1) * float(np.std(per_seed, ddof=1)) / math.sqrt(len(per_seed))
        mean = float(np.mean(per_seed))
        result["seeds_ci"] = {"seeds": matched, "per_seed": per_seed, "low": mean - half, "high": mean + half}
    return result


def _by_cell(runs: list[RunSummary], metric: str) -> dict[tuple[str, int], list[RunSummary]]:
    """Runs that recorded per-prompt outcomes of `metric`, grouped by (strategy, budget)."""
    by_cell: dict[tuple[str, int], list[RunSummary]] = defaultdict(list)
    for run in runs:
        if run.outcomes.get(metric):
            by_cell[(run.strategy, run.budget)].append(run)
    return by_cell


def paired_tests(runs: list[RunSummary], baseline: str, metric: str = "prompt_strict_acc", n_boot: int = 2000, seed: int = 0) -> list[dict[str, Any]]:
    """Each strategy vs `baseline` at the same budget, paired on the same held-out prompts.

    Per prompt, the outcome is averaged over a strategy's seeds; the difference of those
    averages is bootstrapped over prompts. p is two-sided: twice the smaller tail mass at 0.
    Where `control_shuffled` runs exist at that budget, each strategy is also tested against
    them (`vs_control`): an effect that does not beat shuffled labels is not an effect of the data.
    """
    by_cell = _by_cell(runs, metric)
    out = []
    rng = np.random.default_rng(seed)
    for (strategy, budget), members in sorted(by_cell.items()):
        if strategy == baseline:
            continue
        base_runs = by_cell.get((baseline, budget))
        if not base_runs:
            out.append({"strategy": strategy, "budget": budget, "missing": f"no {baseline} run at budget {budget}"})
            continue
        test = {"strategy": strategy, "budget": budget, "seeds": len(members), "baseline_seeds": len(base_runs)}
        test.update(_paired(members, base_runs, metric, rng, n_boot))
        control = by_cell.get((CONTROL, budget))
        if control and strategy != CONTROL and "missing" not in test:
            vs = _paired(members, control, metric, rng, n_boot)
            test["vs_control"] = {**vs, "beats": bool(vs.get("low", 0) > 0)}
        out.append(test)
    return out


def claim_tests(runs: list[RunSummary], claims: list[tuple[str, str]], metric: str, n_boot: int = 2000, seed: int = 0) -> list[dict[str, Any]]:
    """Each claim (better, worse) at every budget, paired like `paired_tests`: better − worse.

    A claim holds at the 95% level when the interval across seeds lies above 0; the prompt
    bootstrap alone only says these runs differ.
    """
    by_cell = _by_cell(runs, metric)
    rng = np.random.default_rng(seed)
    out = []
    for better, worse in claims:
        for budget in sorted({b for _, b in by_cell}):
            test: dict[str, Any] = {"claim": f"{better} > {worse}", "better": better, "worse": worse, "budget": budget}
            missing = [name for name in (better, worse) if (name, budget) not in by_cell]
            if missing:
                test["missing"] = f"no {' or '.join(missing)} run with these outcomes at budget {budget}"
            else:
                members, reference = by_cell[(better, budget)], by_cell[(worse, budget)]
                test.update({"seeds": len(members), "baseline_seeds": len(reference)}, **_paired(members, reference, metric, rng, n_boot))
            out.append(test)
    return out


def _ci(low: Any, high: Any) -> str:
    return f"[{low:+.3f}, {high:+.3f}]"


def summary_markdown(board: list[dict[str, Any]], keys: list[str], claims: dict[str, list[dict[str, Any]]]) -> str:
    """The leaderboard and the claims as Markdown, for a write-up or a repository's results folder."""
    lines = ["## Leaderboard", "", "Mean over seeds [95% t-interval across seeds]; ¹ one seed: the run's own bootstrap CI; — not computed.", ""]
    lines += ["| strategy | budget | seeds | " + " | ".join(keys) + " |", "|" + " --- |" * (len(keys) + 3)]
    for row in board:
        cells = []
        for key in keys:
            c = row["cells"][key]
            cells.append("—" if c is None else f"{c['mean']:.3f} [{c['low']:.3f}, {c['high']:.3f}]" + ("¹" if c["kind"] == "run CI" else ""))
        lines.append(f"| {row['strategy']} | {row['budget']} | {', '.join(map(str, row['seeds']))} | " + " | ".join(cells) + " |")
    for metric, tests in claims.items():
        lines += ["", f"## Claims: {metric}", "", "| claim | budget | difference | 95% CI over prompts | p | prompts | 95% t-CI over seeds | per-seed differences |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for t in tests:
            if "diff" not in t:
                lines.append(f"| {t['claim']} | {t['budget']} | — ({t['missing']}) | | | | | |")
                continue
            seeds = t.get("seeds_ci")
            lines.append(
                f"| {t['claim']} | {t['budget']} | {t['diff']:+.3f} | {_ci(t['low'], t['high'])} | {t['p']:.2f} | {t['n_prompts']} | "
                + (f"{_ci(seeds['low'], seeds['high'])} | " + ", ".join(f"{d:+.3f}" for d in seeds["per_seed"]) if seeds else "— (fewer than 2 matched seeds) |")
                + " |"
            )
    return "\n".join(lines) + "\n"


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _metric_vs_budget(runs: list[RunSummary], key: str) -> str | None:
    from reports.figures import plt, to_img_tag

    if len({r.budget for r in runs}) < 2:
        return None  # one budget: the leaderboard says it all
    points = defaultdict(list)
    for run in runs:
        if key in run.metrics and _finite(run.metrics[key].get("value")):
            points[run.strategy].append((run.budget, run.metrics[key]["value"]))
    if not points:
        return None
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    for strategy, pts in sorted(points.items()):
        budgets = sorted({b for b, _ in pts})
        means = [np.mean([v for b2, v in pts if b2 == b]) for b in budgets]
        ax.plot(budgets, means, marker="o", label=strategy)
        ax.scatter([b for b, _ in pts], [v for _, v in pts], s=10, alpha=0.4)
    ax.set_xlabel("budget (pairs)")
    ax.set_ylabel(key)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    return to_img_tag(fig, f"{key} against budget")


def _breadth_vs_depth(runs: list[RunSummary]) -> str | None:
    from reports.figures import plt, to_img_tag

    pts = [(r.strategy, r.breadth, r.mean_depth) for r in runs if r.breadth is not None and r.mean_depth is not None]
    if not pts:
        return None
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    for strategy in sorted({p[0] for p in pts}):
        xs = [b for s, b, _ in pts if s == strategy]
        ys = [d for s, _, d in pts if s == strategy]
        ax.scatter(xs, ys, label=strategy, s=30)
    ax.set_xlabel("breadth (prompts)")
    ax.set_ylabel("mean depth (pairs per prompt)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    return to_img_tag(fig, "breadth against mean depth")


def render_comparison(run_dirs: list[Path], out_file: Path, baseline: str = "original", claims: list[tuple[str, str]] = ()) -> Path:
    """Write the comparison HTML to `out_file`, with metrics.csv, metrics.json, paired_tests.json and summary.md next to it."""
    import os

    from reports.templates import render

    runs = [load_run(Path(d)) for d in run_dirs]
    rows = metric_rows(runs)
    keys = sorted({k for r in runs for k in r.metrics}, key=lambda k: (not k.startswith("ifeval_heldout/"), k))
    primary = [k for k in keys if not k.split("/", 1)[1].startswith("base.")]
    suites = list(dict.fromkeys(k.split("/", 1)[0] for k in primary))
    plotted = [k for k in (f"{s}/{m}" for s in suites for m in PLOTTED) if k in primary]
    out_file = Path(out_file)
    measured = [name for name in PAIRED_METRICS if any(r.outcomes.get(name) for r in runs)]
    tests = {name: paired_tests(runs, baseline, name) for name in measured}
    claim_rows = {name: claim_tests(runs, list(claims), name) for name in measured} if claims else {}
    board = leaderboard(runs, primary)
    html = render(
        "comparison.html.j2",
        runs=runs,
        run_links={r.name: os.path.relpath(r.path / "report.html", out_file.parent) for r in runs},
        suites={s: [k for k in primary if k.split("/", 1)[0] == s] for s in suites},
        board=board,
        tests={PAIRED_METRICS[name]: rows for name, rows in tests.items()},
        claims={PAIRED_METRICS[name]: rows for name, rows in claim_rows.items()},
        baseline=baseline,
        judges=sorted({(r["suite"], r["judge"], bool(r["weak_judge"])) for r in rows if r["judge"] and not r["judge"].startswith("none")}),
        n_budgets=len({r.budget for r in runs}),
        figures=[f for f in [_metric_vs_budget(runs, k) for k in plotted] + [_breadth_vs_depth(runs)] if f],
    )
    write_text(out_file, html)
    buf = io.StringIO()
    fields = ["run", "strategy", "budget", "seed", "suite", "metric", "value", "ci_low", "ci_high", "n", "judge", "weak_judge"]
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    write_text(out_file.parent / "metrics.csv", buf.getvalue())
    write_json(out_file.parent / "metrics.json", rows)
    write_json(out_file.parent / "paired_tests.json", {"baseline": baseline, "tests": tests, "claims": claim_rows})
    write_text(out_file.parent / "summary.md", summary_markdown(board, [k for k in primary if not k.split("/", 1)[1].startswith("paired_diff.")], claim_rows))
    return out_file
