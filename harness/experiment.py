"""The experiment config: every section, assembled and validated at once.

A config is YAML; the CLI applies `--set dotted.key=value` overrides before validation, so a typo in a file and a
typo on the command line get the same error. Every problem found is reported at once, each with the field path and
what to do. Each section lives beside the code that reads it; this module, above the plugins, puts them together,
so reading a section's code never imports the whole schema, and core/ imports nothing above itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator

from harness.core.sections import Section, apply_overrides, read_mapping, validated
from harness.data.builtin import TASK_SETS
from harness.data.config import PromptsConfig
from harness.evaluation.config import EvaluateConfig, PreferenceConfig
from harness.generation.config import GenerationConfig
from harness.judges.config import JudgeConfig
from harness.models.config import EMBEDDED_MODEL, EmbeddingsConfig
from harness.stages.config import PoolConfig, SelectConfig
from harness.suites.config import SuiteConfig
from harness.training.config import FeaturesConfig, TrainConfig
from reports.config import ReportConfig

__all__ = [  # the sections, and the names harness.core.config had (its old path answers with this module for one release)
    "EMBEDDED_MODEL",
    "TASK_SETS",
    "EmbeddingsConfig",
    "EvaluateConfig",
    "ExperimentConfig",
    "FeaturesConfig",
    "GenerationConfig",
    "JudgeConfig",
    "PoolConfig",
    "PreferenceConfig",
    "PromptsConfig",
    "ReportConfig",
    "SelectConfig",
    "SuiteConfig",
    "TrainConfig",
    "apply_overrides",
    "load_config",
]


MOVED_SETTINGS = {
    **{f"evaluate.preference_{f}": f"preference.{f}" for f in ("holdout", "pairs", "k", "prompts", "source", "split")},
    "evaluate.n_examples": "report.n_examples",
}
"""Settings that moved section (config schema 2), refused at their old place with the new one named."""


class ExperimentConfig(Section):
    name: str = "default"
    seed: int = 0
    model: str = Field(EMBEDDED_MODEL, description="embedded default, a hub id, a local model folder, or a .gguf file")
    chat_template: str | None = Field(
        None,
        description="a Jinja chat-template file for `model`, replacing its tokenizer's own (needed when the tokenizer "
        "has none, as converted checkpoints often do); null = the tokenizer's own, or the GGUF file's",
    )
    cache_dir: str = "runs/cache"
    bundle: str | None = Field(
        None,
        description="a stage bundle (`bench cache export`: a shared pool's prompts, samples, embeddings and features) "
        "restored into cache_dir before the run, so that every run of a comparison, on any machine, uses that pool; "
        "a cache holding other contents under the same keys is refused",
    )
    generation: GenerationConfig = Field(default_factory=GenerationConfig)
    prompts: PromptsConfig = Field(default_factory=PromptsConfig)
    pool: PoolConfig = Field(default_factory=PoolConfig)
    embeddings: EmbeddingsConfig = Field(default_factory=EmbeddingsConfig)
    select: SelectConfig = Field(default_factory=SelectConfig)
    features: FeaturesConfig = Field(default_factory=FeaturesConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)
    preference: PreferenceConfig = Field(default_factory=PreferenceConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)

    @model_validator(mode="before")
    @classmethod
    def _moved_settings(cls, data: Any) -> Any:
        if isinstance(data, dict):
            old = [f"evaluate.{k}" for k in (data.get("evaluate") or {}) if f"evaluate.{k}" in MOVED_SETTINGS]
            if old:
                raise ValueError(
                    "; ".join(f"{o} is now {MOVED_SETTINGS[o]}" for o in old) + " (move it in the YAML or --set)"
                )
        return data

    @field_validator("chat_template")
    @classmethod
    def _template_file_exists(cls, value: str | None) -> str | None:
        if value is not None:
            path = Path(value).expanduser()
            if not path.is_file():
                raise ValueError(
                    f"{value} does not exist; pass a file holding a Jinja chat template (e.g. the tokenizer_config.json "
                    "`chat_template` of a model with the same chat format), or null for the tokenizer's own"
                )
            try:
                path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                raise ValueError(f"{value} is not UTF-8 text; a chat template is a Jinja text file") from None
        return value

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        if not value or any(c in value for c in "/\\\0") or value.startswith("."):
            raise ValueError("must be a plain name (no slashes, not starting with '.')")
        return value

    @property
    def pool_seed(self) -> int:
        """The seed of the training prompts and the pool: `pool.seed`, or the run seed when unset."""
        return self.seed if self.pool.seed is None else self.pool.seed


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> ExperimentConfig:
    """Read YAML (or defaults when `path` is None), apply overrides, validate everything at once."""
    data, origin = read_mapping(path, "experiments/default.yaml")
    return validated(ExperimentConfig, apply_overrides(data, overrides or []), origin)
