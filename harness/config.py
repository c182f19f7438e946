"""Experiment configuration: one pydantic model per stage, validated up front.

A config is YAML; the CLI applies `--set dotted.key=value` overrides before validation, so a
typo in a file and a typo on the command line get the same error. Every problem found is
reported at once, each with the field path and what to do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

EMBEDDED_MODEL = "smollm2-135m-instruct"


class BenchError(Exception):
    """An error the user can fix; the CLI prints it as one paragraph, without a traceback."""


class ConfigError(BenchError):
    pass


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class PromptsConfig(_Strict):
    """Where training prompts come from."""

    source: str = Field("builtin", description="'builtin', a local JSON/JSONL/Parquet file, or a hub dataset id")
    format: Literal["auto", "hh_rlhf", "trl", "prompts"] = "auto"
    split: str = "train"
    data_dir: str | None = None
    n_train: int | None = Field(48, ge=1, description="number of training prompts (None: all)")
    constraints_per_prompt: int = Field(1, ge=1, le=3)


class PoolConfig(_Strict):
    """Candidate responses per prompt and how they become pairs."""

    k: int = Field(4, ge=2, description="responses sampled per prompt")
    max_new_tokens: int = Field(160, ge=8)
    temperature: float = Field(0.9, gt=0)
    top_p: float = Field(0.95, gt=0, le=1)
    batch_size: int = Field(16, ge=1)
    judge: Literal["verifiable"] = "verifiable"
    pairing: Literal["all", "best_vs_rest", "best_worst"] = "all"
    min_margin: float = Field(0.0, ge=0, description="a pair needs chosen - rejected > min_margin")
    drop_truncated: bool = Field(True, description="drop samples cut off at max_new_tokens from pairs")


class EmbeddingsConfig(_Strict):
    """Sentence embeddings used by breadth compression (and the embedding-depth ablation)."""

    model: str = Field("all-MiniLM-L6-v2", description="sentence-transformers id or folder; the default ships offline")
    batch_size: int = Field(64, ge=1)


class FeaturesConfig(_Strict):
    """How gradient features are computed; part of the `features` stage's cache key."""

    dim: int = Field(
        1024,
        ge=1,
        description="Projection dimension D. LESS uses 8192 on GPU; on CPU 1024 keeps cosine error "
        "near 0.03-0.09 (measured, DESIGN.md §3) while k-means on 2,000 x 1,024 stays under 1 s.",
    )
    projection: Literal["countsketch", "gaussian"] = Field(
        "countsketch",
        description="CountSketch (sparse JL) projected 256 gradients in 0.45 s with the same cosine "
        "error as a chunked Gaussian, which took 9-77 s (DESIGN.md §3); Gaussian is kept for comparison.",
    )
    lora_init: Literal["zero_b", "warmup"] = Field(
        "zero_b",
        description="zero_b: gradients at the start policy, where the DPO gradient is exact without a "
        "reference pass and B's gradient already sketches the full-weight gradient; warmup: train the "
        "adapter briefly first, as LESS does, and use A and B gradients (costs a short DPO run). "
        "Measured (benchmarks/lora_init.py, SmolLM2-135M, 16 pool pairs): pairwise cosines of zero_b "
        "features vs exact full-weight (26.5M-dim) DPO gradients r = 0.999 (r = 0.983 after CountSketch "
        "to 1024), the same as warmup (0.999 / 0.987) at 32 s instead of 113 s: hence zero_b.",
    )
    warmup_pairs: int = Field(
        16,
        ge=1,
        description="Pool pairs (seeded random) for the warm-up DPO run: a few optimiser steps at the "
        "trainer's batch size move B off zero (so A's gradient carries signal) for about a minute on CPU.",
    )
    batch_size: int = Field(
        8,
        ge=1,
        description="Responses per forward/backward. On CPU 1, 4 and 8 ran within noise of each other on "
        "the SmolLM2-135M architecture; on a GPU batch 8 was 7-9x faster than batch 1 (module docstring).",
    )
    projection_seed: int = Field(
        0,
        description="Fixed apart from the run seed, so that features (and cosines between them) are "
        "comparable across runs and cache entries that differ only in the run seed.",
    )


class SelectConfig(_Strict):
    strategy: str = "uniform"
    budget: int = Field(32, ge=1, description="number of preference pairs every strategy gets")
    params: dict[str, Any] = Field(default_factory=dict, description="strategy-specific parameters")


class TrainConfig(_Strict):
    """The shared DPO + LoRA trainer; identical for every strategy in a comparison."""

    learning_rate: float = Field(5e-5, gt=0)
    epochs: float = Field(1.0, gt=0)
    batch_size: int = Field(4, ge=1)
    grad_accum: int = Field(1, ge=1)
    beta: float = Field(0.1, gt=0)
    max_length: int = Field(512, ge=32)
    warmup_steps: int = Field(0, ge=0)
    lora_r: int = Field(8, ge=1)
    lora_alpha: int = Field(16, ge=1)
    lora_dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    gradient_checkpointing: bool = False
    logging_steps: int = Field(1, ge=1)


class EvaluateConfig(_Strict):
    """Held-out evaluation; its prompts do not depend on the run seed, so runs are paired."""

    n_prompts: int = Field(48, ge=1)
    prompt_seed: int = 1234
    constraints_per_prompt: int = Field(1, ge=1, le=3)
    max_new_tokens: int = Field(160, ge=8)
    batch_size: int = Field(16, ge=1)
    bootstrap: int = Field(1000, ge=100)
    n_examples: int = Field(6, ge=0, description="held-out examples shown side by side in the report")


class ExperimentConfig(_Strict):
    name: str = "default"
    seed: int = 0
    model: str = Field(EMBEDDED_MODEL, description="embedded default, a hub id, or a local model folder")
    cache_dir: str = "runs/cache"
    prompts: PromptsConfig = Field(default_factory=PromptsConfig)
    pool: PoolConfig = Field(default_factory=PoolConfig)
    embeddings: EmbeddingsConfig = Field(default_factory=EmbeddingsConfig)
    select: SelectConfig = Field(default_factory=SelectConfig)
    features: FeaturesConfig = Field(default_factory=FeaturesConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        if not value or any(c in value for c in "/\\\0") or value.startswith("."):
            raise ValueError("must be a plain name (no slashes, not starting with '.')")
        return value


def _parse_override(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected dotted.key=value, e.g. --set train.learning_rate=1e-4.")
    key, raw = item.split("=", 1)
    # YAML parsing gives numbers, booleans, null and lists their natural types.
    return key.strip().split("."), yaml.safe_load(raw) if raw.strip() else ""


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    for item in overrides:
        keys, value = _parse_override(item)
        node = data
        for key in keys[:-1]:
            child = node.get(key)
            if child is None:
                child = node[key] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"--set {item!r}: '{key}' is a value, not a section.")
            node = child
        node[keys[-1]] = value
    return data


def format_validation_error(err: ValidationError, origin: str) -> str:
    lines = [f"{origin}: {err.error_count()} problem(s) in the configuration:"]
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"]) or "(top level)"
        if e["type"] == "extra_forbidden":
            msg = "unknown key; remove it or check its spelling (see `bench run --help` and experiments/default.yaml)"
        else:
            msg = f"{e['msg']} (got {e.get('input')!r})"
        lines.append(f"  - {where}: {msg}")
    return "\n".join(lines)


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> ExperimentConfig:
    """Read YAML (or defaults when `path` is None), apply overrides, validate everything at once."""
    data: dict[str, Any] = {}
    origin = "defaults"
    if path is not None:
        path = Path(path)
        origin = str(path)
        if not path.is_file():
            raise ConfigError(f"Config file {path} does not exist. Pass an existing YAML file, e.g. experiments/default.yaml.")
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            raise ConfigError(f"{path}{where}: not valid YAML ({getattr(exc, 'problem', exc)}).") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of keys to values.")
        data = loaded
    data = apply_overrides(data, overrides or [])
    try:
        config = ExperimentConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, origin)) from None
    from strategies import validate_strategy_config  # strategies depend on the config, not vice versa

    validate_strategy_config(config, origin)
    return config
