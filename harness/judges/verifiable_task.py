"""The `verifiable_task` judge: the constraints followed AND the task done.

The verifiable judge alone rewards an answer that is only the constraint's marker (`P.S.`, `[name]`), and a
model trained on its labels learns to answer with the marker alone. This judge scores like it (the share of the
prompt's constraints followed), but scores 0 where the task check (harness/evaluation/task_check.py) finds that the
answer does not do its base task, and says why in its details. It labels the testbed's pool; `verifiable` stays
the constraint-only, IFEval-comparable judge.
"""

from __future__ import annotations

from harness.core.io import content_hash
from harness.core.records import Prompt
from harness.evaluation.task_check import VERSION, TaskCheck
from harness.judges.base import Judgment, register
from harness.judges.verifiable import VerifiableJudge


@register
class VerifiableTaskJudge(VerifiableJudge):
    name = "verifiable_task"
    label = (
        "verifiable AND task check (IFEval/IFBench checkers: fraction of constraints followed; 0 where the answer does not "
        "do its base task: marker-only, loop, echo, refusal, off-topic)"
    )

    @property
    def id(self) -> str:
        """The task check's version changes verdicts too."""
        return f"{self.name}:{content_hash([self.config.verdict_key(), VERSION], 12)}"

    def score_many(self, items: list[tuple[Prompt, str]]) -> list[Judgment]:
        constraints = super().score_many(items)
        tasks = TaskCheck().check_many(items)
        out = []
        for judgment, task in zip(constraints, tasks):
            details = {**judgment.details, "task": {"done": task.done, "kind": task.kind}}
            value = judgment.value if judgment.value is None or task.done else 0.0
            out.append(Judgment(value, details, judgment.error))
        return out
