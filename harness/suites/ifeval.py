"""`ifeval`: IFEval-format prompts (by default the run's own held-out prompts), scored by the verifiable checkers and
the task check (harness/suites/_instruction_following.py)."""

from __future__ import annotations

from harness.suites._instruction_following import GRADER, evaluate, suite_prompts
from harness.suites.base import Suite, register

register(
    Suite(
        evaluate,
        preflight=lambda cfg, field: suite_prompts(cfg),
        asks_heldout=lambda cfg: not cfg.path,
        grader=GRADER,
        name="ifeval",
    )
)
