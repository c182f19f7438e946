"""Which LoRA initialisation should gradient features use? A measurement, not a guess.

Reference geometry: the exact DPO-gradient direction of each pair over the FULL weights of
the trained modules (q/k/v/o: 26.5M parameters on SmolLM2-135M), g_c - g_r at the start
policy. For the same pairs we compute the features BPO can afford:

- zero_b: LoRA B-gradients at B = 0 (A random, as the trainer initialises it),
- warmup: LoRA A- and B-gradients after a brief DPO warm-up on other pool pairs (LESS-style),

and report how well each preserves the reference's pairwise cosines (Pearson r over all pair
pairs, and mean absolute cosine error), before and after the CountSketch projection.

    python benchmarks/lora_init.py --pool-dir runs/cache/pool/<hash> --prompts-dir runs/cache/prompts/<hash>
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from harness.core.io import write_json
from harness.models.choices import resolve_train
from harness.models.config import EMBEDDED_MODEL
from harness.models.resolve import load_model
from harness.stages.candidates import read_pool
from harness.stages.prompts import read_prompts
from harness.training.config import FeaturesConfig, TrainConfig
from harness.training.dpo import preference_rows, train_dpo
from harness.training.gradient_features import (
    LoraGradients,
    load_lora_model,
    make_projection,
    response_logps,
    tokenize_response,
)


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def cosines(x: np.ndarray) -> np.ndarray:
    c = unit(x) @ unit(x).T
    return c[np.triu_indices(len(c), 1)]


def agreement(approx: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    a, r = cosines(approx), cosines(reference)
    return {"pearson_r": float(np.corrcoef(a, r)[0, 1]), "mean_abs_cos_error": float(np.abs(a - r).mean())}


def full_weight_gradients(model_name: str, items, targets: list[str]) -> np.ndarray:
    loaded = load_model(model_name)
    model = loaded.model
    params = [p for n, p in model.named_parameters() if any(f"{t}.weight" in n for t in targets)]
    for p in model.parameters():
        p.requires_grad_(p in set(params))
    rows = []
    for item in items:
        model.zero_grad(set_to_none=True)
        response_logps(model, [item]).sum().backward()
        rows.append(torch.cat([p.grad.flatten() for p in params]).float().numpy().copy())
    return np.stack(rows)


def lora_gradients(model, items, include_a: bool) -> np.ndarray:
    grads = LoraGradients(model, include_a=include_a)
    return np.concatenate([grads([item]).numpy() for item in items])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=EMBEDDED_MODEL)
    parser.add_argument("--pool-dir", type=Path, required=True)
    parser.add_argument("--prompts-dir", type=Path, required=True)
    parser.add_argument("--pairs", type=int, default=16, help="pairs compared (their responses get full gradients)")
    parser.add_argument("--warmup-pairs", type=int, default=16)
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks/lora_init.json"))
    args = parser.parse_args()

    prompts, _ = read_prompts(args.prompts_dir)
    pool = read_pool(args.pool_dir, prompts)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(pool.pairs))
    pairs = [pool.pairs[i] for i in order[: args.pairs]]
    warm = [pool.pairs[i] for i in order[args.pairs : args.pairs + args.warmup_pairs]]
    train_cfg = resolve_train(TrainConfig(), args.model)
    _, tokenizer = load_lora_model(args.model, train_cfg, seed=0)
    response_ids = sorted({r for p in pairs for r in (p.chosen_id, p.rejected_id)})
    items = [
        tokenize_response(
            tokenizer,
            r,
            pool.prompts[pool.responses[r].prompt_id].messages,
            pool.responses[r].text,
            train_cfg.max_length,
        )
        for r in response_ids
    ]
    row = {r: i for i, r in enumerate(response_ids)}

    def pair_matrix(per_response: np.ndarray) -> np.ndarray:
        return np.stack([per_response[row[p.chosen_id]] - per_response[row[p.rejected_id]] for p in pairs])

    timings, result = {}, {"pairs": len(pairs), "responses": len(items)}
    start = time.perf_counter()
    full = pair_matrix(full_weight_gradients(args.model, items, train_cfg.target_modules))
    timings["full"] = time.perf_counter() - start
    result["full_dim"] = int(full.shape[1])

    start = time.perf_counter()
    zero_model, _ = load_lora_model(args.model, train_cfg, seed=0)
    zero_b = pair_matrix(lora_gradients(zero_model, items, include_a=False))
    timings["zero_b"] = time.perf_counter() - start

    start = time.perf_counter()
    work = args.out.parent / "lora_init_warmup"
    train_dpo(args.model, preference_rows(warm, pool.prompts, pool.responses), train_cfg, 0, work)
    warm_model, _ = load_lora_model(args.model, train_cfg, seed=0, adapter=work / "adapter")
    warmup = pair_matrix(lora_gradients(warm_model, items, include_a=True))
    timings["warmup"] = time.perf_counter() - start

    dim = FeaturesConfig().dim
    for name, feats in (("zero_b", zero_b), ("warmup", warmup)):
        sketch = make_projection("countsketch", feats.shape[1], dim, 0)(torch.from_numpy(feats)).numpy()
        result[name] = {
            "dim": int(feats.shape[1]),
            "vs_full": agreement(feats, full),
            f"projected_{dim}_vs_full": agreement(sketch, full),
            "seconds": timings[name],
        }
    result["seconds_full"] = timings["full"]
    write_json(args.out, result)
    for name in ("zero_b", "warmup"):
        r = result[name]
        print(
            f"{name:7s} dim={r['dim']:>8d}  vs full: r={r['vs_full']['pearson_r']:.3f} err={r['vs_full']['mean_abs_cos_error']:.3f}  "
            f"projected: r={r[f'projected_{dim}_vs_full']['pearson_r']:.3f}  ({r['seconds']:.0f} s)"
        )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
