"""The power analysis on synthetic pilots whose variance components are known."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from harness.analysis.power import analyse, mde, units_needed
from harness.analysis.runs import load_runs
from harness.cli import main
from harness.core.errors import BenchError


def _pilot(
    root: Path,
    n_prompts: int,
    seeds: int,
    seed_sd: float,
    effects: dict[str, float],
    rng_seed: int = 0,
    config: dict | None = None,
) -> list[Path]:
    """Runs whose prompt outcomes are Bernoulli(q_p + strategy effect + seed shift), like eval_outputs.jsonl."""
    rng = np.random.default_rng(rng_seed)
    base_rate = rng.uniform(0.2, 0.8, n_prompts)
    paths = []
    for strategy, effect in effects.items():
        for seed in range(seeds):
            shift = rng.normal(0, seed_sd)
            run = root / f"{strategy}-s{seed}"
            run.mkdir(parents=True)
            (run / "manifest.json").write_text(
                json.dumps({"status": "done", "seed": seed, "config": {**(config or {}), "seed": seed}})
            )
            (run / "selection.json").write_text(json.dumps({"strategy": strategy, "budget": 12, "pair_ids": []}))
            probs = np.clip(base_rate + effect + shift, 0, 1)
            rows = [
                {
                    "prompt_id": f"p{i}",
                    "tuned_strict": [bool(rng.random() < q)],
                    "tuned_loose": [bool(rng.random() < q)],
                }
                for i, q in enumerate(probs)
            ]
            (run / "eval_outputs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
            paths.append(run)
    return paths


def test_components_and_sizes_follow_the_model(tmp_path: Path) -> None:
    _pilot(tmp_path, n_prompts=400, seeds=4, seed_sd=0.05, effects={"a": 0.0, "b": 0.0, "c": 0.1})
    rows = {
        r["metric"]: r for r in analyse(load_runs([tmp_path], need_outputs=True), effect=0.05, alpha=0.05, power=0.8)
    }
    row = rows["prompt_strict_acc"]
    assert (
        row["n_units"] == 400
        and row["pilot_seeds"] == 4
        and row["cells"] == 3
        and row["pairs"] == 3
        and row["design"] == "crossed"
    )
    # each run shifts by sd 0.05, so a difference of two runs by sd 0.05·√2 ≈ 0.07 (clipping at 0 and 1 shrinks it a little)
    assert 0.03 < row["var_a"] ** 0.5 < 0.12 and row["var_a_upper"] > row["var_a"]
    # Bernoulli flips in both runs of a difference: sd about sqrt(2 · 0.2) ≈ 0.6
    assert 0.5 < row["var_e"] ** 0.5 < 0.7
    # no strategy-by-prompt interaction was built in (the effects are uniform shifts)
    assert row["var_b"] < 0.01
    for s, n in row["units_needed"].items():  # units_needed() and mde() describe the same test
        if n is not None:
            assert mde(row, n, s, 0.05, 0.8) <= 0.05 + 1e-9 < mde(row, n - 1, s, 0.05, 0.8)
    assert row["units_needed"][2] is None  # 2 seeds: run shifts of sd 0.07 alone exceed what a 5-point test allows
    assert row["mde_at_upper"] > row["mde_at_pilot"]


def test_seed_noise_alone_can_make_an_effect_undetectable() -> None:
    noisy = {"design": "crossed", "var_a": 0.04**2, "var_a_upper": 0.06**2, "var_b": 0.0, "var_e": 0.2}
    assert units_needed(noisy, 0.05, 3, 0.05, 0.8) is None
    assert units_needed(noisy, 0.05, 1, 0.05, 0.8) is None and mde(noisy, 100, 1, 0.05, 0.8) == float(
        "inf"
    )  # one seed: no verdict
    quiet = {**noisy, "var_a": 0.0}
    n = units_needed(quiet, 0.05, 10, 0.05, 0.8)
    # with no run shift the t-test over 10 seeds needs about (t_.975,9 + t_.8,9)² · σ²/(s·effect²) units
    assert n == pytest.approx((2.262 + 0.883) ** 2 * 0.2 / (10 * 0.05**2), rel=0.15)


def test_held_out_pairs_that_differ_by_seed_are_handled_within_seed(tmp_path: Path) -> None:
    """Units drawn anew per seed: the run-shift term comes from per-seed mean differences, not from prompt noise."""
    runs = _pilot(tmp_path, n_prompts=60, seeds=4, seed_sd=0.0, effects={"a": 0.0, "b": 0.0})
    rng = np.random.default_rng(1)
    for run in runs:
        seed = json.loads((run / "manifest.json").read_text())["seed"]
        rows = [
            {
                "pair_id": f"s{seed}-q{i}",
                "prompt_id": f"s{seed}-p{i}",
                "margin": 0.0,
                "correct": float(rng.random() < 0.7),
            }
            for i in range(50)
        ]
        (run / "heldout_preferences.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    row = {r["metric"]: r for r in analyse(load_runs([tmp_path], need_outputs=True), 0.05, 0.05, 0.8)}[
        "preference_accuracy"
    ]
    assert row["design"] == "nested" and row["n_units"] == 50
    # a difference of two Bernoulli(0.7) outcomes: variance 2 · 0.21
    assert 0.25 < row["var_unit"] < 0.6
    assert row["var_a"] < 0.01  # no run shift was built in; it is not invented from prompt noise
    for s, n in row["units_needed"].items():
        if n is not None and n > 2:
            assert mde(row, n, s, 0.05, 0.8) <= 0.05 + 1e-9 < mde(row, n - 1, s, 0.05, 0.8)


def test_held_out_pairs_shared_by_seeds_are_averaged_per_prompt(tmp_path: Path) -> None:
    """Pairs sampled on evaluation prompts are the same for every seed: one unit per prompt, shared."""
    runs = _pilot(tmp_path, n_prompts=60, seeds=3, seed_sd=0.02, effects={"a": 0.0, "b": 0.0})
    rng = np.random.default_rng(2)
    for run in runs:
        rows = [
            {"pair_id": f"q{i}-{j}", "prompt_id": f"p{i}", "margin": 0.0, "correct": float(rng.random() < 0.7)}
            for i in range(40)
            for j in range(3)
        ]
        (run / "heldout_preferences.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    pilot = load_runs([tmp_path], need_outputs=True)
    assert all(set(r.outcomes["preference_accuracy"]) == {f"p{i}" for i in range(40)} for r in pilot)
    assert all(v in (0.0, 1 / 3, 2 / 3, 1.0) for r in pilot for v in r.outcomes["preference_accuracy"].values())
    row = {r["metric"]: r for r in analyse(pilot, 0.05, 0.05, 0.8)}["preference_accuracy"]
    assert row["design"] == "crossed" and row["n_units"] == 40
    # a difference of two prompts' means of 3 Bernoulli(0.7): variance 2 · 0.21 / 3
    assert 0.07 < row["var_e"] < 0.2


def test_partly_shared_units_are_treated_as_drawn_per_seed(tmp_path: Path) -> None:
    """Held-out pairs that overlap between some seeds only: nested, never a crossed analysis of the intersection."""
    runs = _pilot(tmp_path, n_prompts=30, seeds=3, seed_sd=0.0, effects={"a": 0.0, "b": 0.0})
    rng = np.random.default_rng(3)
    for run in runs:
        seed = json.loads((run / "manifest.json").read_text())["seed"]
        ids = [f"p{i}" for i in range(20)] + [f"s{seed}-p{i}" for i in range(20)]
        rows = [{"pair_id": f"q-{u}", "prompt_id": u, "margin": 0.0, "correct": float(rng.random() < 0.6)} for u in ids]
        (run / "heldout_preferences.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    row = {r["metric"]: r for r in analyse(load_runs([tmp_path], need_outputs=True), 0.05, 0.05, 0.8)}[
        "preference_accuracy"
    ]
    assert row["design"] == "nested" and row["n_units"] == 40


def test_a_pilot_without_repeated_seeds_is_refused(tmp_path: Path) -> None:
    _pilot(tmp_path, n_prompts=20, seeds=1, seed_sd=0.0, effects={"a": 0.0, "b": 0.0})
    with pytest.raises(BenchError, match="same 2 or more seeds"):
        analyse(load_runs([tmp_path], need_outputs=True), 0.05, 0.05, 0.8)


def test_bench_power_prints_the_table_and_writes_json(tmp_path: Path) -> None:
    runs = _pilot(tmp_path / "pilot", n_prompts=100, seeds=3, seed_sd=0.02, effects={"a": 0.0, "b": 0.05})
    result = CliRunner().invoke(main, ["power", str(tmp_path / "pilot"), "--out", str(tmp_path / "power.json")])
    assert result.exit_code == 0, result.output
    assert (
        "prompt_strict_acc" in result.output
        and "instruction_loose_acc" in result.output
        and "seed_test" in result.output
    )
    rows = json.loads((tmp_path / "power.json").read_text())
    assert len(rows) == 4 and all(r["n_units"] == 100 for r in rows) and len(runs) == 6


def test_runs_evaluated_on_different_prompts_are_refused(tmp_path: Path) -> None:
    """A matrix resized from 48 to 96 held-out prompts, half rerun: mixing them would mis-estimate every term."""
    _pilot(tmp_path / "old", n_prompts=48, seeds=3, seed_sd=0.0, effects={"a": 0.0})
    _pilot(tmp_path / "new", n_prompts=96, seeds=3, seed_sd=0.0, effects={"b": 0.0})
    with pytest.raises(BenchError, match=r"different held-out prompts \(48 and 96 prompts"):
        analyse(load_runs([tmp_path / "old", tmp_path / "new"], need_outputs=True), effect=0.05, alpha=0.05, power=0.8)


def test_duplicate_runs_of_one_setting_are_refused(tmp_path: Path) -> None:
    """The same cell and seed in two folders (a rerun under another runs root) must not count twice."""
    _pilot(tmp_path / "first", n_prompts=20, seeds=2, seed_sd=0.0, effects={"a": 0.0, "b": 0.0})
    _pilot(tmp_path / "rerun", n_prompts=20, seeds=1, seed_sd=0.0, effects={"a": 0.0})
    with pytest.raises(
        BenchError, match=r"a-s0 and .*rerun/a-s0 are the same setting \(a, budget 12\) at the same seed 0"
    ):
        load_runs([tmp_path / "first", tmp_path / "rerun"], need_outputs=True)


def test_settings_that_differ_are_analysed_apart(tmp_path: Path) -> None:
    """Two learning rates are two contexts: their runs are never pooled as extra seeds."""
    _pilot(
        tmp_path / "lo",
        n_prompts=30,
        seeds=2,
        seed_sd=0.0,
        effects={"a": 0.0, "b": 0.0},
        config={"train": {"learning_rate": 1e-4}},
    )
    _pilot(
        tmp_path / "hi",
        n_prompts=30,
        seeds=2,
        seed_sd=0.0,
        effects={"a": 0.0, "b": 0.0},
        config={"train": {"learning_rate": 5e-4}},
    )
    rows = [
        r
        for r in analyse(load_runs([tmp_path / "lo", tmp_path / "hi"], need_outputs=True), 0.05, 0.05, 0.8)
        if r["metric"] == "prompt_strict_acc"
    ]
    assert sorted(r["setting"] for r in rows) == ["learning rate 0.0001", "learning rate 0.0005"]
    assert all(r["cells"] == 2 and r["pilot_seeds"] == 2 for r in rows)


def _clustered_pilot(root: Path, seeds: int, task_sd: float, effects: dict[str, float], rng_seed: int = 3) -> None:
    """Runs on 330 held-out prompts of 30 base tasks x 11 types (eval_outputs.jsonl with base_task and
    instructions): a strategy suits some tasks more than others (an interaction shared by the task's prompts)."""
    rng = np.random.default_rng(rng_seed)
    n = 330
    tasks, types = [f"t{i % 30}" for i in range(n)], [f"kind:{i % 11}" for i in range(n)]
    q = np.clip(0.5 + np.array([0.3 * ((i % 11) - 5) / 5 for i in range(n)]), 0.1, 0.9)  # types differ in difficulty
    for strategy, effect in effects.items():
        tilt = {t: rng.normal(0, task_sd) for t in set(tasks)}
        for seed in range(seeds):
            run = root / f"{strategy}-s{seed}"
            run.mkdir(parents=True)
            (run / "manifest.json").write_text(json.dumps({"status": "done", "seed": seed, "config": {"seed": seed}}))
            (run / "selection.json").write_text(json.dumps({"strategy": strategy, "budget": 128, "pair_ids": []}))
            probs = np.clip(q + effect + np.array([tilt[t] for t in tasks]), 0, 1)
            rows = [
                {
                    "prompt_id": f"p{i}",
                    "base_task": tasks[i],
                    "instructions": [types[i]],
                    "tuned_output": "words " * (5 + i % 7),
                    "tuned_strict": [bool(rng.random() < p)],
                    "tuned_loose": [bool(rng.random() < p)],
                    "base_output": "x",
                    "base_strict": [bool(rng.random() < q[i])],
                    "base_loose": [False],
                }
                for i, p in enumerate(probs)
            ]
            (run / "eval_outputs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_held_out_prompts_are_analysed_by_base_task_within_type(tmp_path: Path) -> None:
    """With base tasks and types recorded, the unit is the task: its interaction shows as sd task and ICC, the type
    (a fixed factor) leaves the unit spread, and every pair of settings gets its own MDE."""
    _clustered_pilot(tmp_path, seeds=4, task_sd=0.15, effects={"a": 0.0, "b": 0.0, "c": 0.05})
    row = next(
        r
        for r in analyse(load_runs([tmp_path], need_outputs=True), effect=0.05, alpha=0.05, power=0.8)
        if r["metric"] == "prompt_strict_acc"
    )
    assert row["n_units"] == 330 and row["n_clusters"] == 30 and row["strata"] == 11
    assert row["icc"] is not None and row["icc"] > 0.5  # the interaction was built per task
    assert row["var_c"] ** 0.5 > 0.1
    assert {frozenset((p["a"], p["b"])) for p in row["by_pair"]} == {frozenset("ab"), frozenset("ac"), frozenset("bc")}
    assert all(p["mde_at_upper"] >= p["mde_at_pilot"] > 0 for p in row["by_pair"])
    # prompts of one task are not independent: more prompts per task buy less than more tasks would
    assert mde(row, 660, 4, 0.05, 0.8) > mde({**row, "n_clusters": 60}, 660, 4, 0.05, 0.8)
    out = CliRunner().invoke(main, ["power", str(tmp_path)])
    assert out.exit_code == 0, out.output
    assert "MDE per pair" in out.output and "base task is the unit" in out.output


def test_confounds_separate_length_from_the_strategy(tmp_path: Path) -> None:
    """Two strategies whose answers differ only in length, on prompts where longer answers pass more often:
    the raw difference is large, the length-adjusted ones are not; type effects and truncation are reported."""
    rng = np.random.default_rng(5)
    n = 220
    for strategy, extra in (("long", 30), ("short", 0)):
        for seed in range(3):
            run = tmp_path / f"{strategy}-s{seed}"
            run.mkdir()
            (run / "manifest.json").write_text(json.dumps({"status": "done", "seed": seed, "config": {"seed": seed}}))
            (run / "selection.json").write_text(json.dumps({"strategy": strategy, "budget": 4, "pair_ids": []}))
            rows = []
            for i in range(n):
                words = int(rng.integers(10, 40)) + extra
                passed = bool(rng.random() < min(0.95, 0.35 * np.log(words / 8)))  # only the length decides
                rows.append(
                    {
                        "prompt_id": f"p{i}",
                        "base_task": f"t{i % 20}",
                        "instructions": [f"kind:{i % 11}"],
                        "tuned_output": "w " * words,
                        "tuned_strict": [passed],
                        "tuned_loose": [passed],
                        "base_output": "w",
                        "base_strict": [False],
                        "base_loose": [False],
                        "tuned_truncated": words > 60,
                        "base_truncated": False,
                    }
                )
            (run / "eval_outputs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
            pairs = [
                {"pair_id": f"x{j}", "instructions": [f"kind:{(j if strategy == 'long' else 0) % 11}"]}
                for j in range(4)
            ]
            (run / "selected_pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    out_file = tmp_path / "confounds.json"
    out = CliRunner().invoke(main, ["confounds", str(tmp_path), "--pair", "long > short", "--out", str(out_file)])
    assert out.exit_code == 0, out.output
    result = json.loads(out_file.read_text())
    adjusted = result["length_adjusted"][0]
    assert adjusted["raw"] > 0.25 and adjusted["words_a"] > adjusted["words_b"] + 25
    assert abs(adjusted["regression_diff"]) < 0.1  # once log words is in the model, the strategy explains little
    assert all(r["per_doubling"] > 0.1 for r in result["length_slopes"])
    short = {r["type"]: r["selected_share"] for r in result["by_type"] if r["cell"] == "short"}
    assert short["kind:0"] == 1.0  # short spent its whole budget on one type
    trunc = {r["cell"]: r["tuned"] for r in result["truncation"]}
    assert trunc["long"] > 0.3 and trunc["short"] == 0.0

    # out of distribution: bench eval outputs per run and for the base model; long gains on the other suite, short does not
    ood = tmp_path / "ood"
    for name, rate in [("base", 0.2)] + [
        (f"{tmp_path.name}/{s}-s{seed}", 0.5 if s == "long" else 0.2) for s in ("long", "short") for seed in range(3)
    ]:
        (ood / name).mkdir(parents=True)
        rows = [{"prompt_id": f"q{i}", "strict": [bool(rng.random() < rate)] if i % 50 else [None]} for i in range(300)]
        (ood / name / "outputs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = CliRunner().invoke(main, ["confounds", str(tmp_path), "--ood", str(ood), "--out", str(out_file)])
    assert out.exit_code == 0, out.output
    table = {r["cell"]: r for r in json.loads(out_file.read_text())["out_of_distribution"]["cells"]}
    assert table["long"]["n"] == 294 and table["long"]["seeds"] == [0, 1, 2]  # unscorable prompts left out
    assert (
        table["long"]["verdict"]["low"] > 0.15
        and table["short"]["verdict"]["low"] < 0 < table["short"]["verdict"]["high"]
    )
    assert "out of distribution" in out.output
    # head to head there: long − short on matched seeds, the difference read straight from the files
    out = CliRunner().invoke(
        main, ["confounds", str(tmp_path), "--ood", str(ood), "--pair", "long > short", "--out", str(out_file)]
    )
    assert out.exit_code == 0, out.output
    (duel,) = json.loads(out_file.read_text())["out_of_distribution"]["head_to_head"]
    passes = {
        (s, seed): {
            r["prompt_id"]: float(r["strict"][0])
            for r in map(json.loads, (ood / tmp_path.name / f"{s}-s{seed}" / "outputs.jsonl").read_text().splitlines())
            if r["strict"][0] is not None
        }
        for s in ("long", "short")
        for seed in range(3)
    }
    by_seed = [np.mean([passes["long", k][q] - passes["short", k][q] for q in passes["long", k]]) for k in range(3)]
    assert (duel["a"], duel["b"], duel["seeds"], duel["n"]) == ("long", "short", [0, 1, 2], 294)
    assert duel["diff"] == pytest.approx(np.mean(by_seed)) and duel["verdict"]["per_seed"] == pytest.approx(by_seed)
    assert duel["verdict"]["low"] > 0.15 and "head to head, 4 pairs: long − short" in out.output
    assert {r["budget"] for key in ("by_type", "truncation", "length_adjusted") for r in result[key]} == {4}
    flat = tmp_path / "flat"  # outputs per run name without the matrix folder: refused, naming the layout it reads
    (flat / "base").mkdir(parents=True)
    (flat / "base" / "outputs.jsonl").write_text((ood / "base" / "outputs.jsonl").read_text())
    (flat / "long-s0").mkdir()
    (flat / "long-s0" / "outputs.jsonl").write_text((ood / "base" / "outputs.jsonl").read_text())
    wrong = CliRunner().invoke(main, ["confounds", str(tmp_path), "--ood", str(flat)])
    assert (
        wrong.exit_code != 0
        and "<matrix folder>/<run folder>/outputs.jsonl" in wrong.output
        and "Traceback" not in wrong.output
    )
    missing = CliRunner().invoke(main, ["confounds", str(tmp_path), "--ood", str(tmp_path)])
    assert missing.exit_code != 0 and "base" in missing.output and "Traceback" not in missing.output
