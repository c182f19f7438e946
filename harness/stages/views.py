"""The pipeline's pool-view step: every view the run's strategy declares, computed (through the stage cache) and
attached to the selectable pool; and their preflight. The views themselves are plugins (harness/pool_views/)."""

from __future__ import annotations

import dataclasses
import importlib
import sys
from typing import TYPE_CHECKING, Any

from harness.core.moved import RENAMED, warn_renamed
from harness.core.records import CandidatePool, Features
from harness.pool_views.base import get_view
from harness.stages.select import Selector

if TYPE_CHECKING:
    from harness.experiment import ExperimentConfig
    from harness.run_folder import Run


def __getattr__(name: str) -> Any:
    """The pool-view contract's old home, kept for one release: a plugin importing it from here runs, with a warning."""
    old = f"{__name__}.{name}"
    if old not in RENAMED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warn_renamed(old, sys._getframe(1).f_code.co_filename)
    module, _, attribute = RENAMED[old].rpartition(".")
    return getattr(importlib.import_module(module), attribute)


def preflight(config: ExperimentConfig) -> None:

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
