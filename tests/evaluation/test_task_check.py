"""The task check and the verifiable_task judge on real prompts: answers written to pass the constraint checkers
without doing the task (tests/fixtures/task_check_adversarial.jsonl, every one verified to pass its checker) are
rejected, real answers beside them, however short, are accepted; and the hand-labelled calibration set is what
benchmarks/task_check.py says it is."""

from __future__ import annotations

import collections
import json
from pathlib import Path

import pytest

from harness.constraints.checkers import check
from harness.constraints.metrics import DEGENERATE_KINDS
from harness.core.records import Prompt
from harness.evaluation.task_check import TaskCheck, without_repeats
from harness.judges import get_judge

REPO = Path(__file__).resolve().parents[2]
TESTBED_TYPES = {
    "detectable_content:number_placeholders",
    "detectable_content:postscript",
    "detectable_format:multiple_sections",
    "detectable_format:number_bullet_lists",
    "detectable_format:number_highlighted_sections",
    "detectable_format:title",
    "keywords:existence",
    "keywords:forbidden_words",
    "keywords:frequency",
    "punctuation:no_comma",
    "startend:end_checker",
}


def rows(name: str) -> list[dict]:
    return [json.loads(line) for line in (REPO / name).read_text(encoding="utf-8").splitlines() if line.strip()]


def prompt(row: dict) -> Prompt:
    instructions = row.get("instructions") or [row["instruction"]]
    kwargs = row.get("kwargs")
    return Prompt.make(
        [{"role": "user", "content": row["prompt"]}],
        "builtin",
        {"base_task": row["base_task"], "instruction_id_list": instructions, "kwargs": [kwargs] if kwargs else [{}]},
    )


@pytest.fixture(scope="module")
def adversarial() -> list[tuple[dict, bool, str]]:
    corpus = rows("tests/fixtures/task_check_adversarial.jsonl")
    verdicts = TaskCheck().check_many([(prompt(r), r["response"]) for r in corpus])
    return [(r, v.done, v.kind) for r, v in zip(corpus, verdicts)]


def test_the_adversarial_corpus_passes_the_checkers_and_covers_every_testbed_type(adversarial) -> None:
    corpus = [r for r, _, _ in adversarial]
    degenerate = [r for r in corpus if not r["does_task"]]
    assert len(degenerate) >= 60 and {r["instruction"] for r in degenerate} == TESTBED_TYPES
    assert set(DEGENERATE_KINDS) == {r["kind"] for r in degenerate}
    assert {r["instruction"] for r in corpus if r["does_task"]} == TESTBED_TYPES
    for r in corpus:  # what makes them adversarial: the constraint-only judge passes every one
        assert check(r["instruction"], r["kwargs"], r["prompt"], r["response"])[0], r["id"]


def test_the_check_rejects_answers_that_game_the_checkers_and_accepts_real_ones(adversarial) -> None:
    real = [done for r, done, _ in adversarial if r["does_task"]]
    assert all(real), [r["id"] for r, done, _ in adversarial if r["does_task"] and not done]
    caught = collections.Counter(r["kind"] for r, done, _ in adversarial if not r["does_task"] and not done)
    total = collections.Counter(r["kind"] for r, _, _ in adversarial if not r["does_task"])
    assert sum(caught.values()) >= 0.85 * sum(total.values()), (caught, total)
    for kind in ("marker_only", "loop", "echo", "refusal"):  # the loophole's own kinds, all but one at most
        assert caught[kind] >= total[kind] - 1, (kind, caught, total)


@pytest.mark.parametrize(
    "text,done,kind",
    [
        ("P.S.", False, "marker_only"),
        ("[name]", False, "marker_only"),
        ("SECTION 1: A SECTION 1\nSECTION 2: A SECTION 2\nSECTION 3: A SECTION 3", False, "marker_only"),
        ("Cats purr. Cats purr. Cats purr. Cats purr. Cats purr. Cats purr.", False, "loop"),
        ("Why do cats purr? Cats purr.", False, "echo"),
        ("I'm sorry, but as a text-based AI I cannot answer questions about animals.", False, "refusal"),
        (
            "Cats purr when they are content, and also to soothe themselves when hurt. P.S. Kittens purr too.",
            True,
            "ok",
        ),
        ("They purr to show contentment. P.S. Thanks for asking!", True, "ok"),
    ],
)
def test_verdicts_on_one_built_in_task(text: str, done: bool, kind: str) -> None:
    cats = Prompt.make(
        [
            {
                "role": "user",
                "content": "Why do cats purr? Answer briefly.\n\nEnd your answer with a postscript starting with P.S.",
            }
        ],
        "builtin",
        {"base_task": "s001", "instruction_id_list": ["detectable_content:postscript"]},
    )
    verdict = TaskCheck().check_many([(cats, text)])[0]
    assert (verdict.done, verdict.kind) == (done, kind), verdict.details


def test_repeats_are_said_once() -> None:
    assert without_repeats("Happy! Happy! Happy! Happy!") == "Happy!"
    assert without_repeats("Go now. Go now.\nGo now. Then rest.") == "Go now. Then rest."


def test_the_verifiable_task_judge_scores_the_constraint_only_where_the_task_is_done() -> None:
    corpus = rows("tests/fixtures/task_check_adversarial.jsonl")
    plain, both = get_judge("verifiable"), get_judge("verifiable_task")
    for r in corpus[:30]:
        p = prompt(r)
        constraint, judged = plain.score(p, r["response"]), both.score(p, r["response"])
        assert judged.details["task"]["done"] in (True, False)
        assert judged.value == (constraint.value if judged.details["task"]["done"] else 0.0)
    assert plain.id != both.id


def test_the_calibration_labels_are_two_annotators_adjudicated_over_every_type_and_kind() -> None:
    labels = rows("benchmarks/data/task_check_labels.jsonl")
    assert len(labels) >= 400 and len({r["id"] for r in labels}) == len(labels)
    assert {t for r in labels for t in r["instructions"]} == TESTBED_TYPES
    assert set(DEGENERATE_KINDS) <= {r["kind"] for r in labels}
    for r in labels:
        a, b = r["annotator_a"], r["annotator_b"]
        assert r["does_task"] == a["does_task"] == b["does_task"] or "adjudication" in r, r["id"]
