"""A config's machine-dependent choices, resolved once per run: what the stages load and what their keys record.

`auto` means different things on different machines (bf16 where the CPU or GPU multiplies in it,
vLLM where it can run, the LoRA targets of the architecture found), and a cache key must name
what actually ran. `resolve` decides all of it once; `Run` holds the result, every stage reads
it, and `runner.shared_stage_hashes` plans a matrix with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from harness.core.errors import BenchError
from harness.core.io import content_hash
from harness.models.resolve import (
    engine_key,
    model_fingerprint,
    resolve_attention,
    resolve_dtype,
    resolve_target_modules,
    with_chat_template,
)

if TYPE_CHECKING:
    from harness.experiment import ExperimentConfig
    from harness.generation.config import GenerationConfig
    from harness.training.config import TrainConfig


@dataclass(frozen=True)
class Resolved:
    config: ExperimentConfig
    model: str
    """what the stages load: the model with its configured chat template"""
    model_key: str
    """the policy model in every cache key: its weights' fingerprint, and the configured chat template's text when
    there is one (it changes every prompt the model sees)"""
    engine: dict[str, str]
    """the generation engine in every generating key: back end, dtype (and the transformers decoder's version)"""
    generation: GenerationConfig
    """the generation section with its back end and dtype as resolved"""
    train: TrainConfig
    """the train section with `target_modules: auto`, precision and attention as resolved on this machine"""
    bundled: dict[str, dict[str, str]] = field(default_factory=dict)
    """sampling stage -> the engine that drew the copy a configured bundle supplies (`runner.resolve_run`): a pool
    sampled in bf16 elsewhere is data here too, keyed by what drew it"""

    def sampler(self, stage: str) -> dict[str, str]:
        """The engine in a sampling stage's key: the bundle's where it supplies that stage, else this machine's."""
        return self.bundled.get(stage, self.engine)

    def sampling(self, stage: str) -> GenerationConfig:
        """The generation settings that sample `stage` here; refused where its key names another machine's engine,
        since samples drawn here would be filed under it."""
        if self.sampler(stage) != self.engine:
            raise BenchError(
                f"the {stage} stage is keyed by the bundle's engine ({self.sampler(stage)}), but it is missing from the cache "
                f"and this machine samples with {self.engine}. Restore the bundle again (bench cache import "
                f"{self.config.bundle} --cache-dir {self.config.cache_dir}), or set bundle: null to sample a pool here."
            )
        return self.generation


def resolve(config: ExperimentConfig) -> Resolved:
    model = with_chat_template(config.model, config.chat_template)
    key = model_fingerprint(config.model)
    if config.chat_template:
        key += "+chat_template:" + content_hash(Path(config.chat_template).expanduser().read_text(encoding="utf-8"), 16)
    engine = engine_key(config.generation.backend, config.generation.dtype)
    train = resolve_train(config.train, model)
    generation = resolve_generation(config.generation)
    return Resolved(config, model, key, engine, generation, train)


def resolve_generation(generation: GenerationConfig) -> GenerationConfig:
    """The generation section with the back end and dtype this machine runs for it: what sampling receives."""
    engine = engine_key(generation.backend, generation.dtype)
    return generation.model_copy(update={"backend": engine["backend"], "dtype": engine["dtype"]})


def resolve_train(train: TrainConfig, model: str) -> TrainConfig:
    """The train section as it runs on this machine for `model`: LoRA targets found in the architecture, the precision
    and the attention kernels this hardware runs best. What trainers and gradient features receive."""
    return train.model_copy(
        update={
            "target_modules": resolve_target_modules(model, train.target_modules),
            "precision": resolve_dtype(train.precision),
            "attention": resolve_attention(train.attention),
        }
    )
