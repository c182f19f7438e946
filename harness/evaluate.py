"""The `evaluate` stages: greedy outputs on held-out verifiable prompts, and their metrics.

The base model's outputs are a stage of their own, keyed only by the model and the eval
config, so every strategy in a comparison is scored against the very same base outputs and
every difference is paired (same prompts, same decoding).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.config import EvaluateConfig, GenerationConfig, PromptsConfig
from harness.generation import generate_with
from harness.heldout_prompts import eval_prompts
from harness.io import read_jsonl, write_jsonl
from harness.judges import get_judge
from harness.metrics import accuracies, instruction_share, prompt_pass
from harness.records import to_row
from harness.stats import mean_ci, metric, newcombe_paired

SUITE = "ifeval_heldout"


def generate_and_judge(
    model_name: str, adapter: Path | None, cfg: EvaluateConfig, out: Path, generation: GenerationConfig,
    prompts_cfg: PromptsConfig | None = None,
) -> dict:
    """Greedy outputs for the held-out prompts, each with the verifiable judgment."""
    prompts = eval_prompts(cfg, prompts=prompts_cfg)
    gens = generate_with(
        generation.backend,
        model_name,
        adapter,
        [p.messages for p in prompts],
        dtype=generation.dtype,
        max_new_tokens=cfg.max_new_tokens,
        batch_size=cfg.batch_size,
        do_sample=False,
        desc="evaluate: greedy " + ("tuned" if adapter else "base"),
        gpu_memory_utilization=generation.vllm_gpu_memory_utilization,
    )
    judge = get_judge("verifiable")
    rows = []
    for prompt, gen in zip(prompts, gens):
        j = judge.score(prompt, gen.text)
        rows.append(
            {
                "prompt": to_row(prompt),
                "output": gen.text,
                "truncated": gen.truncated,
                "n_tokens": gen.n_tokens,
                "strict": j.details["strict"],
                "loose": j.details["loose"],
            }
        )
    tokens = sum(g.n_tokens for g in gens)
    if cfg.samples:
        sampled = generate_with(
            generation.backend,
            model_name,
            adapter,
            [p.messages for p in prompts for _ in range(cfg.samples)],
            dtype=generation.dtype,
            max_new_tokens=cfg.max_new_tokens,
            batch_size=cfg.batch_size,
            do_sample=True,
            temperature=cfg.sample_temperature,
            top_p=0.95,
            seed=cfg.prompt_seed,
            desc=f"evaluate: {cfg.samples} samples " + ("tuned" if adapter else "base"),
            gpu_memory_utilization=generation.vllm_gpu_memory_utilization,
        )
        for n, row in enumerate(rows):
            draws = sampled[n * cfg.samples : (n + 1) * cfg.samples]
            row["sampled_strict"] = [judge.score(prompts[n], g.text).details["strict"] for g in draws]
        tokens += sum(g.n_tokens for g in sampled)
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
    assert [r["prompt"]["id"] for r in base_rows] == [r["prompt"]["id"] for r in tuned_rows], "eval sets differ"
    metrics: dict[str, dict] = {}
    for name, rows in (("tuned", tuned_rows), ("base", base_rows)):
        for key, value in accuracies(rows, cfg.bootstrap, judge.name, judge.weak, seed).items():
            metrics[f"{name}.{key}"] = value
    passes = [(prompt_pass(t["strict"]), prompt_pass(b["strict"])) for t, b in zip(tuned_rows, base_rows)]
    paired = [(t, b) for t, b in passes if t is not None and b is not None]  # prompts scorable on both sides
    tuned_pass, base_pass = [t for t, _ in paired], [b for _, b in paired]
    metrics["paired_diff.prompt_strict_acc"] = metric(
        newcombe_paired(np.array(tuned_pass), np.array(base_pass)), len(tuned_pass), judge.name,
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
        for name, values in (("tuned", [t for t, _ in rewards]), ("base", [b for _, b in rewards]), ("paired_diff", [t - b for t, b in rewards])):
            ci = mean_ci(values, n_boot=cfg.bootstrap, seed=seed)
            metrics[f"{name}.mean_verifiable_reward"] = metric(ci, len(values), judge.name, samples_per_prompt=n_samples)
    return {SUITE: metrics}


def read_outputs(stage_dir: Path) -> list[dict]:
    return read_jsonl(stage_dir / "outputs.jsonl")
