"""The judge interface shared by every judge."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from harness.records import Prompt


@dataclass
class Judgment:
    value: float
    details: dict[str, Any] = field(default_factory=dict)


class Judge:
    name: ClassVar[str]
    label: ClassVar[str]
    """How reports name this judge, including whether it is weak."""

    def score(self, prompt: Prompt, response: str) -> Judgment:
        raise NotImplementedError

    def unsupported_reason(self, prompt: Prompt) -> str | None:
        """Why this judge cannot score responses to `prompt`, or None if it can.

        Asked before any sampling, so an unusable prompt set fails in seconds, not after the pool.
        """
        return None

    def compare(self, prompt: Prompt, a: str, b: str) -> float:
        """1.0 if `a` is better, 0.0 if `b` is, 0.5 for a tie (ties count half)."""
        sa, sb = self.score(prompt, a).value, self.score(prompt, b).value
        return 1.0 if sa > sb else 0.0 if sa < sb else 0.5
