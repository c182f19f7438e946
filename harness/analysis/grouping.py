"""Which runs repeat one setting: everything in the resolved config except the seed decides.

A comparison or a power analysis that pooled runs differing in a learning rate, a strategy
parameter (uniform at depth 2 and at depth 4) or a prompt set would treat different settings
as extra seeds. So runs are grouped by a hash of their resolved config without the seed (a
*cell*), and compared within a *context*: the cell without the strategy and its parameters,
so that a strategy is always tested against a baseline trained and evaluated the same way.
Cells are labelled by the fields that differ between the runs being compared.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from harness.core.errors import BenchError
from harness.core.io import content_hash

PLACEMENT = ("cache_dir", "bundle", "report")
"""Fields that only place a run's inputs or change how it is shown, not what it computes (a bundle only restores cached
stages the run's keys name): a matrix cell done with other values of these is done."""
NOT_A_SETTING = ("seed", "name", *PLACEMENT)
"""Fields that name or place a run, or only change how it is shown, but not what it measures (the seed is the
replicate)."""
STRATEGY = "select.strategy"
STRATEGY_PARAMS = "select.params"
BUDGET = "select.budget"


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """{"train": {"learning_rate": 1e-4}} -> {"train.learning_rate": 1e-4}; lists stay whole values."""
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    return {prefix.removesuffix("."): data} if prefix else {}


MACHINE = "machine"
"""The setting field of the kind of machine a run ran on (`machine_kind`)."""


def machine_kind(machine: dict[str, Any] | None, dtype: str | None) -> str:
    """What a run's numbers depend on besides its config and seed, in words: the GPU, or the CPU model with its
    native bf16 instructions, and the dtype it generated in. Runs of one seed on two kinds differ in more than
    their seed (bf16 and fp32 kernels, AMX and AVX512-BF16 ones), so comparisons group runs by it and a matrix
    keeps each seed on one kind."""
    m = machine or {}
    hardware = (
        m.get("gpu") or f"{m.get('cpu') or 'unknown CPU'} ({', '.join(m.get('cpu_bf16') or []) or 'no native bf16'})"
    )
    return f"{hardware}, {dtype or 'unknown dtype'}"


def run_kind(manifest: dict[str, Any]) -> str:
    """`machine_kind` of a run folder's manifest (its `machine` record, harness/provenance.py, and generation dtype)."""
    return machine_kind(manifest.get("machine"), (manifest.get("generation") or {}).get("dtype"))


def setting(config: dict[str, Any], strategy: str, budget: int, machine: str | None = None) -> dict[str, Any]:
    """The fields of a resolved config that decide what a run measures (strategy and budget as selected), and the
    kind of machine it ran on: runs on two kinds are two settings, never one cell's seeds, never paired."""
    flat = {k: v for k, v in flatten(config).items() if k.split(".", 1)[0] not in NOT_A_SETTING}
    return {**flat, STRATEGY: strategy, BUDGET: budget, **({MACHINE: machine} if machine else {})}


def _is_strategy_field(key: str) -> bool:
    return key == STRATEGY or key == STRATEGY_PARAMS or key.startswith(STRATEGY_PARAMS + ".")


def without_strategy(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if not _is_strategy_field(k)}


def cell_key(fields: dict[str, Any]) -> str:
    return content_hash(fields)


def context_key(fields: dict[str, Any]) -> str:
    return content_hash(without_strategy(fields))


def _show(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _count(value: Any, one: str, many: str) -> str:
    return f"{_show(value)} {one if value == 1 else many}"


WORDS: dict[str, Callable[[Any], str]] = {
    "select.params.depth": lambda v: _count(v, "pair per prompt", "pairs per prompt"),
    "select.params.order": lambda v: f"{_show(v)} margins first",
    "train.learning_rate": lambda v: f"learning rate {_show(v)}",
    "train.epochs": lambda v: _count(v, "epoch", "epochs"),
    "pool.k": lambda v: _count(v, "sample per prompt", "samples per prompt"),
    MACHINE: lambda v: f"on {_show(v)}",
}
"""How a setting's field reads in a report, where a phrase is clearer than the config path (others: 'path value')."""


def phrase(key: str, value: Any) -> str:
    """One field of a setting in words: "uniform, 4 pairs per prompt", not "select.params.depth=4"."""
    if key in WORDS:
        return WORDS[key](value)
    return f"{key.removeprefix(STRATEGY_PARAMS + '.').replace('_', ' ')} {_show(value)}"


def labels(settings: list[dict[str, Any]]) -> list[str]:
    """Per setting, in words, every field (bar strategy and budget, shown apart) that differs across them; a field
    a setting leaves unset (the strategy's own default) is not named."""
    keys = sorted({k for s in settings for k in s} - {STRATEGY, BUDGET})
    differing = [k for k in keys if len({json.dumps(s.get(k), sort_keys=True) for s in settings}) > 1]
    return [", ".join(phrase(k, s[k]) for k in differing if k in s) for s in settings]


def refuse_duplicates(runs: Iterable[tuple[str, int, Path, str]]) -> None:
    """(cell, seed, folder, description) per run: two folders for one cell and seed are refused, naming both."""
    seen: dict[tuple[str, int], Path] = {}
    for cell, seed, path, description in runs:
        if (cell, seed) in seen:
            raise BenchError(
                f"{seen[(cell, seed)]} and {path} are the same setting ({description}) at the same seed {seed}: "
                "a comparison would count one of them twice or drop it. Pass one of the two folders."
            )
        seen[(cell, seed)] = path
