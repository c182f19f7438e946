"""Batched chat generation with a progress bar, on transformers or vLLM.

Both back ends honour one contract: one `Generation` per conversation, in input order, the
chat template applied by the model's own tokenizer, text cut at the first end-of-sequence
token, `truncated` when `max_new_tokens` ran out. On transformers, harness/decoding.py's loop
generates (several times faster than `model.generate` on CPU: benchmarks/throughput.py);
prompts are sorted by length so each batch pads little, and each batch samples from a generator
seeded by (seed, batch index), so sampled outputs do not depend on what ran before in the process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from harness.decoding import Picker, decode, greedy, sample_top_p
from harness.generation_contract import Generation, chat_texts, to_generation
from harness.models import LoadedModel, load_model, resolve_backend, resolve_dtype


def generate_with(
    backend: str,
    model_name: str,
    adapter: Path | None,
    conversations: list[list[dict[str, str]]],
    *,
    dtype: str = "auto",
    gpu_memory_utilization: float = 0.85,
    **settings: Any,
) -> list[Generation]:
    """Generate with the resolved back end and dtype; the one entry point for the pool, evaluation and suites.

    `settings` are `generate`'s keyword arguments; vLLM batches by itself, so it ignores
    `batch_size` (and draws its own progress bar instead of `desc`).
    """
    if resolve_backend(backend) == "vllm":
        from harness.generation_vllm import generate_vllm

        engine_settings = {k: v for k, v in settings.items() if k not in ("batch_size", "desc")}
        return generate_vllm(model_name, adapter, conversations, dtype=resolve_dtype(dtype),
                             gpu_memory_utilization=gpu_memory_utilization, **engine_settings)
    return generate(load_model(model_name, adapter=adapter, dtype=resolve_dtype(dtype)), conversations, **settings)


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
    tokenizer, model = loaded.tokenizer, loaded.model
    results: list[Generation | None] = [None] * len(conversations)
    eos_ids = set(_eos_ids(model, tokenizer))
    with tqdm(total=len(conversations), desc=desc, unit="seq") as bar:
        for batch_index, idx, enc in length_sorted_batches(tokenizer, conversations, batch_size):
            generator = torch.Generator(device=model.device).manual_seed(seed * 100_003 + batch_index)
            pick = _picker(generator, temperature, top_p) if do_sample else greedy
            new = decode(model, enc["input_ids"].to(model.device), enc["attention_mask"].to(model.device),
                         max_new_tokens=max_new_tokens, eos_ids=eos_ids, pick=pick)
            for i, tokens in zip(idx, new):
                results[i] = to_generation(tokens, eos_ids, tokenizer)
            bar.update(len(idx))
    return [r for r in results if r is not None]


def length_sorted_batches(tokenizer, conversations: list[list[dict[str, str]]], batch_size: int):
    """(batch index, conversation indices, left-padded encoding) per batch, conversations sorted by
    templated length so that each batch pads little."""
    tokenizer.padding_side = "left"
    texts = chat_texts(tokenizer, conversations)
    lengths = [len(tokenizer(t, add_special_tokens=False).input_ids) for t in texts]
    order = sorted(range(len(texts)), key=lambda i: (lengths[i], i))
    for batch_index, start in enumerate(range(0, len(order), batch_size)):
        idx = order[start : start + batch_size]
        yield batch_index, idx, tokenizer([texts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False)


def _picker(generator: torch.Generator, temperature: float, top_p: float) -> Picker:
    return lambda logits: sample_top_p(logits, temperature, top_p, generator)


def _eos_ids(model, tokenizer) -> list[int]:
    ids = model.generation_config.eos_token_id
    ids = list(ids) if isinstance(ids, (list, tuple)) else ([ids] if ids is not None else [])
    return ids + [tokenizer.eos_token_id]
