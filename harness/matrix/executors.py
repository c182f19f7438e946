"""The executors of `bench matrix`: how its cells run, with one failure policy for all of them.

Every executor returns one `CellResult` per cell, in the matrix's order. A cell already done is
skipped; a cell that raises is recorded by `failed` (its message and the file holding its
traceback) and reported in one red line as soon as the executor learns of it, and the other
cells go on; KeyboardInterrupt is not caught, so Ctrl-C stops the whole matrix. The same
`run_cell` runs a cell in this process (local) and in a Ray worker, so a failure reads the same
whichever executor met it.

The Ray executor runs one Ray task per cell, on a local or existing cluster, in two waves: first
one cell per distinct pool (the expensive shared stage), in parallel, then all the others, in
parallel. Any stage two running cells still share (gradient features, the base model's
evaluation) is computed by one of them while the other waits on the stage's lock in the cache,
so the cache must live on a path every worker sees (`--set cache_dir=/shared/...` on a real
cluster). Results are the same files a local run writes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from harness.core.errors import BenchError
from harness.experiment import ExperimentConfig
from harness.matrix.spec import Cell, is_done
from harness.runner import run_experiment, shared_stage_hashes

RAY_INSTALL = "pip install 'ray>=2.40'"


@dataclass(frozen=True)
class CellResult:
    """What became of one cell: a row of the matrix's timing table."""

    name: str
    status: str  # "done" | "skipped (done)" | "failed"
    seconds: float
    pool_status: str  # the pool stage's status in the cell's manifest ("computed", "cached"); "-" unless done
    error: str | None = None  # a failed cell's exception message
    log_path: str | None = None  # the file with a failed cell's traceback, when run_experiment wrote one


def skipped(cell: Cell) -> CellResult:
    return CellResult(cell.name, "skipped (done)", 0.0, "-")


def failed(cell: Cell, exc: Exception, seconds: float) -> CellResult:
    """The one failure record of every executor: the message, and the traceback file that
    run_experiment names on the exception (`log_path`) when the failure was unexpected."""
    return CellResult(cell.name, "failed", seconds, "-", str(exc), getattr(exc, "log_path", None))


def run_cell(cell: Cell) -> CellResult:
    """Run one cell where this is called (this process, or a Ray worker); a failure is recorded, not raised."""
    start = time.perf_counter()
    try:
        manifest = run_experiment(cell.config, cell.out)
    except Exception as exc:  # noqa: BLE001  (a failed cell is recorded and reported, the others go on)
        return failed(cell, exc, time.perf_counter() - start)
    return CellResult(cell.name, "done", time.perf_counter() - start, manifest["stages"]["pool"]["status"])


def report(result: CellResult) -> CellResult:
    """A failed cell's one red line, printed by the driver when it learns of the failure."""
    if result.status == "failed":
        where = f" (traceback: {result.log_path})" if result.log_path else ""
        click.secho(f"cell {result.name} failed: {result.error}{where}", fg="red", err=True)
    return result


def run_local(cells: list[Cell]) -> list[CellResult]:
    """One cell after another in this process, each cell's stages printed as it runs."""
    results = []
    for cell in cells:
        if is_done(cell):
            results.append(skipped(cell))
            continue
        click.echo(f"\n=== {cell.name} -> {cell.out}")
        results.append(report(run_cell(cell)))
    return results


def _portable(cell: Cell) -> tuple[str, dict[str, Any], dict[str, Any], str]:
    """A cell as a Ray task's arguments, with absolute paths (expand() made cache_dir absolute):
    workers do not share the driver's working folder."""
    return cell.name, cell.values, cell.config.model_dump(mode="json"), str(cell.out.resolve())


def _waves(todo: list[Cell]) -> list[list[Cell]]:
    """First one cell per distinct pool, then the others: no two cells sample the same pool at once."""
    first_of_pool: dict[str, Cell] = {}
    for cell in todo:
        first_of_pool.setdefault(shared_stage_hashes(cell.resolved)["pool"], cell)
    return [list(first_of_pool.values()), [c for c in todo if c not in first_of_pool.values()]]


def run_ray(cells: list[Cell], address: str | None, gpus_per_cell: float) -> list[CellResult]:
    """One Ray task per cell to run, in two waves (see the module's docstring)."""
    try:
        import ray
    except ImportError:
        raise BenchError(f"--executor ray needs Ray: {RAY_INSTALL}.") from None

    @ray.remote(num_gpus=gpus_per_cell, max_retries=0)
    def run_remote(
        name: str, values: dict[str, Any], config: dict[str, Any], out: str, cwd: str, threads: int
    ) -> CellResult:
        import torch

        os.chdir(cwd)  # relative paths inside configs (prompt files) mean what they meant to the driver
        # Ray starts workers with OMP_NUM_THREADS=1; bf16 matmuls split over another thread count
        # round differently, so sampled pools would differ from the local executor's
        torch.set_num_threads(threads)
        return run_cell(Cell(name, values, ExperimentConfig.model_validate(config), Path(out)))

    import torch

    threads = torch.get_num_threads()
    ray.init(address=address, ignore_reinit_error=True, log_to_driver=False, include_dashboard=False)
    todo = [c for c in cells if not is_done(c)]
    results = {c.name: skipped(c) for c in cells if c not in todo}
    try:
        for wave in _waves(todo):
            futures = [(cell, run_remote.remote(*_portable(cell), os.getcwd(), threads)) for cell in wave]
            for cell, future in futures:
                try:
                    result = ray.get(future)
                except Exception as exc:  # noqa: BLE001  (the worker itself died: the same policy as a failure inside it)
                    result = failed(cell, exc, 0.0)
                results[cell.name] = report(result)
    finally:
        ray.shutdown()
    return [results[c.name] for c in cells]


@dataclass(frozen=True)
class Executor:
    """An `--executor` choice: how it runs the cells, given --address and --gpus-per-cell, and the
    package it needs (a module and the pip command), which is checked before any cell."""

    run: Callable[[list[Cell], str | None, float], list[CellResult]]
    needs: tuple[str, str] | None = None


EXECUTORS: dict[str, Executor] = {
    "local": Executor(lambda cells, address, gpus_per_cell: run_local(cells)),  # the cluster options are Ray's
    "ray": Executor(run_ray, needs=("ray", RAY_INSTALL)),
}
