"""What a set of finished runs says, apart from how it is shown: the leaderboard (cells over
seeds), paired tests against a baseline and the shuffled-label control, and claims.

Everything is read from run folders (manifest.json, metrics.json, selection.json,
eval_outputs.jsonl), so it is a pure function of finished runs. Numbers are never filled in:
a metric a run did not compute is missing, not dropped. reports/comparison.py renders it.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.analysis.grouping import BUDGET, phrase, run_kind, without_strategy
from harness.analysis.power import matched_differences, shared_units, unit_design
from harness.analysis.runs import PAIRED_METRICS, RunRecord, cells_of, load_runs
from harness.constraints.metrics import DEGENERATE_KINDS, PRIMARY_METRIC
from harness.core.errors import BenchError
from harness.core.io import content_hash
from harness.core.records import CONTROL
from harness.core.stats import equivalence_p, holm, paired_ci, seed_test


def finite(value: Any) -> bool:
    """A number that can be plotted and averaged (not None, not NaN or inf)."""
    return isinstance(value, (int, float)) and math.isfinite(value)


def _setting_key(name: str) -> str:
    """A primary claim's parameter: a strategy parameter ("depth") or any setting by its dotted path ("train.learning_rate")."""
    return name if "." in name else f"select.params.{name}"


Params = tuple[tuple[str, tuple[tuple[str, Any], ...]], ...]
"""(strategy, ((param, value), ...)) pairs: a hashable {strategy: {param: value}}."""


def frozen_params(params: dict[str, dict[str, Any]] | None) -> Params:
    return tuple((k, tuple(sorted(v.items()))) for k, v in sorted((params or {}).items()))


def in_scope(params: Params, only_budget: int | None, budget: int, better: "RunRecord", worse: "RunRecord") -> bool:
    """Whether a test of `better`'s cell against `worse`'s at `budget` is at `only_budget` (None: any) and each side's
    settings include `params[its strategy]` (uniform at 2 pairs per prompt; a dotted name is a setting's path)."""
    if only_budget is not None and budget != only_budget:
        return False
    wanted = dict(params)
    return all(
        run.setting.get(_setting_key(k)) == v for run in (better, worse) for k, v in wanted.get(run.strategy, ())
    )


def describe_side(strategy: str, params: Params) -> str:
    """One side of a claim in words: "uniform (2 pairs per prompt)"."""
    wanted = dict(params)
    return strategy + (
        f" ({', '.join(phrase(_setting_key(k), v) for k, v in wanted[strategy])})" if wanted.get(strategy) else ""
    )


@dataclass(frozen=True)
class Primary:
    """The one hypothesis a matrix was run to test: BETTER > WORSE on `metric`, optionally only at `budget` and for the
    cells whose settings include `params[strategy]` (uniform at 2 pairs per prompt, not at 1, 4 and 8; a dotted name such
    as train.learning_rate is a setting's path).
    Its rows are marked and Holm-adjusted only among themselves; every other row is exploratory."""

    claim: tuple[str, str]
    metric: str = PRIMARY_METRIC
    budget: int | None = None
    params: Params = ()

    @classmethod
    def of(
        cls,
        claim: tuple[str, str],
        metric: str = PRIMARY_METRIC,
        budget: int | None = None,
        params: dict[str, dict[str, Any]] | None = None,
    ) -> "Primary":
        return cls(claim, metric, budget, frozen_params(params))

    def covers(self, budget: int, better: "RunRecord", worse: "RunRecord") -> bool:
        """Whether the test of `better`'s cell against `worse`'s at `budget` is this primary claim."""
        return (better.strategy, worse.strategy) == self.claim and in_scope(
            self.params, self.budget, budget, better, worse
        )

    def describe(self) -> str:
        """In words: "bpo > uniform (2 pairs per prompt) at 128 pairs"."""
        return " > ".join(describe_side(name, self.params) for name in self.claim) + (
            f" at {self.budget} pairs" if self.budget is not None else ""
        )


DEFAULT_FAMILY = "claims"
"""The family of a matrix's `claims:` (the paper's claims): Holm-adjusted together, apart from the primary claim."""
PRIMARY_FAMILY = "primary"


@dataclass(frozen=True)
class Family:
    """A named family of claims, Holm-adjusted within itself and nowhere else (every strategy against uniform at 2
    pairs per prompt; the uniform depths pairwise), optionally only at `budget` and for the cells whose settings
    include `params[strategy]`. A claim whose two sides are one strategy ("uniform vs uniform") compares that
    strategy's settings in each context pairwise."""

    name: str
    claims: tuple[tuple[str, str], ...]
    budget: int | None = None
    params: Params = ()
    across_budgets: bool = False
    """pair cells that differ in their budget too (bpo at 256 pairs against uniform on the whole pool), not only
    cells of one budget; everything else about the two cells is the same"""

    @classmethod
    def of(
        cls,
        name: str,
        claims: Sequence[tuple[str, str]],
        budget: int | None = None,
        params: dict[str, dict[str, Any]] | None = None,
        across_budgets: bool = False,
    ) -> "Family":
        return cls(name, tuple(claims), budget, frozen_params(params), across_budgets)

    def covers(self, budget: int, better: "RunRecord", worse: "RunRecord") -> bool:
        return in_scope(self.params, self.budget, budget, better, worse)

    def scopes(self, cells: list[list["RunRecord"]]) -> list[list[list["RunRecord"]]]:
        """The groups of cells whose claims are tested against each other: one per context (one budget, everything
        else but the strategy the same), or across budgets one per context without its budget."""
        by: dict[str, list[list[RunRecord]]] = defaultdict(list)
        for c in sorted(cells, key=lambda c: c[0].budget):
            by[
                content_hash({k: v for k, v in without_strategy(c[0].setting).items() if k != BUDGET})
                if self.across_budgets
                else c[0].context
            ].append(c)
        return list(by.values())


def metric_rows(runs: list[RunRecord]) -> list[dict[str, Any]]:
    """One row per run x suite x metric (the metrics.csv / metrics.json of a comparison)."""
    rows = []
    for run in runs:
        for key, record in sorted(run.metrics.items()):
            suite, metric = key.split("/", 1)
            rows.append(
                {
                    "run": run.name,
                    "strategy": run.strategy,
                    "budget": run.budget,
                    "setting": run.label,
                    "seed": run.seed,
                    "suite": suite,
                    "metric": metric,
                    **{k: record.get(k) for k in ("value", "ci_low", "ci_high", "n", "judge", "weak_judge")},
                }
            )
    return rows


def _t_quantile(df: int) -> float:
    from scipy import stats

    return float(stats.t.ppf(0.975, df))


def leaderboard(runs: list[RunRecord], metrics: list[str]) -> list[dict[str, Any]]:
    """Per cell (strategy, budget and any other setting that differs): mean over seeds and a 95% t-interval across seeds.

    With one seed there is no spread across seeds: that run's own CI is shown and marked as
    such (it holds the run fixed).
    """
    rows = []
    for members in cells_of(runs):
        first = members[0]
        row: dict[str, Any] = {
            "strategy": first.strategy,
            "budget": first.budget,
            "setting": first.label,
            "seeds": sorted(r.seed for r in members),
            "cells": {},
        }
        for key in metrics:
            row["cells"][key] = cell_estimate(members, key)
        row["made_of"] = made_of(members)
        rows.append(row)
    return rows


def made_of(members: list[RunRecord]) -> dict[str, Any]:
    """What a cell's accuracy is made of, side by side (means over its seeds; empty where the outputs were never given
    the task check): constraint-only accuracy, task-done rate, both together, and the degenerate share by kind, the
    base model's beside the tuned one's; `flag` when the tuned degenerate share exceeds the base model's."""
    suite = "ifeval_heldout"
    names = [
        "prompt_strict_acc",
        "task_done_rate",
        PRIMARY_METRIC,
        "degenerate_share",
        *(f"degenerate_share_{k}" for k in DEGENERATE_KINDS),
    ]
    if cell_estimate(members, f"{suite}/task_done_rate") is None:
        return {}
    out = {name: est["mean"] for name in names if (est := cell_estimate(members, f"{suite}/{name}"))}
    if PRIMARY_METRIC in out:
        out["primary"] = out[PRIMARY_METRIC]  # the renderer's column, whatever the primary metric is named
    base = cell_estimate(members, f"{suite}/base.degenerate_share")
    if "degenerate_share" in out and base:
        out["base.degenerate_share"] = base["mean"]
        out["flag"] = out["degenerate_share"] > base["mean"]
    return out


def cell_estimate(members: list[RunRecord], key: str) -> dict[str, Any] | None:
    """A cell's value of one metric: the mean over its seeds with a 95% t-interval across seeds,
    or, with one seed, that run's own CI (marked: it holds the run fixed). None when never computed."""
    having = [r for r in members if key in r.metrics and finite(r.metrics[key].get("value"))]
    values = [r.metrics[key]["value"] for r in having]
    if not values:
        return None
    if len(values) == 1:
        rec = having[0].metrics[key]
        return {"mean": values[0], "low": rec.get("ci_low"), "high": rec.get("ci_high"), "n_seeds": 1, "kind": "run CI"}
    mean, sd = float(np.mean(values)), float(np.std(values, ddof=1))
    half = _t_quantile(len(values) - 1) * sd / math.sqrt(len(values))
    return {"mean": mean, "low": mean - half, "high": mean + half, "n_seeds": len(values), "kind": "across seeds"}


ONE_SEED = "one seed: no verdict"


def _paired(
    members: list[RunRecord], reference: list[RunRecord], metric: str, n_boot: int, seed: int
) -> dict[str, Any]:
    """members − reference on the same held-out units: an interval for these runs, and the verdict over seeds.

    The run-fixed interval (per unit, each side averaged over its seeds; Newcombe's for one
    binary run each, else a bootstrap over units) says whether *these runs* differ. The
    verdict (`seeds_ci`, harness.core.stats.seed_test) counts run-to-run variation too: matched
    seeds (seed s of both sides shares its pool) give per-seed differences, widened by the
    unit-by-strategy term when every seed answered the same units (held-out prompts: resampling
    base tasks, within constraint type). Fewer than 2 matched seeds: no verdict.
    """
    units = shared_units(members + reference, metric)
    ours, theirs = ({r.seed: r for r in group} for group in (members, reference))
    matched = sorted(set(ours) & set(theirs))
    if units is not None:
        x = np.array([np.mean([r.outcomes[metric][u] for r in members]) for u in units])
        y = np.array([np.mean([r.outcomes[metric][u] for r in reference]) for u in units])
    elif matched:  # units differ by seed: each matched seed on the units its two runs share
        pairs = [(ours[s].outcomes[metric], theirs[s].outcomes[metric]) for s in matched]
        x = np.array([a[u] for a, b in pairs for u in sorted(set(a) & set(b))])
        y = np.array([b[u] for a, b in pairs for u in sorted(set(a) & set(b))])
    else:
        x = y = np.array([])
    if x.size == 0:
        return {
            "missing": "no held-out units shared by these runs (held-out pairs reserved from each seed's own pool differ by seed, "
            "and these runs share no seed; preference.k samples pairs every run shares)"
        }
    fixed = paired_ci(x, y, n_boot=n_boot, seed=seed)
    result: dict[str, Any] = {
        **fixed,
        "n_prompts": fixed.pop("n_units"),
        "design": "crossed" if units is not None else "nested",
    }
    clusters, strata = unit_design(members + reference, metric, units)
    verdict = (
        seed_test(
            matched_differences(members, reference, metric, units),
            crossed=units is not None,
            clusters=clusters,
            strata=strata,
        )
        if len(matched) >= 2
        else None
    )
    if verdict is not None:
        result["seeds_ci"] = {**verdict, "seeds": matched}
        result["significant"] = bool(verdict["low"] > 0 or verdict["high"] < 0)
    else:
        result["significant"] = None
        result["verdict"] = ONE_SEED
    return result


def _by_cell(runs: list[RunRecord], metric: str) -> list[list[RunRecord]]:
    """Cells whose runs recorded per-unit outcomes of `metric`."""
    return [
        [r for r in members if r.outcomes.get(metric)]
        for members in cells_of(runs)
        if any(r.outcomes.get(metric) for r in members)
    ]


def _describe_cells(cells: list[list[RunRecord]]) -> str:
    return "; ".join(c[0].title for c in cells)


def _verdicts(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The verdict records a table holds: each row's own and, where tested, its one against the control."""
    return [rec for t in rows for rec in (t.get("seeds_ci"), t.get("vs_control", {}).get("seeds_ci")) if rec]


def _holm_in_place(records: list[dict[str, Any]], margin: float | None = None) -> None:
    """Give each verdict record of one family its Holm-adjusted p, and with an equivalence `margin` its TOST p
    (`equivalence_p`), raw and Holm-adjusted within the family too."""
    for rec, adjusted in zip(records, holm([rec["p"] for rec in records])):
        rec["p_holm"] = adjusted
    if margin is not None:
        for rec in records:
            rec["margin"], rec["p_tost"] = margin, equivalence_p(rec, margin)
        for rec, adjusted in zip(records, holm([rec["p_tost"] for rec in records])):
            rec["p_tost_holm"] = adjusted


def paired_tests(
    runs: list[RunRecord],
    baseline: str,
    metric: str = PRIMARY_METRIC,
    n_boot: int = 2000,
    seed: int = 0,
    margin: float | None = None,
) -> list[dict[str, Any]]:
    """Each cell vs the `baseline` strategy's cell in the same context (same budget, same everything but the strategy).

    Where a `control_shuffled` cell exists in that context, each cell is also tested against it
    (`vs_control`): an effect that does not beat shuffled labels is not an effect of the data.
    Two families, each Holm-adjusted within itself (`p_holm`): the tests against the baseline, and the tests against
    the control (a control test is a check of the testbed, not a claim, and must not dilute the claims or be diluted
    by them). With `margin`, each test also carries its equivalence (TOST) p.
    """
    cells = _by_cell(runs, metric)
    by_context: dict[str, list[list[RunRecord]]] = defaultdict(list)
    for members in cells:
        by_context[members[0].context].append(members)
    out: list[dict[str, Any]] = []
    for members in cells:
        first = members[0]
        if first.strategy == baseline:
            continue
        row = {"strategy": first.strategy, "budget": first.budget, "setting": first.label}
        bases = [c for c in by_context[first.context] if c[0].strategy == baseline]
        if len(bases) != 1:
            why = (
                f"no {baseline} run with this setting (budget {first.budget}{', ' + first.context_label if first.context_label else ''})"
                if not bases
                else f"{len(bases)} {baseline} settings to compare with: {_describe_cells(bases)}"
            )
            out.append({**row, "missing": why})
            continue
        test: dict[str, Any] = {**row, "seeds": len(members), "baseline_seeds": len(bases[0])}
        test.update(_paired(members, bases[0], metric, n_boot, seed))
        controls = [c for c in by_context[first.context] if c[0].strategy == CONTROL]
        if len(controls) == 1 and first.strategy != CONTROL and "missing" not in test:
            test["vs_control"] = _paired(members, controls[0], metric, n_boot, seed + 1)
        out.append(test)
    _holm_in_place([t["seeds_ci"] for t in out if t.get("seeds_ci")], margin)
    _holm_in_place([t["vs_control"]["seeds_ci"] for t in out if t.get("vs_control", {}).get("seeds_ci")], margin)
    for t in out:
        if "vs_control" in t:
            t["vs_control"]["beats"] = (
                None if "seeds_ci" not in t["vs_control"] else claim_verdict(t["vs_control"]).startswith("holds")
            )
    return out


def claim_name(better: str, worse: str) -> str:
    """'bpo > uniform'; one strategy's settings against each other read 'uniform vs uniform'."""
    return f"{better} vs {worse}" if better == worse else f"{better} > {worse}"


def claim_tests(
    runs: list[RunRecord],
    claims: list[tuple[str, str]],
    metric: str,
    n_boot: int = 2000,
    seed: int = 0,
    primary: Primary | None = None,
    margin: float | None = None,
    families: Sequence[Family] = (),
) -> list[dict[str, Any]]:
    """Each claim (better, worse) in every context holding both, cell by cell, paired like `paired_tests`: better − worse.

    A claim holds at the 95% level when its verdict interval (over seeds) lies above 0; the
    run-fixed interval only says these runs differ. Each row names its `family`, and Holm's adjustment runs within
    each family: the `primary` claim (named in the matrix file, with the budget and parameters it names) alone;
    the other rows of `claims` together (DEFAULT_FAMILY); each of `families` by itself, over the cells it covers.
    With `margin`, each test also carries its equivalence (TOST) p, adjusted within the same family.
    """
    cells = _by_cell(runs, metric)
    groups = [Family.of(DEFAULT_FAMILY, claims), *families]
    out = []
    for family in groups:
        scopes = family.scopes(cells)
        for better, worse in family.claims:
            for here in scopes:
                budget, context_label = here[0][0].budget, here[0][0].context_label
                row: dict[str, Any] = {
                    "claim": claim_name(better, worse),
                    "better": better,
                    "worse": worse,
                    "budget": budget,
                    "setting": context_label,
                    "primary": False,
                    "family": family.name,
                }
                sides = [[c for c in here if c[0].strategy == name] for name in (better, worse)]
                missing = [name for name, side in zip((better, worse), sides) if not side]
                if missing:
                    if family.budget is None or family.budget == budget:
                        out.append(
                            {
                                **row,
                                "missing": f"no {' or '.join(missing)} run with these outcomes at budget {budget}"
                                + (f" ({context_label})" if context_label else ""),
                            }
                        )
                    continue
                pairs = (
                    list(itertools.combinations(sides[0], 2))
                    if better == worse
                    else [(m, r) for m in sides[0] for r in sides[1]]
                )
                for members, reference in pairs:
                    budget = members[0].budget
                    if not family.covers(budget, members[0], reference[0]):
                        continue
                    is_primary = (
                        family.name == DEFAULT_FAMILY
                        and primary is not None
                        and primary.covers(budget, members[0], reference[0])
                    )
                    test = {
                        **row,
                        "budget": budget,
                        "better_setting": members[0].label,
                        "worse_setting": reference[0].label,
                        "seeds": len(members),
                        "baseline_seeds": len(reference),
                        "primary": is_primary,
                        "family": PRIMARY_FAMILY if is_primary else family.name,
                        **({"worse_budget": reference[0].budget} if reference[0].budget != budget else {}),
                    }
                    test.update(_paired(members, reference, metric, n_boot, seed))
                    out.append(test)
    for name in dict.fromkeys(t["family"] for t in out):
        _holm_in_place(_verdicts([t for t in out if t["family"] == name]), margin)
    return out


ALPHA = 0.05
"""The level of every verdict, after Holm's adjustment within its family."""


def claim_verdict(test: dict[str, Any]) -> str:
    """A test's verdict after Holm's adjustment within its family: "holds" or "reversed" (the difference test),
    "equivalent" (the TOST at the recorded margin), else "undecided"; "within ±margin" where a difference holds but
    is smaller than the margin too, and "before adjustment" where only the raw p decides."""
    seeds = test.get("seeds_ci")
    if not seeds:
        return ONE_SEED
    p = seeds.get("p_holm", seeds["p"])
    tost = seeds.get("p_tost_holm")
    equivalent = tost is not None and tost < ALPHA
    if p < ALPHA:
        word = "holds" if seeds["diff"] > 0 else "reversed"
        return word + (f", within ±{seeds['margin']:g}" if equivalent else "")
    if equivalent:
        return f"equivalent within ±{seeds['margin']:g}"
    if seeds["p"] < ALPHA:
        return f"undecided ({'holds' if seeds['diff'] > 0 else 'reversed'} before Holm's adjustment)"
    return "undecided"


def estimate(test: dict[str, Any]) -> float | None:
    """The difference a verdict is about: the matched-seed estimate where there is a verdict, else these runs'."""
    return (test.get("seeds_ci") or {}).get("diff", test.get("diff"))


def count_tests(rows: list[dict[str, Any]]) -> int:
    """How many verdict tests a table holds (each with a p-value in its Holm family)."""
    return len(_verdicts(rows))


@dataclass(frozen=True)
class Comparison:
    """Everything a comparison report shows, computed once."""

    runs: list[RunRecord]
    rows: list[dict[str, Any]]
    """one row per run and metric (metrics.csv)"""
    keys: list[str]
    """the tuned models' metric keys, "suite/metric", the held-out evaluation first"""
    board: list[dict[str, Any]]
    tests: dict[str, list[dict[str, Any]]]
    """paired metric -> paired tests against the baseline (and the control)"""
    claims: dict[str, list[dict[str, Any]]]
    baseline: str
    primary: Primary | None
    judge_overlap: list[dict[str, str]] = field(default_factory=list)
    """(suite, judge) where the judge grading a suite is the one that labelled the training pairs"""
    compute: dict[str, Any] = field(default_factory=dict)
    """machine hours behind the runs (compute_spent)"""
    margin: float | None = None
    """the equivalence margin of every TOST verdict (None: no equivalence tested)"""


def same_judge(pool_judge: dict[str, Any], metric_judge: str | None) -> bool:
    """Whether a metric's judge (its recorded name or label) is the model (or checkers) that labelled the pool."""
    kind, model = pool_judge.get("type"), pool_judge.get("model")
    if not kind or not metric_judge or metric_judge.startswith("none"):
        return False
    return metric_judge == kind or metric_judge.startswith(f"{kind}:") or bool(model and str(model) in metric_judge)


def judge_overlap(runs: list[RunRecord]) -> list[dict[str, str]]:
    """Every suite whose judge also labelled some compared run's pool: its gains may be the judge's preferences learned."""
    found = {
        (key.split("/", 1)[0], str(rec.get("judge")))
        for r in runs
        for key, rec in r.metrics.items()
        if same_judge(r.pool_judge, rec.get("judge"))
    }
    return [{"suite": suite, "judge": judge} for suite, judge in sorted(found)]


def compute_spent(runs: list[RunRecord]) -> dict[str, Any]:
    """The machine time behind these runs: every stage once per cache key (a pool or base evaluation shared by many runs
    counts once, as it was computed once), in hours, with the machines the manifests record and the seeds each ran
    (a seed's cells belong on one kind of machine: the report says which kind ran which seeds)."""
    stages: dict[tuple[str, str], float] = {}
    machines: set[str] = set()
    seeds_by_kind: dict[str, set[int]] = defaultdict(set)
    for run in runs:
        manifest = run.folder.manifest()
        machine = manifest.get("machine") or {}
        if machine:
            machines.add(
                f"{machine.get('cpu', '?')}, {machine.get('cpu_count', '?')} cores"
                + (f", {machine['gpu']}" if machine.get("gpu") else "")
            )
            seeds_by_kind[run_kind(manifest)].add(run.seed)
        for name, record in (manifest.get("stages") or {}).items():
            seconds = (record or {}).get("compute_seconds") or (
                (record or {}).get("seconds") if (record or {}).get("status") == "computed" else None
            )
            if record and seconds:
                key = (name, record.get("hash") or str(run.path))
                stages[key] = max(stages.get(key, 0.0), float(seconds))
    return {
        "hours": sum(stages.values()) / 3600,
        "stages": len(stages),
        "machines": sorted(machines),
        "seeds_by_machine": {kind: sorted(seeds) for kind, seeds in sorted(seeds_by_kind.items())},
    }


def compare(
    run_dirs: list[Path],
    baseline: str = "original",
    claims: Sequence[tuple[str, str]] = (),
    primary: Primary | None = None,
    margin: float | None = None,
    families: Sequence[Family] = (),
) -> Comparison:
    """The leaderboard, paired tests and claims of these runs; `primary` is the one hypothesis the matrix was
    run to test, kept out of the other claims' multiple-comparison adjustment; `families`, further named families of
    claims, each adjusted within itself; `margin`, the equivalence margin
    every "the same" verdict is a TOST at (written down before the runs)."""
    runs = load_runs(run_dirs)
    keys = sorted({k for r in runs for k in r.metrics}, key=lambda k: (not k.startswith("ifeval_heldout/"), k))
    tuned_keys = [k for k in keys if not k.split("/", 1)[1].startswith("base.")]
    measured = [name for name in PAIRED_METRICS if any(r.outcomes.get(name) for r in runs)]
    if primary and primary.metric not in PAIRED_METRICS:
        raise BenchError(
            f"primary metric {primary.metric!r} is not one the paired tests compare; use one of {', '.join(PAIRED_METRICS)}."
        )
    all_claims = list(dict.fromkeys([*claims, *([primary.claim] if primary else [])]))
    tests = {name: paired_tests(runs, baseline, name, margin=margin) for name in measured}
    claim_rows = (
        {
            name: claim_tests(
                runs,
                all_claims,
                name,
                primary=primary if primary and primary.metric == name else None,
                margin=margin,
                families=families,
            )
            for name in measured
        }
        if all_claims or families
        else {}
    )
    return Comparison(
        runs,
        metric_rows(runs),
        tuned_keys,
        leaderboard(runs, tuned_keys),
        tests,
        claim_rows,
        baseline,
        primary,
        judge_overlap(runs),
        compute_spent(runs),
        margin,
    )
