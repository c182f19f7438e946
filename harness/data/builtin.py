"""The built-in verifiable prompt set: our own everyday tasks plus IFEval-style constraints.

Each prompt is one base task from `data/builtin_tasks.jsonl` followed by one or more
constraints that lm-eval's IFEval checkers can verify, so the `verifiable` judge needs no
model. Constraints are phrased in our own words (lm-eval's `build_description` text reads
"Include keywords ['blue']") and checked with lm-eval's registry through
`harness.constraints.checkers`.

The train/eval split is by base task and is derived from a hash of the task id, never from the
seed: a held-out task stays held out whatever seed or size a run asks for.
Importing this module does not import lm-eval; only `validate_constraint` does.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import itertools
import json
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from harness.core.io import canonical_json
from harness.core.records import Prompt

# The base-task sets: `everyday` (explanations, letters, stories, poems; answers of 100+ words,
# about half cut off at 160 tokens) and `short` (questions, tips, captions, replies answered in
# a sentence or two), which keeps a pool of many prompts x many samples affordable on a CPU.
TASK_SETS: dict[str, Path] = {
    "everyday": Path(__file__).with_name("builtin_tasks.jsonl"),
    "short": Path(__file__).with_name("builtin_short_tasks.jsonl"),
}

Kwargs = dict[str, Any]


@dataclass(frozen=True)
class BuiltinTask:
    task_id: str
    category: str
    text: str


@dataclass(frozen=True)
class ConstraintType:
    """One verifiable constraint: the lm-eval checker, the arguments we use, our wording.

    `variants` lists every kwargs dict the type can produce, so that the builder knows exactly
    how many distinct prompts a task can yield and can refuse a request it cannot meet.
    """

    instruction_id: str
    variants: tuple[Kwargs, ...]
    phrase: Callable[[Kwargs], str]

    def sample(self, rng: random.Random) -> Kwargs:
        """Draw one kwargs dict; a copy, so callers may keep or mutate it freely."""
        return copy.deepcopy(rng.choice(self.variants))


# Generic words that fit an answer on any topic, so a keyword constraint never asks for
# something off-topic. The two pools are disjoint and no word contains another, because
# lm-eval's keyword checkers match substrings and the forbidden-word checker whole words.
KEYWORD_POOL = (
    "bright", "careful", "clear", "easy", "fresh", "friendly", "gentle", "happy",
    "important", "morning", "quiet", "simple", "today", "together", "useful", "warm",
)
# Words a small model uses often unprompted, so that avoiding them is a real choice.
FORBIDDEN_POOL = (
    "also", "best", "good", "great", "just", "make", "many", "people", "really", "things", "very",
)
END_PHRASES = (
    "Is there anything else I can help with?",
    "Any other questions?",
    "Let me know if you have more questions.",
    "I hope this helps!",
    "Thank you for reading.",
)


def _one_or_two(pool: Sequence[str], key: str) -> tuple[Kwargs, ...]:
    """Sorted lists, as lm-eval stores them, so `validate_constraint`'s round trip is exact."""
    singles = [[word] for word in pool]
    pairs = [sorted(pair) for pair in itertools.combinations(pool, 2)]
    return tuple({key: words} for words in singles + pairs)


def _quoted_words(words: Sequence[str], joiner: str) -> str:
    return f" {joiner} ".join(f"'{word}'" for word in words)


def _times(n: int) -> str:
    return "twice" if n == 2 else f"{n} times"


# Lower bounds stay short: SmolLM2-135M rambles, and an answer that needs 150 words (~200
# tokens) is cut off at the pool's max_new_tokens and dropped from pairs (docs/design.md §6).
_WORDS_BOUNDS = {"less than": (40, 50, 60, 80), "at least": (50, 60, 80, 100)}
_SENTENCES_BOUNDS = {"less than": (3, 4, 5, 6), "at least": (3, 4, 5, 6)}


def _relation_variants(bounds: dict[str, tuple[int, ...]], key: str) -> tuple[Kwargs, ...]:
    return tuple({key: n, "relation": rel} for rel, ns in bounds.items() for n in ns)


def _phrase_words(kw: Kwargs) -> str:
    if kw["relation"] == "less than":
        return f"Answer in fewer than {kw['num_words']} words."
    return f"Your answer must be at least {kw['num_words']} words long."


def _phrase_sentences(kw: Kwargs) -> str:
    if kw["relation"] == "less than":
        return f"Answer in fewer than {kw['num_sentences']} sentences."
    return f"Write at least {kw['num_sentences']} sentences."


def _phrase_placeholders(kw: Kwargs) -> str:
    n = kw["num_placeholders"]
    if n == 1:
        return "Include at least one placeholder in square brackets, such as [name]."
    return f"Include at least {n} placeholders in square brackets, such as [name] and [date]."


def _phrase_highlights(kw: Kwargs) -> str:
    n = kw["num_highlights"]
    parts = "one part" if n == 1 else f"{n} parts"
    return f"Highlight at least {parts} of your answer with markdown, i.e. *highlighted section*."


_ALL_TYPES = (
    ConstraintType(
        "punctuation:no_comma", ({},),
        lambda kw: "Do not use any commas in your answer.",
    ),
    ConstraintType(
        "detectable_format:number_bullet_lists",
        tuple({"num_bullets": n} for n in (2, 3, 4, 5)),
        lambda kw: f"Format your answer as exactly {kw['num_bullets']} bullet points "
        "using markdown '* ' bullets.",
    ),
    ConstraintType(
        "detectable_content:postscript",
        ({"postscript_marker": "P.S."}, {"postscript_marker": "P.P.S"}),
        lambda kw: "End your answer with a postscript starting with "
        + kw["postscript_marker"].removesuffix(".") + ".",
    ),
    ConstraintType(
        "keywords:frequency",
        tuple(
            {"keyword": word, "frequency": n, "relation": "at least"}
            for word in KEYWORD_POOL for n in (2, 3)
        ),
        lambda kw: f"Use the word '{kw['keyword']}' at least {_times(kw['frequency'])}.",
    ),
    ConstraintType(
        "keywords:existence", _one_or_two(KEYWORD_POOL, "keywords"),
        lambda kw: f"Include the word{'s' if len(kw['keywords']) > 1 else ''} "
        f"{_quoted_words(kw['keywords'], 'and')} in your answer.",
    ),
    ConstraintType(
        "keywords:forbidden_words", _one_or_two(FORBIDDEN_POOL, "forbidden_words"),
        lambda kw: f"Do not use the word{'s' if len(kw['forbidden_words']) > 1 else ''} "
        f"{_quoted_words(kw['forbidden_words'], 'or')} anywhere in your answer.",
    ),
    ConstraintType(
        "length_constraints:number_words",
        _relation_variants(_WORDS_BOUNDS, "num_words"), _phrase_words,
    ),
    ConstraintType(
        "length_constraints:number_sentences",
        _relation_variants(_SENTENCES_BOUNDS, "num_sentences"), _phrase_sentences,
    ),
    ConstraintType(
        "detectable_content:number_placeholders",
        tuple({"num_placeholders": n} for n in (1, 2, 3)), _phrase_placeholders,
    ),
    ConstraintType(
        "detectable_format:number_highlighted_sections",
        tuple({"num_highlights": n} for n in (1, 2, 3)), _phrase_highlights,
    ),
    ConstraintType(
        "detectable_format:title", ({},),
        lambda kw: "Give your answer a title wrapped in double angular brackets, like <<title>>.",
    ),
    ConstraintType(
        "startend:end_checker", tuple({"end_phrase": p} for p in END_PHRASES),
        lambda kw: f"Finish your answer with the exact phrase '{kw['end_phrase']}'. "
        "No other words should follow.",
    ),
    ConstraintType(
        "startend:quotation", ({},),
        lambda kw: "Wrap your entire answer in double quotation marks.",
    ),
    ConstraintType(
        "detectable_format:json_format", ({},),
        lambda kw: "Give your entire answer as valid JSON. You may wrap it in ``` markdown ticks.",
    ),
    ConstraintType(
        "length_constraints:number_paragraphs",
        tuple({"num_paragraphs": n} for n in (2, 3, 4)),
        lambda kw: f"Your answer must contain exactly {kw['num_paragraphs']} paragraphs, "
        "with the markdown divider *** on its own line between them.",
    ),
    ConstraintType(
        "change_case:english_lowercase", ({},),
        lambda kw: "Write your entire answer in English using only lowercase letters. "
        "No capital letters are allowed.",
    ),
    ConstraintType(
        "change_case:english_capital", ({},),
        lambda kw: "Write your entire answer in English using only capital letters.",
    ),
    ConstraintType(
        "change_case:capital_word_frequency",
        tuple({"capital_frequency": n, "capital_relation": "at least"} for n in (3, 5, 8)),
        lambda kw: f"Write at least {kw['capital_frequency']} words in ALL CAPITAL LETTERS "
        "for emphasis.",
    ),
    ConstraintType(
        "detectable_format:multiple_sections",
        tuple(
            {"section_spliter": s, "num_sections": n}
            for s in ("Section", "SECTION")
            for n in (2, 3)
        ),
        lambda kw: f"Divide your answer into {kw['num_sections']} sections and start each one "
        f"with '{kw['section_spliter']} X', where X is its number "
        f"({kw['section_spliter']} 1, {kw['section_spliter']} 2, ...).",
    ),
)


def _index(types: Sequence[ConstraintType]) -> dict[str, ConstraintType]:
    table: dict[str, ConstraintType] = {}
    for ctype in types:
        if ctype.instruction_id in table:
            raise ValueError(f"constraint type {ctype.instruction_id!r} defined twice")
        table[ctype.instruction_id] = ctype
    return table


CONSTRAINT_TYPES: dict[str, ConstraintType] = _index(_ALL_TYPES)

# Types whose samples disagree often enough to yield preference pairs: the base model's pass
# rate among finished samples is mid-range. Rule: keep a type when that rate lies in [0.1, 0.9],
# where a prompt with K = 5 samples forms at least one pair with probability 1 − p⁵ − (1 − p)⁵
# ≥ 0.41 (0.94 at p = 0.5). harness/data/CONSTRAINT_PASS_RATES.md (regenerated by
# benchmarks/constraint_pass_rates.py) measures these 12 types at 0.13 (end phrase) to 0.79
# (forbidden words), all inside the rule; prompts that still tie get more samples
# (`pool.k_max`). Left out: all-lowercase (0/32 in a pilot) and, not yet measured, formats we
# expect small models seldom meet (all-uppercase, JSON, *** paragraphs, Section markers,
# capital-word counts, quotation marks); one joins the default once the table measures it in range.
DEFAULT_CONSTRAINT_TYPES: tuple[str, ...] = (
    "punctuation:no_comma",
    "detectable_format:number_bullet_lists",
    "detectable_content:postscript",
    "keywords:frequency",
    "keywords:existence",
    "keywords:forbidden_words",
    "length_constraints:number_words",
    "length_constraints:number_sentences",
    "detectable_content:number_placeholders",
    "detectable_format:number_highlighted_sections",
    "detectable_format:title",
    "startend:end_checker",
)


def _conflict_pairs() -> frozenset[frozenset[str]]:
    """Pairs that cannot both be met, or whose wording contradicts the other's.

    Narrower than lm-eval's INSTRUCTION_CONFLICTS in places (keywords and JSON may combine) and
    wider in others (a capitalised end phrase cannot be written in lowercase; P.S. and an exact
    closing phrase both claim the last line; word and sentence counts together over-constrain).
    """
    pairs = [
        ("change_case:english_lowercase", "change_case:english_capital"),
        ("change_case:english_lowercase", "change_case:capital_word_frequency"),
        ("change_case:english_lowercase", "detectable_content:postscript"),
        ("change_case:english_lowercase", "startend:end_checker"),
        ("change_case:english_lowercase", "detectable_format:multiple_sections"),
        ("change_case:english_capital", "change_case:capital_word_frequency"),
        ("change_case:english_capital", "startend:end_checker"),
        ("change_case:english_capital", "detectable_format:multiple_sections"),
        ("startend:quotation", "detectable_format:title"),
        ("startend:quotation", "detectable_format:number_bullet_lists"),
        ("detectable_content:postscript", "startend:end_checker"),
        ("length_constraints:number_words", "length_constraints:number_sentences"),
        ("length_constraints:number_paragraphs", "length_constraints:number_sentences"),
        ("length_constraints:number_paragraphs", "detectable_format:multiple_sections"),
        ("detectable_format:multiple_sections", "detectable_format:number_highlighted_sections"),
    ]
    json_compatible = {"keywords:existence", "keywords:forbidden_words"}
    pairs += [
        ("detectable_format:json_format", other)
        for other in CONSTRAINT_TYPES
        if other not in json_compatible | {"detectable_format:json_format"}
    ]
    return frozenset(frozenset(pair) for pair in pairs)


_CONFLICTS = _conflict_pairs()


def conflicts(type_a: str, type_b: str) -> bool:
    """Whether two types may not share a prompt; a type conflicts with itself."""
    return type_a == type_b or frozenset((type_a, type_b)) in _CONFLICTS


def validate_constraint(instruction_id: str, kwargs: Kwargs) -> None:
    """Build the real lm-eval checker with `kwargs`; raise ValueError if it would not use them.

    lm-eval does not reject a missing or out-of-range argument: it quietly draws a random one
    (a negative word count, a two-letter `letter`), which would make the verdict disagree with
    the instruction we showed. So beyond catching errors we demand that the checker reports
    back exactly the arguments we gave.
    """
    from harness.constraints.checkers import registry

    checkers = registry()
    if instruction_id not in checkers:
        close = difflib.get_close_matches(instruction_id, list(checkers), n=3)
        raise ValueError(f"unknown IFEval instruction {instruction_id!r}; close matches: {close}")
    checker = checkers[instruction_id](instruction_id)
    try:
        checker.build_description(**kwargs)
    except (TypeError, ValueError) as err:
        raise ValueError(f"constraint {instruction_id!r} rejects kwargs {kwargs}: {err}") from err
    expected = set(checker.get_instruction_args_keys())
    if set(kwargs) != expected:
        raise ValueError(
            f"constraint {instruction_id!r} takes kwargs {sorted(expected)}, got {sorted(kwargs)};"
            " a missing one would be drawn at random by lm-eval"
        )
    used = checker.get_instruction_args() or {}
    if used != kwargs:
        raise ValueError(
            f"constraint {instruction_id!r}: lm-eval replaced kwargs {kwargs} with {used}"
        )


@lru_cache(maxsize=None)
def load_builtin_tasks(task_set: str = "everyday") -> tuple[BuiltinTask, ...]:
    """The base tasks of one set; duplicate ids or texts are refused, as either would leak across the split."""
    if task_set not in TASK_SETS:
        raise ValueError(f"unknown task set {task_set!r}; known: {sorted(TASK_SETS)}")
    path = TASK_SETS[task_set]
    tasks: list[BuiltinTask] = []
    with open(path, encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            if set(row) != {"task_id", "category", "text"}:
                raise ValueError(f"{path}:{line_no}: expected task_id, category, text")
            tasks.append(BuiltinTask(row["task_id"], row["category"], row["text"]))
    for attr in ("task_id", "text"):
        values = [getattr(t, attr) for t in tasks]
        repeated = sorted({v for v in values if values.count(v) > 1})
        if repeated:
            raise ValueError(f"{path}: duplicate {attr}: {repeated[:3]}")
    return tuple(tasks)


def _split_rank(task_id: str) -> str:
    return hashlib.sha256(f"bpo-bench/builtin-split/{task_id}".encode()).hexdigest()


def split_builtin_tasks(
    eval_fraction: float = 0.4, task_set: str = "everyday"
) -> tuple[list[BuiltinTask], list[BuiltinTask]]:
    """Train and eval base tasks, split within each category by a hash of the task id.

    The seed plays no part, so no seed or request size can move a held-out task into training.
    A plain hash threshold put 29% of tasks (and one story) in eval at a nominal 40%; ranking by
    hash within each category gives the requested share and every category in both splits.
    A smaller `eval_fraction` yields a subset of a larger one's eval tasks. Editing a category in
    the tasks file can move its boundary task, so the file is versioned with the code.
    """
    by_category: dict[str, list[BuiltinTask]] = {}
    for task in load_builtin_tasks(task_set):
        by_category.setdefault(task.category, []).append(task)
    held_out: set[str] = set()
    for members in by_category.values():
        ranked = sorted(members, key=lambda t: _split_rank(t.task_id))
        held_out.update(t.task_id for t in ranked[: round(eval_fraction * len(ranked))])
    tasks = load_builtin_tasks(task_set)
    return (
        [t for t in tasks if t.task_id not in held_out],
        [t for t in tasks if t.task_id in held_out],
    )


_MAX_REJECTIONS = 64


@dataclass
class _Planner:
    """Hands out distinct (task, constraints) prompts for one split.

    Combinations of types are dealt from a shuffled deck so every type is used about equally
    often (per-type pass rates need enough prompts each); kwargs are sampled within the type.
    With `once_per_task` (the held-out split) a task takes each combination at most once, so
    the largest set is every held-out task x combination, and no prompt is a sibling of another
    with the same task and type; a task's next combination is still the first in the deck it has
    not taken, so a smaller set drawn without repeats is a prefix of every larger one.
    """

    combos: list[tuple[str, ...]]
    rng: random.Random
    deck: list[tuple[str, ...]]
    used: dict[tuple[str, tuple[str, ...]], set[tuple[str, ...]]]
    once_per_task: bool = False

    def capacity(self, combo: tuple[str, ...]) -> int:
        return 1 if self.once_per_task else math.prod(len(CONSTRAINT_TYPES[t].variants) for t in combo)

    def _exhausted(self, task_id: str, combo: tuple[str, ...]) -> bool:
        return len(self.used.get((task_id, combo), ())) >= self.capacity(combo)

    def _next_combo(self, task_id: str) -> tuple[str, ...]:
        for _ in range(2):
            for i, combo in enumerate(self.deck):
                if not self._exhausted(task_id, combo):
                    return self.deck.pop(i)
            self.deck.extend(self.rng.sample(self.combos, len(self.combos)))
        raise AssertionError(f"task {task_id} ran out of constraints despite the capacity check")

    def draw(self, task_id: str) -> list[tuple[str, Kwargs]]:
        """Rejection sampling is fast while a combination is mostly unused; once it fails we
        enumerate what is left, so a request up to the exact capacity always succeeds."""
        combo = self._next_combo(task_id)
        used = self.used.setdefault((task_id, combo), set())
        types = [CONSTRAINT_TYPES[t] for t in combo]
        for _ in range(_MAX_REJECTIONS):
            chosen = [t.sample(self.rng) for t in types]
            key = tuple(canonical_json(kw) for kw in chosen)
            if key not in used:
                break
        else:
            remaining = [
                list(choice)
                for choice in itertools.product(*(t.variants for t in types))
                if tuple(canonical_json(kw) for kw in choice) not in used
            ]
            chosen = copy.deepcopy(self.rng.choice(remaining))
            key = tuple(canonical_json(kw) for kw in chosen)
        used.add(key)
        return list(zip(combo, chosen))


def _split_prompts(
    tasks: list[BuiltinTask], n: int, combos: list[tuple[str, ...]], rng: random.Random, split: str
) -> list[Prompt]:
    """Round-robin over the split's tasks (reshuffled each round), so each task gets n/len
    prompts give or take one, and no task runs out before the total capacity is reached.
    Held-out prompts take each (task, constraint combination) once (`_Planner.once_per_task`)."""
    planner = _Planner(combos=combos, rng=rng, deck=[], used={}, once_per_task=split == "eval")
    per_task = sum(planner.capacity(c) for c in combos)
    if n > len(tasks) * per_task:
        what = "constraint combinations" if planner.once_per_task else "constraint choices"
        raise ValueError(
            f"asked for {n} {split} prompts, but only {len(tasks) * per_task} distinct ones "
            f"exist ({len(tasks)} {split} base tasks x {per_task} {what} each); "
            "ask for fewer, allow more constraint types, or combine more per prompt"
        )
    prompts: list[Prompt] = []
    order: list[BuiltinTask] = []
    while len(prompts) < n:
        if not order:
            order = rng.sample(tasks, len(tasks))
        task = order.pop()
        chosen = planner.draw(task.task_id)
        phrasing = " ".join(CONSTRAINT_TYPES[t].phrase(kw) for t, kw in chosen)
        text = f"{task.text}\n\n{phrasing}"
        meta = {
            "instruction_id_list": [t for t, _ in chosen],
            "kwargs": [kw for _, kw in chosen],
            "base_task": task.task_id,
            "category": task.category,
        }
        prompts.append(Prompt.make([{"role": "user", "content": text}], "builtin", meta))
    return prompts


def check_constraint_types(constraint_types: Sequence[str]) -> list[str]:
    names = list(constraint_types)
    unknown = [name for name in names if name not in CONSTRAINT_TYPES]
    if unknown:
        hints = {u: difflib.get_close_matches(u, list(CONSTRAINT_TYPES), n=3) for u in unknown}
        raise ValueError(f"unknown constraint types {unknown}; close matches: {hints}")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"constraint types listed twice: {repeated}")
    return names


def build_builtin_prompts(
    seed: int = 0,
    n_train: int | None = None,
    n_eval: int | None = None,
    constraints_per_prompt: int = 1,
    eval_fraction: float = 0.4,
    constraint_types: Sequence[str] | None = None,
    task_set: str = "everyday",
) -> tuple[list[Prompt], list[Prompt]]:
    """Train and held-out eval prompts from the built-in tasks; deterministic for a seed.

    `n_train`/`n_eval` of None mean one prompt per base task of that split; larger values cycle
    through the tasks with fresh constraints. Train and eval draw from separate random streams,
    so asking for more training prompts leaves the eval prompts unchanged.
    """
    if constraints_per_prompt < 1:
        raise ValueError(f"constraints_per_prompt must be >= 1, got {constraints_per_prompt}")
    if not 0.0 <= eval_fraction <= 1.0:
        raise ValueError(f"eval_fraction must be in [0, 1], got {eval_fraction}")
    for name, value in (("n_train", n_train), ("n_eval", n_eval)):
        if value is not None and value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")
    names = check_constraint_types(
        DEFAULT_CONSTRAINT_TYPES if constraint_types is None else constraint_types
    )
    combos = [
        combo
        for combo in itertools.combinations(names, constraints_per_prompt)
        if not any(conflicts(a, b) for a, b in itertools.combinations(combo, 2))
    ]
    if not combos:
        raise ValueError(
            f"no {constraints_per_prompt} mutually compatible constraint types among {names}"
        )
    train_tasks, eval_tasks = split_builtin_tasks(eval_fraction, task_set)
    train = _split_prompts(
        train_tasks, len(train_tasks) if n_train is None else n_train, combos,
        random.Random(f"{seed}/train"), "train",
    )
    held_out = _split_prompts(
        eval_tasks, len(eval_tasks) if n_eval is None else n_eval, combos,
        random.Random(f"{seed}/eval"), "eval",
    )
    return train, held_out
