"""`mt_bench`: 80 two-turn questions, single-answer graded 1-10, per turn and per category.

The second turn is generated with the model's own first answer in the conversation, as in
FastChat. Math, reasoning and coding questions are graded against the GPT-4 reference answers
(FastChat's NEED_REF_CATS). Decoding is greedy for every category (FastChat samples writing and
roleplay at temperature 0.7), so runs are deterministic. Exports FastChat's formats:
`model_answer/<model>.jsonl` and `model_judgment/<judge>_single.jsonl`.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from harness.core.errors import BenchError
from harness.core.io import content_hash, safe_filename, write_jsonl
from harness.core.records import Prompt
from harness.core.stats import mean_ci, metric, ratio_ci
from harness.suites.base import (
    EvalTarget,
    Suite,
    SuiteContext,
    cached_judge,
    failure_summary,
    generate_cached,
    register,
)
from harness.suites.config import SuiteConfig

NEED_REF_CATS = ("math", "reasoning", "coding")


def _read_jsonl(path: Path, what: str) -> list[dict[str, Any]]:
    rows = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise BenchError(f"{path} line {lineno}: not valid JSON ({err.msg}); expected {what}.") from None
    return rows


def read_questions(cfg: SuiteConfig) -> tuple[list[dict[str, Any]], dict[int, list[str]]]:
    """Questions and reference answers (question_id -> turns) from files or a FastChat data folder."""
    if cfg.path is None:
        raise BenchError(
            "suite mt_bench needs path: question.jsonl or FastChat's data/mt_bench folder "
            "(here: ../shared/data/mt_bench/question.jsonl)."
        )
    path = Path(cfg.path).expanduser()
    folder = path if path.is_dir() else path.parent
    questions_file = path / "question.jsonl" if path.is_dir() else path
    if not questions_file.is_file():
        raise BenchError(f"suite mt_bench: {questions_file} does not exist.")
    questions = _read_jsonl(questions_file, "MT-Bench questions")
    for i, q in enumerate(questions, 1):
        if not (isinstance(q.get("turns"), list) and q["turns"] and "question_id" in q and "category" in q):
            raise BenchError(f"{questions_file} line {i}: needs question_id, category and a non-empty turns list.")
    if cfg.reference:
        ref_file = Path(cfg.reference).expanduser()
    else:
        candidates = [folder / "reference_answer" / "gpt-4.jsonl", folder / "reference_answer_gpt-4.jsonl"]
        ref_file = next((c for c in candidates if c.is_file()), candidates[0])
    refs: dict[int, list[str]] = {}
    if ref_file.is_file():
        refs = {r["question_id"]: r["choices"][0]["turns"] for r in _read_jsonl(ref_file, "FastChat reference answers")}
    needed = [q["question_id"] for q in questions if q["category"] in NEED_REF_CATS and q["question_id"] not in refs]
    if needed:
        raise BenchError(
            f"suite mt_bench: no reference answer for {len(needed)} math/reasoning/coding question(s) "
            f"(e.g. {needed[0]}); set reference: to FastChat's reference_answer/gpt-4.jsonl."
        )
    return (questions[: cfg.limit] if cfg.limit else questions), refs


def evaluate_mt_bench(cfg: SuiteConfig, target: EvalTarget, out: Path, ctx: SuiteContext) -> dict[str, dict]:
    cache_dir = ctx.cache_dir
    questions, refs = read_questions(cfg)
    judge, cached = cached_judge(cfg.judge_config(), cache_dir)  # type: ignore[arg-type]
    n_turns = min(len(q["turns"]) for q in questions)
    convs: list[list[dict[str, str]]] = [[] for _ in questions]
    answers: list[list[str]] = [[] for _ in questions]
    items = []  # (question index, turn, prompt, answer)
    for turn in range(n_turns):
        for conv, q in zip(convs, questions):
            conv.append({"role": "user", "content": q["turns"][turn]})
        gens = generate_cached(cfg, target, cache_dir, [list(c) for c in convs], f"turn {turn + 1}")
        for i, (conv, q, g) in enumerate(zip(convs, questions, gens)):
            meta = {"reference": refs[q["question_id"]]} if q["category"] in NEED_REF_CATS else {}
            items.append((i, turn, Prompt.make(list(conv), source="mt_bench", meta=meta), g["text"]))
            conv.append({"role": "assistant", "content": g["text"]})
            answers[i].append(g["text"])
    judgments = cached.score_many([(p, a) for _, _, p, a in items])

    # the unit is the question: its turns share the question, the answer and the judge's view of both
    by_turn: dict[int, list[float]] = defaultdict(list)
    sums, counts = np.zeros(len(questions)), np.zeros(len(questions))
    for (i, turn, _, _), j in zip(items, judgments):
        if j.ok:
            by_turn[turn].append(j.value)  # type: ignore[arg-type]
            sums[i] += j.value  # type: ignore[operator]
            counts[i] += 1
    fails = failure_summary(judgments)

    def clustered(index: list[int]) -> dict:
        """FastChat's mean over judgments, with a CI that resamples questions (not judgments)."""
        judged = [i for i in index if counts[i]]
        value_ci = ratio_ci(sums[judged], counts[judged], n_boot=cfg.bootstrap, seed=0)
        return metric(
            value_ci,
            int(counts[judged].sum()),
            judge.label,
            judge.weak,
            unit="question",
            n_questions=len(judged),
            **fails,
        )

    metrics = {"score": clustered(list(range(len(questions))))}
    for turn in range(n_turns):  # one judgment per question: the questions are the units already
        metrics[f"score_turn{turn + 1}"] = metric(
            mean_ci(by_turn[turn], n_boot=cfg.bootstrap, seed=0), len(by_turn[turn]), judge.label, judge.weak, **fails
        )
    for cat in sorted({q["category"] for q in questions}):
        metrics[f"score.{cat}"] = clustered([i for i, q in enumerate(questions) if q["category"] == cat])
    _export(out, target, judge.id, judge.config.model or "local", questions, answers, items, judgments)
    return metrics


def _export(
    out: Path, target: EvalTarget, judge_id: str, judge_model: str, questions, answers, items, judgments
) -> None:
    now = time.time()
    model_id = target.label
    write_jsonl(
        out / "model_answer" / f"{safe_filename(model_id, 'model')}.jsonl",
        [
            {
                "question_id": q["question_id"],
                "answer_id": content_hash([model_id, q["question_id"], a], 22),
                "model_id": model_id,
                "choices": [{"index": 0, "turns": a}],
                "tstamp": now,
            }
            for q, a in zip(questions, answers)
        ],
    )
    write_jsonl(
        out / "model_judgment" / f"{judge_id.replace(':', '-')}_single.jsonl",
        [
            {
                "question_id": questions[i]["question_id"],
                "model": model_id,
                "judge": [judge_model, j.details.get("template")],
                "judgment": j.details.get("reply", ""),
                "score": j.value if j.ok else -1,  # FastChat's marker for an unparsable judgment
                "turn": turn + 1,
                "error": j.error,
                "tstamp": now,
            }
            for (i, turn, _, _), j in zip(items, judgments)
        ],
    )


register(
    Suite(
        evaluate_mt_bench,
        default_judge="llm",
        fields=frozenset({"reference"}),
        preflight=lambda cfg, field: read_questions(cfg),
        name="mt_bench",
    )
)
