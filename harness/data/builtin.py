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
import hashlib
import itertools
import json
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from harness.constraints.catalogue import (
    CONSTRAINT_TYPES,
    DEFAULT_CONSTRAINT_TYPES,
    Kwargs,
    check_constraint_types,
    conflicts,
)
from harness.core.io import canonical_json
from harness.core.records import Prompt

TASK_SETS: dict[str, Path] = {
    "everyday": Path(__file__).parent / "builtin_tasks.jsonl",
    "short": Path(__file__).parent / "builtin_short_tasks.jsonl",
}
"""The base-task sets: `everyday` (explanations, letters, stories, poems; answers of 100+ words, about half cut off
at 160 tokens) and `short` (questions, tips, captions, replies answered in a sentence or two), which keeps a pool of
many prompts x many samples affordable on a CPU."""


@dataclass(frozen=True)
class BuiltinTask:
    task_id: str
    category: str
    text: str


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


TASK_KEYS = Path(__file__).parent / "task_keys.jsonl"
"""Per built-in task, written once: a short reference answer and the topic terms a real answer uses (the task check)."""


@lru_cache(maxsize=None)
def _tasks_by_id() -> dict[str, tuple[str, BuiltinTask]]:
    return {t.task_id: (name, t) for name in TASK_SETS for t in load_builtin_tasks(name)}


def builtin_task(task_id: str) -> BuiltinTask | None:
    """The built-in base task with this id, in either set (ids are unique across them), or None."""
    found = _tasks_by_id().get(task_id)
    return found[1] if found else None


def task_set_of(task_id: str) -> str:
    return _tasks_by_id()[task_id][0]


@lru_cache(maxsize=None)
def _task_keys() -> dict[str, dict]:
    keys = {}
    with open(TASK_KEYS, encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, 1):
            row = json.loads(line)
            if set(row) != {"task_id", "reference", "terms"}:
                raise ValueError(f"{TASK_KEYS}:{line_no}: expected task_id, reference, terms")
            keys[row["task_id"]] = row
    missing = sorted(set(_tasks_by_id()) - set(keys))
    if missing:
        raise ValueError(f"{TASK_KEYS}: no topic terms for base tasks {missing[:5]}; every built-in task needs a line")
    return keys


def task_terms(task_id: str) -> tuple[str, ...]:
    """The topic terms of a built-in task (word prefixes, lowercase)."""
    return tuple(_task_keys()[task_id]["terms"])


def task_reference(task_id: str) -> str:
    """The short reference answer written for a built-in task."""
    return str(_task_keys()[task_id]["reference"])


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
    names = check_constraint_types(DEFAULT_CONSTRAINT_TYPES if constraint_types is None else constraint_types)
    combos = [
        combo
        for combo in itertools.combinations(names, constraints_per_prompt)
        if not any(conflicts(a, b) for a, b in itertools.combinations(combo, 2))
    ]
    if not combos:
        raise ValueError(f"no {constraints_per_prompt} mutually compatible constraint types among {names}")
    train_tasks, eval_tasks = split_builtin_tasks(eval_fraction, task_set)
    train = _split_prompts(
        train_tasks,
        len(train_tasks) if n_train is None else n_train,
        combos,
        random.Random(f"{seed}/train"),
        "train",
    )
    held_out = _split_prompts(
        eval_tasks,
        len(eval_tasks) if n_eval is None else n_eval,
        combos,
        random.Random(f"{seed}/eval"),
        "eval",
    )
    return train, held_out
