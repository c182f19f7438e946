"""The comparison report's statistics and its handling of missing metrics, on run folders built here."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from harness.analysis.comparisons import ONE_SEED, Primary, claim_tests, leaderboard, paired_tests
from harness.analysis.runs import load_runs
from harness.constraints.metrics import PRIMARY_METRIC
from harness.core.errors import BenchError, ConfigError
from harness.core.stats import seed_test
from harness.matrix.spec import load_matrix, parse_claim
from reports.comparison import render_comparison


def _run(
    root: Path,
    strategy: str,
    seed: int,
    acc: float,
    outcomes: list[int],
    mt_bench: float | None = None,
    config: dict | None = None,
    name: str | None = None,
) -> Path:
    run = root / (name or f"{strategy}-s{seed}")
    run.mkdir(parents=True)
    manifest = {"status": "done", "seed": seed, "config": {"name": "t", "seed": seed, **(config or {})}}
    (run / "manifest.json").write_text(json.dumps(manifest))
    diag = {"breadth": 4, "depth_histogram": {"1": 2, "3": 2}}
    (run / "selection.json").write_text(
        json.dumps({"strategy": strategy, "budget": 8, "pair_ids": [], "diagnostics": diag})
    )
    record = {
        "value": acc,
        "ci_low": acc - 0.1,
        "ci_high": acc + 0.1,
        "n": len(outcomes),
        "judge": "verifiable",
        "weak_judge": False,
    }
    metrics = {"ifeval_heldout": {"tuned.prompt_strict_acc": record}}
    if mt_bench is not None:
        metrics["mt_bench"] = {
            "tuned.score": {**record, "value": mt_bench, "judge": "llm judge x - WEAK", "weak_judge": True}
        }
    (run / "metrics.json").write_text(json.dumps(metrics))
    rows = [{"prompt_id": f"p{i}", "tuned_strict": [bool(o)]} for i, o in enumerate(outcomes)]
    (run / "eval_outputs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run


def test_leaderboard_interval_across_seeds_and_missing_metrics(tmp_path: Path) -> None:
    a0 = _run(tmp_path, "bpo", 0, 0.40, [1, 1, 0, 0], mt_bench=5.0)
    a1 = _run(tmp_path, "bpo", 1, 0.50, [1, 1, 1, 0], mt_bench=6.0)
    b0 = _run(tmp_path, "original", 0, 0.30, [1, 0, 0, 0])  # never ran mt_bench
    runs = load_runs([a0, a1, b0])
    assert runs[0].mean_depth == 2.0 and runs[0].breadth == 4

    board = {r["strategy"]: r for r in leaderboard(runs, ["ifeval_heldout/prompt_strict_acc", "mt_bench/score"])}
    cell = board["bpo"]["cells"]["ifeval_heldout/prompt_strict_acc"]
    half = stats.t.ppf(0.975, 1) * np.std([0.4, 0.5], ddof=1) / math.sqrt(2)
    assert cell["mean"] == pytest.approx(0.45) and cell["high"] - cell["mean"] == pytest.approx(half)
    assert (
        cell["kind"] == "across seeds"
        and board["original"]["cells"]["ifeval_heldout/prompt_strict_acc"]["kind"] == "run CI"
    )
    assert board["original"]["cells"]["mt_bench/score"] is None

    (test,) = paired_tests(runs, "original", "prompt_strict_acc")
    # per prompt: bpo averages its seeds ([1, 1, .5, 0]) minus original ([1, 0, 0, 0])
    assert test["diff"] == pytest.approx(np.mean([0, 1, 0.5, 0])) and test["n_prompts"] == 4
    assert "seeds_ci" not in test  # original ran seed 0 only: no matched seeds to spread over
    assert test["significant"] is None and test["verdict"] == ONE_SEED

    index = render_comparison([a0, a1, b0], tmp_path / "cmp" / "index.html", baseline="original")
    html = index.read_text()
    original_row = html[html.index("<h3>mt_bench</h3>") :].split("<tr>")[3]
    assert "original" in original_row and "missing" in original_row  # a column is never dropped
    assert "(weak judge)" in html
    rows = json.loads((tmp_path / "cmp" / "metrics.json").read_text())
    assert len(rows) == 5 and {r["run"] for r in rows} == {"bpo-s0", "bpo-s1", "original-s0"}


def test_effects_are_tested_against_the_shuffled_label_control(tmp_path: Path) -> None:
    paths = []
    for seed in range(3):  # real effects, a little different at each seed
        paths += [
            _run(tmp_path, "bpo", seed, 0.75, [1] * (30 + seed) + [0] * (10 - seed)),
            _run(tmp_path, "uniform", seed, 0.5, [1] * (20 + seed) + [0] * (20 - seed)),
            _run(tmp_path, "original", seed, 0.3, [1] * (12 - seed) + [0] * (28 + seed)),
            _run(tmp_path, "control_shuffled", seed, 0.5, [1] * (20 + (seed + 1) % 3) + [0] * (20 - (seed + 1) % 3)),
        ]
    tests = {t["strategy"]: t for t in paired_tests(load_runs(paths), "original", "prompt_strict_acc")}
    assert tests["bpo"]["significant"] and tests["bpo"]["vs_control"]["beats"]
    assert (
        tests["uniform"]["significant"] and not tests["uniform"]["vs_control"]["beats"]
    )  # beats original, not the control
    assert tests["uniform"]["vs_control"]["diff"] == pytest.approx(0.0)
    assert "vs_control" not in tests["control_shuffled"]
    # one table of 5 verdicts, Holm within two families (3 against original, 2 against the control): adjusted p ≥ raw p
    verdicts = [t["seeds_ci"] for t in tests.values()] + [
        t["vs_control"]["seeds_ci"] for t in tests.values() if "vs_control" in t
    ]
    assert len(verdicts) == 5 and all(v["p_holm"] >= v["p"] for v in verdicts)
    html = render_comparison(paths, tmp_path / "cmp" / "index.html", baseline="original").read_text()
    assert (
        html.count('<b class="bad">does not beat the control</b>') == 1
        and html.count('<b class="ok">beats the control</b>') == 1
    )
    assert "This table holds <b>5</b> verdict test(s)" in html


def test_one_seed_gives_no_verdict_only_a_run_fixed_interval(tmp_path: Path) -> None:
    """A single seed per strategy: the prompts say these runs differ; nothing says another seed would."""
    paths = [
        _run(tmp_path, "bpo", 0, 0.75, [1] * 30 + [0] * 10),
        _run(tmp_path, "original", 0, 0.3, [1] * 12 + [0] * 28),
        _run(tmp_path, "control_shuffled", 0, 0.3, [1] * 12 + [0] * 28),
    ]
    (test,) = [t for t in paired_tests(load_runs(paths), "original", "prompt_strict_acc") if t["strategy"] == "bpo"]
    assert test["significant"] is None and test["vs_control"]["beats"] is None
    assert test["low"] > 0 and test["method"].startswith("Newcombe")  # these runs do differ
    html = render_comparison(paths, tmp_path / "cmp" / "index.html", baseline="original").read_text()
    assert "one seed: no verdict" in html and ">significant<" not in html and "beats the control</b>" not in html
    assert "This table holds <b>0</b> verdict test(s)" in html


def test_settings_that_differ_are_compared_apart_and_duplicates_refused(tmp_path: Path) -> None:
    """uniform at depth 1 and depth 4 (one budget) are two rows, each tested against the same original."""
    paths = []
    for seed in range(2):
        paths.append(_run(tmp_path, "original", seed, 0.3, [1] * 10 + [0] * 30))
        for depth, extra in ((1, 0), (4, 10)):
            paths.append(
                _run(
                    tmp_path,
                    "uniform",
                    seed,
                    0.5,
                    [1] * (10 + extra + seed) + [0] * (30 - extra - seed),
                    config={"select": {"params": {"depth": depth}}},
                    name=f"uniform-d{depth}-s{seed}",
                )
            )
    runs = load_runs(paths)
    board = {
        r["setting"]: r for r in leaderboard(runs, ["ifeval_heldout/prompt_strict_acc"]) if r["strategy"] == "uniform"
    }
    assert set(board) == {"1 pair per prompt", "4 pairs per prompt"} and all(
        r["seeds"] == [0, 1] for r in board.values()
    )
    tests = {t["setting"]: t for t in paired_tests(runs, "original", "prompt_strict_acc")}
    assert tests["4 pairs per prompt"]["diff"] == pytest.approx(0.25 + 0.0125) and tests["1 pair per prompt"][
        "diff"
    ] == pytest.approx(0.0125)
    html = render_comparison(paths, tmp_path / "cmp" / "index.html", baseline="original").read_text()
    assert "<th>setting</th>" in html and "4 pairs per prompt" in html
    # a primary claim narrowed to one setting marks only that row; the answer names each side's setting in words
    bpo = [_run(tmp_path / "b", "bpo", seed, 0.6, [1] * (20 + seed) + [0] * (20 - seed)) for seed in range(2)]
    primary = Primary.of(("bpo", "uniform"), "prompt_strict_acc", budget=8, params={"uniform": {"depth": 4}})
    rows = claim_tests(load_runs(paths + bpo), [("bpo", "uniform")], "prompt_strict_acc", primary=primary)
    assert [(r["worse_setting"], r["primary"]) for r in rows] == [
        ("1 pair per prompt", False),
        ("4 pairs per prompt", True),
    ]
    assert primary.describe() == "bpo > uniform (4 pairs per prompt) at 8 pairs"
    other_rate = Primary.of(
        ("bpo", "uniform"), "prompt_strict_acc", params={"uniform": {"depth": 4, "train.learning_rate": 1e-3}}
    )
    assert not any(
        r["primary"]
        for r in claim_tests(load_runs(paths + bpo), [("bpo", "uniform")], "prompt_strict_acc", primary=other_rate)
    )
    render_comparison(paths + bpo, tmp_path / "cmp2" / "index.html", baseline="original", primary=primary)
    summary = (tmp_path / "cmp2" / "summary.md").read_text()
    assert summary.startswith("## The answer\n\n- Primary claim: bpo > uniform (4 pairs per prompt) at 8 pairs: ")
    assert "\n- bpo > uniform (1 pair per prompt) at 8 pairs: " in summary
    # without a primary, a claim tested in two settings is one sentence: counts, the range, decided settings named
    render_comparison(paths + bpo, tmp_path / "cmp3" / "index.html", baseline="original", claims=[("bpo", "uniform")])
    line = (tmp_path / "cmp3" / "summary.md").read_text().split("\n")[2]
    assert line.startswith("- bpo > uniform, exploratory, in 2 settings: ") and "differences " in line

    again = _run(tmp_path / "rerun", "original", 0, 0.3, [1] * 10 + [0] * 30)
    with pytest.raises(BenchError, match="same setting .*at the same seed 0"):
        load_runs([*paths, again])
    other_prompts = _run(tmp_path / "other", "original", 5, 0.3, [1] * 10 + [0] * 20)
    with pytest.raises(BenchError, match="different held-out prompts"):
        load_runs([*paths, other_prompts])


def test_seed_matched_interval_counts_run_to_run_variation(tmp_path: Path) -> None:
    """Two strategies on seeds 0-2: the across-seed t-interval is built from the per-seed differences."""
    rng = np.random.default_rng(0)
    runs = []
    for seed, shift in enumerate((0.05, 0.25, -0.05)):  # a strategy effect that changes sign between seeds
        base = rng.random(40) < 0.4
        better = np.where(rng.random(40) < abs(shift), shift > 0, base)
        runs.append(_run(tmp_path, "original", seed, float(base.mean()), base.astype(int).tolist()))
        runs.append(_run(tmp_path, "bpo", seed, float(better.mean()), better.astype(int).tolist()))
    for run in runs:  # held-out pairs: 2 per prompt, the unit is the prompt
        rows = [
            {"pair_id": f"q{i}-{j}", "prompt_id": f"p{i}", "correct": float((i + j) % 2)}
            for i in range(10)
            for j in range(2)
        ]
        (run / "heldout_preferences.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    loaded = load_runs(runs)
    (test,) = paired_tests(loaded, "original", "prompt_strict_acc")
    diffs = []
    for s in range(3):
        ours, theirs = loaded[2 * s + 1].outcomes["prompt_strict_acc"], loaded[2 * s].outcomes["prompt_strict_acc"]
        diffs.append(np.mean([ours[p] - theirs[p] for p in ours]))
    half = stats.t.ppf(0.975, 2) * np.std(diffs, ddof=1) / math.sqrt(3)
    assert test["seeds_ci"]["per_seed"] == pytest.approx(diffs) and test["diff"] == pytest.approx(np.mean(diffs))
    # the verdict is the seeds t-interval, widened (never narrowed) by the prompt-by-strategy term
    assert test["seeds_ci"]["low"] <= np.mean(diffs) - half + 1e-12 and test["seeds_ci"]["design"] == "crossed"
    matrix = [
        np.array(
            [
                loaded[2 * s + 1].outcomes["prompt_strict_acc"][p] - loaded[2 * s].outcomes["prompt_strict_acc"][p]
                for p in sorted(loaded[0].outcomes["prompt_strict_acc"])
            ]
        )
        for s in range(3)
    ]
    assert test["seeds_ci"]["low"] == pytest.approx(seed_test(matrix, crossed=True)["low"])
    (pref,) = paired_tests(loaded, "original", "preference_accuracy")
    assert pref["n_prompts"] == 10 and pref["diff"] == pytest.approx(0.0)
    html = render_comparison(runs, tmp_path / "cmp" / "index.html", baseline="original").read_text()
    assert "<h3>preference_heldout/preference_accuracy" in html and "verdict 95% CI (seeds)" in html
    saved = json.loads((tmp_path / "cmp" / "paired_tests.json").read_text())
    assert saved["baseline"] == "original" and saved["tests"]["prompt_strict_acc"][0]["diff"] == pytest.approx(
        test["diff"]
    )


def test_claims_compare_two_strategies_head_to_head(tmp_path: Path) -> None:
    """'bpo > uniform' is bpo − uniform on the same prompts and seeds, neither being the baseline."""
    rng = np.random.default_rng(1)
    runs = []
    for seed in range(3):
        truth = rng.random(60) < 0.4
        for strategy, lift in (("original", 0.0), ("uniform", 0.1), ("bpo", 0.3)):
            outcome = truth | (rng.random(60) < lift)
            runs.append(_run(tmp_path, strategy, seed, float(outcome.mean()), outcome.astype(int).tolist()))
    loaded = load_runs(runs)
    by = {(r.strategy, r.seed): r.outcomes["prompt_strict_acc"] for r in loaded}
    per_seed = [np.mean([by[("bpo", s)][p] - by[("uniform", s)][p] for p in by[("bpo", s)]]) for s in range(3)]

    holds, missing = claim_tests(
        loaded, [parse_claim("bpo > uniform"), parse_claim("margin > bpo")], "prompt_strict_acc"
    )
    assert holds["claim"] == "bpo > uniform" and holds["seeds_ci"]["per_seed"] == pytest.approx(per_seed)
    assert holds["diff"] == pytest.approx(np.mean(per_seed)) and holds["n_prompts"] == 60
    assert "margin" in missing["missing"] and "diff" not in missing  # a strategy that never ran is named, not skipped

    html = render_comparison(
        runs,
        tmp_path / "cmp" / "index.html",
        claims=[("margin", "bpo")],
        primary=Primary.of(("bpo", "uniform"), "prompt_strict_acc"),
    ).read_text()
    saved = json.loads((tmp_path / "cmp" / "paired_tests.json").read_text())
    primary = next(t for t in saved["claims"]["prompt_strict_acc"] if t["claim"] == "bpo > uniform")
    assert (
        primary["diff"] == pytest.approx(holds["diff"])
        and primary["primary"]
        and saved["primary"]["claim"] == "bpo > uniform"
    )
    assert primary["seeds_ci"]["p_holm"] == pytest.approx(
        primary["seeds_ci"]["p"]
    )  # the one primary test is not adjusted
    assert "<b>★ bpo > uniform</b> (primary)" in html.replace("&gt;", ">")
    # the report opens with the answer: one sentence per claim, the primary first, then the surface figure at full
    # width, then the tables
    text = html.replace("&gt;", ">")
    assert (
        text.index("<h1>The answer")
        < text.index('<figure class="wide"><img')
        < text.index("<h2>More plots")
        < text.index("<h2>Leaderboard")
    )
    first, second = (
        re.sub("<.*?>", "", li)
        for li in re.findall(r"<li>(.*?)</li>", text[text.index("The answer") : text.index("<figure")])
    )
    said = "holds." if holds["seeds_ci"]["low"] > 0 else "undecided: the verdict interval contains 0."
    assert (
        first.startswith(f"Primary claim: bpo > uniform at 8 pairs: {said}")
        and f"[{holds['seeds_ci']['low']:+.3f}," in first
    )
    assert second.startswith("margin > bpo at 8 pairs: undecided, not run")
    summary = (tmp_path / "cmp" / "summary.md").read_text()
    assert summary.startswith("## The answer\n\n- Primary claim: bpo > uniform")
    assert (
        f"| ★ bpo > uniform | 8 |  | {holds['diff']:+.3f} |" in summary
        and "| margin > bpo | 8 |  | — (no margin run" in summary
    )


@pytest.mark.parametrize("claim", ["bpo", "bpo > ", "bpo > bpo", "a > b > c"])
def test_malformed_claims_are_refused(claim: str) -> None:
    with pytest.raises(ValueError, match="BETTER > WORSE"):
        parse_claim(claim)


def test_a_matrix_claim_must_name_strategies_on_its_axis(tmp_path: Path) -> None:
    spec = tmp_path / "m.yaml"
    spec.write_text("name: m\nbase: x.yaml\naxes: {strategy: [bpo, uniform]}\nclaims: ['bpo > length_depth']\n")
    with pytest.raises(ConfigError, match="length_depth"):
        load_matrix(spec)


def test_bench_report_claims_need_a_comparison_and_a_well_formed_claim(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from harness.cli import main

    run = _run(tmp_path, "bpo", 0, 0.5, [1, 0])
    no_out = CliRunner().invoke(main, ["report", str(run), "--claim", "bpo > uniform"])
    assert no_out.exit_code != 0 and "add -o" in no_out.output and not (run / "report.html").exists()
    bad = CliRunner().invoke(main, ["report", str(run), "-o", str(tmp_path / "c.html"), "--claim", "bpo"])
    assert bad.exit_code != 0 and "BETTER > WORSE" in bad.output and not (tmp_path / "c.html").exists()


@pytest.mark.parametrize(
    "primary,match",
    [
        ("{claim: 'bpo > margin'}", "margin"),
        ("{claim: 'bpo > uniform', metric: score}", "not a paired metric"),
        ("{claim: 'bpo > uniform', params: {original: {depth: 2}}}", "not a side of the claim"),
    ],
)
def test_a_matrix_primary_claim_is_validated(tmp_path: Path, primary: str, match: str) -> None:
    spec = tmp_path / "m.yaml"
    spec.write_text(f"name: m\nbase: x.yaml\naxes: {{strategy: [bpo, uniform]}}\nprimary: {primary}\n")
    with pytest.raises(ConfigError, match=match):
        load_matrix(spec)


def test_run_report_opens_with_the_effect_and_the_controls(tmp_path: Path) -> None:
    """The headline comes before the tables: tuned − base with its interval, then the control's
    (linked), or, without a control, a warning that the effect may come from training alone."""
    from reports.run_report import render_run_report

    cell = _run(tmp_path, "bpo", 0, 0.5, [1, 0, 1, 1])
    control = _run(tmp_path, "control_shuffled", 0, 0.4, [1, 0, 0, 1], name="bpo-s0-control")
    old = json.loads((cell / "metrics.json").read_text())
    old["ifeval_heldout"]["paired_diff.prompt_strict_acc"] = {"value": 0.2, "ci_low": 0.1, "ci_high": 0.3, "n": 96}
    (cell / "metrics.json").write_text(json.dumps(old))
    (cell / "eval_outputs.jsonl").unlink()  # the comparison's outcome rows, not a run's side-by-side examples
    graded_before = render_run_report(cell)  # a run graded before the task check: constraint only, and said so
    assert (
        "constraint only (graded before the task check" in graded_before
        and "+0.200</b> [+0.100, +0.300]" in graded_before
    )
    for run, diff in ((cell, 0.125), (control, 0.01)):
        metrics = json.loads((run / "metrics.json").read_text())
        metrics["ifeval_heldout"][f"paired_diff.{PRIMARY_METRIC}"] = {
            "value": diff,
            "ci_low": diff - 0.08,
            "ci_high": diff + 0.08,
            "n": 96,
        }
        (run / "metrics.json").write_text(json.dumps(metrics))
    without = render_run_report(cell)
    assert (
        "+0.125</b> [+0.045, +0.205]" in without and "above 0" in without and "may come from training alone" in without
    )
    (cell / "control.json").write_text(
        json.dumps({"run": str(control), "effect": {"value": 0.01, "ci_low": -0.07, "ci_high": 0.09, "n": 96}})
    )
    html = render_run_report(cell)
    assert "shuffled-label control" in html and "+0.010</b> [-0.070, +0.090]" in html
    assert 'href="../bpo-s0-control/report.html"' in html
    assert html.index("Headline") < html.index("Held-out metrics")


def test_comparison_draws_accuracy_against_depth_and_budget(tmp_path: Path) -> None:
    """One point per cell at its mean depth when a budget has 3+ cells; a budget axis adds the dose-response."""
    runs = []
    for seed in (0, 1):
        for strategy, hist in (("original", {"1": 8}), ("uniform", {"2": 4}), ("bpo", {"1": 2, "3": 2})):
            run = _run(tmp_path, strategy, seed, 0.4 + 0.05 * seed, [1, 0, 1, seed])
            selection = json.loads((run / "selection.json").read_text())
            selection["diagnostics"]["depth_histogram"] = hist
            (run / "selection.json").write_text(json.dumps(selection))
            runs.append(run)
    html = render_comparison(runs, tmp_path / "cmp" / "index.html").read_text()
    assert (
        '<figure class="wide"><img alt="ifeval_heldout/prompt_strict_acc against mean depth, one panel per budget"'
        in html
    )
    assert (tmp_path / "cmp" / "surface.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # the same figure, for a README
    assert "prompt_strict_acc against budget\"" not in html  # one budget: no dose-response plot


def test_a_judge_that_labelled_the_pool_and_grades_the_suite_is_flagged(tmp_path: Path) -> None:
    """The pool's pairs labelled by the verifiable checkers that also grade ifeval_heldout: the report and summary warn;
    an LLM judge on the pool and checkers on the evaluation: no warning."""
    same = [
        _run(
            tmp_path / "same",
            s,
            0,
            0.5,
            [1, 0, 1, 0],
            config={"pool": {"judge": {"type": "verifiable", "model": None}}},
        )
        for s in ("bpo", "original")
    ]
    html = render_comparison(same, tmp_path / "c1" / "index.html").read_text()
    assert "Same judge:</b> ifeval_heldout is graded by <b>verifiable</b>" in html
    assert "> Same judge: ifeval_heldout is graded by verifiable" in (tmp_path / "c1" / "summary.md").read_text()
    other = [
        _run(
            tmp_path / "other",
            s,
            0,
            0.5,
            [1, 0, 1, 0],
            config={"pool": {"judge": {"type": "llm", "model": "judge-7b"}}},
        )
        for s in ("bpo", "original")
    ]
    assert "Same judge" not in render_comparison(other, tmp_path / "c2" / "index.html").read_text()


CHROMIUM = Path("/usr/bin/chromium")


@pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian's chromium (apt-get install chromium) for a real-browser layout check"
)
def test_the_comparison_fits_a_1280_px_window_in_a_real_browser(tmp_path: Path) -> None:
    """Thirteen settings with long names, two budgets and every table: headless Chromium at 1280 px scrolls only
    down, and the answer's figure spans the page before the first table."""
    import subprocess

    runs = []
    for seed in range(2):
        for budget_scale in (1, 2):
            for i in range(13):
                name = f"strategy_with_a_long_name_{i}-b{budget_scale}-s{seed}"
                run = _run(
                    tmp_path,
                    f"strategy_with_a_long_name_{i}",
                    seed,
                    0.4 + 0.01 * i,
                    [1, 0, 1, seed, i % 2],
                    name=name,
                    config={
                        "select": {"params": {"depth": 1 + i % 4}},
                        "train": {"learning_rate": 5e-4 * budget_scale},
                    },
                )
                selection = json.loads((run / "selection.json").read_text())
                selection["diagnostics"]["depth_histogram"] = {str(1 + i % 4): 8 // (1 + i % 4)}
                (run / "selection.json").write_text(json.dumps(selection))
                runs.append(run)
    out = render_comparison(
        runs,
        tmp_path / "cmp" / "index.html",
        baseline="strategy_with_a_long_name_0",
        claims=[("strategy_with_a_long_name_1", "strategy_with_a_long_name_2")],
    )
    probe = (
        "<script>window.addEventListener('load',()=>{const f=document.querySelector('figure.wide img');"
        "document.title=[document.documentElement.scrollWidth,f.getBoundingClientRect().width,"
        "f.getBoundingClientRect().top,document.querySelector('table').getBoundingClientRect().top].join(' ')});</script>"
    )
    page = out.with_name("probe.html")
    page.write_text(out.read_text().replace("</body>", probe + "</body>"))
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1280,900",
    ]
    dom = subprocess.run(
        [str(CHROMIUM), *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120
    ).stdout
    width, figure, figure_top, table_top = (
        float(x) for x in re.search(r"<title>([\d. ]+)</title>", dom).group(1).split()
    )
    assert width <= 1280  # no sideways scroll (the page's scroll width is the viewport's, bar the scroll bar)
    assert figure >= 1000 and figure_top < table_top  # the surface at full width, above every table


def test_machine_time_counts_a_shared_stage_once(tmp_path: Path) -> None:
    """Two runs on one cached pool: the pool's compute time counts once, each run's own training counts."""
    from harness.analysis.comparisons import compute_spent

    runs = []
    for seed in range(2):
        run = _run(tmp_path, "bpo", seed, 0.5, [1, 0])
        manifest = json.loads((run / "manifest.json").read_text())
        manifest["machine"] = {"cpu": "AMD EPYC", "cpu_count": 2, "cpu_bf16": [] if seed else ["avx512_bf16"]}
        manifest["generation"] = {"dtype": "float32" if seed else "bfloat16"}
        manifest["stages"] = {
            "pool": {
                "hash": "p",
                "status": "cached" if seed else "computed",
                "seconds": 0.0 if seed else 3600.0,
                "compute_seconds": 3600.0,
            },
            "train": {"hash": f"t{seed}", "status": "computed", "seconds": 1800.0, "compute_seconds": 1800.0},
        }
        (run / "manifest.json").write_text(json.dumps(manifest))
        runs.append(run)
    spent = compute_spent(load_runs(runs))
    assert spent["hours"] == pytest.approx(2.0) and spent["stages"] == 3 and spent["machines"] == ["AMD EPYC, 2 cores"]
    assert spent["seeds_by_machine"] == {
        "AMD EPYC (avx512_bf16), bfloat16": [0],
        "AMD EPYC (no native bf16), float32": [1],
    }
    html = render_comparison(runs, tmp_path / "cmp" / "index.html").read_text()
    assert "Machine time behind these runs: 2.0 h" in html
    assert (
        "Seeds by machine: AMD EPYC (avx512_bf16), bfloat16 ran seed 0; AMD EPYC (no native bf16), float32 ran seed 1."
        in html
    )
    assert (
        "Seeds by machine: AMD EPYC (avx512_bf16), bfloat16 ran seed 0; AMD EPYC (no native bf16), float32 ran seed 1."
        in (tmp_path / "cmp" / "summary.md").read_text()
    )


def test_runs_of_one_name_in_two_matrices_link_to_their_own_reports(tmp_path: Path) -> None:
    """runs/testbed-primary/bpo-s0-bpo and runs/testbed-lr/bpo-s0-bpo are two rows, each linking to its own folder."""
    first = _run(
        tmp_path / "primary", "bpo", 0, 0.5, [1, 0, 1], name="bpo-s0", config={"train": {"learning_rate": 5e-4}}
    )
    second = _run(tmp_path / "lr", "bpo", 0, 0.4, [1, 0, 0], name="bpo-s0", config={"train": {"learning_rate": 2.5e-4}})
    html = render_comparison([first, second], tmp_path / "cmp" / "index.html", baseline="bpo").read_text()
    assert 'href="../primary/bpo-s0/report.html"' in html and 'href="../lr/bpo-s0/report.html"' in html


def test_equivalence_is_a_tost_at_the_margin_and_absence_of_evidence_is_not_equivalence() -> None:
    from harness.core.stats import equivalence_p

    rng = np.random.default_rng(3)
    for _ in range(200):
        diff, half, seeds = rng.uniform(-0.08, 0.08), rng.uniform(0.005, 0.1), int(rng.integers(2, 15))
        verdict = {"diff": diff, "low": diff - half, "high": diff + half, "n_seeds": seeds}
        ninety = half / stats.t.ppf(0.975, seeds - 1) * stats.t.ppf(0.95, seeds - 1)  # the (1 - 2 alpha) interval
        assert (equivalence_p(verdict, 0.04) < 0.05) == (diff - ninety > -0.04 and diff + ninety < 0.04)
    wide = {"diff": 0.0, "low": -0.19, "high": 0.19, "n_seeds": 3}  # "no difference found", yet compatible with 0.19
    assert equivalence_p(wide, 0.04) > 0.2  # far from equivalent at ±0.04


def test_verdicts_apply_holm_within_their_family_and_controls_are_a_family_of_their_own(tmp_path: Path) -> None:
    from harness.analysis.comparisons import claim_verdict, estimate
    from harness.core.stats import holm

    rng = np.random.default_rng(7)
    paths = []
    for seed in range(4):
        truth = rng.random(80) < 0.4
        for strategy, lift in (
            ("original", 0.0),
            ("uniform", 0.0),
            ("random", 0.02),
            ("bpo", 0.4),
            ("control_shuffled", 0.0),
        ):
            outcome = truth | (rng.random(80) < lift)
            paths.append(_run(tmp_path, strategy, seed, float(outcome.mean()), outcome.astype(int).tolist()))
    tests = paired_tests(load_runs(paths), "original", "prompt_strict_acc", margin=0.04)
    against = [t["seeds_ci"] for t in tests]
    controls = [t["vs_control"]["seeds_ci"] for t in tests if "vs_control" in t]
    assert [v["p_holm"] for v in against] == pytest.approx(
        holm([v["p"] for v in against])
    )  # the controls do not dilute them
    assert [v["p_holm"] for v in controls] == pytest.approx(holm([v["p"] for v in controls]))
    assert all(v["margin"] == 0.04 and v["p_tost_holm"] >= v["p_tost"] for v in against + controls)
    bpo = next(t for t in tests if t["strategy"] == "bpo")
    assert (
        claim_verdict(bpo).startswith("holds")
        and bpo["vs_control"]["beats"]
        and estimate(bpo) == bpo["seeds_ci"]["diff"]
    )

    # a raw p under 0.05 that Holm's adjustment does not keep is undecided, and says so
    family = {
        "seeds_ci": {"diff": 0.05, "low": 0.001, "high": 0.099, "p": 0.04, "p_holm": 0.12, "n_seeds": 5, "per_seed": []}
    }
    assert claim_verdict(family) == "undecided (holds before Holm's adjustment)"
    same = {
        "seeds_ci": {
            "diff": 0.002,
            "low": -0.01,
            "high": 0.014,
            "p": 0.7,
            "p_holm": 1.0,
            "p_tost_holm": 0.001,
            "margin": 0.04,
        }
    }
    assert claim_verdict(same) == "equivalent within ±0.04"
    html = render_comparison(
        paths, tmp_path / "cmp" / "index.html", baseline="original", claims=[("bpo", "uniform")], margin=0.04
    )
    summary = (tmp_path / "cmp" / "summary.md").read_text()
    assert "TOST at ±0.04" in summary and "| p TOST (Holm) |" in summary
    assert json.loads((tmp_path / "cmp" / "paired_tests.json").read_text())["equivalence_margin"] == 0.04
    assert "TOST at ±0.04" in html.read_text()


def test_claim_families_are_adjusted_each_within_itself_and_one_strategy_compares_its_settings_pairwise(
    tmp_path: Path,
) -> None:
    """A matrix's `families`: each named family of claims is Holm-adjusted within itself, apart from the claims and
    the primary claim; 'uniform vs uniform' compares uniform's depths pairwise, once per pair; a family's params
    narrow it to the cells it names (every strategy against uniform at 2 pairs per prompt)."""
    from harness.analysis.comparisons import DEFAULT_FAMILY, Family
    from harness.core.stats import holm

    rng = np.random.default_rng(11)
    paths = []
    for seed in range(4):
        truth = rng.random(80) < 0.4
        for name, strategy, lift, config in (
            ("original", "original", 0.0, None),
            ("bpo", "bpo", 0.3, None),
            ("random", "random", 0.05, None),
            *(
                (f"uniform-d{d}", "uniform", 0.1 * i, {"select": {"params": {"depth": d}}})
                for i, d in enumerate((1, 2, 4))
            ),
        ):
            outcome = truth | (rng.random(80) < lift)
            paths.append(
                _run(
                    tmp_path,
                    strategy,
                    seed,
                    float(outcome.mean()),
                    outcome.astype(int).tolist(),
                    config=config,
                    name=f"{name}-s{seed}",
                )
            )
    runs = load_runs(paths)
    depths = Family.of("depths", [parse_claim("uniform vs uniform")])
    against = Family.of(
        "vs_uniform",
        [parse_claim("bpo > uniform"), parse_claim("random > uniform")],
        budget=8,
        params={"uniform": {"depth": 2}},
    )
    primary = Primary.of(("bpo", "uniform"), "prompt_strict_acc", params={"uniform": {"depth": 2}})
    rows = claim_tests(
        runs,
        [("bpo", "original"), ("bpo", "uniform")],
        "prompt_strict_acc",
        primary=primary,
        families=[depths, against],
    )
    by_family: dict[str, list[dict]] = {}
    for row in rows:
        by_family.setdefault(row["family"], []).append(row)
    assert set(by_family) == {"primary", DEFAULT_FAMILY, "depths", "vs_uniform"}
    pairs = {(r["better_setting"], r["worse_setting"]) for r in by_family["depths"]}
    assert pairs == {
        ("1 pair per prompt", "2 pairs per prompt"),
        ("1 pair per prompt", "4 pairs per prompt"),
        ("2 pairs per prompt", "4 pairs per prompt"),
    }
    assert {(r["claim"], r["worse_setting"]) for r in by_family["vs_uniform"]} == {
        ("bpo > uniform", "2 pairs per prompt"),
        ("random > uniform", "2 pairs per prompt"),
    }
    assert [r["worse_setting"] for r in by_family["primary"]] == ["2 pairs per prompt"]
    for members in by_family.values():
        verdicts = [r["seeds_ci"] for r in members]
        assert [v["p_holm"] for v in verdicts] == pytest.approx(holm([v["p"] for v in verdicts]))
    # the depth at 4 gains most over 1: the pairwise row says so, with the sign of better − worse
    d1_d4 = next(
        r
        for r in by_family["depths"]
        if r["worse_setting"] == "4 pairs per prompt" and r["better_setting"] == "1 pair per prompt"
    )
    assert d1_d4["seeds_ci"]["diff"] < 0
    render_comparison(
        paths,
        tmp_path / "cmp" / "index.html",
        baseline="original",
        claims=[("bpo", "original")],
        primary=primary,
        families=[depths, against],
    )
    summary = (tmp_path / "cmp" / "summary.md").read_text()
    assert (
        "| depths | uniform vs uniform |" in summary
        and "uniform vs uniform (family depths), exploratory, in 3 settings" in summary
    )
    assert (
        "\n- random > uniform (2 pairs per prompt) at 8 pairs (family vs_uniform): " in summary
    )  # one row: one sentence, its family named
    assert json.loads((tmp_path / "cmp" / "paired_tests.json").read_text())["families"] == sorted(by_family)


def test_a_family_across_budgets_pairs_a_small_selection_with_the_whole_pool(tmp_path: Path) -> None:
    """The paper's "about 10% suffices": bpo at 8 pairs against uniform on every pair (budget 64), matched by seed on
    the same held-out prompts; a family without across_budgets never pairs two budgets."""
    from harness.analysis.comparisons import Family

    rng = np.random.default_rng(5)
    paths = []
    for seed in range(3):
        truth = rng.random(60) < 0.4
        for strategy, budget, lift in (("bpo", 8, 0.2), ("uniform", 64, 0.1)):
            outcome = truth | (rng.random(60) < lift)
            run = _run(
                tmp_path,
                strategy,
                seed,
                float(outcome.mean()),
                outcome.astype(int).tolist(),
                name=f"{strategy}-b{budget}-s{seed}",
                config={"select": {"budget": budget}},
            )
            selection = json.loads((run / "selection.json").read_text())
            (run / "selection.json").write_text(json.dumps({**selection, "budget": budget}))
            paths.append(run)
    runs = load_runs(paths)
    tenth = Family.of("tenth", [parse_claim("bpo > uniform")], across_budgets=True)
    rows = claim_tests(runs, [], "prompt_strict_acc", families=[tenth])
    assert (
        len(rows) == 1
        and rows[0]["budget"] == 8
        and rows[0]["worse_budget"] == 64
        and rows[0]["seeds_ci"]["n_seeds"] == 3
    )
    assert all(
        "missing" in r for r in claim_tests(runs, [("bpo", "uniform")], "prompt_strict_acc")
    )  # one budget at a time: no pair
    render_comparison(paths, tmp_path / "cmp" / "index.html", baseline="uniform", families=[tenth])
    assert "bpo at 8 pairs > uniform at 64 pairs" in (tmp_path / "cmp" / "summary.md").read_text()


def test_a_matrix_family_names_strategies_on_its_axis_and_not_the_claims_own_names(tmp_path: Path) -> None:
    spec = tmp_path / "m.yaml"
    spec.write_text(
        "name: m\nbase: x.yaml\naxes: {strategy: [bpo, uniform]}\nfamilies: {depths: {claims: ['uniform vs uniform', 'bpo > uniform']}}\n"
    )
    assert list(load_matrix(spec).families) == ["depths"]
    for families, match in (
        ("{d: {claims: ['less > uniform']}}", "less"),
        ("{primary: {claims: ['bpo > uniform']}}", "name the family otherwise"),
        ("{d: {claims: ['bpo > uniform'], params: {margin: {order: high}}}}", "no claim of the family names"),
    ):
        spec.write_text(f"name: m\nbase: x.yaml\naxes: {{strategy: [bpo, uniform]}}\nfamilies: {families}\n")
        with pytest.raises(ConfigError, match=match):
            load_matrix(spec)


def test_legends_stay_off_the_data() -> None:
    """Every legend of the reports' figures sits beside its axes, not over the points: the breadth-depth scatter
    with thirteen cells, drawn, keeps its legend's box clear of the axes' box; and no figure places a legend of its
    own (each goes through legend_beside, or below the panels as the surface figure's does)."""
    from reports.figures import legend_beside, plt

    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    for i in range(13):
        ax.scatter([i, i + 1], [1 + i % 4, 2 + i % 3], label=f"strategy {i} (4 pairs per prompt)", s=30)
    legend = legend_beside(ax, fontsize=7)
    fig.canvas.draw()
    box, axes_box = legend.get_window_extent(), ax.get_window_extent()
    assert box.x0 >= axes_box.x1 and not box.overlaps(axes_box)
    plt.close(fig)
    sources = {path.name: path.read_text() for path in (Path(__file__).resolve().parents[2] / "reports").glob("*.py")}
    assert (
        sum(text.count(".legend(") for text in sources.values()) == 2
    )  # legend_beside's own call, and the surface's fig.legend below its panels
    assert "fig.legend(" in sources["comparison.py"] and "ax.legend(" not in sources["comparison.py"]


def test_what_each_accuracy_is_made_of_shows_the_primary_metric(tmp_path: Path) -> None:
    """The table beside the claims reads the primary metric under whatever name it has (it once read a retired name
    and showed 'missing' for every row)."""
    runs = []
    for strategy, primary, constraint in (("bpo", 0.36, 0.60), ("uniform", 0.29, 0.48)):
        run = _run(tmp_path, strategy, 0, constraint, [1, 0, 1])
        metrics = json.loads((run / "metrics.json").read_text())
        record = metrics["ifeval_heldout"]["tuned.prompt_strict_acc"]
        metrics["ifeval_heldout"].update(
            {
                f"tuned.{name}": {**record, "value": value}
                for name, value in ((PRIMARY_METRIC, primary), ("task_done_rate", 0.7), ("degenerate_share", 0.2))
            }
        )
        metrics["ifeval_heldout"]["base.degenerate_share"] = {**record, "value": 0.3}
        (run / "metrics.json").write_text(json.dumps(metrics))
        runs.append(run)
    html = render_comparison(runs, tmp_path / "cmp" / "index.html", baseline="uniform").read_text()
    table = html[html.index("What each setting's accuracy is made of") :].split("</table>")[0]
    assert "<b>0.360</b>" in table and "<b>0.290</b>" in table  # the primary column, bold
    assert '<td class="num">0.300 → 0.200</td>' in table  # the degenerate share, base → tuned
