"""A pool bundle restores on any CPU: a sampled stage is data, adopted under the engine that drew it, and refused
only where it really differs (prompts, pool settings, model, seed, bpo-bench version), naming what differs."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

from harness import __version__
from harness.core.bundle import bundled_stages, export_bundle, import_bundle, sampled_by, why_not
from harness.core.cache import run_stage
from harness.models.resolve import ENGINE_FIELDS

REPO = Path(__file__).resolve().parents[2]
BF16 = {"backend": "transformers", "dtype": "bfloat16", "decoder": "continuous-2"}
FP32 = {**BF16, "dtype": "float32"}


def pool_inputs(engine: dict[str, str], k: int = 8, prompts: str = "prompts-a") -> dict[str, Any]:
    return {"prompts": prompts, "model": "m", "pool": {"k": k, "temperature": 0.9}, **engine, "seed": 0}


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    """A bundle of a prompts stage and a pool stage sampled in bf16 (their files are real, their contents small)."""
    cache = tmp_path / "made-here"
    prompts = run_stage(
        cache,
        "prompts",
        {"prompts": {"n_train": 4}, "seed": 0},
        lambda out: (out / "prompts.jsonl").write_text('{"id": "p1"}\n') and None,
    )
    pool = run_stage(
        cache,
        "pool",
        pool_inputs(BF16, prompts=prompts.hash),
        lambda out: (out / "pairs.jsonl").write_text('{"id": "x"}\n') and None,
    )
    out = tmp_path / "pool.tar.gz"
    export_bundle([("prompts", prompts.hash, prompts.path), ("pool", pool.hash, pool.path)], out, {"cpu": "a bf16 CPU"})
    return out


def test_a_pool_sampled_in_bf16_is_adopted_by_a_machine_that_resolves_fp32(bundle: Path, tmp_path: Path) -> None:
    held = {s.name: s for s in bundled_stages(bundle)}
    local = pool_inputs(FP32, prompts=held["prompts"].hash)
    assert sampled_by(bundle, "pool", local, ENGINE_FIELDS) == BF16
    # restored under its own key, which a run keyed by the bundle's engine finds
    cache = tmp_path / "elsewhere"
    assert [state for _, state in import_bundle(bundle, cache)] == ["restored", "restored"]
    assert (cache / "pool" / held["pool"].hash / "pairs.jsonl").read_text() == '{"id": "x"}\n'
    assert (
        run_stage(
            cache, "pool", {**local, **BF16}, lambda out: pytest.fail("the restored pool was sampled again")
        ).status
        == "cached"
    )
    # a pool made by another back end (no decoder field there) is data too
    assert (
        sampled_by(
            bundle, "pool", {k: v for k, v in local.items() if k != "decoder"} | {"backend": "vllm"}, ENGINE_FIELDS
        )
        == BF16
    )


def test_a_pool_that_really_differs_is_refused_naming_what_differs(bundle: Path) -> None:
    held = {s.name: s for s in bundled_stages(bundle)}
    other_k = pool_inputs(FP32, k=4, prompts=held["prompts"].hash)
    assert sampled_by(bundle, "pool", other_k, ENGINE_FIELDS) is None
    message = why_not(bundle, "pool", other_k, ENGINE_FIELDS)
    assert "pool.k = 8 there, 4 here" in message and "dtype" not in message
    other_prompts = pool_inputs(FP32, prompts="prompts-b")
    message = why_not(
        bundle, "pool", other_prompts, ENGINE_FIELDS, upstream={"prompts": {"prompts": {"n_train": 6}, "seed": 0}}
    )
    assert "prompts stage: prompts.n_train = 4 there, 6 here" in message
    assert "holds no preference_pool stage" in why_not(bundle, "preference_pool", other_k, ENGINE_FIELDS)


def test_another_bpo_bench_version_is_named_when_nothing_else_differs(bundle: Path, monkeypatch) -> None:
    held = {s.name: s for s in bundled_stages(bundle)}
    local = pool_inputs(FP32, prompts=held["prompts"].hash)
    for module in ("harness.core.cache", "harness.core.bundle"):  # what keys stages, and what the message names
        monkeypatch.setattr(f"{module}.__version__", "9.9.9")
    assert sampled_by(bundle, "pool", local, ENGINE_FIELDS) is None
    assert f"bpo-bench version ({__version__} there, 9.9.9 here)" in why_not(bundle, "pool", local, ENGINE_FIELDS)


def test_a_bundle_whose_index_predates_key_inputs_is_read_from_its_stage_files(bundle: Path, tmp_path: Path) -> None:
    """Format-1 bundles (the committed testbed pool's) carry no inputs in their index: each stage.json has them."""
    old = tmp_path / "format1.tar.gz"
    with tarfile.open(bundle, "r:gz") as source, tarfile.open(old, "w:gz") as target:
        for member in source.getmembers():
            handle = source.extractfile(member)
            data = handle.read() if handle else b""
            if member.name == "bundle.json":
                index = json.loads(data)
                index = {
                    "format": 1,
                    "machine": index["machine"],
                    "stages": [{k: s[k] for k in ("name", "hash", "files")} for s in index["stages"]],
                }
                data = json.dumps(index).encode()
                member.size = len(data)
            target.addfile(member, io.BytesIO(data))
    assert [s.inputs for s in bundled_stages(old)] == [s.inputs for s in bundled_stages(bundle)]
    assert sampled_by(old, "pool", pool_inputs(FP32, prompts=bundled_stages(old)[0].hash), ENGINE_FIELDS) == BF16


def test_the_committed_testbed_samples_are_this_experiments_samples_on_any_cpu() -> None:
    """The answer's samples were drawn in bf16; a machine that resolves fp32 keys its samples as the bundle's, and
    every stage computed here (the base model's evaluation) by its own dtype. The bundle also carries the pools
    those samples give under the testbed's judge, so no CPU relabels or resamples them."""
    from harness.experiment import load_config
    from harness.models.resolve import resolve_dtype
    from harness.runner import resolve_run, shared_stage_hashes

    for dtype in ("auto", "float32", "bfloat16"):
        config = load_config(REPO / "experiments" / "testbed.yaml", [f"generation.dtype={dtype}"])
        resolved = resolve_run(config)
        hashes = shared_stage_hashes(resolve_run(config))
        assert (hashes["samples"], hashes["preference_samples"]) == ("21f8759b9ae18d67", "b64d7eca8bfa56f9")
        held = {s.name: s.hash for s in bundled_stages(REPO / "experiments" / "pools" / "testbed.tar.gz")}
        assert {name: held[name] for name in ("samples", "pool", "preference_samples", "preference_pool")} == {
            name: hashes[name] for name in ("samples", "pool", "preference_samples", "preference_pool")
        }
        assert resolved.sampler("samples")["dtype"] == "bfloat16" and resolved.engine["dtype"] == resolve_dtype(dtype)
