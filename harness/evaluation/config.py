"""The `evaluate` and `preference` sections: the held-out constraint evaluation (constraint_accuracy.py), the suites
run beside it, and held-out preference accuracy (preference.py)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from harness.core.sections import Section
from harness.suites.config import SuiteConfig


class EvaluateConfig(Section):
    """Held-out evaluation; its prompts do not depend on the run seed, so runs are paired."""

    n_prompts: int = Field(
        48,
        ge=1,
        description="held-out prompts (built-in set: at most every held-out task x constraint type; a smaller n is a "
        "prefix of a larger one)",
    )
    prompt_seed: int = 1234
    constraints_per_prompt: int = Field(1, ge=1, le=3)
    max_new_tokens: int = Field(160, ge=8)
    batch_size: int = Field(
        192, ge=1, description="prompts decoding at once (continuous batching; 192 measured fastest on a 2-core CPU)"
    )
    bootstrap: int = Field(1000, ge=100)
    samples: int = Field(
        0,
        ge=0,
        description="sampled outputs per held-out prompt besides the greedy one (seeded by prompt_seed, so base and "
        "tuned draw with the same seeds): adds mean_verifiable_reward, the share of a prompt's constraints a sample "
        "follows, averaged over samples, a far less noisy per-prompt outcome than one greedy pass/fail. Costs about "
        "`samples` times the greedy evaluation",
    )
    sample_temperature: float = Field(0.9, gt=0, description="with samples > 0; top_p is 0.95")
    control: bool = Field(
        False,
        description="bench run: also train and evaluate this selection's shuffled-label control (control_shuffled with "
        "this strategy as its reference; a second run folder, <out>-control) and quote both effects in the report's "
        "headline, so that one run shows whether the labels, not training alone, moved the model. Matrices list "
        "control_shuffled as a strategy instead",
    )

    suites: list[SuiteConfig] = Field(
        default_factory=list,
        description="further suites run on the base and the tuned model (bench eval runs them one model at a time)",
    )

    def key(self) -> dict[str, Any]:
        """The greedy evaluation's settings: every field but those configuring other stages (each suite
        keys its own stages; the control is a run of its own)."""
        return self.model_dump(exclude={"suites", "control"})


class PreferenceConfig(Section):
    """Held-out preference accuracy: how often the tuned model's implicit DPO reward ranks held-out
    pairs right. The pairs come from the pool (`holdout`), from base-model samples on evaluation
    prompts (`k` > 0) or from a preference data set (`source`)."""

    holdout: float = Field(
        0.2,
        ge=0,
        lt=1,
        description="share of the pool's prompts (with pairs) reserved for held-out preference accuracy; no strategy "
        "sees them. 0 turns the metric off",
    )
    pairs: int = Field(64, ge=1, description="at most this many held-out pairs are scored")
    k: int = Field(
        0,
        ge=0,
        description="> 0: the held-out pairs are sampled on evaluation prompts instead: K base-model samples per "
        "prompt, judged and paired exactly like the pool (seeded by prompt_seed), so every strategy and every seed "
        "is scored on the same pairs and the pool keeps all its prompts. Costs one pool-sized generation per model, "
        "shared by a whole matrix",
    )
    prompts: int = Field(
        64, ge=1, description="with k > 0: how many evaluation prompts the held-out pairs are sampled on"
    )
    source: str | None = Field(
        None,
        description="a preference data set (file or hub id, any prompts.format) whose own pairs are the held-out "
        "pairs, e.g. HH-RLHF's human-labelled test split; prompts that are also training prompts are left out. "
        "Shared by every strategy and seed; replaces holdout",
    )
    split: str = Field("test", description="hub ids only: the split `source` is read from")

    @model_validator(mode="after")
    def _one_source(self) -> "PreferenceConfig":
        if self.source and self.k:
            raise ValueError("set preference.source or preference.k, not both: each gives the held-out pairs")
        return self

    def key(self) -> dict[str, Any]:
        """What changes the held-out pairs or their scoring (`split` only with a `source`)."""
        return self.model_dump(exclude=None if self.source else {"split"})
