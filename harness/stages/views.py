"""Pool views: what the harness computes over the whole pool for the strategies that declare it.

A strategy lists the views it reads (`Strategy.needs`: "embeddings", "gradients"); each view is a
stage module that registers a `PoolView` under that name, so the runner and the preflight read
the declaration and never branch on a strategy's or a view's name. Views cover the pairs
strategies may select (the pool without its held-out pairs), which every strategy and seed on
that pool shares; nothing is computed for pairs no strategy can pick.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from harness.core.config import ExperimentConfig
from harness.core.errors import BenchError
from harness.core.records import CandidatePool, Features
from harness.core.registry import POOL_VIEWS, UnknownName

if TYPE_CHECKING:
    from harness.run_folder import Run


@dataclass(frozen=True)
class ViewResult:
    """The `CandidatePool` fields a view fills, its stage (name and hash: part of the select key), and timings."""

    fields: dict[str, Features]
    stage: str
    hash: str
    seconds: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PoolView:
    compute: Callable[[Any, CandidatePool, str], ViewResult]
    """(run, selectable pool, key of pool and selectable pairs) -> ViewResult, through the stage cache"""
    preflight: Callable[[ExperimentConfig], None] | None = None
    """(config) -> None: imports and finds what the view will load, raising BenchError"""


def get_view(name: str, strategy: str) -> PoolView:
    try:
        return POOL_VIEWS.get(name)
    except UnknownName as exc:
        raise BenchError(f"strategy {strategy} requires a pool view nobody provides: {exc.message}") from None


def preflight(config: ExperimentConfig) -> None:
    from harness.stages.select import Selector

    for name in Selector.of(config.select).views():
        view = get_view(name, config.select.strategy)
        if view.preflight is not None:
            view.preflight(config)


def attach(run: Run, candidate_pool: CandidatePool, pool_hash: str) -> tuple[CandidatePool, dict[str, dict[str, Any]]]:
    """The pool with every declared view filled in, and {"hashes": view -> stage hash, "stages": view -> stage
    name, "seconds": part -> s}."""
    views: dict[str, dict[str, Any]] = {"hashes": {}, "stages": {}, "seconds": {}}
    extra: dict[str, Features] = {}
    for name in run.selector.views():
        result = get_view(name, run.config.select.strategy).compute(run, candidate_pool, pool_hash)
        extra.update(result.fields)
        views["hashes"][name] = result.hash
        views["stages"][name] = result.stage
        views["seconds"].update(result.seconds)
    return dataclasses.replace(candidate_pool, **extra), views
