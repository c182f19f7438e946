"""Comparisons know their CPUs: runs of one setting computed on two kinds of machine (bf16 on one CPU, fp32 on
another) are two settings, analysed and tested apart and named as such; a matrix keeps each seed on one kind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.analysis.comparisons import paired_tests
from harness.analysis.grouping import machine_kind
from harness.analysis.power import analyse
from harness.analysis.runs import load_runs
from harness.core.errors import BenchError
from harness.models.resolve import resolve_dtype
from harness.provenance import machine

BF16 = {"cpu": "AMD EPYC", "cpu_bf16": ["avx512_bf16"], "gpu": None}
FP32 = {"cpu": "AMD EPYC", "cpu_bf16": [], "gpu": None}
REPO = Path(__file__).resolve().parents[2]


def write_runs(
    root: Path, machine_record: dict, dtype: str, strategies: tuple[str, ...], seeds: int = 2, n: int = 30
) -> None:
    for strategy in strategies:
        for seed in range(seeds):
            run = root / f"{strategy}-s{seed}"
            run.mkdir(parents=True)
            manifest = {
                "status": "done",
                "seed": seed,
                "config": {"seed": seed},
                "machine": machine_record,
                "generation": {"dtype": dtype},
            }
            (run / "manifest.json").write_text(json.dumps(manifest))
            (run / "selection.json").write_text(json.dumps({"strategy": strategy, "budget": 12, "pair_ids": []}))
            rows = [
                {
                    "prompt_id": f"p{i}",
                    "tuned_strict": [(i + seed + len(strategy)) % 3 == 0],
                    "tuned_loose": [i % 2 == 0],
                }
                for i in range(n)
            ]
            (run / "eval_outputs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_the_kind_names_the_cpu_its_bf16_instructions_and_the_dtype() -> None:
    assert machine_kind(BF16, "bfloat16") == "AMD EPYC (avx512_bf16), bfloat16"
    assert machine_kind(FP32, "float32") == "AMD EPYC (no native bf16), float32"
    assert machine_kind({"gpu": "NVIDIA H100"}, "bfloat16") == "NVIDIA H100, bfloat16"


def test_runs_on_two_kinds_are_two_settings_never_paired(tmp_path: Path) -> None:
    """The same matrix (same config, same seeds) on a bf16 CPU and on an fp32 one: neither pooled as more seeds nor
    refused as duplicates; bpo is tested against the uniform runs of its own kind only, and power is sized per kind."""
    write_runs(tmp_path / "bf16", BF16, "bfloat16", ("bpo", "uniform"))
    write_runs(tmp_path / "fp32", FP32, "float32", ("bpo", "uniform"))
    runs = load_runs([tmp_path / "bf16", tmp_path / "fp32"], need_outputs=True)
    assert len({r.cell for r in runs}) == 4 and len({r.context for r in runs}) == 2
    assert {r.label for r in runs} == {"on AMD EPYC (avx512_bf16), bfloat16", "on AMD EPYC (no native bf16), float32"}
    tests = [t for t in paired_tests(runs, "uniform", "prompt_strict_acc") if "diff" in t]
    assert sorted((t["strategy"], t["setting"]) for t in tests) == [
        ("bpo", "on AMD EPYC (avx512_bf16), bfloat16"),
        ("bpo", "on AMD EPYC (no native bf16), float32"),
    ]
    rows = [r for r in analyse(runs, 0.05, 0.05, 0.8) if r["metric"] == "prompt_strict_acc"]
    assert sorted(r["setting"] for r in rows) == [
        "on AMD EPYC (avx512_bf16), bfloat16",
        "on AMD EPYC (no native bf16), float32",
    ]


def test_a_matrix_refuses_to_finish_a_seed_begun_on_another_kind(tmp_path: Path) -> None:
    from harness.matrix.spec import check_seed_machines, expand, load_matrix

    path = REPO / "experiments" / "smoke-matrix.yaml"
    cells = expand(load_matrix(path), path, tmp_path / "runs", [f"cache_dir={tmp_path / 'cache'}"])
    here = machine_kind(machine(), resolve_dtype("auto"))
    other = (BF16, "bfloat16") if "float32" in here else (FP32, "float32")
    first = cells[0]
    first.out.mkdir(parents=True)
    (first.out / "manifest.json").write_text(
        json.dumps({"status": "done", "config": {}, "machine": other[0], "generation": {"dtype": other[1]}})
    )
    with pytest.raises(
        BenchError,
        match=rf"seed 0 of this matrix was begun on {machine_kind(*other).replace('(', '.').replace(')', '.')}",
    ):
        check_seed_machines(cells)
    (first.out / "manifest.json").write_text(
        json.dumps(
            {"status": "done", "config": {}, "machine": machine(), "generation": {"dtype": resolve_dtype("auto")}}
        )
    )
    check_seed_machines(cells)  # begun here: it goes on
