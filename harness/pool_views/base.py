"""The pool-view contract: what a view module registers, and what its `compute` returns.

A view covers the pairs strategies may select (the pool without its held-out pairs), which every strategy and
seed on that pool shares; nothing is computed for pairs no strategy can pick.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from harness.core.errors import BenchError
from harness.core.records import Features
from harness.core.registry import POOL_VIEWS, UnknownName

if TYPE_CHECKING:
    from harness.experiment import ExperimentConfig


@dataclass(frozen=True)
class ViewResult:
    """The `CandidatePool` fields a view fills, its stage (name and hash: part of the select key), and timings."""

    fields: dict[str, Features]
    stage: str
    hash: str
    seconds: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PoolView:
    compute: Callable[[Any, Any, str], ViewResult]
    """(run, selectable pool, key of pool and selectable pairs) -> ViewResult, through the stage cache"""
    preflight: Callable[[ExperimentConfig], None] | None = None
    """(config) -> None: imports and finds what the view will load, raising BenchError"""
    name: str = ""
    """the name strategies declare in `requires`"""


def register(view: PoolView) -> PoolView:
    """The view `view.name`, registered by the calling module (as every plugin kind registers: `register(plugin)`, the
    plugin carrying its name)."""
    if not view.name:
        raise ValueError("register(PoolView(...)): give the view its name, PoolView(compute, name='my_view')")
    return POOL_VIEWS.register(view.name, view, origin=sys._getframe(1).f_globals.get("__name__"))


def get_view(name: str, strategy: str) -> PoolView:
    try:
        return POOL_VIEWS.get(name)
    except UnknownName as exc:
        raise BenchError(f"strategy {strategy} requires a pool view nobody provides: {exc.message}") from None
