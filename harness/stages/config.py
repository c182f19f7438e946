"""The `pool` and `select` sections: the candidate pool the pool stages sample and pair (pool.py, samples.py,
candidates.py), and the strategy the select stage runs (select.py), whose own parameter model checks `params`."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, PrivateAttr, ValidationError, field_validator, model_validator

from harness.core.registry import STRATEGIES
from harness.core.sections import Section
from harness.judges.config import JudgeConfig

StrategyName = Annotated[str, AfterValidator(STRATEGIES.validate)]
"""A strategy name, checked against the registry when the config is read (close matches in the message)."""


class PoolConfig(Section):
    """Candidate responses per prompt and how they become pairs."""

    k: int = Field(4, ge=2, description="responses sampled per prompt")
    max_new_tokens: int = Field(160, ge=8)
    temperature: float = Field(0.9, gt=0)
    top_p: float = Field(0.95, gt=0, le=1)
    batch_size: int = Field(
        192,
        ge=1,
        description="sequences decoding at once; finished ones leave and waiting prompts take their places, repeated "
        "prompts share a prefill (192 measured fastest on a 2-core CPU: benchmarks/throughput.py)",
    )
    judge: JudgeConfig = Field(
        default_factory=JudgeConfig,
        description="who scores the samples: 'verifiable' (constraint checkers; needs constrained prompts), or a "
        "mapping such as {type: reward_model, model: <hub id>} or {type: llm, backend: openai, base_url: ..., model: ...}",
    )
    pairing: Literal["all", "best_vs_rest", "best_worst"] = "all"
    min_margin: float = Field(0.0, ge=0, description="a pair needs chosen - rejected > min_margin")
    drop_truncated: bool = Field(True, description="drop samples cut off at max_new_tokens from pairs")
    max_length_gap: float | None = Field(
        None,
        ge=0,
        le=1,
        description="length-matched pairing: keep a pair only if its responses' word counts differ by at most this "
        "fraction of the longer one (e.g. 0.2); null = no limit. Guards against a judge's length bias teaching length",
    )

    k_max: int | None = Field(
        None,
        ge=2,
        description="raise K where prompts yield only ties: a prompt whose samples form no pair gets up to k more "
        "samples per round until it pairs or has k_max; null = K for every prompt",
    )
    seed: int | None = Field(
        None,
        description="the seed of the training prompts and the pool's sampling; null = the run seed. Fix it to vary "
        "selection and training over one shared pool (a matrix's seed axis then measures their variance only)",
    )

    @field_validator("judge", mode="before")
    @classmethod
    def _judge_by_name(cls, value: Any) -> Any:
        """`judge: verifiable` is shorthand for `judge: {type: verifiable}`."""
        return {"type": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _k_max_above_k(self) -> PoolConfig:
        if self.k_max is not None and self.k_max <= self.k:
            raise ValueError(f"pool.k_max ({self.k_max}) must be larger than pool.k ({self.k}), or null")
        return self


class SelectConfig(Section):
    strategy: StrategyName = Field("uniform", description="a registered strategy (`bench strategies` lists them)")
    budget: int = Field(32, ge=1, description="number of preference pairs every strategy gets")
    params: dict[str, Any] = Field(default_factory=dict, description="strategy-specific parameters")
    _typed: Any = PrivateAttr(None)

    @model_validator(mode="after")
    def _params_fit_strategy(self) -> "SelectConfig":
        """The strategy's own parameter model validates `params` once, with the rest of the config (every problem in
        one list); stages read the result through `typed_params`."""
        try:
            self._typed = STRATEGIES.get(self.strategy).Params.model_validate(self.params)
        except ValidationError as err:
            problems = "; ".join(
                f"select.params.{'.'.join(map(str, e['loc']))}: "
                + ("unknown key" if e["type"] == "extra_forbidden" else e["msg"])
                for e in err.errors()
            )
            raise ValueError(f"{problems} (strategy {self.strategy})") from None
        return self

    def typed_params(self) -> Any:
        """The strategy's validated parameter model (validated once, when the config loaded)."""
        return self._typed
