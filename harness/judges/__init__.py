"""Judges: one interface, `score(prompt, response)` and `compare(prompt, a, b)`, plus batched forms.

A judge type is one module of this package, named as it registers, with a `@register`ed `Judge` subclass; the
registry finds it (modules starting with an underscore are helpers, which discovery skips).
"""

from __future__ import annotations

from harness.core.registry import JUDGES
from harness.judges.base import Judge, Judgment, register
from harness.judges.config import JudgeConfig
from harness.judges.verifiable import VerifiableJudge


def get_judge(spec: str | JudgeConfig) -> Judge:
    """A judge from its config (or from a bare type name, with that type's defaults)."""
    config = spec if isinstance(spec, JudgeConfig) else JudgeConfig(type=spec)
    return JUDGES.get(config.type)(config)


__all__ = ["Judge", "JudgeConfig", "Judgment", "VerifiableJudge", "get_judge", "register"]
