"""What gradient features cost next to what they select for: the issue's target is ratio <= 0.5.

In one run, on one pool and one model:
- features: seconds per CANDIDATE pair of `compute_gradient_features` (every pool pair);
- training: seconds per SELECTED pair of `train_dpo` on `--budget` random pool pairs, 1 epoch,
  the default `TrainConfig` (what a strategy's selection then costs to train on);
- ratio = features / training, per pair;
- naive baseline: LESS done literally, one pair at a time (policy and reference passes, the DPO
  loss, a backward over all LoRA matrices, a projection), on a few pairs.

    python benchmarks/gradient_features.py --prompts 32 --k 4 --budget 32 --out runs/benchmarks/gradfeat.json

The pool is built once under `--work-dir` (or taken from `--pool-dir`) and reused by later runs.
Truncated samples are kept in pairs: this measures cost, and they are ordinary sequences.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from harness.core.io import write_json
from harness.core.records import CandidatePool, Pair, Prompt
from harness.data.builtin import build_builtin_prompts
from harness.generation.config import GenerationConfig
from harness.models.choices import resolve_generation, resolve_train
from harness.models.config import EMBEDDED_MODEL
from harness.provenance import versions
from harness.stages.candidates import build_pool, draw_samples, read_pool, read_samples
from harness.stages.config import PoolConfig
from harness.stages.prompts import read_prompts, write_prompts
from harness.training.config import FeaturesConfig, TrainConfig
from harness.training.dpo import preference_rows, train_dpo
from harness.training.gradient_features import (
    LoraGradients,
    compute_gradient_features,
    load_lora_model,
    make_projection,
    response_logps,
    tokenize_response,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=EMBEDDED_MODEL, help="embedded default, hub id or local folder")
    parser.add_argument("--prompts", type=int, default=16, help="built-in training prompts in the pool")
    parser.add_argument("--k", type=int, default=4, help="responses sampled per prompt")
    parser.add_argument("--budget", type=int, default=16, help="pairs DPO trains on")
    parser.add_argument(
        "--max-new-tokens", type=int, default=128, help="pool sample length (short keeps the run short)"
    )
    parser.add_argument("--naive-pairs", type=int, default=3, help="pairs timed for the naive per-pair baseline")
    parser.add_argument("--dim", type=int, default=FeaturesConfig().dim, help="projection dimension D")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work-dir", type=Path, default=Path("runs/benchmarks/gradient_features"))
    parser.add_argument("--pool-dir", type=Path, help="reuse this pool (pairs.jsonl, ...); default <work-dir>/pool")
    parser.add_argument(
        "--prompts-dir", type=Path, help="prompts.jsonl of that pool, e.g. a runs/cache/prompts/<hash> folder"
    )
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks/gradient_features.json"))
    return parser.parse_args(argv)


def load_or_build_pool(args: argparse.Namespace) -> tuple[CandidatePool, dict[str, Any]]:
    """The pool in `--pool-dir`, built there first (with its prompts) if it has no pairs.jsonl."""
    pool_dir = args.pool_dir or args.work_dir / "pool"
    stats: dict[str, Any] = {"pool_dir": str(pool_dir), "reused": (pool_dir / "pairs.jsonl").is_file()}
    prompts_dir = args.prompts_dir or pool_dir
    if stats["reused"] and (prompts_dir / "prompts.jsonl").is_file():
        prompts, _ = read_prompts(prompts_dir)
    else:
        prompts, _ = build_builtin_prompts(seed=args.seed, n_train=args.prompts)
    if not stats["reused"]:
        cfg = PoolConfig(k=args.k, max_new_tokens=args.max_new_tokens, drop_truncated=False)
        start = time.perf_counter()
        pool_dir.mkdir(parents=True, exist_ok=True)
        drawn = draw_samples(args.model, prompts, cfg, args.seed, pool_dir, resolve_generation(GenerationConfig()))
        stats.update(
            build_pool(
                args.model,
                prompts,
                [],
                read_samples(pool_dir),
                cfg,
                args.seed,
                pool_dir,
                generation=resolve_generation(GenerationConfig()),
                cache_dir=pool_dir / "cache",
            ),
            tokens_generated=drawn["tokens_generated"],
        )
        stats["seconds"] = time.perf_counter() - start
        write_prompts(pool_dir, prompts, [], {"skipped": {}, "merged": {}})
    pool = read_pool(pool_dir, prompts)
    missing = {p.prompt_id for p in pool.pairs} - set(pool.prompts)
    if missing:
        sys.exit(f"{len(missing)} prompts of {pool_dir}'s pairs are not in the prompts used; pass --prompts-dir.")
    if not pool.pairs:
        sys.exit(f"{pool_dir} has no pairs (all samples tied?); raise --prompts or --k.")
    return pool, stats


def naive_per_pair(
    model_name: str, pool: CandidatePool, pairs: list[Pair], train_cfg: TrainConfig, dim: int, seed: int
) -> dict[str, Any]:
    """LESS done literally: per pair, reference and policy passes, DPO loss, backward, projection."""
    model, tokenizer = load_lora_model(model_name, train_cfg, seed)
    grads = LoraGradients(model, include_a=True)  # LESS projects every LoRA matrix
    projection = make_projection("countsketch", grads.dim, dim, seed)

    def tokenized(rid: str, prompt: Prompt):
        return tokenize_response(tokenizer, rid, prompt.messages, pool.responses[rid].text, train_cfg.max_length)

    start = time.perf_counter()
    for pair in pairs:
        batch = [
            tokenized(pair.chosen_id, pool.prompts[pair.prompt_id]),
            tokenized(pair.rejected_id, pool.prompts[pair.prompt_id]),
        ]
        with torch.no_grad(), model.disable_adapter():
            ref = response_logps(model, batch)
        policy = response_logps(model, batch)
        margin = (policy[0] - ref[0]) - (policy[1] - ref[1])
        loss = -F.logsigmoid(train_cfg.beta * margin)
        flat = torch.cat([g.flatten() for g in torch.autograd.grad(loss, grads.parameters)])
        projection(flat[None].cpu())
    seconds = time.perf_counter() - start
    return {"n_pairs": len(pairs), "seconds": seconds, "seconds_per_pair": seconds / len(pairs)}


def run(args: argparse.Namespace) -> dict[str, Any]:
    pool, pool_stats = load_or_build_pool(args)
    pairs = list(pool.pairs)
    train_cfg = resolve_train(TrainConfig(), args.model)
    rng = np.random.default_rng(args.seed)

    features = compute_gradient_features(
        args.model,
        pool.prompts,
        pool.responses,
        pairs,
        train_cfg,
        FeaturesConfig(dim=args.dim),
        args.seed,
        args.work_dir / "features",
    )
    budget = min(args.budget, len(pairs))
    selected = [pairs[i] for i in rng.choice(len(pairs), size=budget, replace=False)]
    training = train_dpo(
        args.model,
        preference_rows(selected, pool.prompts, pool.responses),
        train_cfg,
        args.seed,
        args.work_dir / "train",
    )
    naive = naive_per_pair(args.model, pool, pairs[: args.naive_pairs], train_cfg, args.dim, args.seed)

    compute_seconds = features["seconds_gradients"] + features["seconds_projection"]
    per_pair = {
        "features_total": features["seconds_per_pair"],
        "features_compute": compute_seconds / len(pairs),
        "training": training["seconds_per_pair"],
        "naive_per_pair": naive["seconds_per_pair"],
    }
    return {
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        },
        "versions": versions(),
        "pool": pool_stats | {"n_pairs": len(pairs), "n_responses_in_pairs": features["n_responses"]},
        "features": features,
        "training": training,
        "naive": naive,
        "seconds_per_pair": per_pair,
        "ratio_features_to_training": per_pair["features_total"] / per_pair["training"],
        "speedup_over_naive": per_pair["naive_per_pair"] / per_pair["features_total"],
        "target_ratio": 0.5,
    }


def table(result: dict[str, Any]) -> str:
    s = result["seconds_per_pair"]
    f = result["features"]
    rows = [
        ("pool", f"{result['pool']['n_pairs']} candidate pairs, {f['n_responses']} responses, {f['tokens']} tokens"),
        (
            "features, per candidate pair",
            f"{s['features_total']:.3f} s (gradients + projection {s['features_compute']:.3f} s)",
        ),
        ("DPO training, per selected pair", f"{s['training']:.3f} s ({result['training']['n_pairs']} pairs, 1 epoch)"),
        ("naive LESS-style, per pair", f"{s['naive_per_pair']:.3f} s ({result['naive']['n_pairs']} pairs)"),
        (
            "ratio features / training",
            f"{result['ratio_features_to_training']:.3f} (target <= {result['target_ratio']})",
        ),
        ("speed-up over naive", f"{result['speedup_over_naive']:.1f}x"),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    result = run(args)
    write_json(args.out, result)
    print(table(result))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
