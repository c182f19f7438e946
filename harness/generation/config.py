"""The `generation` section: which engine generates text (harness/generation/engine.py decides it per machine)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from harness.core.sections import Section


class GenerationConfig(Section):
    """Which engine generates text (pool samples, evaluation outputs); the outputs contract is the same."""

    backend: Literal["auto", "transformers", "vllm"] = Field(
        "auto",
        description="'auto': vLLM when it is installed and a CUDA GPU is present, else transformers; "
        "'vllm' fails early when either is missing",
    )
    dtype: Literal["auto", "float32", "bfloat16"] = Field(
        "auto",
        description="'auto': bfloat16 where the hardware multiplies in it natively (CUDA with bf16; CPUs with AMX or "
        "AVX512-BF16, detected at run time), else float32. Part of the cache key: bf16 samples differ from fp32 ones",
    )
    vllm_gpu_memory_utilization: float = Field(0.85, gt=0, le=1, description="vLLM: fraction of GPU memory it may take")
