"""Throughput on this machine: today's paths and the defaults, measured in one run, with what they change.

Four measurements, each a ratio against the path the harness used before issue 17, run here
and now (never a number from elsewhere):

- **sampling** at the pool's shape (held-out built-in prompts x `pool.k` samples, `pool`'s
  max_new_tokens / temperature / top-p): today `model.generate` in fp32 at the old batch size
  (32) against `harness.generation.generate` (harness/decoding.py's loop) in the resolved
  dtype at `pool.batch_size`. Fidelity: the mean per-token log-prob difference of today's
  texts under both dtypes, and the verifiable judge's score distribution of both pools.
- **greedy** at the evaluation's shape (`evaluate.n_prompts` prompts, its max_new_tokens, old
  batch 24 against `evaluate.batch_size`). Fidelity: identical outputs and strict accuracy.
- **DPO** on `--pairs` pool pairs for `--epochs`: today fp32 with TRL scoring every position,
  against `train.precision` (bf16 autocast where the CPU has native bf16) scoring completion
  positions only; fp32 with completion positions only is shown in between. Fidelity: first
  loss (log 2 = 0.6931), the largest loss difference over the curve, and the cosine of each
  path's weight update (scale * B @ A over every adapted matrix) to the fp32 path's.
- **gradient features** of the same pairs' responses, fp32 against `train.precision`.
  Fidelity: per-pair cosine to the fp32 features, and benchmarks/lora_init.py's measure (Pearson
  r of pairwise cosines against exact full-weight DPO gradients) for both.

Each row prints seconds, units per second and achieved GFLOPS from the matmul floor
(generation 2·P per token; DPO 6·P per token: policy forward and backward, reference forward;
features 4·P), next to this machine's measured matmul peak, so the distance to it shows.

    python3 benchmarks/throughput.py [--prompts 16] [--pairs 12] [--epochs 2] [--only sampling,greedy,dpo,features]
                                     [--pool-dir runs/cache/pool/<hash>] [--out runs/benchmarks/throughput.json]

DPO and features read pairs from a pool stage folder (default: the newest under runs/cache/pool,
so run `bench run` once first).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness import trainer  # noqa: E402
from harness.config import EMBEDDED_MODEL, BenchError, load_config  # noqa: E402
from harness.features import compute_gradient_features, load_gradient_features, tokenize_response  # noqa: E402
from harness.generation import Generation, _eos_ids, generate, length_sorted_batches, to_generation  # noqa: E402
from harness.heldout_prompts import eval_prompts  # noqa: E402
from harness.io import read_json, read_jsonl, write_json  # noqa: E402
from harness.judges import get_judge  # noqa: E402
from harness.models import cpu_bf16_flags, load_model, resolve_dtype, resolve_target_modules  # noqa: E402
from harness.pool import read_pool  # noqa: E402
from harness.stages.prompts import read_prompts  # noqa: E402

TODAY_POOL_BATCH, TODAY_EVAL_BATCH = 32, 24
"""pool.batch_size and evaluate.batch_size before issue 17."""
TARGETS = {"sampling": 4.0, "greedy": 3.0, "dpo": 2.0, "features": 2.0}


def generate_today(loaded, conversations, *, max_new_tokens: int, batch_size: int, do_sample: bool,
                   temperature: float = 1.0, top_p: float = 1.0, seed: int = 0) -> list[Generation]:
    """The transformers path before issue 17, kept here as the baseline: `model.generate`, batches sorted by length."""
    tokenizer, model = loaded.tokenizer, loaded.model
    results: list[Generation | None] = [None] * len(conversations)
    eos_ids = set(_eos_ids(model, tokenizer))
    sampling = dict(do_sample=True, temperature=temperature, top_p=top_p) if do_sample else dict(do_sample=False)
    for batch_index, idx, enc in length_sorted_batches(tokenizer, conversations, batch_size):
        torch.manual_seed(seed * 100_003 + batch_index)
        with torch.inference_mode():
            out = model.generate(**enc, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id, top_k=None, **sampling)
        for i, tokens in zip(idx, out[:, enc["input_ids"].shape[1] :].tolist()):
            results[i] = to_generation(tokens, eos_ids, tokenizer)
    return [r for r in results if r is not None]


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def row(section: str, path: str, units: float, unit: str, seconds: float, flops: float, **extra: Any) -> dict[str, Any]:
    r = {"section": section, "path": path, unit: units, "seconds": round(seconds, 2), f"{unit}_per_s": round(units / seconds, 2),
         "gflops": round(flops / seconds / 1e9, 1), **extra}
    print(f"  {path:<58} {units:>7.0f} {unit:<9} {seconds:>7.1f} s {units / seconds:>8.2f} {unit}/s {r['gflops']:>7.1f} GFLOPS", flush=True)
    return r


def matmul_peak() -> dict[str, float]:
    """GFLOPS of a 2048 x 2048 matmul loop in fp32 and bf16: what this machine's two threads can reach."""
    peak = {}
    for name, dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16)):
        a, b = torch.randn(2048, 2048, dtype=dtype), torch.randn(2048, 2048, dtype=dtype)
        a @ b
        start = time.perf_counter()
        for _ in range(10):
            a @ b
        peak[name] = round(10 * 2 * 2048**3 / (time.perf_counter() - start) / 1e9, 1)
    return peak


@torch.inference_mode()
def response_token_logps(model, tokenizer, messages, text: str) -> np.ndarray:
    """Per-token log-probs of `text` as the assistant's reply (teacher forced, in the model's dtype, read as fp32)."""
    item = tokenize_response(tokenizer, "r", messages, text, 4096)
    ids = torch.tensor([item.input_ids])
    logits = model(input_ids=ids).logits[0, item.start - 1 : -1].float()
    return torch.log_softmax(logits, -1).gather(-1, ids[0, item.start :, None]).squeeze(-1).numpy()


def judge_scores(prompts, gens: list[Generation], k: int) -> np.ndarray:
    judge = get_judge("verifiable")
    return np.array([judge.score(prompts[i // k], g.text).value for i, g in enumerate(gens)], dtype=float)


def sampling_section(args, n_params: int, new_dtype: str) -> list[dict]:
    pool = args.config.pool
    prompts = eval_prompts(args.config.evaluate, n=args.prompts)
    conversations = [p.messages for p in prompts for _ in range(pool.k)]
    settings = dict(max_new_tokens=pool.max_new_tokens, do_sample=True, temperature=pool.temperature, top_p=pool.top_p, seed=0)
    fp32 = load_model(args.model, dtype="float32")
    print(f"sampling: {len(prompts)} prompts x {pool.k}, {pool.max_new_tokens} new tokens, T {pool.temperature}, top-p {pool.top_p}")
    today, s_today = timed(lambda: generate_today(fp32, conversations, batch_size=TODAY_POOL_BATCH, **settings))
    new_model = fp32 if new_dtype == "float32" else load_model(args.model, dtype=new_dtype)
    new, s_new = timed(lambda: generate(new_model, conversations, batch_size=pool.batch_size, desc="sampling (new)", **settings))
    rows = []
    for label, gens, seconds in ((f"today: model.generate fp32, batch {TODAY_POOL_BATCH}", today, s_today),
                                 (f"new: decode {new_dtype}, batch {pool.batch_size}", new, s_new)):
        tokens = sum(g.n_tokens for g in gens)
        rows.append(row("sampling", label, tokens, "tokens", seconds, 2 * n_params * tokens,
                        truncated_share=round(float(np.mean([g.truncated for g in gens])), 3)))
    # fidelity 1: today's texts scored under both dtypes
    diffs = []
    for i, gen in enumerate(today[: args.logprob_texts]):
        messages = prompts[i // pool.k].messages
        a = response_token_logps(fp32.model, fp32.tokenizer, messages, gen.text)
        b = response_token_logps(new_model.model, new_model.tokenizer, messages, gen.text)
        diffs.append(b - a)
    d = np.concatenate(diffs) if diffs else np.zeros(0)
    rows[-1]["logprob_vs_fp32"] = {"texts": len(diffs), "tokens": int(d.size), "mean_abs_diff": round(float(np.abs(d).mean()), 4),
                                   "mean_diff": round(float(d.mean()), 4), "p99_abs_diff": round(float(np.quantile(np.abs(d), 0.99)), 4)}
    # fidelity 2: the judge's score distribution of both pools, and the per-prompt mean difference
    s_today_scores, s_new_scores = judge_scores(prompts, today, pool.k), judge_scores(prompts, new, pool.k)
    per_prompt = s_new_scores.reshape(-1, pool.k).mean(1) - s_today_scores.reshape(-1, pool.k).mean(1)
    rng = np.random.default_rng(0)
    boot = rng.choice(per_prompt, size=(4000, per_prompt.size)).mean(1)
    values = sorted(set(s_today_scores) | set(s_new_scores))
    rows[-1]["judge_vs_today"] = {
        "mean_today": round(float(s_today_scores.mean()), 3), "mean_new": round(float(s_new_scores.mean()), 3),
        "diff": round(float(per_prompt.mean()), 3), "ci95": [round(float(q), 3) for q in np.quantile(boot, [0.025, 0.975])],
        "histogram": {str(v): [int((s_today_scores == v).sum()), int((s_new_scores == v).sum())] for v in values},
    }
    lp, jd = rows[-1]["logprob_vs_fp32"], rows[-1]["judge_vs_today"]
    print(f"  fidelity: per-token log-prob {new_dtype} - fp32 on today's texts: mean |diff| {lp['mean_abs_diff']}, mean {lp['mean_diff']} "
          f"({lp['tokens']} tokens); judge mean today {jd['mean_today']} vs new {jd['mean_new']}, diff {jd['diff']} {jd['ci95']} "
          f"(per-prompt bootstrap); histogram value: [today, new] {jd['histogram']}")
    return rows


def greedy_section(args, n_params: int, new_dtype: str) -> list[dict]:
    ev = args.config.evaluate
    prompts = eval_prompts(ev)
    conversations = [p.messages for p in prompts]
    print(f"greedy: {len(prompts)} prompts, {ev.max_new_tokens} new tokens")
    fp32 = load_model(args.model, dtype="float32")
    today, s_today = timed(lambda: generate_today(fp32, conversations, max_new_tokens=ev.max_new_tokens, batch_size=TODAY_EVAL_BATCH, do_sample=False))
    engine_fp32, s_engine = timed(lambda: generate(fp32, conversations, max_new_tokens=ev.max_new_tokens, batch_size=ev.batch_size,
                                                   do_sample=False, desc="greedy (decode fp32)"))
    new_model = fp32 if new_dtype == "float32" else load_model(args.model, dtype=new_dtype)
    new, s_new = timed(lambda: generate(new_model, conversations, max_new_tokens=ev.max_new_tokens, batch_size=ev.batch_size,
                                        do_sample=False, desc="greedy (new)"))
    judge = get_judge("verifiable")
    rows = []
    for label, gens, seconds in ((f"today: model.generate fp32, batch {TODAY_EVAL_BATCH}", today, s_today),
                                 (f"decode fp32, batch {ev.batch_size}", engine_fp32, s_engine),
                                 (f"new: decode {new_dtype}, batch {ev.batch_size}", new, s_new)):
        tokens = sum(g.n_tokens for g in gens)
        strict = float(np.mean([judge.score(p, g.text).details["strict"] for p, g in zip(prompts, gens)]))
        rows.append(row("greedy", label, tokens, "tokens", seconds, 2 * n_params * tokens, strict_accuracy=round(strict, 3)))
    for r, gens in zip(rows[1:], (engine_fp32, new)):
        r["identical_to_today"] = round(float(np.mean([a.text == b.text for a, b in zip(today, gens)])), 3)
    print(f"  fidelity: outputs identical to today's: decode fp32 {rows[1]['identical_to_today']:.0%}, {new_dtype} "
          f"{rows[2]['identical_to_today']:.0%}; strict accuracy today {rows[0]['strict_accuracy']}, decode fp32 "
          f"{rows[1]['strict_accuracy']}, {new_dtype} {rows[2]['strict_accuracy']} (n = {len(prompts)})")
    return rows


def find_pool(args) -> tuple[Any, Path]:
    pool_dir = args.pool_dir
    if pool_dir is None:
        found = sorted(Path("runs/cache/pool").glob("*/pairs.jsonl"), key=lambda p: p.stat().st_mtime)
        if not found:
            sys.exit("throughput: DPO and features need a pool; run `bench run` once (or pass --pool-dir runs/cache/pool/<hash>).")
        pool_dir = found[-1].parent
    prompts_dir = None
    if (pool_dir / "stage.json").is_file() and (pool_dir / "pairs.jsonl").is_file():
        prompts_dir = pool_dir.parent.parent / "prompts" / read_json(pool_dir / "stage.json")["inputs"]["prompts"]
    if prompts_dir is None or not (prompts_dir / "prompts.jsonl").is_file():
        sys.exit(f"throughput: {pool_dir} is not a pool stage folder of a stage cache (it needs stage.json and pairs.jsonl, "
                 "and its prompts stage next to it under ../../prompts/); pass --pool-dir runs/cache/pool/<hash>.")
    prompts, _ = read_prompts(prompts_dir)
    return read_pool(pool_dir, prompts), pool_dir


def chosen_pairs(pool, n: int):
    order = np.random.default_rng(0).permutation(len(pool.pairs))
    return [pool.pairs[i] for i in order[:n]]


def pair_tokens(tokenizer, pool, pairs) -> int:
    return sum(len(tokenize_response(tokenizer, r, pool.prompts[pool.responses[r].prompt_id].messages, pool.responses[r].text, 512).input_ids)
               for p in pairs for r in (p.chosen_id, p.rejected_id))


@contextlib.contextmanager
def every_position_scored():
    """Today's DPO path: TRL's fused LM head scores every position on CPU (trainer._completion_positions_only undone)."""
    original = trainer._completion_positions_only
    trainer._completion_positions_only = contextlib.nullcontext
    try:
        yield
    finally:
        trainer._completion_positions_only = original


def weight_update(adapter: Path) -> np.ndarray:
    """scale * B @ A of every adapted matrix, concatenated: the adapter's change to the weights."""
    from safetensors.torch import load_file

    config = json.loads((adapter / "adapter_config.json").read_text())
    scale = config["lora_alpha"] / config["r"]
    tensors = load_file(adapter / "adapter_model.safetensors")
    parts = []
    for name in sorted(k for k in tensors if "lora_A" in k):
        a, b = tensors[name].float(), tensors[name.replace("lora_A", "lora_B")].float()
        parts.append((scale * b @ a).flatten())
    return torch.cat(parts).numpy()


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-30))


def dpo_section(args, n_params: int, pool, new_precision: str, work: Path) -> list[dict]:
    pairs = chosen_pairs(pool, args.pairs)
    rows_in = trainer.preference_rows(pairs, pool.prompts, pool.responses)
    base = args.config.train.model_copy(update={"epochs": args.epochs, "target_modules": resolve_target_modules(args.model, args.config.train.target_modules)})
    tokens = pair_tokens(load_model(args.model).tokenizer, pool, pairs) * args.epochs
    print(f"DPO: {len(pairs)} pairs x {args.epochs} epochs, batch {base.batch_size}, {tokens} tokens")
    paths = [("today: fp32, every position scored", "float32", True), ("fp32, completion positions only", "float32", False),
             (f"new: {new_precision}, completion positions only", new_precision, False)]
    results = []
    for label, precision, everything in paths:
        out = work / f"dpo-{precision}-{'all' if everything else 'completion'}"
        with every_position_scored() if everything else contextlib.nullcontext():
            result = trainer.train_here(args.model, rows_in, base.model_copy(update={"precision": precision}), 0, out)
        losses = [r["loss"] for r in read_jsonl(out / "log.jsonl") if "loss" in r]
        results.append((label, result["seconds"], losses, weight_update(out / "adapter")))
    rows = []
    ref_losses, ref_update = results[0][2], results[0][3]
    for label, seconds, losses, update in results:
        rows.append(row("dpo", label, len(pairs) * args.epochs, "pairs", seconds, 6 * n_params * tokens,
                        first_loss=round(losses[0], 4), losses=[round(x, 4) for x in losses],
                        max_loss_diff_vs_today=round(max(abs(a - b) for a, b in zip(losses, ref_losses)), 4),
                        update_cosine_vs_today=round(cosine(update, ref_update), 4)))
    for r in rows[1:]:
        print(f"  fidelity ({r['path']}): first loss {r['first_loss']} (log 2 = {math.log(2):.4f}), max |loss diff| vs today "
              f"{r['max_loss_diff_vs_today']} over {len(r['losses'])} steps, weight-update cosine to today's {r['update_cosine_vs_today']}")
    return rows


def features_section(args, n_params: int, pool, new_precision: str, work: Path) -> list[dict]:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from lora_init import agreement, full_weight_gradients

    pairs = chosen_pairs(pool, args.pairs)
    base = args.config.train.model_copy(update={"target_modules": resolve_target_modules(args.model, args.config.train.target_modules)})
    tokenizer = load_model(args.model).tokenizer
    response_ids = list(dict.fromkeys(r for p in pairs for r in (p.chosen_id, p.rejected_id)))
    items = [tokenize_response(tokenizer, r, pool.prompts[pool.responses[r].prompt_id].messages, pool.responses[r].text, base.max_length)
             for r in response_ids]
    tokens = sum(len(i.input_ids) for i in items)
    print(f"features: {len(response_ids)} responses of {len(pairs)} pairs, {tokens} tokens")
    feats, rows = {}, []
    for label, precision in (("today: fp32", "float32"), (f"new: {new_precision}", new_precision)):
        out = work / f"features-{precision}"
        stats = compute_gradient_features(args.model, pool.prompts, pool.responses, pairs,
                                          base.model_copy(update={"precision": precision}), args.config.features, 0, out)
        feats[precision] = load_gradient_features(out).pair_features
        rows.append(row("features", label, len(response_ids), "responses", stats["seconds_gradients"], 4 * n_params * tokens))
    row_of = {r: i for i, r in enumerate(response_ids)}
    full = full_weight_gradients(args.model, items, base.target_modules)
    full_pairs = np.stack([full[row_of[p.chosen_id]] - full[row_of[p.rejected_id]] for p in pairs])
    today_f, new_f = feats["float32"], feats[new_precision]
    per_pair = (today_f * new_f).sum(1)
    for r, f in zip(rows, (today_f, new_f)):
        r["vs_full_weight"] = agreement(f, full_pairs)
    rows[-1]["pair_cosine_vs_today"] = {"mean": round(float(per_pair.mean()), 4), "min": round(float(per_pair.min()), 4)}
    print(f"  fidelity: pair-feature cosine to fp32's mean {per_pair.mean():.4f} (min {per_pair.min():.4f}); lora_init's r vs exact "
          f"full-weight gradients: fp32 {rows[0]['vs_full_weight']['pearson_r']:.3f}, new {rows[1]['vs_full_weight']['pearson_r']:.3f}")
    return rows


def at_least(low: int):
    def parse(text: str) -> int:
        value = int(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value
    return parse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="experiments/testbed-v1.yaml", help="the experiment whose pool / evaluate / train shapes are measured (default: testbed v1, the shapes of the README table of 2026-12-02)")
    parser.add_argument("--model", default=EMBEDDED_MODEL)
    parser.add_argument("--prompts", type=at_least(1), default=16, help="sampling: held-out prompts, each sampled pool.k times")
    parser.add_argument("--logprob-texts", type=at_least(1), default=40, help="sampling fidelity: today's texts scored under both dtypes")
    parser.add_argument("--pairs", type=at_least(2), default=12, help="pool pairs DPO and features run on")
    parser.add_argument("--epochs", type=at_least(1), default=2)
    parser.add_argument("--only", default="sampling,greedy,dpo,features")
    parser.add_argument("--pool-dir", type=Path)
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks/throughput.json"))
    args = parser.parse_args()
    try:
        args.config = load_config(args.config)
    except BenchError as exc:
        parser.error(str(exc))
    sections = args.only.split(",")
    flags = cpu_bf16_flags()
    gen_dtype, train_precision = resolve_dtype(args.config.generation.dtype), resolve_dtype(args.config.train.precision)
    peak = matmul_peak()
    print(f"threads {torch.get_num_threads()}; CPU bf16 flags: {', '.join(flags) or 'none'}; generation dtype {gen_dtype}, "
          f"train precision {train_precision}; 2048^3 matmul peak: fp32 {peak['float32']} GFLOPS, bf16 {peak['bfloat16']} GFLOPS")
    needs_pool = "dpo" in sections or "features" in sections
    pool, pool_dir = find_pool(args) if needs_pool else (None, None)  # before any measuring: a missing pool fails in a second
    n_params = sum(p.numel() for p in load_model(args.model).model.parameters())
    work = args.out.parent / "throughput-work"
    rows: list[dict] = []
    if "sampling" in sections:
        rows += sampling_section(args, n_params, gen_dtype)
    if "greedy" in sections:
        rows += greedy_section(args, n_params, gen_dtype)
    if needs_pool:
        print(f"pairs from {pool_dir}")
        if "dpo" in sections:
            rows += dpo_section(args, n_params, pool, train_precision, work)
        if "features" in sections:
            rows += features_section(args, n_params, pool, train_precision, work)
    print("\nratios to today's path (same run):")
    summary = {}
    for section in TARGETS:
        mine = [r for r in rows if r["section"] == section]
        if not mine:
            continue
        rate = next(k for k in mine[0] if k.endswith("_per_s"))
        ratio = mine[-1][rate] / mine[0][rate]
        summary[section] = round(ratio, 2)
        print(f"  {section:<9} {ratio:5.2f}x  (target >= {TARGETS[section]:.0f}x: {'met' if ratio >= TARGETS[section] else 'NOT met'})")
    write_json(args.out, {"rows": rows, "ratios": summary, "targets": TARGETS, "matmul_peak_gflops": peak, "cpu_bf16_flags": flags,
                          "generation_dtype": gen_dtype, "train_precision": train_precision, "threads": torch.get_num_threads()})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
