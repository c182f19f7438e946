"""Batched chat generation with a progress bar, on transformers or vLLM.

Both back ends honour one contract: one `Generation` per conversation, in input order, the
chat template applied by the model's own tokenizer, text cut at the first end-of-sequence
token, `truncated` when `max_new_tokens` ran out. On transformers, harness/generation/engine.py's loop
generates (several times faster than `model.generate` on CPU: benchmarks/throughput.py);
prompts are sorted by length so rows decoding together pad little, finished rows are replaced by
waiting prompts (continuous batching), and one generator seeded by `seed` samples a whole call, so
sampled outputs do not depend on what ran before in the process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from harness.generation.contract import Generation, chat_texts, to_generation
from harness.generation.engine import Picker, decode, greedy, sample_top_p
from harness.generation.vllm import generate_vllm
from harness.models.resolve import BACKENDS, DTYPES, LoadedModel, load_model


def generate_with(
    backend: str,
    model_name: str,
    adapter: Path | None,
    conversations: list[list[dict[str, str]]],
    *,
    dtype: str,
    gpu_memory_utilization: float = 0.85,
    **settings: Any,
) -> list[Generation]:
    """Generate on `backend` in `dtype`, both as resolved for the run (`harness.models.choices`: the keys record
    them, so an `auto` resolved here again could disagree with the key); the one entry point for the pool,
    evaluation and suites.

    `settings` are `generate`'s keyword arguments; vLLM batches by itself, so it ignores
    `batch_size` (and draws its own progress bar instead of `desc`).
    """
    if backend not in BACKENDS or dtype not in DTYPES:
        raise ValueError(
            f"generate_with takes a resolved back end and dtype (harness.models.resolve.engine_key), not {backend!r}, {dtype!r}"
        )
    if backend == "vllm":
        engine_settings = {k: v for k, v in settings.items() if k not in ("batch_size", "desc")}
        return generate_vllm(
            model_name,
            adapter,
            conversations,
            dtype=dtype,
            gpu_memory_utilization=gpu_memory_utilization,
            **engine_settings,
        )
    return generate(load_model(model_name, adapter=adapter, dtype=dtype), conversations, **settings)


@torch.inference_mode()
def generate(
    loaded: LoadedModel,
    conversations: list[list[dict[str, str]]],
    *,
    max_new_tokens: int,
    batch_size: int,
    do_sample: bool,
    temperature: float = 1.0,
    top_p: float = 1.0,
    seed: int = 0,
    desc: str = "generate",
) -> list[Generation]:
    """One `Generation` per conversation, in order: prompts shortest first (so rows that decode together
    pad little), at most `batch_size` rows at a time, sampled from one generator seeded by `seed`."""
    tokenizer, model = loaded.tokenizer, loaded.model
    eos_ids = set(_eos_ids(model, tokenizer))
    order, prompts = length_sorted(tokenizer, conversations)
    # seed x 100,003, as the first batch of the batch-at-a-time decoder (before continuous batching) was seeded:
    # a call that fits one batch draws the same samples as it did then
    generator = torch.Generator(device=model.device).manual_seed(seed * 100_003)
    pick = _picker(generator, temperature, top_p) if do_sample else greedy
    with tqdm(total=len(conversations), desc=desc, unit="seq") as bar:
        new = decode(
            model,
            prompts,
            max_new_tokens=max_new_tokens,
            eos_ids=eos_ids,
            pick=pick,
            batch_size=batch_size,
            pad_id=tokenizer.pad_token_id,
            on_finished=bar.update,
        )
    results: list[Generation | None] = [None] * len(conversations)
    for i, tokens in zip(order, new):
        results[i] = to_generation(tokens, eos_ids, tokenizer)
    return [r for r in results if r is not None]


def length_sorted(tokenizer, conversations: list[list[dict[str, str]]]) -> tuple[list[int], list[list[int]]]:
    """(conversation indices, their templated token ids), shortest first (ties in input order)."""
    ids = [tokenizer(t, add_special_tokens=False).input_ids for t in chat_texts(tokenizer, conversations)]
    order = sorted(range(len(ids)), key=lambda i: (len(ids[i]), i))
    return order, [ids[i] for i in order]


def _picker(generator: torch.Generator, temperature: float, top_p: float) -> Picker:
    return lambda logits: sample_top_p(logits, temperature, top_p, generator)


def _eos_ids(model, tokenizer) -> list[int]:
    ids = model.generation_config.eos_token_id
    ids = list(ids) if isinstance(ids, (list, tuple)) else ([ids] if ids is not None else [])
    return ids + [tokenizer.eos_token_id]
