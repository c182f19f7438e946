"""What else could make one strategy beat another: length, the type mix of what it selected, truncation.

Read from finished run folders (eval_outputs.jsonl, selected_pairs.jsonl), per cell (runs
grouped as the comparison report groups them, seeds averaged):

- per constraint type: each cell's tuned and base pass rates and its effect, and the share of its
  selected pairs on that type (a strategy can win by spending its budget on learnable types
  rather than through its depth allocation);
- length: words per answer, and per type the slope of the pass rate on log words (four "at
  least" types pass more easily with longer answers);
- a length-adjusted difference of two cells: on the prompts whose two answers are within ±20%
  in words (matched seeds; a verdict over seeds), and by a regression of pass on the cells, the
  constraint types and log words;
- the truncation rate per cell (answers cut at max_new_tokens fail "end with" constraints);
- out of distribution: per cell, the gain on another suite's prompts (IFBench's constraints, none
  of which the pool trained on), from `bench eval` outputs saved as DIR/<run name>/ and DIR/base/,
  and whether the held-out gain predicts it across cells; and each --pair head to head there (A − B on
  matched seeds), since two cells' gains over the base model, each with its own interval, do not say
  which cell is ahead.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from harness.analysis.runs import RunRecord, cells_of, load_runs
from harness.constraints.metrics import PRIMARY_METRIC, prompt_pass
from harness.core.errors import BenchError
from harness.core.io import read_jsonl
from harness.core.run_files import RunFolder
from harness.core.stats import correlation, paired_ci, seed_test

WITHIN = 0.2
"""Two answers count as of a length when their word counts differ by at most this share of the longer."""


def _rows(run: RunRecord) -> list[dict[str, Any]]:
    rows = run.folder.eval_outputs()
    for row in rows:
        row["type"] = "+".join(sorted(row.get("instructions") or [])) or "(none)"
        row["words"] = len(row["tuned_output"].split())
        row["pass"] = prompt_pass(row["tuned_strict"])
        row["base_pass"] = prompt_pass(row["base_strict"])
    return rows


def by_type(cells: list[list[RunRecord]], rows: dict[Path, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Per cell and constraint type: pass rates (tuned, base), effect, selected share; seeds pooled."""
    out = []
    for members in cells:
        selected: dict[str, int] = defaultdict(int)
        total = 0
        for run in members:
            for pair in run.folder.selected_pairs():
                selected["+".join(sorted(pair.get("instructions") or [])) or "(none)"] += 1
                total += 1
        groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for run in members:
            for row in rows[run.path]:
                groups[row["type"]].append(row)
        for kind, items in sorted(groups.items()):
            tuned = [r["pass"] for r in items if r["pass"] is not None]
            base = [r["base_pass"] for r in items if r["base_pass"] is not None]
            out.append(
                {
                    "cell": members[0].title,
                    "budget": members[0].budget,
                    "type": kind,
                    "n": len(tuned),
                    "tuned": float(np.mean(tuned)),
                    "base": float(np.mean(base)),
                    "effect": float(np.mean(tuned) - np.mean(base)),
                    "selected_share": (selected[kind] / total)
                    if total and "instructions" in _first_pair(members)
                    else None,
                    "words": float(np.mean([r["words"] for r in items])),
                }
            )
    return out


def _first_pair(members: list[RunRecord]) -> dict[str, Any]:
    for run in members:
        rows = run.folder.selected_pairs()
        if rows:
            return rows[0]
    return {}


def length_slopes(rows: dict[Path, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Per constraint type, over every tuned answer: the least-squares slope of pass (0/1) on log words
    (pass-rate points per doubling = slope · ln 2), and the correlation."""
    groups: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for items in rows.values():
        for r in items:
            if r["pass"] is not None:
                groups[r["type"]].append((math.log(max(r["words"], 1)), float(r["pass"])))
    out = []
    for kind, points in sorted(groups.items()):
        x, y = np.array(points).T
        slope = float(np.polyfit(x, y, 1)[0]) if np.ptp(x) > 0 else 0.0
        corr = float(np.corrcoef(x, y)[0, 1]) if np.ptp(x) > 0 and np.ptp(y) > 0 else 0.0
        out.append(
            {"type": kind, "n": len(points), "pass": float(y.mean()), "per_doubling": slope * math.log(2), "r": corr}
        )
    return out


def length_adjusted(a: list[RunRecord], b: list[RunRecord], rows: dict[Path, list[dict[str, Any]]]) -> dict[str, Any]:
    """a − b in prompt pass: raw; on prompts whose two answers are of a length (matched seeds, the verdict test over
    seeds, units drawn per seed: nested); and the a coefficient of pass ~ cell + type + log words."""
    ours, theirs = ({r.seed: r for r in side} for side in (a, b))
    raw, matched, shares = [], [], []
    design: list[tuple[float, str, float, float]] = []  # (is a, type, log words, pass)
    for seed in sorted(set(ours) & set(theirs)):
        x = {r["prompt_id"]: r for r in rows[ours[seed].path]}
        y = {r["prompt_id"]: r for r in rows[theirs[seed].path]}
        shared = [p for p in x if p in y and x[p]["pass"] is not None and y[p]["pass"] is not None]
        raw.append(np.array([x[p]["pass"] - y[p]["pass"] for p in shared], dtype=float))
        close = [
            p for p in shared if abs(x[p]["words"] - y[p]["words"]) <= WITHIN * max(x[p]["words"], y[p]["words"], 1)
        ]
        shares.append(len(close) / max(len(shared), 1))
        matched.append(np.array([x[p]["pass"] - y[p]["pass"] for p in close], dtype=float))
        for side, table in ((1.0, x), (0.0, y)):
            design += [
                (side, table[p]["type"], math.log(max(table[p]["words"], 1)), float(table[p]["pass"])) for p in shared
            ]
    if not raw:
        raise BenchError(
            f"{a[0].title} and {b[0].title} share no seed: a length-adjusted difference needs matched seeds."
        )
    types = sorted({t for _, t, _, _ in design})
    matrix = np.array([[1.0, side, words] + [float(t == kind) for kind in types[1:]] for side, t, words, _ in design])
    coef = np.linalg.lstsq(matrix, np.array([d[3] for d in design]), rcond=None)[0]
    verdict = (
        seed_test([m for m in matched if m.size], crossed=False) if sum(m.size > 1 for m in matched) >= 2 else None
    )
    return {
        "a": a[0].title,
        "b": b[0].title,
        "budget": a[0].budget,
        "seeds": len(raw),
        "raw": float(np.mean([r.mean() for r in raw])),
        "words_a": float(np.mean([x["words"] for r in a for x in rows[r.path]])),
        "words_b": float(np.mean([x["words"] for r in b for x in rows[r.path]])),
        "same_length_share": float(np.mean(shares)),
        "same_length_diff": float(np.mean([m.mean() for m in matched if m.size]))
        if any(m.size for m in matched)
        else None,
        "same_length_verdict": verdict,
        "regression_diff": float(coef[1]),
        "regression_per_log_word": float(coef[2]),
    }


def truncation(cells: list[list[RunRecord]], rows: dict[Path, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Per cell: the share of tuned (and base) answers cut at max_new_tokens; None where runs did not record it."""
    out = []
    for members in cells:
        items = [r for run in members for r in rows[run.path]]
        known = [r for r in items if r.get("tuned_truncated") is not None]
        out.append(
            {
                "cell": members[0].title,
                "budget": members[0].budget,
                "n": len(items),
                "tuned": float(np.mean([r["tuned_truncated"] for r in known])) if known else None,
                "base": float(np.mean([r["base_truncated"] for r in known])) if known else None,
                "words": float(np.mean([r["words"] for r in items])),
            }
        )
    return out


def _passes(path: Path) -> dict[str, float]:
    """Prompt-level strict pass per prompt of a `bench eval` outputs.jsonl (unscorable prompts left out)."""
    return {r["prompt_id"]: v for r in read_jsonl(path) if (v := prompt_pass(r["strict"])) is not None}


def held_out_gain(run: RunRecord, metric: str = PRIMARY_METRIC) -> float | None:
    """tuned − base of a held-out metric, as the run recorded it (None where it did not)."""
    tuned = next((v for k, v in run.metrics.items() if k.endswith(f"/{metric}")), None)
    base = next((v for k, v in run.metrics.items() if k.endswith(f"/base.{metric}")), None)
    return tuned["value"] - base["value"] if tuned and base else None


def ood_folder(root: Path, run: RunRecord) -> Path:
    """Where `bench eval --out` puts a run's outputs on the other suite: ROOT/<matrix folder>/<run folder>, since run
    folder names repeat across matrices (runs/testbed-primary/bpo-s0-bpo and runs/testbed-lr/bpo-s0-bpo)."""
    return root / run.path.parent.name / run.name


def out_of_distribution(cells: list[list[RunRecord]], root: Path) -> dict[str, Any]:
    """Per cell with outputs under `root`: tuned − base prompt-level strict accuracy on the suite's prompts (run-fixed
    interval; a verdict over seeds where 2+ seeds were evaluated), next to the cell's held-out gain; and the
    correlation of the two across cells that did not train on flipped labels."""
    base_file = root / "base" / "outputs.jsonl"
    if not base_file.is_file():
        raise BenchError(
            f"{base_file} is missing: evaluate the base model into it first (`bench eval --suite ifbench --out {root / 'base'}`)."
        )
    base = _passes(base_file)
    rows = []
    for members in cells:
        runs = [m for m in members if (ood_folder(root, m) / "outputs.jsonl").is_file()]
        if not runs:
            continue
        passes = [_passes(ood_folder(root, m) / "outputs.jsonl") for m in runs]
        shared = sorted(set(base).intersection(*passes))
        tuned = np.array([np.mean([p[u] for p in passes]) for u in shared])
        fixed = paired_ci(tuned, np.array([base[u] for u in shared]), n_boot=2000, seed=0)
        per_seed = [np.array([p[u] - base[u] for u in shared]) for p in passes]
        gains = [g for m in runs if (g := held_out_gain(m)) is not None]
        rows.append(
            {
                "cell": members[0].title,
                "budget": members[0].budget,
                "seeds": [m.seed for m in runs],
                "n": len(shared),
                "tuned": float(tuned.mean()),
                "base": float(np.mean([base[u] for u in shared])),
                "effect": fixed["diff"],
                "low": fixed["low"],
                "high": fixed["high"],
                "verdict": seed_test(per_seed, crossed=True) if len(per_seed) >= 2 else None,
                "held_out_gain": float(np.mean(gains)) if gains else None,
                "control": any(m.folder.selection().get("flipped") for m in runs),
            }
        )
    if not rows:
        example = ood_folder(root, cells[0][0])
        raise BenchError(
            f"{root}: no run's outputs found; each run's are read from {root}/<matrix folder>/<run folder>/outputs.jsonl, "
            f"e.g. {example / 'outputs.jsonl'} (`bench eval --model {cells[0][0].path} --suite ifbench --out {example}`)."
        )
    usable = [r for r in rows if not r["control"] and r["held_out_gain"] is not None]
    return {
        "suite_dir": str(root),
        "cells": rows,
        "correlation": {
            "n_cells": len(usable),
            **correlation([r["held_out_gain"] for r in usable], [r["effect"] for r in usable]),
        },
    }


def ood_head_to_head(a: list[RunRecord], b: list[RunRecord], root: Path) -> dict[str, Any] | None:
    """a − b in prompt-level strict accuracy on the other suite's prompts, over the seeds both cells were evaluated at:
    the run-fixed interval and the verdict over matched seeds (every seed on the same prompts: crossed). None when
    the two share no evaluated seed."""
    ours, theirs = (
        {
            r.seed: _passes(ood_folder(root, r) / "outputs.jsonl")
            for r in side
            if (ood_folder(root, r) / "outputs.jsonl").is_file()
        }
        for side in (a, b)
    )
    seeds = sorted(set(ours) & set(theirs))
    if not seeds:
        return None
    shared = sorted(set.intersection(*(set(side[s]) for s in seeds for side in (ours, theirs))))
    per_seed = [np.array([ours[s][u] - theirs[s][u] for u in shared]) for s in seeds]
    x, y = (np.array([np.mean([side[s][u] for s in seeds]) for u in shared]) for side in (ours, theirs))
    fixed = paired_ci(x, y, n_boot=2000, seed=0)
    return {
        "a": a[0].title,
        "b": b[0].title,
        "budget": a[0].budget,
        "seeds": seeds,
        "n": len(shared),
        "a_acc": float(x.mean()),
        "b_acc": float(y.mean()),
        "diff": fixed["diff"],
        "low": fixed["low"],
        "high": fixed["high"],
        "verdict": seed_test(per_seed, crossed=True) if len(seeds) >= 2 else None,
    }


def confounds(run_dirs: list[Path], pairs: list[tuple[str, str]], ood: Path | None = None) -> dict[str, Any]:
    """Every check above over these runs; `pairs` are (a, b) strategy names to adjust for length; `ood` a folder of
    `bench eval` outputs per run (and base) on another suite."""
    runs = [r for r in load_runs(run_dirs) if r.folder.has(RunFolder.EVAL_OUTPUTS)]
    if not runs:
        raise BenchError(f"no finished runs with held-out outputs under {', '.join(map(str, run_dirs))}.")
    rows = {r.path: _rows(r) for r in runs}
    cells = cells_of(runs)
    adjusted, matched = [], []
    for better, worse in pairs:
        sides = [[c for c in cells if c[0].strategy == name] for name in (better, worse)]
        if not all(sides):
            raise BenchError(
                f"--pair {better} > {worse}: no {' or '.join(n for n, s in zip((better, worse), sides) if not s)} runs among these."
            )
        matched += [(x, y) for x in sides[0] for y in sides[1] if x[0].context == y[0].context]
    adjusted = [length_adjusted(x, y, rows) for x, y in matched]
    result = {
        "by_type": by_type(cells, rows),
        "length_slopes": length_slopes(rows),
        "length_adjusted": adjusted,
        "truncation": truncation(cells, rows),
    }
    if ood:
        result["out_of_distribution"] = {
            **out_of_distribution(cells, ood),
            "head_to_head": [t for x, y in matched if (t := ood_head_to_head(x, y, ood)) is not None],
        }
    return result
