"""The verifiable judge: the fraction of a prompt's IFEval- or IFBench-type constraints a response follows.

It needs no model, so it is exact and free, but it only sees the constraints, not whether
the answer is any good: reports label it as such. Prompts say which checkers apply in
`meta.checkers` ("ifeval", the default, or "ifbench").
"""

from __future__ import annotations

from harness.constraints.checkers import check, ifbench_unscorable_reason
from harness.core.errors import BenchError
from harness.core.records import Prompt
from harness.judges.base import Judge, Judgment, register


@register
class VerifiableJudge(Judge):
    name = "verifiable"
    label = (
        "verifiable (IFEval/IFBench checkers; fraction of constraints followed; judges constraints only, not quality)"
    )

    def unsupported_reason(self, prompt: Prompt) -> str | None:
        if prompt.meta.get("instruction_id_list"):
            return None
        return (
            f"prompt {prompt.id} (source {prompt.source}) has no verifiable constraints (meta.instruction_id_list), "
            "so the verifiable judge cannot score it. Use the built-in prompt set (prompts.source: builtin) "
            "or prompt rows that carry instruction_id_list and kwargs, as IFEval's do."
        )

    def score_many(self, items: list[tuple[Prompt, str]]) -> list[Judgment]:
        return [self._score(p, r) for p, r in items]

    def _score(self, prompt: Prompt, response: str) -> Judgment:
        reason = self.unsupported_reason(prompt)
        if reason:
            raise BenchError(reason)
        checkers = prompt.meta.get("checkers", "ifeval")
        ids = prompt.meta["instruction_id_list"]
        kwargs_list = prompt.meta.get("kwargs") or [{} for _ in ids]
        user_text = prompt.messages[-1]["content"]
        strict: list[bool | None] = []
        loose: list[bool | None] = []
        unscorable = []
        for instruction_id, kwargs in zip(ids, kwargs_list):
            why = ifbench_unscorable_reason(instruction_id) if checkers == "ifbench" else None
            if why:
                strict.append(None)
                loose.append(None)
                unscorable.append(why)
                continue
            s, lo = check(instruction_id, kwargs, user_text, response, checkers=checkers)
            strict.append(s)
            loose.append(lo)
        details = {"strict": strict, "loose": loose}
        if unscorable:
            return Judgment(None, details=details, error="; ".join(unscorable))
        return Judgment(
            value=sum(strict) / len(strict),  # type: ignore[arg-type]
            details={**details, "loose_value": sum(loose) / len(loose)},  # type: ignore[arg-type]
        )
