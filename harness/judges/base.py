"""The judge interface shared by every judge.

A judgment either has a value or says why it has none (`error`): a judge that timed out, a
rating that could not be parsed or a constraint that cannot be checked here is *recorded* as
a failure and left out of the metric (with the count reported), never scored as zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from harness.config import JudgeConfig
from harness.io import content_hash
from harness.records import Prompt


@dataclass
class Judgment:
    value: float | None
    details: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.value is not None and self.error is None


class Judge:
    name: ClassVar[str]
    label: str
    """How reports name this judge, including whether it is weak."""
    weak: bool = False
    """A model under 1B parameters, or checkers that cannot see answer quality."""

    def __init__(self, config: JudgeConfig | None = None):
        self.config = config or JudgeConfig(type=self.name)  # type: ignore[arg-type]

    @property
    def id(self) -> str:
        """Stable id of everything that can change a verdict (never a secret: keys are read at call time)."""
        verdict_fields = self.config.model_dump(exclude={"concurrency", "timeout_s", "max_retries", "api_key_env", "batch_size"})
        return f"{self.name}:{content_hash(verdict_fields, 12)}"

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
