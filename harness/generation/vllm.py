"""The vLLM generation back end: same contract as `harness.generation.generate`, on a GPU engine.

Prompts are templated and tokenised by the model's own Hugging Face tokenizer, exactly as on
the transformers path, and handed to vLLM as token ids, so both engines see identical inputs.
Each request carries its own seed (derived from the run seed and its index), so sampled pools
do not depend on vLLM's batching. A LoRA adapter is served through vLLM's LoRA support rather
than merged, so one engine evaluates the base and every tuned adapter.

Unverified here: vLLM is neither installable on the CPU development machine nor present on the
GPU test machine; tests cover the selection of this back end and the conversion of its outputs.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path

from harness.generation.contract import Generation, chat_texts, to_generation
from harness.models.resolve import load_tokenizer, resolve_model, trust_remote_code


@functools.lru_cache(maxsize=1)
def _engine(model: str, dtype: str, max_lora_rank: int, gpu_memory_utilization: float):
    """One engine per process (it holds most of the GPU's memory); rebuilt only for another model."""
    from vllm import LLM

    lora = {"enable_lora": True, "max_lora_rank": max_lora_rank} if max_lora_rank else {}
    return LLM(
        model=model,
        dtype=dtype,
        trust_remote_code=trust_remote_code(),
        gpu_memory_utilization=gpu_memory_utilization,
        **lora,
    )


def _lora_rank(adapter: Path) -> int:
    """vLLM's supported LoRA ranks are powers of two from 8; round the adapter's rank up to one."""
    rank = int(json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))["r"])
    return max(8, 1 << (rank - 1).bit_length())


def generate_vllm(
    model_name: str,
    adapter: Path | None,
    conversations: list[list[dict[str, str]]],
    *,
    max_new_tokens: int,
    do_sample: bool,
    temperature: float = 1.0,
    top_p: float = 1.0,
    seed: int = 0,
    dtype: str = "bfloat16",
    gpu_memory_utilization: float = 0.85,
) -> list[Generation]:
    from vllm import SamplingParams
    from vllm.lora.request import LoRARequest

    tokenizer = load_tokenizer(model_name)
    engine = _engine(
        str(resolve_model(model_name)), dtype, _lora_rank(adapter) if adapter else 0, gpu_memory_utilization
    )
    prompts = [
        {"prompt_token_ids": tokenizer(t, add_special_tokens=False).input_ids}
        for t in chat_texts(tokenizer, conversations)
    ]
    params = [
        SamplingParams(
            max_tokens=max_new_tokens,
            temperature=temperature if do_sample else 0.0,
            top_p=top_p if do_sample else 1.0,
            seed=seed * 100_003 + index,
            detokenize=False,
        )
        for index in range(len(prompts))
    ]
    lora = LoRARequest(Path(adapter).name or "adapter", 1, str(adapter)) if adapter else None
    outputs = engine.generate(prompts, params, lora_request=lora, use_tqdm=True)
    eos_ids = set(_eos_ids(model_name, tokenizer))
    results = []
    for output in outputs:
        completion = output.outputs[0]
        generation = to_generation(list(completion.token_ids), eos_ids, tokenizer)
        # vLLM knows why it stopped; trust it over the presence of an EOS id in the tokens
        results.append(dataclasses.replace(generation, truncated=completion.finish_reason == "length"))
    return results


def _eos_ids(model_name: str, tokenizer) -> list[int]:
    """The model's generation-config EOS ids (as the transformers path uses) plus the tokenizer's."""
    from transformers import GenerationConfig

    try:
        ids = GenerationConfig.from_pretrained(resolve_model(model_name)).eos_token_id
    except OSError:
        ids = None
    ids = list(ids) if isinstance(ids, (list, tuple)) else ([ids] if ids is not None else [])
    return ids + [tokenizer.eos_token_id]
