"""The Ray executor of `bench matrix`: one Ray task per cell, on a local or existing cluster.

Cells run in two waves: first one cell per distinct pool (the expensive shared stage), in
parallel, then all the others, in parallel. Any stage two running cells still share (gradient
features, the base model's evaluation) is computed by one of them while the other waits on the
stage's lock in the cache, so the cache must live on a path every worker sees (`--set
cache_dir=/shared/...` on a real cluster). Results are the same files a local run writes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from harness.config import BenchError, ExperimentConfig
from harness.matrix import Cell, is_done
from harness.runner import shared_stage_hashes


def _absolute(cell: Cell) -> tuple[dict[str, Any], str]:
    """Config and run folder with absolute paths (expand() made cache_dir absolute): workers do not share the driver's working folder."""
    return cell.config.model_dump(mode="json"), str(cell.out.resolve())


def run_cells_on_ray(cells: list[Cell], address: str | None, gpus_per_cell: float) -> list[tuple[str, str, float, str]]:
    try:
        import ray
    except ImportError:
        raise BenchError("--executor ray needs Ray: pip install 'ray>=2.40'.") from None

    @ray.remote(num_gpus=gpus_per_cell, max_retries=0)
    def run_cell(config: dict[str, Any], out: str, cwd: str, threads: int) -> tuple[str, float, str]:
        import time

        import torch

        from harness.runner import run_experiment

        os.chdir(cwd)  # relative paths inside configs (prompt files) mean what they meant to the driver
        # Ray starts workers with OMP_NUM_THREADS=1; bf16 matmuls split over another thread count
        # round differently, so sampled pools would differ from the local executor's
        torch.set_num_threads(threads)
        start = time.perf_counter()
        manifest = run_experiment(ExperimentConfig.model_validate(config), Path(out))
        return "done", time.perf_counter() - start, manifest["stages"]["pool"]["status"]

    import torch

    threads = torch.get_num_threads()
    ray.init(address=address, ignore_reinit_error=True, log_to_driver=False, include_dashboard=False)
    todo = [c for c in cells if not is_done(c)]
    first_of_pool: dict[str, Cell] = {}
    for cell in todo:
        first_of_pool.setdefault(shared_stage_hashes(cell.config)["pool"], cell)
    waves = [list(first_of_pool.values()), [c for c in todo if c not in first_of_pool.values()]]
    results: dict[str, tuple[str, str, float, str]] = {c.name: (c.name, "skipped (done)", 0.0, "-") for c in cells if c not in todo}
    try:
        for wave in waves:
            futures = {cell.name: run_cell.remote(*_absolute(cell), os.getcwd(), threads) for cell in wave}
            for name, future in futures.items():
                try:
                    status, seconds, pool = ray.get(future)
                    results[name] = (name, status, seconds, pool)
                except Exception as exc:  # noqa: BLE001  (a failed cell is reported, the others go on)
                    results[name] = (name, f"failed: {type(exc).__name__}"[:60], 0.0, "-")
    finally:
        ray.shutdown()
    return [results[c.name] for c in cells]
