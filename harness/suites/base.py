"""What every evaluation suite shares: the model under evaluation and the suite registry.

A suite turns (model, suite config) into a folder holding its outputs, its exports in the
format of the tool it imitates, and `metrics`: name -> {value, ci_low, ci_high, n, judge,
weak_judge, ...}. Generations are a cached stage of their own, keyed by the model and the
generation settings only, so changing the judge re-judges without regenerating.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.config import BenchError, SuiteConfig
from harness.io import content_hash


@dataclass(frozen=True)
class EvalTarget:
    """A model to evaluate: base weights plus an optional LoRA adapter folder, and the engine that runs it."""

    model: str
    adapter: Path | None = None
    label: str = "model"
    backend: str = "auto"
    """generation back end: auto | transformers | vllm (resolved per machine; part of the cache key)"""
    dtype: str = "auto"
    """generation dtype: auto | float32 | bfloat16 (resolved per machine; part of the cache key)"""

    def cache_key(self) -> dict[str, Any]:
        from harness.models import engine_key, model_fingerprint

        key: dict[str, Any] = {"model": model_fingerprint(self.model), **engine_key(self.backend, self.dtype)}
        if self.adapter is not None:
            files = sorted(p for p in Path(self.adapter).iterdir() if p.is_file())
            key["adapter"] = content_hash([(p.name, p.read_bytes().hex()) for p in files if p.stat().st_size < 64 << 20])
        return key


SuiteFn = Callable[[SuiteConfig, EvalTarget, Path, Path], dict[str, dict[str, Any]]]
"""(suite config, target, out folder, cache dir) -> metrics; writes its exports into the out folder."""

_SUITES: dict[str, SuiteFn] = {}
_BUILTIN_MODULES = ("instruction_following", "alpaca_eval", "mt_bench", "lm_eval_suite")


def register_suite(name: str) -> Callable[[SuiteFn], SuiteFn]:
    def wrap(fn: SuiteFn) -> SuiteFn:
        if name in _SUITES:
            raise ValueError(f"suite {name!r} registered twice")
        _SUITES[name] = fn
        return fn

    return wrap


def get_suite(name: str) -> SuiteFn:
    for module in _BUILTIN_MODULES:  # importing a suite's module registers it
        importlib.import_module(f"harness.suites.{module}")

    if name not in _SUITES:
        raise BenchError(f"unknown suite {name!r}; known: {', '.join(sorted(_SUITES))}")
    return _SUITES[name]
