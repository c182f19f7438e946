"""Content-addressed stage cache: `cache_dir/<stage>/<hash>/`.

The hash covers the fully resolved stage inputs (config slice, upstream hashes) and a schema
version, never a hand-picked list of fields. A stage's folder appears only when the stage
finished (built in a temp folder, then renamed), so failures are never cached.
"""

from __future__ import annotations

import fcntl
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import __version__
from harness.io import atomic_dir, content_hash, read_json, write_json

SCHEMA_VERSION = 1


@dataclass
class StageResult:
    name: str
    hash: str
    path: Path
    status: str  # "computed" | "cached"
    seconds: float
    compute_seconds: float


def stage_hash(name: str, inputs: dict[str, Any]) -> str:
    return content_hash({"stage": name, "inputs": inputs, "schema": SCHEMA_VERSION, "version": __version__})


def run_stage(cache_dir: Path, name: str, inputs: dict[str, Any], compute: Callable[[Path], dict[str, Any] | None]) -> StageResult:
    """Return the cached stage output, or call `compute(tmp_dir)` and commit its folder."""
    key = stage_hash(name, inputs)
    path = Path(cache_dir) / name / key
    start = time.perf_counter()
    if (path / "stage.json").is_file():
        return _cached(name, key, path, start)
    locks = Path(cache_dir) / ".locks"
    locks.mkdir(parents=True, exist_ok=True)
    # Parallel cells (Ray workers, two terminals) that need the same stage: one computes it, the
    # others wait on the lock and then read it from the cache.
    with open(locks / f"{name}-{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (path / "stage.json").is_file():
            return _cached(name, key, path, start)
        with atomic_dir(path) as tmp:
            extra = compute(tmp) or {}
            seconds = time.perf_counter() - start
            write_json(tmp / "stage.json", {"stage": name, "hash": key, "inputs": inputs, "seconds": seconds, **extra})
    return StageResult(name, key, path, "computed", seconds, seconds)


def _cached(name: str, key: str, path: Path, start: float) -> StageResult:
    meta = read_json(path / "stage.json")
    return StageResult(name, key, path, "cached", time.perf_counter() - start, meta.get("seconds", 0.0))
