"""The `train` and `features` sections: the shared DPO + LoRA trainer (dpo.py) and the gradient features it
computes for the strategies that read them (gradient_features.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, field_validator

from harness.core.sections import Section


class FeaturesConfig(Section):
    """How gradient features are computed; part of the `features` stage's cache key."""

    dim: int = Field(
        1024,
        ge=1,
        description="Projection dimension D (LESS uses 8192 on a GPU); the CPU default trades cosine error against "
        "k-means time (measured in docs/design.md §3).",
    )
    projection: Literal["countsketch", "gaussian"] = Field(
        "countsketch",
        description="countsketch (sparse JL): the same cosine error as a chunked Gaussian at a fraction of its time "
        "(docs/design.md §3); gaussian is kept for comparison.",
    )
    lora_init: Literal["zero_b", "warmup"] = Field(
        "zero_b",
        description="zero_b: gradients at the start policy, where the DPO gradient is exact without a "
        "reference pass and B's gradient already sketches the full-weight gradient; warmup: train the "
        "adapter briefly first, as LESS does, and use A and B gradients (costs a short DPO run). zero_b matches "
        "warmup's agreement with exact full-weight gradients at a third of its cost (benchmarks/lora_init.py; "
        "docs/design.md §3).",
    )
    warmup_pairs: int = Field(
        16,
        ge=1,
        description="Pool pairs (seeded random) for the warm-up DPO run: a few optimiser steps at the "
        "trainer's batch size move B off zero (so A's gradient carries signal).",
    )
    batch_size: int = Field(
        4,
        ge=1,
        description="Responses per forward/backward (benchmarks/throughput.py measures the fastest on a machine; "
        "raise it on a GPU)",
    )
    projection_seed: int = Field(
        0,
        description="Fixed apart from the run seed, so that features (and cosines between them) are "
        "comparable across runs and cache entries that differ only in the run seed.",
    )


class TrainConfig(Section):
    """The shared DPO + LoRA trainer; identical for every strategy in a comparison."""

    learning_rate: float = Field(5e-4, gt=0, description="LoRA DPO; 5e-4 from the pilot in docs/testbed-history.md")
    epochs: float = Field(1.0, gt=0)
    batch_size: int = Field(4, ge=1)
    grad_accum: int = Field(1, ge=1)
    beta: float = Field(0.1, gt=0)
    max_length: int = Field(512, ge=32)
    warmup_steps: int = Field(0, ge=0)
    lora_r: int = Field(8, ge=1)
    lora_alpha: int = Field(16, ge=1)
    lora_dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: list[str] | Literal["auto"] = Field(
        "auto",
        description="LoRA target modules: 'auto' = the model's attention projections, found per architecture "
        "(q_proj, k_proj, v_proj, o_proj on Llama-like models; qkv_proj, o_proj on Phi-3; c_attn, c_proj on GPT-2), "
        "or a list of module names; the resolved list is what cache keys and the manifest record",
    )
    precision: Literal["auto", "float32", "bfloat16"] = Field(
        "auto",
        description="matmul precision of DPO training (bf16 autocast over fp32 master weights) and of gradient "
        "features: 'auto' = bfloat16 where the hardware multiplies in it natively (CUDA with bf16; CPUs with AMX or "
        "AVX512-BF16), else float32. Resolved per machine into the train and features cache keys",
    )
    gradient_checkpointing: bool = False
    attention: Literal["auto", "eager", "sdpa"] = Field(
        "auto",
        description="the attention kernels DPO training, its reference log-probs and gradient features run through: "
        "'auto' = eager (plain matmuls) on a CPU, whose backward runs faster there than SDPA's flash-attention "
        "backward at these lengths, and sdpa on a GPU; resolved per machine into the train and features keys",
    )
    reference_logps: Literal["cached", "per_step"] = Field(
        "cached",
        description="the reference model's log-probs of the chosen and rejected responses: 'cached' = computed once per "
        "response (batched, no gradient) and kept under cache_dir/reference_logps for every run that trains on it, so a "
        "step runs only the policy; 'per_step' = TRL's default, a reference forward pass inside every step",
    )
    batching: Literal["length_grouped", "random"] = Field(
        "length_grouped",
        description="how pairs form batches: 'length_grouped' = pairs of similar token length together, batches in a "
        "seeded random order (harness/training/dpo.py LengthGroupedBatches), which pads less; 'random' = the trainer's plain "
        "shuffled order",
    )
    logging_steps: int = Field(1, ge=1)
    accelerate_config: str | None = Field(
        None,
        description="an accelerate config YAML (experiments/accelerate/: ddp, zero3, fsdp, ddp_cpu); when set, "
        "the train stage runs under `accelerate launch` with it; the effective batch is batch_size x grad_accum x "
        "processes",
    )
    num_processes: int | None = Field(None, ge=1, description="with accelerate_config: overrides its num_processes")
    nonfinite: Literal["error", "skip_step"] = Field(
        "error",
        description="a NaN/inf loss or gradient: 'error' stops training and saves no adapter; 'skip_step' drops that "
        "optimizer step (its gradients) and counts it in the training summary",
    )

    @field_validator("accelerate_config")
    @classmethod
    def _accelerate_config_exists(cls, value: str | None) -> str | None:
        if value is not None:
            path = Path(value).expanduser()
            if not path.is_file():
                raise ValueError(
                    f"{value} does not exist; pass one of experiments/accelerate/*.yaml or your own `accelerate config` file"
                )
            try:
                loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
            except yaml.YAMLError as exc:
                raise ValueError(f"{value} is not valid YAML ({exc})") from None
            if not isinstance(loaded, dict) or "distributed_type" not in loaded:
                raise ValueError(
                    f"{value} is not an accelerate config (no distributed_type); see experiments/accelerate/"
                )
        return value

    def require_resolved(self, user: str) -> "TrainConfig":
        """This section, if its machine-dependent fields are resolved (`harness.models.choices.resolve_train`); a
        trainer given `auto` would decide again, apart from what the run's keys record."""
        unresolved = [f for f in ("target_modules", "precision", "attention") if getattr(self, f) == "auto"]
        if unresolved:
            raise ValueError(
                f"{user} takes a train section resolved for this machine (harness.models.choices.resolve_train); "
                f"{', '.join(unresolved)} still read auto"
            )
        return self
