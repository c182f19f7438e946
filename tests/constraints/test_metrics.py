"""One definition per metric: the evaluate stage, the ifeval suite and `bench power` (whose per-prompt
outcomes the comparison report's paired tests also use) give the same numbers on the same outputs.

The outputs are real verdicts of the verifiable judge on built-in held-out prompts with one and
with two constraints (so the pooled instruction-level ratio differs from a mean of per-prompt
shares), plus one constraint marked unscorable, as a checker that cannot run here is.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harness.analysis.runs import run_outcomes
from harness.constraints.metrics import (
    PRIMARY_METRIC,
    TASK_METRICS,
    instruction_share,
    prompt_pass,
    task_unit,
    unit_outcomes,
)
from harness.core.records import Prompt
from harness.data.builtin import build_builtin_prompts
from harness.evaluation.config import EvaluateConfig
from harness.evaluation.constraint_accuracy import compute_metrics
from harness.evaluation.task_check import TaskCheck
from harness.judges import get_judge
from harness.stages.outputs import write_eval_outputs
from harness.suites._instruction_following import judged_row, suite_metrics

REPO = Path(__file__).resolve().parents[2]
TEXTS = [
    "ok",
    "Hello, world! This is a longer answer with several words in it.",
    "NO COMMAS HERE JUST CAPITALS",
    "* one\n* two\n* three",
]


def _rows(side: int) -> list[dict]:
    one = build_builtin_prompts(seed=3, n_train=None, n_eval=8, constraints_per_prompt=1)[1]
    two = build_builtin_prompts(seed=3, n_train=None, n_eval=8, constraints_per_prompt=2)[1]
    judge = get_judge("verifiable")
    texts = [TEXTS[(n + side) % len(TEXTS)] if n % 3 else p.messages[-1]["content"] for n, p in enumerate(one + two)]
    tasks = TaskCheck().check_many(list(zip(one + two, texts)))
    rows = []
    for n, (prompt, text, task) in enumerate(zip(one + two, texts, tasks)):
        verdict = judge.score(prompt, text)
        rows.append(judged_row(prompt, {"text": text, "truncated": n % 4 == side, "n_tokens": 1}, verdict, task))
        rows[-1]["strict"], rows[-1]["loose"] = list(rows[-1]["strict"]), list(rows[-1]["loose"])
    rows[-1]["strict"][0] = None  # a two-constraint prompt whose first checker could not run
    return rows


def test_evaluate_stage_ifeval_suite_and_power_agree(tmp_path: Path) -> None:
    base, tuned = _rows(0), _rows(1)
    assert len({len(r["strict"]) for r in tuned}) == 2 and any(None in r["strict"] for r in tuned)
    stage = compute_metrics(base, tuned, EvaluateConfig(bootstrap=200))["ifeval_heldout"]
    judge = get_judge("verifiable")
    suite = suite_metrics(tuned, 200, judge.label, judge.weak)
    write_eval_outputs(tmp_path, base, tuned)
    power = run_outcomes(tmp_path)
    for name in (
        "prompt_strict_acc",
        "instruction_strict_acc",
        "prompt_loose_acc",
        "instruction_loose_acc",
        *TASK_METRICS,
    ):
        value = stage[f"tuned.{name}"]["value"]
        assert suite[name]["value"] == pytest.approx(value) and suite[name]["n"] == stage[f"tuned.{name}"]["n"]
        assert float(np.mean(list(power[name].values()))) == pytest.approx(value), name
    # the unscorable prompt is left out of prompt-level accuracy everywhere, never failed
    assert stage["tuned.prompt_strict_acc"]["n"] == len(tuned) - 1 == len(power["prompt_strict_acc"])
    assert suite["prompt_strict_acc"]["n_unscorable"] == 1
    # instruction-level accuracy is the pooled ratio (constraints followed / checked), not a mean of shares
    followed = sum(v for r in tuned for v in r["strict"] if v is not None)
    checked = sum(v is not None for r in tuned for v in r["strict"])
    assert stage["tuned.instruction_strict_acc"]["value"] == pytest.approx(followed / checked)
    shares = [instruction_share(r["strict"]) for r in tuned]
    assert float(np.mean(shares)) != pytest.approx(followed / checked)
    # the paired difference is over the prompts scorable on both sides
    pairs = [(prompt_pass(t["strict"]), prompt_pass(b["strict"])) for t, b in zip(tuned, base)]
    diffs = [t - b for t, b in pairs if t is not None and b is not None]
    assert stage["paired_diff.prompt_strict_acc"]["value"] == pytest.approx(float(np.mean(diffs)))
    assert stage["paired_diff.prompt_strict_acc"]["n"] == len(diffs)


def test_a_cut_answer_counts_as_not_done_on_the_primary_metric() -> None:
    """The primary metric is constraint AND task AND whole: a passing answer cut at max_new_tokens fails it, and
    nothing else changes; without the cut flag (rows graded before it was recorded) it is not computed. The answers
    are the adversarial corpus's real ones and its degenerate ones, every one written to pass its checker."""
    corpus = [
        json.loads(line)
        for line in (REPO / "tests" / "fixtures" / "task_check_adversarial.jsonl").read_text().splitlines()
        if line
    ]
    prompts = [
        Prompt.make(
            [{"role": "user", "content": r["prompt"]}],
            "builtin",
            {"base_task": r["base_task"], "instruction_id_list": [r["instruction"]], "kwargs": [r.get("kwargs") or {}]},
        )
        for r in corpus
    ]
    judge, tasks = (
        get_judge("verifiable"),
        TaskCheck().check_many([(p, r["response"]) for p, r in zip(prompts, corpus)]),
    )
    rows = [
        judged_row(p, {"text": r["response"], "truncated": n % 3 == 0, "n_tokens": 1}, judge.score(p, r["response"]), t)
        for n, (p, r, t) in enumerate(zip(prompts, corpus, tasks))
    ]
    with_task = [task_unit("prompt_strict_task_acc", r["strict"], r["task"]) for r in rows]
    uncut = [task_unit(PRIMARY_METRIC, r["strict"], r["task"]) for r in rows]
    assert PRIMARY_METRIC == "prompt_strict_task_uncut_acc"
    assert sum(w == 1.0 and r["truncated"] for w, r in zip(with_task, rows)) >= 10
    assert all(u == (0.0 if r["truncated"] else w) for u, w, r in zip(uncut, with_task, rows))
    base = [{**r, "task": {**r["task"], "cut": False}} for r in rows]
    metrics = compute_metrics(base, rows, EvaluateConfig(bootstrap=100))["ifeval_heldout"]
    assert metrics[f"tuned.{PRIMARY_METRIC}"]["value"] == pytest.approx(float(np.mean(uncut)))
    assert metrics[f"tuned.{PRIMARY_METRIC}"]["value"] < metrics["tuned.prompt_strict_task_acc"]["value"]
    assert (
        metrics[f"paired_diff.{PRIMARY_METRIC}"]["value"] < 0 == metrics["paired_diff.prompt_strict_task_acc"]["value"]
    )
    assert metrics["tuned.cut_share"]["value"] == pytest.approx(float(np.mean([r["truncated"] for r in rows])))
    unknown = [{**r, "task": {k: v for k, v in r["task"].items() if k != "cut"}} for r in rows]
    stale = compute_metrics(unknown, unknown, EvaluateConfig(bootstrap=100))["ifeval_heldout"]
    assert f"tuned.{PRIMARY_METRIC}" not in stale and "tuned.prompt_strict_task_acc" in stale


def test_unit_outcomes_average_to_the_metric() -> None:
    verdicts = {"a": [True, True], "b": [True, False, False], "c": [None, True], "d": [False]}
    prompt = unit_outcomes("prompt_strict_acc", verdicts)
    assert prompt == {"a": 1.0, "b": 0.0, "d": 0.0}  # c cannot be scored whole
    instruction = unit_outcomes("instruction_strict_acc", verdicts)
    assert float(np.mean(list(instruction.values()))) == pytest.approx(4 / 7)
