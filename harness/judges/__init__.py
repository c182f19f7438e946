"""Judges: one interface, `score(prompt, response)` and `compare(prompt, a, b)`."""

from __future__ import annotations

from harness.judges.base import Judge, Judgment
from harness.judges.verifiable import VerifiableJudge

_JUDGES: dict[str, type[Judge]] = {VerifiableJudge.name: VerifiableJudge}


def get_judge(name: str) -> Judge:
    if name not in _JUDGES:
        raise KeyError(f"unknown judge {name!r}; known: {', '.join(sorted(_JUDGES))}")
    return _JUDGES[name]()


__all__ = ["Judge", "Judgment", "VerifiableJudge", "get_judge"]
