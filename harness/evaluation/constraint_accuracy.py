"""The held-out evaluation: the registered `ifeval` suite on the run's own held-out prompts, and
the paired metrics on top of it.

There is one evaluation path. The `evaluate_base` and `evaluate` stages run the `ifeval` suite
(harness/suites/_instruction_following.py) on the run's held-out prompts (`HeldoutSet`: its task
set, its constraint types, `evaluate.n_prompts` of them) through the suite's cached generation
and judging, so an `ifeval` suite added to `evaluate.suites` with the same decoding asks the same
prompts and reuses the same outputs. On top come what only a comparison with the base model gives:
the paired difference, the win rate, and (with `evaluate.samples`) the mean verifiable reward
over seeded samples. The base model's outputs are a stage of their own, so every strategy in a
comparison is scored against the very same base outputs (same prompts, same decoding).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.constraints.metrics import (
    PAIRED_TASK_METRICS,
    TASK_JUDGE,
    TASK_METRICS,
    accuracies,
    instruction_share,
    prompt_pass,
    task_unit,
)
from harness.core.io import read_jsonl, write_jsonl
from harness.core.stats import mean_ci, metric, newcombe_paired
from harness.evaluation.config import EvaluateConfig
from harness.judges import get_judge
from harness.suites import EvalTarget, SuiteContext, get_suite
from harness.suites._instruction_following import judged_outputs
from harness.suites.config import SuiteConfig

SUITE = "ifeval_heldout"
"""The metrics.json section of the held-out evaluation."""
HELDOUT_SUITE = "ifeval"
"""The registered suite the evaluate stages run."""


def suite_config(cfg: EvaluateConfig) -> SuiteConfig:
    """The `ifeval` suite as the evaluate section sets it: the run's first `n_prompts` held-out prompts, its decoding."""
    return SuiteConfig(
        name=HELDOUT_SUITE,
        limit=cfg.n_prompts,
        max_new_tokens=cfg.max_new_tokens,
        batch_size=cfg.batch_size,
        bootstrap=cfg.bootstrap,
    )  # type: ignore[call-arg]


def evaluate_target(target: EvalTarget, cfg: EvaluateConfig, ctx: SuiteContext, out: Path) -> dict:
    """The suite's outputs, exports and metrics in `out`, each row with `sampled_strict` (the verdicts of
    `samples` seeded samples) when the config asks for samples."""
    suite_cfg = suite_config(cfg)
    get_suite(HELDOUT_SUITE).evaluate(suite_cfg, target, out, ctx)
    rows = read_outputs(out)
    tokens = sum(r["n_tokens"] for r in rows)
    if cfg.samples:
        prompts = ctx.heldout.prompts(cfg.n_prompts)
        sampling = {"temperature": cfg.sample_temperature, "top_p": 0.95, "seed": cfg.prompt_seed}
        draws, _ = judged_outputs(
            suite_cfg, target, ctx, [p for p in prompts for _ in range(cfg.samples)], sampling, f"{cfg.samples} samples"
        )
        for n, row in enumerate(rows):
            row["sampled_strict"] = [d["strict"] for d in draws[n * cfg.samples : (n + 1) * cfg.samples]]
        tokens += sum(d["n_tokens"] for d in draws)
        write_jsonl(out / "outputs.jsonl", rows)
    return {"n": len(rows), "tokens_generated": tokens}


def sampled_reward(row: dict) -> float | None:
    """A prompt's mean verifiable reward: the share of its constraints a sample follows, averaged over samples."""
    draws = [[v for v in verdicts if v is not None] for verdicts in row.get("sampled_strict", [])]
    shares = [float(np.mean(d)) for d in draws if d]
    return float(np.mean(shares)) if shares else None


def compute_metrics(base_rows: list[dict], tuned_rows: list[dict], cfg: EvaluateConfig, seed: int = 0) -> dict:
    """metrics.json: suite -> metric -> {value, ci_low, ci_high, n, judge}."""
    judge = get_judge("verifiable")
    assert [r["prompt_id"] for r in base_rows] == [r["prompt_id"] for r in tuned_rows], "eval sets differ"
    metrics: dict[str, dict] = {}
    for name, rows in (("tuned", tuned_rows), ("base", base_rows)):
        for key, value in accuracies(rows, cfg.bootstrap, judge.name, judge.weak, seed).items():
            metrics[f"{name}.{key}"] = value
    graded = all(r.get("task") for r in tuned_rows + base_rows)
    for name in ("prompt_strict_acc", *(PAIRED_TASK_METRICS if graded else ())):
        units = [
            (task_unit(name, t["strict"], t["task"]), task_unit(name, b["strict"], b["task"]))
            if name in TASK_METRICS
            else (prompt_pass(t["strict"]), prompt_pass(b["strict"]))
            for t, b in zip(tuned_rows, base_rows)
        ]
        paired = [(t, b) for t, b in units if t is not None and b is not None]  # prompts scorable on both sides
        if not paired:
            continue
        metrics[f"paired_diff.{name}"] = metric(
            newcombe_paired(np.array([t for t, _ in paired]), np.array([b for _, b in paired])),
            len(paired),
            f"{judge.name} AND {TASK_JUDGE}" if name in TASK_METRICS else judge.name,
            interval="Newcombe paired binary; holds this run fixed (one seed: no verdict on the training)",
        )
    wins = []
    for t, b in zip(tuned_rows, base_rows):
        st, sb = instruction_share(t["strict"]), instruction_share(b["strict"])
        if st is not None and sb is not None:
            wins.append(1.0 if st > sb else 0.0 if st < sb else 0.5)
    metrics["win_rate_vs_base"] = metric(mean_ci(wins, n_boot=cfg.bootstrap, seed=seed), len(wins), judge.name)
    rewards = [(sampled_reward(t), sampled_reward(b)) for t, b in zip(tuned_rows, base_rows)]
    rewards = [(t, b) for t, b in rewards if t is not None and b is not None]
    if rewards:
        n_samples = len(tuned_rows[0]["sampled_strict"])
        for name, values in (
            ("tuned", [t for t, _ in rewards]),
            ("base", [b for _, b in rewards]),
            ("paired_diff", [t - b for t, b in rewards]),
        ):
            ci = mean_ci(values, n_boot=cfg.bootstrap, seed=seed)
            metrics[f"{name}.mean_verifiable_reward"] = metric(
                ci, len(values), judge.name, samples_per_prompt=n_samples
            )
    return {SUITE: metrics}


def read_outputs(stage_dir: Path) -> list[dict]:
    return read_jsonl(stage_dir / "outputs.jsonl")
