"""Judges: one interface, `score(prompt, response)` and `compare(prompt, a, b)`, plus batched forms."""

from __future__ import annotations

from harness.config import JudgeConfig
from harness.judges.base import Judge, Judgment
from harness.judges.verifiable import VerifiableJudge


def get_judge(spec: str | JudgeConfig) -> Judge:
    """A judge from its config (or from a bare type name, with that type's defaults)."""
    config = spec if isinstance(spec, JudgeConfig) else JudgeConfig(type=spec)  # type: ignore[arg-type]
    if config.type == "verifiable":
        return VerifiableJudge(config)
    if config.type == "reward_model":
        from harness.judges.reward_model import RewardModelJudge

        return RewardModelJudge(config)
    from harness.judges.llm import LLMJudge

    return LLMJudge(config)


__all__ = ["Judge", "JudgeConfig", "Judgment", "VerifiableJudge", "get_judge"]
