"""Generation throughput on this machine: today's path and the candidates, measured in one run.

Runs the embedded model (or --model) on the default pool's shape (chat prompts from the
built-in task set, sampled at temperature 0.9 / top-p 0.95) and the evaluation's shape
(greedy), and prints tokens per second, achieved GFLOPS (2 · parameters · tokens / s, the
matmul floor of a decoding step; attention adds a little) and the ratio to today's path:

- today: `model.generate` in the model's current dtype (fp32 on CPU), batch 32;
- decode: harness/decoding.py (KV cache, finished rows leave the batch, exact partial-sort
  top-p), fp32 and, where the CPU has bf16 matmuls (AMX / AVX512-BF16), bf16 weights, at
  several batch sizes.

It also reports what the faster top-p changes: nothing in distribution, checked here as the
share of rows whose nucleus the partial sort found without the full sort. And what bf16
changes: the mean |log p(token)| difference of today's sampled texts under both dtypes.

    python3 benchmarks/throughput.py [--prompts 32] [--new-tokens 64] [--out runs/benchmarks/throughput.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.decoding import TOP_K_FIRST, decode, greedy, sample_top_p  # noqa: E402
from harness.generation import _eos_ids, chat_texts  # noqa: E402
from harness.config import EMBEDDED_MODEL  # noqa: E402
from harness.models import cpu_bf16_flags, load_model  # noqa: E402
from harness.config import EvaluateConfig  # noqa: E402
from harness.evaluate import eval_prompts  # noqa: E402


def run(label: str, fn, n_params: int) -> dict:
    start = time.perf_counter()
    tokens = fn()
    seconds = time.perf_counter() - start
    rate = tokens / seconds
    row = {"path": label, "tokens": tokens, "seconds": round(seconds, 2), "tokens_per_s": round(rate, 1),
           "gflops": round(2 * n_params * rate / 1e9, 1)}
    print(f"{label:<44} {tokens:>6} tok {seconds:>7.1f} s {rate:>8.1f} tok/s {row['gflops']:>7.1f} GFLOPS", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=EMBEDDED_MODEL)
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    flags = cpu_bf16_flags()
    bf16_hw = bool(flags)
    print(f"threads {torch.get_num_threads()}; CPU bf16 matmuls: {'yes (' + ', '.join(flags) + ')' if bf16_hw else 'no'}")
    loaded = load_model(args.model)
    tok, model = loaded.tokenizer, loaded.model
    tok.padding_side = "left"
    n_params = sum(p.numel() for p in model.parameters())
    prompts = [p.messages for p in eval_prompts(EvaluateConfig(), n=args.prompts)]
    texts = chat_texts(tok, prompts)
    eos = set(_eos_ids(model, tok))

    def batches(size: int):
        for start in range(0, len(texts), size):
            enc = tok(texts[start : start + size], return_tensors="pt", padding=True, add_special_tokens=False)
            yield enc["input_ids"], enc["attention_mask"]

    def today(sample: bool):
        def go() -> int:
            n = 0
            for i, (ids, mask) in enumerate(batches(32)):
                torch.manual_seed(i)
                extra = dict(do_sample=True, temperature=0.9, top_p=0.95) if sample else dict(do_sample=False)
                out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=args.new_tokens, pad_token_id=tok.pad_token_id,
                                     top_k=None, **extra)
                n += sum(_until_eos(row, eos) for row in out[:, ids.shape[1]:].tolist())
            return n
        return go

    covered = {"rows": 0, "partial": 0}

    def counting_sampler(gen: torch.Generator):
        def pick(logits: torch.Tensor) -> torch.Tensor:
            probs = torch.softmax(logits.float() / 0.9, dim=-1)
            top = probs.topk(TOP_K_FIRST, dim=-1).values
            covered["rows"] += logits.shape[0]
            covered["partial"] += int((top[:, : TOP_K_FIRST - 1].sum(-1) >= 0.95).sum())
            return sample_top_p(logits, 0.9, 0.95, gen)
        return pick

    def fast(size: int, sample: bool, m):
        def go() -> int:
            n = 0
            for i, (ids, mask) in enumerate(batches(size)):
                gen = torch.Generator().manual_seed(i)
                pick = counting_sampler(gen) if sample else greedy
                n += sum(len(r) for r in decode(m, ids, mask, max_new_tokens=args.new_tokens, eos_ids=eos, pick=pick))
            return n
        return go

    results = []
    with torch.inference_mode():
        results.append(run("today: generate fp32 sampled, batch 32", today(True), n_params))
        results.append(run("today: generate fp32 greedy, batch 32", today(False), n_params))
        results.append(run("decode fp32 sampled, batch 32", fast(32, True, model), n_params))
        bf16 = None
        if bf16_hw:
            bf16 = load_model(args.model).model.to(torch.bfloat16)
            for size in (32, 64):
                results.append(run(f"decode bf16 sampled, batch {size}", fast(size, True, bf16), n_params))
            results.append(run("decode bf16 greedy, batch 32", fast(32, False, bf16), n_params))
    base_s, base_g = results[0]["tokens_per_s"], results[1]["tokens_per_s"]
    for r in results:
        r["ratio"] = round(r["tokens_per_s"] / (base_g if "greedy" in r["path"] else base_s), 2)
    print("\nratios to today's path (same run):")
    for r in results:
        print(f"  {r['path']:<44} {r['ratio']:.2f}x")
    share = covered["partial"] / max(covered["rows"], 1)
    print(f"top-p nucleus found by the partial sort (top {TOP_K_FIRST}) in {share:.1%} of {covered['rows']} sampled rows; the rest took the full sort")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"results": results, "partial_sort_share": share, "bf16_hw": bf16_hw}, indent=1))


def _until_eos(tokens: list[int], eos: set[int]) -> int:
    return next((n + 1 for n, t in enumerate(tokens) if t in eos), len(tokens))


if __name__ == "__main__":
    main()
