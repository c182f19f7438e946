"""The verifiable judge: the fraction of a prompt's IFEval-type constraints a response follows.

It needs no model, so it is exact and free, but it only sees the constraints, not whether
the answer is any good: reports label it as such.
"""

from __future__ import annotations

from harness.config import BenchError
from harness.ifeval_offline import check
from harness.judges.base import Judge, Judgment
from harness.records import Prompt


class VerifiableJudge(Judge):
    name = "verifiable"
    label = "verifiable (IFEval checkers; strict fraction of constraints followed; judges constraints only, not quality)"

    def unsupported_reason(self, prompt: Prompt) -> str | None:
        if prompt.meta.get("instruction_id_list"):
            return None
        return (
            f"prompt {prompt.id} (source {prompt.source}) has no verifiable constraints (meta.instruction_id_list), "
            "so the verifiable judge cannot score it. Use the built-in prompt set (prompts.source: builtin) "
            "or prompt rows that carry instruction_id_list and kwargs, as IFEval's do."
        )

    def score(self, prompt: Prompt, response: str) -> Judgment:
        reason = self.unsupported_reason(prompt)
        if reason:
            raise BenchError(reason)
        ids = prompt.meta["instruction_id_list"]
        kwargs_list = prompt.meta.get("kwargs") or [{} for _ in ids]
        user_text = prompt.messages[-1]["content"]
        strict, loose = [], []
        for instruction_id, kwargs in zip(ids, kwargs_list):
            s, lo = check(instruction_id, kwargs, user_text, response)
            strict.append(s)
            loose.append(lo)
        return Judgment(
            value=sum(strict) / len(strict),
            details={"strict": strict, "loose": loose, "loose_value": sum(loose) / len(loose)},
        )
