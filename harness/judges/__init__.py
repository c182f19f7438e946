"""Judges: one interface, `score(prompt, response)` and `compare(prompt, a, b)`, plus batched forms.

A judge type is one module of this package with a `@register_judge` class; the registry finds it.
"""

from __future__ import annotations

from harness.core.config import JudgeConfig
from harness.core.registry import JUDGES
from harness.judges.base import Judge, Judgment, register_judge
from harness.judges.verifiable import VerifiableJudge


def get_judge(spec: str | JudgeConfig) -> Judge:
    """A judge from its config (or from a bare type name, with that type's defaults)."""
    config = spec if isinstance(spec, JudgeConfig) else JudgeConfig(type=spec)
    return JUDGES.get(config.type)(config)


__all__ = ["Judge", "JudgeConfig", "Judgment", "VerifiableJudge", "get_judge", "register_judge"]
