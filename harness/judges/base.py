"""The judge interface shared by every judge.

A judgment either has a value or says why it has none (`error`): a judge that timed out, a
rating that could not be parsed or a constraint that cannot be checked here is *recorded* as
a failure and left out of the metric (with the count reported), never scored as zero.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any, ClassVar

from harness.core.io import content_hash
from harness.core.moved import warn_renamed
from harness.core.records import Prompt
from harness.core.registry import JUDGES, and_list
from harness.judges.config import JudgeConfig


@dataclass
class Judgment:
    value: float | None
    details: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.value is not None and self.error is None


JUDGE_FIELDS = ("backend", "base_url", "api_key_env", "judge_prompts")
"""The `JudgeConfig` fields that only some judge types read; each type lists the ones it takes."""


def register(cls: type["Judge"]) -> type["Judge"]:
    """Class decorator: the judge type `cls.name`, in a module of this package named after it (as every plugin
    kind registers: `register(plugin)`, the plugin carrying its name)."""
    return JUDGES.register(cls.name, cls)


def register_judge(cls: type["Judge"]) -> type["Judge"]:
    """`register`'s old name, kept for one release: a plugin that calls it runs, with a warning naming its file."""
    warn_renamed("harness.judges.base.register_judge", sys._getframe(1).f_code.co_filename)
    return register(cls)


class Judge:
    """A judge type: its verdicts, and what it declares about its config (read by the config
    validation and the preflight, which never branch on a judge's name)."""

    name: ClassVar[str]
    fields: ClassVar[frozenset[str]] = frozenset()
    """which of JUDGE_FIELDS this type reads (the others are refused when set)"""
    label: str
    """How reports name this judge, including whether it is weak."""
    weak: bool = False
    """A model under 1B parameters, or checkers that cannot see answer quality."""

    def __init__(self, config: JudgeConfig | None = None):
        self.config = config or JudgeConfig(type=self.name)  # type: ignore[arg-type]

    @classmethod
    def check_config(cls, cfg: JudgeConfig) -> None:
        """Refuse the fields this type does not read (ValueError; pydantic adds the field path)."""
        unread = [
            f for f in JUDGE_FIELDS if f not in cls.fields and getattr(cfg, f) != JudgeConfig.model_fields[f].default
        ]
        if unread:
            group, takers = JUDGES.readers(unread[0], JUDGE_FIELDS)
            raise ValueError(f"{and_list(group)} only apply to type: {' or '.join(takers)}")

    @classmethod
    def preflight(cls, cfg: JudgeConfig, field: str) -> None:
        """Before any stage runs: what this judge will load or call is there (BenchError if not)."""

    @property
    def id(self) -> str:
        """Stable id of everything that can change a verdict (never a secret: keys are read at call time)."""
        return f"{self.name}:{content_hash(self.config.verdict_key(), 12)}"

    def unsupported_reason(self, prompt: Prompt) -> str | None:
        """Why this judge cannot score responses to `prompt`, or None if it can.

        Asked before any sampling, so an unusable prompt set fails in seconds, not after the pool.
        """
        return None

    def score(self, prompt: Prompt, response: str) -> Judgment:
        return self.score_many([(prompt, response)])[0]

    def score_many(self, items: list[tuple[Prompt, str]]) -> list[Judgment]:
        raise NotImplementedError

    def compare(self, prompt: Prompt, a: str, b: str) -> Judgment:
        return self.compare_many([(prompt, a, b)])[0]

    def compare_many(self, items: list[tuple[Prompt, str, str]]) -> list[Judgment]:
        """1.0 if `a` is better, 0.0 if `b` is, 0.5 for a tie; by default from the two scores."""
        scores = self.score_many([(p, r) for p, a, b in items for r in (a, b)])
        out = []
        for i in range(len(items)):
            sa, sb = scores[2 * i], scores[2 * i + 1]
            if not (sa.ok and sb.ok):
                out.append(Judgment(None, error=sa.error or sb.error))
                continue
            value = 1.0 if sa.value > sb.value else 0.0 if sa.value < sb.value else 0.5  # type: ignore[operator]
            out.append(Judgment(value, details={"score_a": sa.value, "score_b": sb.value}))
        return out
