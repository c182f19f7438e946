"""The judge section (`pool.judge`, a suite's `judge`): which judge, with what settings; each judge type checks the
fields it reads (harness/judges/base.py `check_config`)."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, Field, model_validator

from harness.core.registry import JUDGES
from harness.core.sections import Section

JudgeName = Annotated[str, AfterValidator(JUDGES.validate)]
"""A judge name, checked against the registry when the config is read (close matches in the message)."""


class JudgeConfig(Section):
    """Who judges: `verifiable` (IFEval/IFBench checkers), a `reward_model`, or an `llm`.

    One flat record, so that `--set judge.model=...` works the same for every type; fields that
    do not belong to the chosen type are refused rather than ignored.
    """

    TRANSPORT_FIELDS: ClassVar[frozenset[str]] = frozenset(
        {"concurrency", "timeout_s", "max_retries", "api_key_env", "batch_size"}
    )
    """How verdicts are fetched, not what they are: left out of every key (judge ids, pools)."""

    type: JudgeName = Field(
        "verifiable", description="a registered judge: verifiable, reward_model, llm, or one of your own"
    )
    model: str | None = Field(
        None,
        description="reward_model: a sequence-classification model (hub id or folder); llm: the judge model "
        "(transformers back end: embedded default, hub id or folder; openai back end: the served model name)",
    )
    backend: Literal["transformers", "openai"] = Field(
        "transformers", description="llm only: a local transformers model, or any OpenAI-compatible HTTP endpoint"
    )
    base_url: str | None = Field(None, description="openai back end: e.g. http://127.0.0.1:8000/v1")
    api_key_env: str | None = Field(
        None, description="openai back end: NAME of the environment variable holding the API key (never the key)"
    )
    mode: Literal["auto", "generate", "logprobs"] = Field(
        "auto",
        description="llm: 'generate' lets the judge explain, then parses [[rating]] / [[A]]; 'logprobs' prefills "
        "'Rating: [[' or 'Verdict: [[' and reads the judge's next-token probabilities (expected rating; most "
        "likely verdict), one forward pass and never unparsable; 'auto' = logprobs for local transformers "
        "judges (small models rarely follow the output format), generate for endpoints",
    )
    max_new_tokens: int = Field(
        192, ge=8, description="llm generate mode: tokens for the judge's explanation and verdict"
    )
    temperature: float = Field(0.0, ge=0)
    batch_size: int = Field(8, ge=1, description="local models: judgments per forward pass")
    max_length: int = Field(2048, ge=64, description="local models: prompt tokens kept (left-truncated)")
    concurrency: int = Field(4, ge=1, description="openai back end: requests in flight")
    timeout_s: float = Field(120.0, gt=0)
    max_retries: int = Field(4, ge=0, description="openai back end: retries with exponential backoff")
    judge_prompts: str | None = Field(
        None,
        description="llm: FastChat's judge_prompts.jsonl (e.g. ../shared/data/mt_bench/judge_prompts.jsonl) "
        "for MT-Bench numbers comparable with published ones; default: our own prompts",
    )

    @model_validator(mode="before")
    @classmethod
    def _endpoint_means_openai(cls, data: Any) -> Any:
        """A judge given an endpoint (base_url) and no backend talks to it: backend openai."""
        if isinstance(data, dict) and data.get("base_url") and "backend" not in data:
            return {**data, "backend": "openai"}
        return data

    @model_validator(mode="after")
    def _fields_fit_type(self) -> "JudgeConfig":
        """The judge type says which fields it reads and checks them (harness/judges/base.py)."""
        JUDGES.get(self.type).check_config(self)
        return self

    def verdict_key(self) -> dict[str, Any]:
        """The settings that can change a verdict: everything but the transport."""
        return self.model_dump(exclude=set(self.TRANSPORT_FIELDS))
