"""The built-in verifiable prompt set, checked against lm-eval's real IFEval checkers."""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from harness.constraints.catalogue import (
    CONSTRAINT_TYPES,
    DEFAULT_CONSTRAINT_TYPES,
    FORBIDDEN_POOL,
    KEYWORD_POOL,
    conflicts,
    validate_constraint,
)
from harness.constraints.checkers import check
from harness.core.io import canonical_json
from harness.data.builtin import build_builtin_prompts, load_builtin_tasks, split_builtin_tasks

REPO = Path(__file__).resolve().parents[2]
CATEGORIES = {
    "explanation",
    "short_essay",
    "list",
    "email",
    "advice",
    "summary",
    "rewrite",
    "story",
    "description",
    "comparison",
    "how_to",
    "letter",
    "product_description",
    "dialogue",
    "poem",
}


def _base_tasks(prompts: list[Any]) -> set[str]:
    return {p.meta["base_task"] for p in prompts}


def _constraints(prompts: list[Any]) -> list[str]:
    return [canonical_json([p.meta["instruction_id_list"], p.meta["kwargs"]]) for p in prompts]


def test_tasks_are_many_distinct_and_balanced() -> None:
    tasks = load_builtin_tasks()
    assert len({t.task_id for t in tasks}) == len(tasks) >= 150
    assert len({t.text for t in tasks}) == len(tasks)
    counts = Counter(t.category for t in tasks)
    assert set(counts) == CATEGORIES
    assert min(counts.values()) >= 8 and max(counts.values()) <= 2 * min(counts.values())
    for task in tasks:
        if task.category == "summary":
            passage = task.text.split("\n\n", 1)[1]
            assert 3 <= len(re.findall(r"[.!?](?:\s|$)", passage)) <= 6, task.task_id
        if task.category == "rewrite":
            assert task.text.count('"') >= 2, task.task_id


def test_split_is_disjoint_complete_and_seed_independent() -> None:
    train_tasks, eval_tasks = split_builtin_tasks(0.4)
    eval_ids = {t.task_id for t in eval_tasks}
    assert not eval_ids & {t.task_id for t in train_tasks}
    assert len(eval_ids) + len(train_tasks) == len(load_builtin_tasks())
    assert abs(len(eval_ids) / len(load_builtin_tasks()) - 0.4) < 0.05
    assert {t.category for t in eval_tasks} == CATEGORIES
    assert {t.task_id for t in split_builtin_tasks(0.3)[1]} < eval_ids
    for seed in (0, 1, 7, 123):
        train, held_out = build_builtin_prompts(seed=seed)
        assert _base_tasks(held_out) == eval_ids
        assert not _base_tasks(train) & _base_tasks(held_out)
        train, held_out = build_builtin_prompts(seed=seed, n_train=400, n_eval=300)
        assert _base_tasks(held_out) == eval_ids
        assert not _base_tasks(train) & eval_ids


def test_same_seed_same_prompts_other_seed_other_constraints() -> None:
    a_train, a_eval = build_builtin_prompts(seed=3, n_train=200, n_eval=100)
    b_train, b_eval = build_builtin_prompts(seed=3, n_train=200, n_eval=100)
    assert [(p.id, p.messages, p.meta) for p in a_train + a_eval] == [
        (p.id, p.messages, p.meta) for p in b_train + b_eval
    ]
    c_train, c_eval = build_builtin_prompts(seed=4, n_train=200, n_eval=100)
    assert _constraints(a_train) != _constraints(c_train)
    assert _constraints(a_eval) != _constraints(c_eval)
    one, other = build_builtin_prompts(seed=3)[0], build_builtin_prompts(seed=4)[0]
    assert [p.meta["base_task"] for p in one] != [p.meta["base_task"] for p in other]
    by_task = {p.meta["base_task"]: _constraints([p])[0] for p in one}
    changed = sum(by_task[p.meta["base_task"]] != _constraints([p])[0] for p in other)
    assert changed > len(one) / 2


def test_eval_prompts_do_not_depend_on_train_size() -> None:
    assert [p.id for p in build_builtin_prompts(seed=5, n_train=10)[1]] == [
        p.id for p in build_builtin_prompts(seed=5, n_train=500)[1]
    ]


def test_held_out_set_is_every_task_times_type_once_and_grows_by_prefix() -> None:
    """Held-out prompts take each (task, constraint type) once: the largest set is tasks x types,
    type-balanced at every multiple of the type count, and every smaller set is a prefix of it."""
    types = ["punctuation:no_comma", "detectable_format:title", "detectable_content:postscript"]
    n_tasks = len(split_builtin_tasks(task_set="short")[1])
    full = build_builtin_prompts(seed=7, n_eval=n_tasks * len(types), constraint_types=types, task_set="short")[1]
    pairs = Counter((p.meta["base_task"], p.meta["instruction_id_list"][0]) for p in full)
    assert len(pairs) == n_tasks * len(types) and set(pairs.values()) == {1}
    for n in (n_tasks, n_tasks + 5, 2 * n_tasks):
        smaller = build_builtin_prompts(seed=7, n_eval=n, constraint_types=types, task_set="short")[1]
        assert [p.id for p in smaller] == [p.id for p in full[:n]]
    half = Counter(p.meta["instruction_id_list"][0] for p in full[: 3 * (n_tasks // 2)])
    assert max(half.values()) - min(half.values()) <= 2
    # the testbed's set (experiments/default.yaml: 11 types): exactly balanced at half and all of it
    from harness.data.heldout import HeldoutSet
    from harness.experiment import load_config

    config = load_config(Path(__file__).resolve().parents[2] / "experiments" / "default.yaml")
    testbed = HeldoutSet.of(config.evaluate, config.prompts)
    for n in (495, 990):
        assert set(Counter(p.meta["instruction_id_list"][0] for p in testbed.prompts(n)).values()) == {n // 11}
    with pytest.raises(
        ValueError,
        match=rf"only {n_tasks * len(types)} distinct ones exist \({n_tasks} eval base tasks x 3 constraint combinations",
    ):
        build_builtin_prompts(seed=7, n_eval=n_tasks * len(types) + 1, constraint_types=types, task_set="short")


def test_prompt_shape() -> None:
    texts = {t.task_id: t for t in load_builtin_tasks()}
    train, held_out = build_builtin_prompts(seed=0, constraints_per_prompt=2)
    for prompt in train + held_out:
        task = texts[prompt.meta["base_task"]]
        assert prompt.source == "builtin"
        assert set(prompt.meta) == {"instruction_id_list", "kwargs", "base_task", "category"}
        assert prompt.meta["category"] == task.category
        assert len(prompt.meta["instruction_id_list"]) == len(prompt.meta["kwargs"]) == 2
        assert len(prompt.messages) == 1 and prompt.messages[0]["role"] == "user"
        head, tail = prompt.messages[0]["content"].rsplit("\n\n", 1)
        assert head == task.text and tail.strip()


def test_tasks_are_cycled_with_fresh_constraints() -> None:
    train_tasks, _ = split_builtin_tasks()
    train, _ = build_builtin_prompts(seed=2, n_train=3 * len(train_tasks))
    assert Counter(p.meta["base_task"] for p in train) == {t.task_id: 3 for t in train_tasks}
    assert len({p.id for p in train}) == len(train)
    types = Counter(p.meta["instruction_id_list"][0] for p in train)
    assert set(types) == set(DEFAULT_CONSTRAINT_TYPES)
    assert max(types.values()) - min(types.values()) <= 2


@pytest.mark.parametrize("k", [2, 3])
def test_combined_constraints_never_conflict(k: int) -> None:
    assert conflicts("change_case:english_lowercase", "change_case:english_capital")
    assert conflicts("detectable_format:number_bullet_lists", "detectable_format:json_format")
    assert conflicts("detectable_format:title", "startend:quotation")
    train, held_out = build_builtin_prompts(
        seed=k, n_train=600, constraints_per_prompt=k, constraint_types=list(CONSTRAINT_TYPES)
    )
    assert len({p.id for p in train + held_out}) == len(train + held_out)
    for prompt in train + held_out:
        ids = prompt.meta["instruction_id_list"]
        assert len(set(ids)) == k
        assert not any(conflicts(a, b) for a, b in itertools.combinations(ids, 2)), ids


def test_capacity_is_exact_and_excess_is_refused() -> None:
    two_kinds = ["punctuation:no_comma", "detectable_format:title"]
    n_train_tasks = len(split_builtin_tasks()[0])
    train, _ = build_builtin_prompts(n_train=2 * n_train_tasks, constraint_types=two_kinds)
    assert len({p.id for p in train}) == 2 * n_train_tasks
    with pytest.raises(ValueError, match="distinct"):
        build_builtin_prompts(n_train=2 * n_train_tasks + 1, constraint_types=two_kinds)
    with pytest.raises(ValueError, match="eval"):
        build_builtin_prompts(n_eval=10**6)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="punctuation:no_comma"):
        build_builtin_prompts(constraint_types=["punctuation:no_commas"])
    with pytest.raises(ValueError, match="compatible"):
        build_builtin_prompts(
            constraints_per_prompt=2,
            constraint_types=["change_case:english_lowercase", "change_case:english_capital"],
        )
    with pytest.raises(ValueError):
        build_builtin_prompts(constraints_per_prompt=0)


def test_type_table() -> None:
    assert len(CONSTRAINT_TYPES) >= 14
    assert set(DEFAULT_CONSTRAINT_TYPES) < set(CONSTRAINT_TYPES)
    assert "change_case:english_lowercase" not in DEFAULT_CONSTRAINT_TYPES
    assert not set(KEYWORD_POOL) & set(FORBIDDEN_POOL)
    for a, b in itertools.permutations(KEYWORD_POOL + FORBIDDEN_POOL, 2):
        assert a not in b, (a, b)
    for ctype in CONSTRAINT_TYPES.values():
        phrases = [ctype.phrase(kw) for kw in ctype.variants]
        assert len(set(phrases)) == len(phrases), ctype.instruction_id


def test_every_generated_kwargs_is_accepted_by_lm_eval() -> None:
    seen: set[str] = set()
    for ctype in CONSTRAINT_TYPES.values():
        for kwargs in ctype.variants:
            validate_constraint(ctype.instruction_id, kwargs)
            seen.add(canonical_json([ctype.instruction_id, kwargs]))
    for seed in range(25):
        train, held_out = build_builtin_prompts(
            seed=seed,
            n_train=300,
            constraints_per_prompt=1 + seed % 2,
            constraint_types=list(CONSTRAINT_TYPES),
        )
        for prompt in train + held_out:
            for iid, kwargs in zip(prompt.meta["instruction_id_list"], prompt.meta["kwargs"]):
                key = canonical_json([iid, kwargs])
                if key not in seen:
                    validate_constraint(iid, kwargs)
                    seen.add(key)


WORDS = "length_constraints:number_words"


def test_validate_constraint_refuses_what_lm_eval_would_replace() -> None:
    with pytest.raises(ValueError, match="number_words"):
        validate_constraint(WORDS, {"num_words": -5, "relation": "less than"})
    with pytest.raises(ValueError, match="number_words"):
        validate_constraint(WORDS, {"num_words": 50})
    with pytest.raises(ValueError, match="number_words"):
        validate_constraint(WORDS, {"num_words": 50, "relation": "about"})
    with pytest.raises(ValueError, match="no_comma"):
        validate_constraint("punctuation:no_comma", {"extra": 1})
    with pytest.raises(ValueError, match="close matches"):
        validate_constraint("punctuation:no_commas", {})


FILLER = "Plants need water. Sunlight helps them grow."


def _times(unit: str, k: int, sep: str = " ") -> str:
    return sep.join([unit] * k)


def _examples(iid: str, kw: dict[str, Any]) -> tuple[str, str]:
    """A response that follows the constraint and one that does not, built from its kwargs."""
    if iid == "punctuation:no_comma":
        return FILLER, "Plants need water, light and soil."
    if iid == "detectable_format:number_bullet_lists":
        n = kw["num_bullets"]
        return _times("* A point.", n, "\n"), _times("* A point.", n + 1, "\n")
    if iid == "detectable_content:postscript":
        ending = "Water them weekly."
        return f"{FILLER}\n\n{kw['postscript_marker']} {ending}", f"{FILLER}\n\n{ending}"
    if iid == "keywords:frequency":
        said, n = f"This is {kw['keyword']}.", kw["frequency"]
        return _times(said, n), _times(said, n - 1)
    if iid == "keywords:existence":
        words = kw["keywords"]
        missing_one = words[0] if len(words) > 1 else "fine"
        return f"{FILLER} It is {' and '.join(words)}.", f"{FILLER} It is {missing_one}."
    if iid == "keywords:forbidden_words":
        return FILLER, f"{FILLER} It is {kw['forbidden_words'][-1]}."
    if iid == "length_constraints:number_words":
        fewer, enough = _times("word", kw["num_words"] - 1), _times("word", kw["num_words"])
        return (fewer, enough) if kw["relation"] == "less than" else (enough, fewer)
    if iid == "length_constraints:number_sentences":
        n = kw["num_sentences"]
        fewer, enough = _times("The dog runs.", n - 1), _times("The dog runs.", n)
        return (fewer, enough) if kw["relation"] == "less than" else (enough, fewer)
    if iid == "detectable_content:number_placeholders":
        n = kw["num_placeholders"]
        return f"Dear {_times('[name]', n)}, hello.", f"Dear {_times('[name]', n - 1)}, hello."
    if iid == "detectable_format:number_highlighted_sections":
        n = kw["num_highlights"]
        return f"Note {_times('*key part*', n)} end.", f"Note {_times('*key part*', n - 1)} end."
    if iid == "detectable_format:title":
        return f"<<Garden Notes>>\n{FILLER}", f"Garden Notes\n{FILLER}"
    if iid == "startend:end_checker":
        return f"{FILLER} {kw['end_phrase']}", f"{kw['end_phrase']} {FILLER}"
    if iid == "startend:quotation":
        return f'"{FILLER}"', FILLER
    if iid == "detectable_format:json_format":
        return '```json\n{"answer": "Plants need water."}\n```', FILLER
    if iid == "length_constraints:number_paragraphs":
        n = kw["num_paragraphs"]
        return _times("The dog runs.", n, "\n***\n"), _times("The dog runs.", n + 1, "\n***\n")
    if iid in ("change_case:english_lowercase", "change_case:english_capital"):
        text = "plants need water and sunlight to grow tall and green in the garden every day."
        if iid == "change_case:english_lowercase":
            return text, text.capitalize()
        return text.upper(), text
    if iid == "change_case:capital_word_frequency":
        n = kw["capital_frequency"]
        return f"this is {_times('BIG', n)} news.", f"this is {_times('BIG', n - 1)} news."
    if iid == "detectable_format:multiple_sections":
        marks = [f"{kw['section_spliter']} {i}\nText." for i in range(1, kw["num_sections"] + 1)]
        return "\n".join(marks), "\n".join(marks[:-1])
    raise KeyError(iid)


def test_examples_cover_default_types() -> None:
    for iid in DEFAULT_CONSTRAINT_TYPES:
        _examples(iid, CONSTRAINT_TYPES[iid].variants[0])


@pytest.mark.parametrize("iid", list(CONSTRAINT_TYPES))
def test_compliant_and_violating_responses_are_judged_right(iid: str) -> None:
    for kwargs in CONSTRAINT_TYPES[iid].variants:
        good, bad = _examples(iid, kwargs)
        prompt = "Say something.\n\n" + CONSTRAINT_TYPES[iid].phrase(kwargs)
        assert check(iid, kwargs, prompt, good) == (True, True), (kwargs, good)
        assert check(iid, kwargs, prompt, bad)[0] is False, (kwargs, bad)


def test_ifeval_registry_works_offline_in_a_fresh_process(tmp_path: Path) -> None:
    """A fresh HOME forces the punkt_tab files to be written from scratch with no network."""
    code = textwrap.dedent(
        """
        import socket

        def refuse(*args, **kwargs):
            raise OSError("network disabled by test")

        socket.socket.connect = refuse
        socket.socket.connect_ex = refuse

        import nltk
        from harness.constraints.checkers import check, registry

        assert "length_constraints:number_sentences" in registry()
        kwargs = {"num_sentences": 3, "relation": "less than"}
        text = "Dr. Smith arrived early. He sat down."
        assert check("length_constraints:number_sentences", kwargs, "", text) == (True, True)
        tokens = nltk.word_tokenize("Mr. Brown's dog barked, then slept.")
        assert tokens == ["Mr.", "Brown", "'s", "dog", "barked", ",", "then", "slept", "."], tokens
        print("offline-ok")
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "NLTK_DATA"}
    env["HOME"] = str(tmp_path)
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "offline-ok" in result.stdout
    assert "Downloaded" not in output
    assert (tmp_path / ".cache" / "bpo-bench" / "nltk_data" / "tokenizers" / "punkt_tab").is_dir()


def test_short_task_set_is_its_own_split_and_asks_for_short_answers() -> None:
    """The `short` set splits by base task like the everyday one, shares no task with it, and
    its held-out prompts follow the chosen constraint types only."""
    short = load_builtin_tasks("short")
    assert len(short) >= 200 and len({t.text for t in short}) == len(short)
    assert not {t.task_id for t in short} & {t.task_id for t in load_builtin_tasks()}
    assert all(len(t.text.split()) <= 25 for t in short)
    train_tasks, eval_tasks = split_builtin_tasks(0.4, "short")
    assert {t.category for t in train_tasks} == {t.category for t in eval_tasks}
    types = ["detectable_format:title", "detectable_content:postscript", "punctuation:no_comma"]
    train, held_out = build_builtin_prompts(seed=0, n_train=256, n_eval=96, constraint_types=types, task_set="short")
    assert len(train) == 256 and len(held_out) == 96
    assert not _base_tasks(train) & _base_tasks(held_out)
    assert _base_tasks(held_out) <= {t.task_id for t in eval_tasks}
    assert {i for p in train + held_out for i in p.meta["instruction_id_list"]} == set(types)
    with pytest.raises(ValueError, match="unknown task set 'tiny'"):
        build_builtin_prompts(task_set="tiny")
