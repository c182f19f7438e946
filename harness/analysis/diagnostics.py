"""What could explain the curve: properties of each selected set, and whether they predict held-out gain.

For every finished run, from its selection and the shared pool's cached stages:

- **G-Vendi** (Jung et al. 2025, arXiv 2505.20161): the Vendi score (Friedman & Dieng 2023) of the
  selected pairs' projected DPO gradients (the `features` stage, unit-norm rows): the effective
  number of distinct gradient directions the set contains.
- **Embedding diversity**: the Vendi score of the selected pairs' prompt embeddings (one row per
  pair, so depth lowers it) and of their chosen responses' embeddings (the `embeddings` stage).
- **Degenerate answers selected**: the share of the selected pairs' chosen (and rejected) answers that the task
  check rejects (marker-only, loop, echo, refusal, off-topic), where the pool judge recorded its verdict
  (`verifiable_task`): a set that teaches the checker's loophole holds many degenerate chosen answers.
- **Chosen quality**: the pool judge's mean score of the chosen responses; and, because a
  binary verifiable judge scores every chosen answer 1, the pass rate of the selected prompts'
  samples (how easy the prompts are) and the chosen answers' length in words.
- Breadth and mean depth, the design variables themselves.

Across cells (runs grouped as the comparison report groups them, seeds averaged), each property's
Pearson correlation with the cell's held-out gain (tuned − base on the metric), with its 95%
Fisher-z interval; cells whose selections are identical at every seed (a strategy that reduces to another at
some setting) count once: per budget, and over all budgets after removing each budget's mean (a
larger budget raises both gain and some properties). Runs that train on flipped labels (the
shuffled-label control) are left out: their gain measures the labels, not the data.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from harness.analysis.runs import RunRecord, cells_of, load_runs
from harness.constraints.metrics import PRIMARY_METRIC
from harness.core.errors import BenchError
from harness.core.io import content_hash, read_jsonl
from harness.core.run_files import RunFolder
from harness.core.stats import correlation

PROPERTIES = {
    "g_vendi": "G-Vendi (projected gradients)",
    "prompt_vendi": "Vendi, prompt embeddings",
    "chosen_vendi": "Vendi, chosen-answer embeddings",
    "chosen_degenerate": "degenerate share of the chosen answers (task check)",
    "rejected_degenerate": "degenerate share of the rejected answers (task check)",
    "chosen_score": "chosen score (pool judge)",
    "prompt_pass_rate": "pass rate of the selected prompts' samples",
    "chosen_words": "chosen words",
    "breadth": "breadth (prompts)",
    "mean_depth": "mean depth (pairs per prompt)",
}
"""Each property's name in tables and JSON, defined once."""


def vendi(rows: np.ndarray) -> float:
    """exp(entropy of the eigenvalues of K / n), K the cosine-similarity matrix of `rows`: 1 for n copies of one
    vector, n for n orthogonal ones (Friedman & Dieng 2023; the n x n form: n is a budget, at most a few hundred)."""
    if len(rows) == 0:
        return float("nan")
    unit = rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
    eig = np.linalg.eigvalsh((unit @ unit.T).astype(np.float64) / len(unit))
    eig = eig[eig > 1e-12]
    return float(np.exp(-(eig * np.log(eig)).sum()))


def _stage_dir(manifest: dict[str, Any], name: str) -> Path | None:
    record = (manifest.get("stages") or {}).get(name) or {}
    if not record.get("hash"):
        return None
    recorded = Path(record.get("path") or "")
    if recorded.is_dir():
        return recorded
    fallback = Path(manifest.get("config", {}).get("cache_dir", "runs/cache")) / name / record["hash"]
    return fallback if fallback.is_dir() else None


class _Pool:
    """One pool's pairs, scores and the feature matrices its runs' stages recorded (loaded once per pool)."""

    def __init__(self, pool_dir: Path, features_dir: Path | None, embeddings_dir: Path | None) -> None:
        self.pairs = {p["id"]: p for p in read_jsonl(pool_dir / "pairs.jsonl")}
        scores = read_jsonl(pool_dir / "scores.jsonl")
        self.score = {s["response_id"]: float(s["value"]) for s in scores}
        self.degenerate = {
            s["response_id"]: float(not task["done"]) for s in scores if (task := (s.get("details") or {}).get("task"))
        }
        responses = read_jsonl(pool_dir / "responses.jsonl")
        self.words = {r["id"]: len(r["text"].split()) for r in responses}
        by_prompt: dict[str, list[float]] = defaultdict(list)
        for r in responses:
            if r["id"] in self.score:
                by_prompt[r["prompt_id"]].append(self.score[r["id"]])
        self.pass_rate = {p: float(np.mean(v)) for p, v in by_prompt.items()}
        self.gradients = self.prompts = self.answers = None
        if features_dir is not None:
            npz = np.load(features_dir / "features.npz")
            self.gradients = dict(zip(npz["pair_ids"].tolist(), npz["pair_features"]))
        if embeddings_dir is not None:
            npz = np.load(embeddings_dir / "embeddings.npz")
            self.prompts = dict(zip(npz["prompt_ids"].tolist(), npz["prompt"]))
            self.answers = dict(zip(npz["response_ids"].tolist(), npz["response"]))

    def properties(self, pair_ids: list[str]) -> dict[str, float | None]:
        pairs = [self.pairs[i] for i in pair_ids if i in self.pairs]
        if len(pairs) < len(pair_ids):
            raise BenchError(
                f"{len(pair_ids) - len(pairs)} selected pairs are not in the pool the run recorded: is the cache another pool's?"
            )

        def stacked(table: dict[str, np.ndarray] | None, key: str) -> float | None:
            return (
                vendi(np.stack([table[p[key]] for p in pairs]))
                if table is not None and all(p[key] in table for p in pairs)
                else None
            )

        def degenerate(key: str) -> float | None:
            known = [self.degenerate[p[key]] for p in pairs if p[key] in self.degenerate]
            return float(np.mean(known)) if known and len(known) == len(pairs) else None

        return {
            "g_vendi": stacked(self.gradients, "id"),
            "chosen_degenerate": degenerate("chosen_id"),
            "rejected_degenerate": degenerate("rejected_id"),
            "prompt_vendi": stacked(self.prompts, "prompt_id"),
            "chosen_vendi": stacked(self.answers, "chosen_id"),
            "chosen_score": float(np.mean([self.score.get(p["chosen_id"], np.nan) for p in pairs])),
            "prompt_pass_rate": float(np.mean([self.pass_rate.get(p["prompt_id"], np.nan) for p in pairs])),
            "chosen_words": float(np.mean([self.words.get(p["chosen_id"], np.nan) for p in pairs])),
        }


def _pools(runs: list[RunRecord]) -> dict[str, _Pool]:
    """Per pool hash, the pool with the features and embeddings any of its runs recorded (a uniform run has no
    gradient features of its own, but shares the pool of a bpo run that computed them)."""
    manifests = {r.path: r.folder.manifest() for r in runs}
    dirs: dict[str, dict[str, Path | None]] = {}
    for manifest in manifests.values():
        pool = (manifest.get("stages") or {}).get("pool", {}).get("hash")
        if pool is None:
            continue
        found = dirs.setdefault(pool, {"pool": None, "features": None, "embeddings": None})
        for stage in found:
            found[stage] = found[stage] or _stage_dir(manifest, stage)
    return {h: _Pool(d["pool"], d["features"], d["embeddings"]) for h, d in dirs.items() if d["pool"] is not None}


def run_properties(runs: list[RunRecord], metric: str) -> list[dict[str, Any]]:
    """One row per run: its cell, seed, gain (tuned − base `metric`), and every property (None where the cache lacks
    the stage it needs); runs with flipped labels are marked `control`."""
    pools = _pools(runs)
    rows = []
    for run in runs:
        manifest, selection = run.folder.manifest(), run.folder.selection()
        pool = pools.get((manifest.get("stages") or {}).get("pool", {}).get("hash"))
        tuned = next(
            (
                v
                for k, v in run.metrics.items()
                if k.endswith(f"/{metric}") and not k.split("/", 1)[1].startswith("base.")
            ),
            None,
        )
        base = next((v for k, v in run.metrics.items() if k.endswith(f"/base.{metric}")), None)
        props: dict[str, float | None] = (
            pool.properties(selection["pair_ids"]) if pool else dict.fromkeys(list(PROPERTIES)[:-2])
        )
        props.update(breadth=run.breadth, mean_depth=run.mean_depth)
        rows.append(
            {
                "run": run.name,
                "path": str(run.path),
                "cell": run.cell,
                "budget": run.budget,
                "seed": run.seed,
                "control": bool(selection.get("flipped")),
                "selection": content_hash(sorted(selection["pair_ids"])),
                "gain": tuned["value"] - base["value"] if tuned and base else None,
                **props,
            }
        )
    return rows


def _mean(values: list[float | None]) -> float | None:
    return float(np.mean(values)) if values and all(v is not None for v in values) else None


def cell_properties(runs: list[RunRecord], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per cell: seeds averaged (gain and every property), the number of seeds, whether it is a control, and the cell
    whose selections it repeats at every seed (`same_as`; None for the first of its kind), which correlations skip."""
    by_run = {r["path"]: r for r in rows}  # by folder: run names repeat across matrices
    out: list[dict[str, Any]] = []
    first: dict[tuple[int, tuple[tuple[int, str], ...]], str] = {}
    for members in cells_of(runs):
        items = [by_run[str(m.path)] for m in members]
        mean = {k: _mean([i[k] for i in items]) for k in ["gain", *PROPERTIES]}
        signature = (members[0].budget, tuple(sorted((i["seed"], i["selection"]) for i in items)))
        same_as = first.setdefault(signature, members[0].title) if not any(i["control"] for i in items) else None
        out.append(
            {
                "cell": members[0].title,
                "budget": members[0].budget,
                "seeds": len(items),
                "control": any(i["control"] for i in items),
                "same_as": same_as if same_as != members[0].title else None,
                **mean,
            }
        )
    return out


def correlations(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each property against gain across the non-control cells: per budget, and over all budgets on values centred
    within each budget. A property constant across cells gets no correlation (None), not a spurious one."""
    usable = [c for c in cells if not c["control"] and not c.get("same_as") and c["gain"] is not None]
    groups: dict[str, list[dict[str, Any]]] = {
        f"{b} pairs": [c for c in usable if c["budget"] == b] for b in sorted({c["budget"] for c in usable})
    }
    if len(groups) > 1:
        groups["all budgets (centred per budget)"] = usable
    out = []
    for scope, members in groups.items():
        for prop in PROPERTIES:
            pts = [(c[prop], c["gain"], c["budget"]) for c in members if c[prop] is not None]
            if len(pts) < 4:
                out.append(
                    {
                        "scope": scope,
                        "property": prop,
                        "n_cells": len(pts),
                        "r": None,
                        "low": None,
                        "high": None,
                        "p": None,
                    }
                )
                continue
            x, y, budget = (np.array(v, dtype=float) for v in zip(*pts))
            if len(groups) > 1 and scope.startswith("all"):
                for b in np.unique(budget):
                    x[budget == b] -= x[budget == b].mean()
                    y[budget == b] -= y[budget == b].mean()
            out.append({"scope": scope, "property": prop, "n_cells": len(pts), **correlation(x, y)})
    return out


def diagnostics(run_dirs: list[Path], metric: str = PRIMARY_METRIC) -> dict[str, Any]:
    """Per run and per cell the properties of the selected set, and their correlations with held-out gain."""
    runs = [r for r in load_runs(run_dirs) if r.folder.has(RunFolder.SELECTION) and r.folder.has(RunFolder.METRICS)]
    if not runs:
        raise BenchError(f"no finished runs with a selection under {', '.join(map(str, run_dirs))}.")
    rows = run_properties(runs, metric)
    cells = cell_properties(runs, rows)
    return {"metric": metric, "runs": rows, "cells": cells, "correlations": correlations(cells)}
