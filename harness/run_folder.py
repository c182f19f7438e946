"""One run folder: the stages done so far, the manifest, and copies of what stages publish.

The manifest is rewritten after every stage, so a killed run shows how far it got and the same
command resumes from there (the stages themselves live in the content-addressed cache).
"""

from __future__ import annotations

import shutil
import sys
import time
import traceback
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from harness.core.cache import StageResult, run_stage
from harness.core.errors import BenchError
from harness.core.io import atomic_dir, atomic_path, write_json, write_text
from harness.core.run_files import RunFolder
from harness.experiment import ExperimentConfig
from harness.models.choices import Resolved
from harness.provenance import git_dirty, git_sha, machine, versions
from harness.stages.select import Selector


def default_out_dir(config: ExperimentConfig) -> Path:
    s = config.select
    return Path("runs") / f"{config.name}-{s.strategy}-b{s.budget}-s{config.seed}"


class Run:
    """Bookkeeping for one run folder, and what every stage reads: the config, the cache, and the
    model and LoRA targets as resolved on this machine (the keys record the resolved values)."""

    def __init__(self, config: ExperimentConfig, out_dir: Path, resolved: Resolved):
        self.config = config
        self.out = Path(out_dir)
        self.cache = Path(config.cache_dir)
        self.stages: dict[str, dict[str, Any]] = {}
        self.cost: dict[str, Any] = {}
        self.started = time.time()
        self.opened = False
        self.machine = machine()
        self.git_sha, self.git_dirty = git_sha(), git_dirty()
        # the machine-dependent choices, resolved once (runner.resolve_run): what the stages load and their keys record
        self.resolved = resolved
        self.model = self.resolved.model
        self.train = self.resolved.train
        # the strategy, looked up once: the budget guard, the pool views and the select stage read it
        self.selector = Selector.of(config.select)

    def open(self) -> None:
        """Create the run folder once the inputs are known to be usable.

        Before this, only complete cache entries exist, so a refused budget or a bad source
        leaves no run folder behind, and a killed run resumes from the cache.
        """
        self.out.mkdir(parents=True, exist_ok=True)
        self.opened = True
        self.write_manifest("running")

    def stage(self, name: str, inputs: dict[str, Any], compute: Callable[[Path], dict[str, Any] | None]) -> StageResult:
        result = run_stage(self.cache, name, inputs, compute)
        self.stages[name] = {
            "hash": result.hash,
            "status": result.status,
            "seconds": round(result.seconds, 3),
            "compute_seconds": round(result.compute_seconds, 3),
            "path": str(result.path),
        }
        if self.opened:
            self.write_manifest("running")
        return result

    def record_cost(self, selection: list[str], training: str) -> None:
        """Selection cost next to training cost (compute seconds, also for stages found cached: what they
        took when computed), since data selection is worth its compute only if it beats random selection
        given the same compute (arXiv 2503.01807)."""

        def seconds(names: list[str]) -> float:
            return round(sum(self.stages[n]["compute_seconds"] for n in names if n in self.stages), 1)

        selecting, training_seconds = seconds(selection), seconds([training])
        self.cost = {
            "selection_seconds": selecting,
            "selection_stages": [n for n in selection if n in self.stages],
            "training_seconds": training_seconds,
            "selection_per_training": round(selecting / training_seconds, 3) if training_seconds else None,
        }

    def publish_file(self, source: Path, name: str) -> None:
        """Copy a stage's file into the run folder (atomically: a reader never sees half a file)."""
        with atomic_path(self.out / name) as tmp:
            shutil.copyfile(source, tmp)

    def publish_dir(self, name: str) -> AbstractContextManager[Path]:
        """A temporary folder that becomes `<run>/<name>` when the block ends (atomic_dir)."""
        return atomic_dir(self.out / name)

    def write_manifest(self, status: str, error: str | None = None, error_log: str | None = None) -> None:
        write_json(
            self.out / RunFolder.MANIFEST,
            {
                "status": status,
                "config": self.config.model_dump(mode="json"),
                "seed": self.config.seed,
                "pool_seed": self.config.pool_seed,
                "versions": versions(),
                "git_sha": self.git_sha,
                "git_dirty": self.git_dirty,
                "argv": sys.argv,
                "machine": self.machine,
                "generation": self.resolved.engine,
                **({"sampled_by": self.resolved.bundled} if self.resolved.bundled else {}),
                "resolved": {
                    "model": self.model,
                    "target_modules": self.train.target_modules,
                    "train_precision": self.train.precision,
                },
                "started": self.started,
                "stages": self.stages,
                **({"cost": self.cost} if self.cost else {}),
                **({"error": error} if error else {}),
                **({"error_log": error_log} if error_log else {}),
            },
        )

    def fail(self, exc: BaseException) -> None:
        """Record a failure: a refused input leaves no run folder; a crash leaves its record and traceback."""
        unexpected = not isinstance(exc, (BenchError, KeyboardInterrupt))
        if unexpected and not self.opened:
            self.open()
        if self.opened:
            log = (
                write_error_log(self.out / RunFolder.ERROR_LOG, exc) if unexpected else None
            )  # a user error needs no traceback
            self.write_manifest("failed", error=f"{type(exc).__name__}: {exc}", error_log=log)


def write_error_log(path: Path, exc: BaseException) -> str:
    """The full traceback of an unexpected failure, next to what it broke; its path is recorded on the
    exception (`log_path`) so the CLI can say where it is."""
    write_text(path, "".join(traceback.format_exception(exc)))
    try:
        exc.log_path = str(path)  # type: ignore[attr-defined]
    except AttributeError:
        pass
    return str(path)
