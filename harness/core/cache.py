"""Content-addressed stage cache: `cache_dir/<stage>/<hash>/`.

The hash covers the fully resolved stage inputs (config slice, upstream hashes) and a schema
version, never a hand-picked list of fields. A stage's folder appears only when the stage
finished (built in a temp folder, then renamed), so failures are never cached.
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import __version__
from harness.core.errors import BenchError, StageFailure
from harness.core.io import atomic_dir, content_hash, read_json, write_json

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


def run_stage(
    cache_dir: Path, name: str, inputs: dict[str, Any], compute: Callable[[Path], dict[str, Any] | None]
) -> StageResult:
    """Return the cached stage output, or call `compute(tmp_dir)` and commit its folder.

    A stage folder counts only with its `stage.json`, written last inside the temporary folder
    before the rename: a folder without one (copied by hand, damaged) is recomputed, and the
    temporary folders a killed process left behind are removed by the next one to compute it.
    """
    key = stage_hash(name, inputs)
    path = Path(cache_dir) / name / key
    start = time.perf_counter()
    if intact(name, path):
        return _cached(name, key, path, start)
    locks = Path(cache_dir) / ".locks"
    locks.mkdir(parents=True, exist_ok=True)
    # Parallel cells (Ray workers, two terminals) that need the same stage: one computes it, the
    # others wait on the lock and then read it from the cache.
    with open(locks / f"{name}-{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if intact(name, path):
            return _cached(name, key, path, start)
        # holding the lock, nobody else can be computing this stage: leftovers are a killed run's
        for stale in path.parent.glob(f".{key}.*.tmp"):
            shutil.rmtree(stale, ignore_errors=True)
        print(f"[bench] {name}: computing ({key})", file=sys.stderr, flush=True)
        with atomic_dir(path) as tmp:
            try:
                extra = compute(tmp) or {}
            except (BenchError, StageFailure):
                raise
            except Exception as exc:  # a bug or an environment fault: say which stage it hit
                raise StageFailure(name, exc) from exc
            seconds = time.perf_counter() - start
            files = fingerprints(tmp)
            write_json(
                tmp / "stage.json",
                {"stage": name, "hash": key, "inputs": inputs, "seconds": seconds, **extra, "files": files},
            )
    return StageResult(name, key, path, "computed", seconds, seconds)


def fingerprints(folder: Path) -> dict[str, list]:
    """relative path -> [size, sha256] of every file, so a damaged cached copy is noticed."""
    out = {}
    for file in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != "stage.json"):
        digest = hashlib.sha256()
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        out[str(file.relative_to(folder))] = [file.stat().st_size, digest.hexdigest()]
    return out


def intact(name: str, path: Path) -> bool:
    """The stage folder is complete and its files are the ones it was committed with."""
    if not (path / "stage.json").is_file():
        return False
    try:
        recorded = read_json(path / "stage.json").get("files")
    except ValueError:
        recorded = "unreadable stage.json"
    if recorded is None or recorded == fingerprints(path):
        return True
    print(
        f"[bench] {name}: the cached copy in {path} is damaged (missing, truncated or edited files); recomputing",
        file=sys.stderr,
        flush=True,
    )
    return False


def _cached(name: str, key: str, path: Path, start: float) -> StageResult:
    print(f"[bench] {name}: cached ({key})", file=sys.stderr, flush=True)
    meta = read_json(path / "stage.json")
    return StageResult(name, key, path, "cached", time.perf_counter() - start, meta.get("seconds", 0.0))
