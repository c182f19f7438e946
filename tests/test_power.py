"""The power analysis on synthetic pilots whose variance components are known."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from harness.cli import main
from harness.config import BenchError
from harness.power import analyse, load_pilot, mde, units_needed


def _pilot(root: Path, n_prompts: int, seeds: int, seed_sd: float, effects: dict[str, float], rng_seed: int = 0) -> list[Path]:
    """Runs whose prompt outcomes are Bernoulli(q_p + strategy effect + seed shift), like eval_outputs.jsonl."""
    rng = np.random.default_rng(rng_seed)
    base_rate = rng.uniform(0.2, 0.8, n_prompts)
    paths = []
    for strategy, effect in effects.items():
        for seed in range(seeds):
            shift = rng.normal(0, seed_sd)
            run = root / f"{strategy}-s{seed}"
            run.mkdir(parents=True)
            (run / "manifest.json").write_text(json.dumps({"status": "done", "seed": seed}))
            (run / "selection.json").write_text(json.dumps({"strategy": strategy, "budget": 12, "pair_ids": []}))
            probs = np.clip(base_rate + effect + shift, 0, 1)
            rows = [{"prompt_id": f"p{i}", "tuned_strict": [bool(rng.random() < q)], "tuned_loose": [bool(rng.random() < q)]}
                    for i, q in enumerate(probs)]
            (run / "eval_outputs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
            paths.append(run)
    return paths


def test_components_and_sizes_follow_the_model(tmp_path: Path) -> None:
    _pilot(tmp_path, n_prompts=400, seeds=4, seed_sd=0.05, effects={"a": 0.0, "b": 0.0, "c": 0.1})
    rows = {r["metric"]: r for r in analyse(load_pilot([tmp_path]), effect=0.05, alpha=0.05, power=0.8)}
    row = rows["prompt_strict_acc"]
    assert row["n_units"] == 400 and row["pilot_seeds"] == 4 and row["seeds"] == {"a": 4, "b": 4, "c": 4} and row["units"] == "shared"
    # run shifts have sd 0.05 (clipping at 0 and 1 shrinks them a little)
    assert 0.02 < row["var_delta"] ** 0.5 < 0.09
    # Bernoulli flips between seeds: sd of a unit's outcome about sqrt(0.5 * 0.5 - spread of q) ~ 0.44
    assert 0.35 < row["var_e"] ** 0.5 < 0.5
    # no strategy-by-prompt interaction was built in (the effects are uniform shifts)
    assert row["var_ab"] < 0.02
    for s, n in row["units_needed"].items():
        if n is not None:
            assert mde(row, n, s, 0.05, 0.8) <= 0.05 + 1e-12
            if n > 1:
                assert mde(row, n - 1, s, 0.05, 0.8) > 0.05
    assert row["units_needed"][1] is None  # one seed: run shifts of sd 0.05 alone exceed what a 5-point test allows


def test_seed_noise_alone_can_make_an_effect_undetectable() -> None:
    comp = {"var_delta": 0.04**2, "var_e": 0.2, "var_ab": 0.0, "units": "shared"}
    assert units_needed(comp, 0.05, 1, 0.05, 0.8) is None
    quiet = {"var_delta": 0.0, "var_e": 0.1, "var_ab": 0.0, "units": "shared"}
    assert units_needed(quiet, 0.05, 1, 0.05, 0.8) == int(np.ceil(0.2 / (0.05 / 2.8015852) ** 2))


def test_held_out_pairs_that_differ_by_seed_are_handled_within_seed(tmp_path: Path) -> None:
    runs = _pilot(tmp_path, n_prompts=60, seeds=3, seed_sd=0.02, effects={"a": 0.0, "b": 0.0})
    rng = np.random.default_rng(1)
    for run in runs:
        seed = json.loads((run / "manifest.json").read_text())["seed"]
        rows = [{"pair_id": f"s{seed}-q{i}", "prompt_id": f"s{seed}-p{i}", "margin": 0.0, "correct": float(rng.random() < 0.7)} for i in range(50)]
        (run / "heldout_preferences.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    row = {r["metric"]: r for r in analyse(load_pilot([tmp_path]), 0.05, 0.05, 0.8)}["preference_accuracy"]
    assert row["units"] == "per seed" and row["n_units"] == 50
    # single-run differences of two Bernoulli(0.7): variance 2 * 0.21; a quarter of it is taken as var_e
    assert 0.05 < row["var_e"] < 0.16
    for s, n in row["units_needed"].items():  # the per-seed model is used consistently by mde() and units_needed()
        if n is not None and n > 1:
            assert mde(row, n, s, 0.05, 0.8) <= 0.05 + 1e-12 < mde(row, n - 1, s, 0.05, 0.8)


def test_held_out_pairs_shared_by_seeds_are_averaged_per_prompt(tmp_path: Path) -> None:
    """Pairs sampled on evaluation prompts are the same for every seed: one unit per prompt, shared."""
    runs = _pilot(tmp_path, n_prompts=60, seeds=3, seed_sd=0.02, effects={"a": 0.0, "b": 0.0})
    rng = np.random.default_rng(2)
    for run in runs:
        rows = [{"pair_id": f"q{i}-{j}", "prompt_id": f"p{i}", "margin": 0.0, "correct": float(rng.random() < 0.7)} for i in range(40) for j in range(3)]
        (run / "heldout_preferences.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    pilot = load_pilot([tmp_path])
    assert all(set(r.outcomes["preference_accuracy"]) == {f"p{i}" for i in range(40)} for r in pilot)
    assert all(v in (0.0, 1 / 3, 2 / 3, 1.0) for r in pilot for v in r.outcomes["preference_accuracy"].values())
    row = {r["metric"]: r for r in analyse(pilot, 0.05, 0.05, 0.8)}["preference_accuracy"]
    assert row["units"] == "shared" and row["n_units"] == 40
    # a prompt's mean of 3 independent Bernoulli(0.7) varies across seeds by 0.21 / 3
    assert 0.03 < row["var_e"] < 0.12


def test_a_pilot_without_repeated_seeds_is_refused(tmp_path: Path) -> None:
    _pilot(tmp_path, n_prompts=20, seeds=1, seed_sd=0.0, effects={"a": 0.0, "b": 0.0})
    with pytest.raises(BenchError, match="2 or more seeds"):
        analyse(load_pilot([tmp_path]), 0.05, 0.05, 0.8)


def test_bench_power_prints_the_table_and_writes_json(tmp_path: Path) -> None:
    runs = _pilot(tmp_path / "pilot", n_prompts=100, seeds=3, seed_sd=0.02, effects={"a": 0.0, "b": 0.05})
    result = CliRunner().invoke(main, ["power", str(tmp_path / "pilot"), "--out", str(tmp_path / "power.json")])
    assert result.exit_code == 0, result.output
    assert "prompt_strict_acc" in result.output and "instruction_loose_acc" in result.output
    rows = json.loads((tmp_path / "power.json").read_text())
    assert len(rows) == 4 and all(r["n_units"] == 100 for r in rows) and len(runs) == 6


def test_runs_evaluated_on_different_prompts_are_refused(tmp_path: Path) -> None:
    """A matrix resized from 48 to 96 held-out prompts, half rerun: mixing them would mis-estimate every term."""
    _pilot(tmp_path / "old", n_prompts=48, seeds=3, seed_sd=0.0, effects={"a": 0.0})
    _pilot(tmp_path / "new", n_prompts=96, seeds=3, seed_sd=0.0, effects={"b": 0.0})
    with pytest.raises(BenchError, match=r"different held-out prompts .*48 prompts.*: 96"):
        analyse(load_pilot([tmp_path / "old", tmp_path / "new"]), effect=0.05, alpha=0.05, power=0.8)
