"""Bootstrap CIs, atomic writes and the stage cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.core.cache import run_stage
from harness.core.errors import StageFailure
from harness.core.io import atomic_path, read_json
from harness.core.stats import mean_ci, ratio_ci


def test_bootstrap_ci_covers_the_mean_and_shrinks_with_n() -> None:
    rng = np.random.default_rng(0)
    small = rng.binomial(1, 0.4, 30).astype(float)
    large = rng.binomial(1, 0.4, 3000).astype(float)
    v, lo, hi = mean_ci(small, n_boot=500, seed=0)
    assert lo <= v <= hi and v == pytest.approx(small.mean())
    _, lo2, hi2 = mean_ci(large, n_boot=500, seed=0)
    assert (hi2 - lo2) < (hi - lo) / 4
    assert lo2 < 0.4 < hi2


def test_ratio_ci_is_pooled_not_mean_of_ratios() -> None:
    v, lo, hi = ratio_ci([1, 3], [1, 4], n_boot=200, seed=0)
    assert v == pytest.approx(4 / 5) and lo <= v <= hi


def test_atomic_path_leaves_nothing_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert list(tmp_path.iterdir()) == [target]


def test_stage_cache_hits_misses_and_never_caches_failures(tmp_path: Path) -> None:
    calls = []

    def compute(out: Path) -> dict:
        calls.append(1)
        (out / "x.txt").write_text("done")
        return {"rows": 1}

    first = run_stage(tmp_path, "demo", {"a": 1}, compute)
    second = run_stage(tmp_path, "demo", {"a": 1}, compute)
    third = run_stage(tmp_path, "demo", {"a": 2}, compute)
    assert (first.status, second.status, third.status) == ("computed", "cached", "computed")
    assert first.hash == second.hash != third.hash and len(calls) == 2
    assert read_json(first.path / "stage.json")["rows"] == 1

    def broken(out: Path) -> dict:
        (out / "partial.txt").write_text("half")
        raise RuntimeError("boom")

    with pytest.raises(StageFailure) as failure:  # an unexpected error names the stage it hit
        run_stage(tmp_path, "demo", {"a": 3}, broken)
    assert failure.value.stage == "demo" and isinstance(failure.value.__cause__, RuntimeError)
    assert sorted(p.name for p in (tmp_path / "demo").iterdir()) == sorted([first.hash, third.hash])


def test_damaged_cache_entries_are_detected_and_recomputed(tmp_path: Path) -> None:
    """A truncated file, a missing file, or a killed run's temporary folder: the next run repairs them."""
    calls = []

    def compute(out: Path) -> dict:
        calls.append(1)
        (out / "rows.jsonl").write_text('{"a": 1}\n{"a": 2}\n')
        (out / "sub").mkdir()
        (out / "sub" / "w.bin").write_bytes(b"\0" * 1000)
        return {}

    first = run_stage(tmp_path, "demo", {"a": 1}, compute)
    (first.path / "rows.jsonl").write_text('{"a": 1}\n{"a"')  # truncated
    again = run_stage(tmp_path, "demo", {"a": 1}, compute)
    assert again.status == "computed" and len(calls) == 2
    assert (again.path / "rows.jsonl").read_text().count("\n") == 2
    (again.path / "sub" / "w.bin").unlink()
    assert run_stage(tmp_path, "demo", {"a": 1}, compute).status == "computed" and len(calls) == 3
    # what `kill -9` during compute leaves behind: a temporary sibling folder
    stale = tmp_path / "demo" / f".{first.hash}.abc123.tmp"
    stale.mkdir()
    (stale / "rows.jsonl").write_text("half")
    (first.path / "stage.json").unlink()
    assert run_stage(tmp_path, "demo", {"a": 1}, compute).status == "computed"
    assert not stale.exists()
    assert run_stage(tmp_path, "demo", {"a": 1}, compute).status == "cached" and len(calls) == 4
