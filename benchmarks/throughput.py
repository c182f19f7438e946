"""Throughput on this machine: today's paths against the defaults, measured in one run, with what they change.

"Today" is the harness as of e79088b (before issue 26), re-created here by switching off what issue 26
added, on the shapes of the breadth-depth curve (`--config`, default experiments/default.yaml; its
pool, 128 pairs, 495 held-out prompts):

- **greedy** decoding of the held-out prompts by a tuned model (the adapter the DPO section trains):
  today the decoder ran one length-sorted batch of `evaluate.batch_size` 48 at a time to its end,
  reordered every bf16 weight at every call, handed the LM head a strided slice at every prefill and
  took an fp32 argmax; now finished rows are replaced by waiting prompts (continuous batching), the
  weights are packed once, the head gets contiguous rows and `max` reads bf16 logits. A sweep of
  batch sizes shows where the default comes from. Fidelity: outputs identical to fp32 greedy
  decoding, and strict accuracy of each.
- **sampling** at the pool's shape (`--prompts` held-out prompts x `pool.k`, pool's settings):
  batch-at-a-time at today's `pool.batch_size` 64 against continuous batching at the configured one. Fidelity: the verifiable
  judge's score distribution of both.
- **DPO** on `--pairs` pool pairs: today SDPA attention, a reference forward pass inside every step and
  randomly ordered batches; now eager attention on a CPU (`train.attention`), reference log-probs
  cached per response (`train.reference_logps`, timed cold, with an empty store, and warm, as the
  shuffled-label control or another seed finds it) and length-grouped batches (`train.batching`). Fidelity: the first loss (log 2 = 0.6931), the loss curve
  and the weight update against fp32 with the same batches.
- **gradient features** of the same pairs' responses, median of `--repeats` runs each: today SDPA
  attention at batch 8 with the strided LM-head input; now eager attention at batch 4 with a contiguous
  one. Fidelity: per-pair cosine to fp32 features, and benchmarks/lora_init.py's agreement (Pearson r
  of pairwise cosines against exact full-weight DPO gradients) on the first 12 pairs. Separately, how
  many responses the stage no longer computes (those of held-out pairs no strategy may select).

Each row prints seconds, units per second and achieved GFLOPS from the matmul floor (generation 2·P
per token; DPO 4·P per token for the policy's forward and backward plus 2·P per token of every reference
forward; features 4·P), next to this machine's measured 2048^3 matmul peak. Timings on a shared 2-core
machine vary by 10-40% between runs: ratios near a target are not settled by one run.

    python3 benchmarks/throughput.py [--config experiments/default.yaml] [--pairs 128] [--eval-prompts 495]
        [--greedy-batches 96,192,256] [--prompts 16] [--repeats 3] [--only greedy,sampling,dpo,features]
        [--pool-dir runs/cache/pool/<hash>] [--out runs/benchmarks/throughput.json]

DPO and features read pairs from a pool stage folder (default: the newest under runs/cache/pool, so run
`bench run` once first); greedy needs the DPO section's adapter (or `--adapter`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.core.errors import BenchError
from harness.core.io import read_json, read_jsonl, write_json  # noqa: E402
from harness.data.heldout import HeldoutSet  # noqa: E402
from harness.evaluation.preference import reserve_heldout  # noqa: E402
from harness.experiment import load_config  # noqa: E402
from harness.generation import engine as decoding  # noqa: E402
from harness.generation.engine import bf16_packing_supported  # noqa: E402
from harness.generation.generate import _eos_ids, generate, length_sorted, to_generation  # noqa: E402
from harness.judges import get_judge  # noqa: E402
from harness.models.choices import resolve_train  # noqa: E402
from harness.models.config import EMBEDDED_MODEL  # noqa: E402
from harness.models.resolve import cpu_bf16_flags, load_model, resolve_dtype  # noqa: E402
from harness.provenance import cpu_model  # noqa: E402
from harness.stages.candidates import read_pool  # noqa: E402
from harness.stages.prompts import read_prompts  # noqa: E402
from harness.training import dpo as trainer  # noqa: E402
from harness.training.gradient_features import compute_gradient_features, load_gradient_features, tokenize_response  # noqa: E402
from harness.training.reference_logps import with_reference_logps  # noqa: E402

TODAY_EVAL_BATCH, TODAY_POOL_BATCH = 48, 64
"""evaluate.batch_size and pool.batch_size before issue 26."""
TARGETS = {"greedy": 2.5, "dpo": 1.5, "features": 2.0}


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


PEAK: dict[str, float] = {}
"""This machine's measured matmul peak per dtype (`matmul_peak`), set once in main: what a path's GFLOPS are read against."""


def row(
    section: str, path: str, units: float, unit: str, seconds: float, flops: float, dtype: str, **extra: Any
) -> dict[str, Any]:
    """One measured path: its rate and achieved GFLOPS, as a share of the peak of the dtype the path computed in."""
    gflops = flops / seconds / 1e9
    share = gflops / PEAK[dtype] if PEAK.get(dtype) else None
    r = {
        "section": section,
        "path": path,
        unit: units,
        "seconds": round(seconds, 2),
        f"{unit}_per_s": round(units / seconds, 3),
        "gflops": round(gflops, 1),
        "dtype": dtype,
        "peak_share": round(share, 3) if share is not None else None,
        **extra,
    }
    against = f" ({share:.0%} of the {dtype} peak)" if share is not None else ""
    print(
        f"  {path:<62} {units:>7.0f} {unit:<9} {seconds:>7.1f} s {units / seconds:>8.2f} {unit}/s {gflops:>7.1f} GFLOPS{against}",
        flush=True,
    )
    return r


def matmul_peak(seconds: float = 2.0) -> dict[str, float]:
    """GFLOPS of a square matmul loop in fp32 and bf16, run for about `seconds` each: what this machine's threads can
    reach. 2048 x 2048 where the dtype has native kernels; 512 where bf16 is emulated (a CPU without AVX512-BF16 or AMX
    takes minutes for one 2048^3 product, and its emulated rate hardly depends on the size)."""
    peak = {}
    for name, dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16)):
        n = 2048 if dtype == torch.float32 or bf16_packing_supported() else 512
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        a @ b
        done, start = 0, time.perf_counter()
        while done == 0 or time.perf_counter() - start < seconds:
            a @ b
            done += 1
        peak[name] = round(done * 2 * n**3 / (time.perf_counter() - start) / 1e9, 1)
    return peak


@contextlib.contextmanager
def todays_decoder(model):
    """The decoder as of e79088b: bf16 weights reordered at every call and the LM head fed a strided slice
    (the contiguous-input hook taken off for the duration)."""
    head = model.get_output_embeddings()
    hooks = dict(head._forward_pre_hooks)
    head._forward_pre_hooks.clear()
    packed = decoding.packed_linears
    decoding.packed_linears = lambda model, rows: contextlib.nullcontext(0)
    try:
        yield
    finally:
        decoding.packed_linears = packed
        head._forward_pre_hooks.update(hooks)


def generate_today(
    loaded,
    conversations,
    *,
    max_new_tokens: int,
    batch_size: int,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_p: float = 1.0,
    seed: int = 0,
):
    """Batch-at-a-time decoding as of e79088b: each length-sorted batch runs until its last row ends, with an
    fp32 argmax and a generator seeded per batch."""
    tokenizer, model = loaded.tokenizer, loaded.model
    eos = set(_eos_ids(model, tokenizer))
    order, prompts = length_sorted(tokenizer, conversations)
    results: list[Any] = [None] * len(conversations)
    with todays_decoder(model):
        for index, start in enumerate(range(0, len(prompts), batch_size)):
            generator = torch.Generator().manual_seed(seed * 100_003 + index)
            pick = (
                (lambda x, g=generator: decoding.sample_top_p(x, temperature, top_p, g))
                if do_sample
                else (lambda x: x.float().argmax(dim=-1))
            )
            chunk = prompts[start : start + batch_size]
            new = decoding.decode(
                model,
                chunk,
                max_new_tokens=max_new_tokens,
                eos_ids=eos,
                pick=pick,
                batch_size=len(chunk),
                pad_id=tokenizer.pad_token_id,
            )
            for i, tokens in zip(order[start : start + batch_size], new):
                results[i] = to_generation(tokens, eos, tokenizer)
    return results


def strict_accuracy(prompts, gens) -> float:
    judge = get_judge("verifiable")
    return round(float(np.mean([all(judge.score(p, g.text).details["strict"]) for p, g in zip(prompts, gens)])), 3)


def greedy_section(args, n_params: int, dtype: str, adapter: Path) -> list[dict]:
    ev = args.config.evaluate
    prompts = HeldoutSet.of(ev, args.config.prompts).prompts(args.eval_prompts)
    conversations = [p.messages for p in prompts]
    settings = dict(max_new_tokens=ev.max_new_tokens, do_sample=False)
    print(
        f"greedy: {len(prompts)} held-out prompts, {ev.max_new_tokens} new tokens, the tuned model of the DPO section ({adapter})"
    )
    model = load_model(args.model, adapter=adapter, dtype=dtype)
    rows, outputs = [], {}
    today, s_today = timed(lambda: generate_today(model, conversations, batch_size=TODAY_EVAL_BATCH, **settings))
    outputs["today"] = today
    rows.append(
        row(
            "greedy",
            f"today: batch-at-a-time {dtype}, batch {TODAY_EVAL_BATCH}",
            sum(g.n_tokens for g in today),
            "tokens",
            s_today,
            2 * n_params * sum(g.n_tokens for g in today),
            dtype,
        )
    )
    for batch in args.greedy_batches:
        new, seconds = timed(
            lambda b=batch: generate(model, conversations, batch_size=b, desc=f"greedy (new, batch {b})", **settings)
        )
        outputs[batch] = new
        label = f"new: continuous {dtype}, batch {batch}" + (" (the default)" if batch == ev.batch_size else "")
        rows.append(
            row(
                "greedy",
                label,
                sum(g.n_tokens for g in new),
                "tokens",
                seconds,
                2 * n_params * sum(g.n_tokens for g in new),
                dtype,
                batch_size=batch,
            )
        )
    fp32 = load_model(args.model, adapter=adapter, dtype="float32")
    reference, s_ref = timed(
        lambda: generate(fp32, conversations, batch_size=ev.batch_size, desc="greedy (fp32)", **settings)
    )
    rows.append(
        row(
            "greedy",
            f"fidelity reference: continuous fp32, batch {ev.batch_size}",
            sum(g.n_tokens for g in reference),
            "tokens",
            s_ref,
            2 * n_params * sum(g.n_tokens for g in reference),
            "float32",
        )
    )
    accuracy_fp32 = strict_accuracy(prompts, reference)
    for r, key in zip(rows, ["today", *args.greedy_batches]):
        r["identical_to_fp32"] = round(float(np.mean([a.text == b.text for a, b in zip(outputs[key], reference)])), 3)
        r["strict_accuracy"] = strict_accuracy(prompts, outputs[key])
        print(
            f"  fidelity ({r['path']}): outputs identical to fp32 greedy {r['identical_to_fp32']:.0%}; strict accuracy {r['strict_accuracy']} "
            f"(fp32: {accuracy_fp32}, n = {len(prompts)})"
        )
    rows[-1]["strict_accuracy"] = accuracy_fp32
    default = next((r for r in rows[1:-1] if r.get("batch_size") == ev.batch_size), rows[-2])
    rows.append({**default, "path": "new (default): " + default["path"].removeprefix("new: "), "section": "greedy"})
    return rows


def sampling_section(args, n_params: int, dtype: str) -> list[dict]:
    pool = args.config.pool
    prompts = HeldoutSet.of(args.config.evaluate, args.config.prompts).prompts(args.prompts)
    conversations = [p.messages for p in prompts for _ in range(pool.k)]
    settings = dict(
        max_new_tokens=pool.max_new_tokens, do_sample=True, temperature=pool.temperature, top_p=pool.top_p, seed=0
    )
    print(
        f"sampling: {len(prompts)} prompts x {pool.k}, {pool.max_new_tokens} new tokens, T {pool.temperature}, top-p {pool.top_p}"
    )
    model = load_model(args.model, dtype=dtype)
    today, s_today = timed(lambda: generate_today(model, conversations, batch_size=TODAY_POOL_BATCH, **settings))
    new, s_new = timed(
        lambda: generate(model, conversations, batch_size=pool.batch_size, desc="sampling (new)", **settings)
    )
    judge = get_judge("verifiable")
    rows = []
    for label, gens, seconds in (
        (f"today: batch-at-a-time {dtype}, batch {TODAY_POOL_BATCH}", today, s_today),
        (f"new: continuous {dtype}, batch {pool.batch_size}", new, s_new),
    ):
        tokens = sum(g.n_tokens for g in gens)
        scores = [judge.score(prompts[i // pool.k], g.text).value for i, g in enumerate(gens)]
        rows.append(
            row(
                "sampling",
                label,
                tokens,
                "tokens",
                seconds,
                2 * n_params * tokens,
                dtype,
                judge_mean=round(float(np.mean(scores)), 3),
                truncated_share=round(float(np.mean([g.truncated for g in gens])), 3),
            )
        )
    print(
        f"  fidelity: the verifiable judge's mean score, today {rows[0]['judge_mean']} vs new {rows[1]['judge_mean']} "
        f"(two draws of the same distribution: which rows decode together changes a seed's samples)"
    )
    return rows


def find_pool(args) -> tuple[Any, Path]:
    pool_dir = args.pool_dir
    if pool_dir is None:
        found = sorted(Path("runs/cache/pool").glob("*/pairs.jsonl"), key=lambda p: p.stat().st_mtime)
        if not found:
            sys.exit(
                "throughput: DPO and features need a pool; run `bench run` once (or pass --pool-dir runs/cache/pool/<hash>)."
            )
        pool_dir = found[-1].parent
    prompts_dir = None
    cache = pool_dir.parent.parent
    if (pool_dir / "stage.json").is_file() and (pool_dir / "pairs.jsonl").is_file():
        samples = (
            cache / "samples" / str(read_json(pool_dir / "stage.json")["inputs"].get("samples"))
        )  # pool <- samples <- prompts
        if (samples / "stage.json").is_file():
            prompts_dir = cache / "prompts" / str(read_json(samples / "stage.json")["inputs"].get("prompts"))
    if prompts_dir is None or not (prompts_dir / "prompts.jsonl").is_file():
        sys.exit(
            f"throughput: {pool_dir} is not a pool stage folder of a stage cache (it needs stage.json and pairs.jsonl, "
            "and its samples and prompts stages next to it under ../../samples/ and ../../prompts/); pass --pool-dir "
            "runs/cache/pool/<hash>."
        )
    prompts, _ = read_prompts(prompts_dir)
    return read_pool(pool_dir, prompts), pool_dir


def chosen_pairs(pool, n: int):
    order = np.random.default_rng(0).permutation(len(pool.pairs))
    return [pool.pairs[i] for i in order[:n]]


def response_tokens(tokenizer, pool, response_ids, max_length: int) -> int:
    return sum(
        len(
            tokenize_response(
                tokenizer, r, pool.prompts[pool.responses[r].prompt_id].messages, pool.responses[r].text, max_length
            ).input_ids
        )
        for r in response_ids
    )


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


def dpo_section(args, n_params: int, pool, precision: str, work: Path) -> tuple[list[dict], Path]:
    """(rows, the new path's adapter: the tuned model the greedy section decodes with)."""
    pairs = chosen_pairs(pool, args.pairs)
    rows_in = trainer.preference_rows(pairs, pool.prompts, pool.responses)
    base = resolve_train(args.config.train, args.model)
    tokenizer = load_model(args.model).tokenizer
    responses = list(dict.fromkeys(r for p in pairs for r in (p.chosen_id, p.rejected_id)))
    tokens_pairs = sum(response_tokens(tokenizer, pool, [p.chosen_id, p.rejected_id], base.max_length) for p in pairs)
    tokens_responses = response_tokens(tokenizer, pool, responses, base.max_length)
    print(
        f"DPO: {len(pairs)} pairs ({len(responses)} distinct responses), batch {base.batch_size}, {tokens_pairs} tokens per epoch"
    )
    store = work / "reference-store"
    shutil.rmtree(store, ignore_errors=True)
    attention = base.attention
    paths = [
        ("today: SDPA, reference forward every step, random batches", precision, "per_step", "random", "sdpa", False),
        (
            f"new, cold: {attention}, reference log-probs computed first, length-grouped",
            precision,
            "cached",
            "length_grouped",
            attention,
            True,
        ),
        (
            f"new, warm: {attention}, reference log-probs from the store, length-grouped",
            precision,
            "cached",
            "length_grouped",
            attention,
            False,
        ),
        (
            f"fidelity reference: fp32, {attention}, reference every step, length-grouped",
            "float32",
            "per_step",
            "length_grouped",
            attention,
            False,
        ),
    ]
    results: list[tuple[Any, ...]] = []
    for label, prec, reference, batching, kernels, cold in paths:
        cfg = base.model_copy(
            update={"precision": prec, "reference_logps": reference, "batching": batching, "attention": kernels}
        )
        out = work / f"dpo-{len(results)}"
        shutil.rmtree(out, ignore_errors=True)
        start = time.perf_counter()
        data = rows_in
        if reference == "cached":
            data, _ = with_reference_logps(rows_in, args.model, "benchmark", cfg, store)
        train = trainer.train_here(args.model, data, cfg, 0, out)
        seconds = time.perf_counter() - start if cold else train["seconds"]
        losses = [r["loss"] for r in read_jsonl(out / "log.jsonl") if "loss" in r]
        flops = (4 if reference == "cached" else 6) * n_params * tokens_pairs * base.epochs + (
            2 * n_params * tokens_responses if cold else 0
        )
        results.append((label, seconds, flops, losses, weight_update(out / "adapter"), out / "adapter", prec))
    rows = []
    fp32_losses, fp32_update = results[-1][3], results[-1][4]
    for label, seconds, flops, losses, update, _, prec in results:
        rows.append(
            row(
                "dpo",
                label,
                len(pairs) * base.epochs,
                "pairs",
                seconds,
                flops,
                prec,
                first_loss=round(losses[0], 4),
                final_loss=round(float(np.mean(losses[-4:])), 4),
                losses=[round(x, 4) for x in losses],
                max_loss_diff_vs_fp32=round(max(abs(a - b) for a, b in zip(losses, fp32_losses)), 4),
                update_cosine_vs_fp32=round(cosine(update, fp32_update), 4),
            )
        )
    for r in rows[1:3]:
        print(
            f"  fidelity ({r['path']}): first loss {r['first_loss']} (log 2 = {math.log(2):.4f}); against fp32 on the same batches: "
            f"max |loss diff| {r['max_loss_diff_vs_fp32']} over {len(r['losses'])} steps, weight-update cosine {r['update_cosine_vs_fp32']}"
        )
    print(
        f"  today's batches are in another order: its loss curve is another curve (first {rows[0]['first_loss']}, "
        f"mean of the last 4 steps {rows[0]['final_loss']} vs new {rows[2]['final_loss']})"
    )
    rows.append({**rows[2], "path": "new (default, warm): " + rows[2]["path"].removeprefix("new, warm: ")})
    return rows, results[2][5]


def features_section(args, n_params: int, pool, precision: str, work: Path) -> list[dict]:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from lora_init import agreement, full_weight_gradients

    pairs = chosen_pairs(pool, args.pairs)
    base = resolve_train(args.config.train, args.model).model_copy(update={"precision": precision})
    tokenizer = load_model(args.model).tokenizer
    responses = list(dict.fromkeys(r for p in pairs for r in (p.chosen_id, p.rejected_id)))
    tokens = response_tokens(tokenizer, pool, responses, base.max_length)
    print(
        f"features: {len(responses)} responses of {len(pairs)} pairs, {tokens} tokens, median of {args.repeats} runs per path"
    )
    today_cfg, sdpa = (
        args.config.features.model_copy(update={"batch_size": 8}),
        base.model_copy(update={"attention": "sdpa"}),
    )
    paths = [
        ("today: SDPA, batch 8, strided LM-head input", sdpa, today_cfg, True),
        (
            f"new: {base.attention} attention, batch {args.config.features.batch_size}",
            base,
            args.config.features,
            False,
        ),
        ("fidelity reference: fp32, SDPA, batch 8", sdpa.model_copy(update={"precision": "float32"}), today_cfg, False),
    ]
    rows: list[dict[str, Any]] = []
    feats: list[np.ndarray] = []
    for label, train_cfg, cfg, today in paths:
        seconds = []
        for repeat in range(args.repeats if not label.startswith("fidelity") else 1):
            out = work / f"features-{len(rows)}-{repeat}"
            shutil.rmtree(out, ignore_errors=True)
            with strided_head_inputs() if today else contextlib.nullcontext():
                stats = compute_gradient_features(
                    args.model, pool.prompts, pool.responses, pairs, train_cfg, cfg, 0, out
                )
            seconds.append(stats["seconds_gradients"])
        feats.append(load_gradient_features(out).pair_features)
        rows.append(
            row(
                "features",
                label,
                len(responses),
                "responses",
                statistics.median(seconds),
                4 * n_params * tokens,
                train_cfg.precision,
                runs_seconds=[round(s, 2) for s in seconds],
            )
        )
    few = pairs[:12]
    items = [
        tokenize_response(
            tokenizer, r, pool.prompts[pool.responses[r].prompt_id].messages, pool.responses[r].text, base.max_length
        )
        for r in dict.fromkeys(x for p in few for x in (p.chosen_id, p.rejected_id))
    ]
    full = full_weight_gradients(args.model, items, base.target_modules)
    full_row = {item.response_id: i for i, item in enumerate(items)}
    full_pairs = np.stack([full[full_row[p.chosen_id]] - full[full_row[p.rejected_id]] for p in few])
    fp32 = feats[-1]
    for r, f in zip(rows, feats):
        per_pair = (f * fp32).sum(1)
        r["pair_cosine_vs_fp32"] = {"mean": round(float(per_pair.mean()), 4), "min": round(float(per_pair.min()), 4)}
        r["vs_full_weight_first_12_pairs"] = agreement(f[: len(few)], full_pairs)
        print(
            f"  fidelity ({r['path']}): pair-feature cosine to fp32 mean {per_pair.mean():.4f} (min {per_pair.min():.4f}); "
            f"lora_init's r against exact full-weight gradients {r['vs_full_weight_first_12_pairs']['pearson_r']:.3f}"
        )
    selectable, _ = reserve_heldout(
        pool, args.config.preference.holdout, args.config.preference.pairs, args.config.evaluate.prompt_seed
    )
    everything = {r for p in pool.pairs for r in (p.chosen_id, p.rejected_id)}
    left = {r for p in selectable.pairs for r in (p.chosen_id, p.rejected_id)}
    print(
        f"  responses the features stage computes: {len(left)} of the pool's {len(everything)} (the held-out pairs' "
        f"{len(everything) - len(left)} no strategy may select are skipped: {len(everything) / max(len(left), 1):.2f}x fewer)"
    )
    rows.append(
        {
            **rows[1],
            "path": "new (default): " + rows[1]["path"].removeprefix("new: "),
            "responses_selectable": len(left),
            "responses_in_pool_pairs": len(everything),
        }
    )
    return rows


@contextlib.contextmanager
def strided_head_inputs():
    """Today's features: the LM head fed the strided slice `logits_to_keep` makes (no contiguous-input hook)."""
    from harness.models import resolve as models

    original = models.contiguous_head_inputs
    models.contiguous_head_inputs = lambda model: None
    try:
        yield
    finally:
        models.contiguous_head_inputs = original


def at_least(low: int):
    def parse(text: str) -> int:
        value = int(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value

    return parse


def batch_list(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x]
    except ValueError:
        raise argparse.ArgumentTypeError(f"a comma-separated list of batch sizes, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"batch sizes must be >= 1, got {text!r}")
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--config",
        default="experiments/default.yaml",
        help="the experiment whose pool, train, evaluate and features settings are measured",
    )
    parser.add_argument("--model", default=EMBEDDED_MODEL)
    parser.add_argument(
        "--pairs", type=at_least(2), default=128, help="pool pairs DPO and features run on (the curve's budget)"
    )
    parser.add_argument(
        "--eval-prompts", type=at_least(1), default=495, help="held-out prompts the greedy section decodes"
    )
    parser.add_argument(
        "--greedy-batches",
        type=batch_list,
        default=None,
        help="batch sizes the new greedy path is measured at (default: 96, 192, 256 and evaluate.batch_size)",
    )
    parser.add_argument(
        "--prompts", type=at_least(1), default=16, help="sampling: held-out prompts, each sampled pool.k times"
    )
    parser.add_argument(
        "--repeats", type=at_least(1), default=3, help="features: runs per path (the median is reported)"
    )
    parser.add_argument("--adapter", type=Path, help="greedy: the tuned model's adapter (default: the DPO section's)")
    parser.add_argument("--only", default="dpo,greedy,sampling,features")
    parser.add_argument("--pool-dir", type=Path)
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks/throughput.json"))
    args = parser.parse_args()
    try:
        args.config = load_config(args.config)
    except BenchError as exc:
        parser.error(str(exc))
    sections = args.only.split(",")
    unknown = set(sections) - {"greedy", "sampling", "dpo", "features"}
    if unknown:
        parser.error(f"--only: unknown sections {sorted(unknown)}; choose from greedy, sampling, dpo, features")
    if "greedy" in sections and "dpo" not in sections and args.adapter is None:
        parser.error("--only greedy needs a tuned model: add dpo, or pass --adapter runs/<run>/train/adapter")
    if args.adapter is not None and not (args.adapter / "adapter_config.json").is_file():
        parser.error(f"--adapter {args.adapter}: no adapter_config.json there; pass a trained adapter folder")
    args.greedy_batches = sorted(set(args.greedy_batches or [96, 192, 256]) | {args.config.evaluate.batch_size})
    flags = cpu_bf16_flags()
    dtype, precision = resolve_dtype(args.config.generation.dtype), resolve_dtype(args.config.train.precision)
    peak = matmul_peak()
    PEAK.update(peak)
    print(
        f"CPU {cpu_model()}; threads {torch.get_num_threads()}; CPU bf16 flags: {', '.join(flags) or 'none'} (oneDNN bf16 kernels: "
        f"{'yes' if bf16_packing_supported() else 'no, bf16 is emulated'}); generation dtype {dtype}, train precision {precision}; "
        f"matmul peak: fp32 {peak['float32']} GFLOPS, bf16 {peak['bfloat16']} GFLOPS",
        flush=True,
    )
    needs_pool = "dpo" in sections or "features" in sections
    pool, pool_dir = (
        find_pool(args) if needs_pool else (None, None)
    )  # before any measuring: a missing pool fails in a second
    n_params = sum(p.numel() for p in load_model(args.model).model.parameters())
    work = Path(tempfile.mkdtemp(prefix="throughput-"))
    rows: list[dict] = []
    adapter = args.adapter
    try:
        if needs_pool:
            print(f"pairs from {pool_dir}")
        if "dpo" in sections:
            dpo_rows, trained = dpo_section(args, n_params, pool, precision, work)
            rows += dpo_rows
            adapter = adapter or trained
        if "greedy" in sections:
            rows += greedy_section(args, n_params, dtype, adapter)
        if "sampling" in sections:
            rows += sampling_section(args, n_params, dtype)
        if "features" in sections:
            rows += features_section(args, n_params, pool, precision, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("\nratios to today's path (same run):")
    summary = {}
    for section in ("greedy", "sampling", "dpo", "features"):
        mine = [r for r in rows if r["section"] == section]
        if not mine:
            continue
        rate = next(k for k in mine[0] if k.endswith("_per_s"))
        ratio = mine[-1][rate] / mine[0][rate]
        summary[section] = round(ratio, 2)
        target = TARGETS.get(section)
        verdict = f"(target >= {target}x: {'met' if ratio >= target else 'NOT met'})" if target else ""
        print(f"  {section:<9} {ratio:5.2f}x  {verdict}")
    if "dpo" in sections:
        cold = next(r for r in rows if r["path"].startswith("new, cold"))
        summary["dpo_cold"] = round(cold["pairs_per_s"] / rows[0]["pairs_per_s"], 2)
        print(f"  dpo, cold store (reference log-probs computed in the run) {summary['dpo_cold']:.2f}x")
    write_json(
        args.out,
        {
            "rows": rows,
            "ratios": summary,
            "targets": TARGETS,
            "matmul_peak_gflops": peak,
            "cpu": cpu_model(),
            "cpu_bf16_flags": flags,
            "generation_dtype": dtype,
            "train_precision": precision,
            "threads": torch.get_num_threads(),
            "pool_dir": str(pool_dir),
        },
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
