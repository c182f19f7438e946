"""Selected-set diagnostics on a pool whose gradient geometry is built by hand: wide selections span many
directions, deep ones few, and the held-out gain was made to follow the spread."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from harness.analysis.diagnostics import vendi
from harness.cli import main
from harness.constraints.metrics import PRIMARY_METRIC
from harness.core.stats import correlation


def test_vendi_counts_distinct_directions() -> None:
    rng = np.random.default_rng(0)
    assert abs(vendi(np.tile(rng.normal(size=(1, 16)), (10, 1))) - 1.0) < 1e-6  # ten copies of one vector
    assert abs(vendi(np.eye(10)) - 10.0) < 1e-6  # ten orthogonal ones
    two = np.vstack([np.tile(np.eye(16)[0], (5, 1)), np.tile(np.eye(16)[1], (5, 1))])
    assert abs(vendi(two) - 2.0) < 1e-6


def test_correlation_is_missing_for_a_constant_and_exact_for_a_line() -> None:
    assert correlation([1, 1, 1, 1, 1], [0.1, 0.2, 0.3, 0.4, 0.5])["r"] is None
    line = correlation(np.arange(8.0), 2 * np.arange(8.0) + 1)
    assert abs(line["r"] - 1) < 1e-9 and line["p"] < 1e-6
    noisy = correlation(np.arange(6.0), np.array([0.0, 2, 1, 3, 2, 4]))
    assert noisy["low"] < noisy["r"] < noisy["high"] <= 1


def _pool(cache: Path, n_prompts: int = 24, per_prompt: int = 4) -> list[dict]:
    """A pool stage, a features stage (each prompt's pairs share one gradient direction) and an embeddings stage."""
    rng = np.random.default_rng(1)
    pairs, responses, scores = [], [], []
    for p in range(n_prompts):
        for j in range(per_prompt):
            chosen, rejected = f"r{p}c{j}", f"r{p}x{j}"
            pairs.append(
                {"id": f"x{p}-{j}", "prompt_id": f"p{p}", "chosen_id": chosen, "rejected_id": rejected, "margin": 1.0}
            )
            responses += [
                {"id": chosen, "prompt_id": f"p{p}", "text": "a b c"},
                {"id": rejected, "prompt_id": f"p{p}", "text": "a"},
            ]
            # the pool judge's task verdicts: prompts p0-p5 have a degenerate chosen answer, every rejected answer is degenerate
            scores += [
                {
                    "response_id": chosen,
                    "value": 1.0,
                    "details": {"task": {"done": p >= 6, "kind": "ok" if p >= 6 else "marker_only"}},
                },
                {"response_id": rejected, "value": 0.0, "details": {"task": {"done": False, "kind": "loop"}}},
            ]
    pool = cache / "pool" / "h0"
    pool.mkdir(parents=True)
    for name, rows in (("pairs", pairs), ("responses", responses), ("scores", scores)):
        (pool / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    directions = rng.normal(size=(n_prompts, 64))
    grads = np.stack([directions[int(x["prompt_id"][1:])] + 0.05 * rng.normal(size=64) for x in pairs])
    (cache / "features" / "h1").mkdir(parents=True)
    np.savez(
        cache / "features" / "h1" / "features.npz", pair_ids=np.array([x["id"] for x in pairs]), pair_features=grads
    )
    (cache / "embeddings" / "h2").mkdir(parents=True)
    np.savez(
        cache / "embeddings" / "h2" / "embeddings.npz",
        prompt_ids=np.array([f"p{p}" for p in range(n_prompts)]),
        prompt=rng.normal(size=(n_prompts, 8)),
        response_ids=np.array([r["id"] for r in responses]),
        response=rng.normal(size=(len(responses), 8)),
    )
    return pairs


def _run(
    root: Path,
    cache: Path,
    name: str,
    strategy: str,
    seed: int,
    pair_ids: list[str],
    gain: float,
    flipped: bool = False,
    computed_features: bool = False,
) -> None:
    run = root / name
    run.mkdir()
    stages = {
        "pool": {"hash": "h0", "path": str(cache / "pool" / "h0")},
        "embeddings": {"hash": "h2", "path": str(cache / "embeddings" / "h2")},
    }
    if computed_features:
        stages["features"] = {"hash": "h1", "path": str(cache / "features" / "h1")}
    (run / "manifest.json").write_text(
        json.dumps(
            {"status": "done", "seed": seed, "config": {"seed": seed, "cache_dir": str(cache)}, "stages": stages}
        )
    )
    depth: dict[str, int] = {}
    for pid in pair_ids:
        depth[pid.split("-")[0]] = depth.get(pid.split("-")[0], 0) + 1
    histogram: dict[str, int] = {}
    for d in depth.values():
        histogram[str(d)] = histogram.get(str(d), 0) + 1
    (run / "selection.json").write_text(
        json.dumps(
            {
                "strategy": strategy,
                "budget": len(pair_ids),
                "pair_ids": pair_ids,
                "diagnostics": {"breadth": len(depth), "depth_histogram": histogram},
                "flipped": pair_ids[:2] if flipped else [],
            }
        )
    )
    (run / "metrics.json").write_text(
        json.dumps(
            {
                "ifeval_heldout": {
                    f"tuned.{PRIMARY_METRIC}": {
                        "value": 0.4 + gain,
                        "n": 100,
                        "judge": "verifiable",
                        "weak_judge": False,
                    },
                    f"base.{PRIMARY_METRIC}": {"value": 0.4, "n": 100, "judge": "verifiable", "weak_judge": False},
                }
            }
        )
    )


def test_gradient_diversity_is_measured_and_correlated_with_gain(tmp_path: Path) -> None:
    cache, root = tmp_path / "cache", tmp_path / "runs"
    root.mkdir()
    pairs = _pool(cache)
    rng = np.random.default_rng(2)
    by_prompt: dict[str, list[str]] = {}
    for x in pairs:
        by_prompt.setdefault(x["prompt_id"], []).append(x["id"])
    prompts = sorted(by_prompt)
    for depth, strategy, gain in (
        (1, "wide", 0.20),
        (2, "mid", 0.12),
        (4, "deep", 0.05),
        (2, "other", 0.10),
        (1, "spread", 0.18),
    ):
        for seed in range(2):
            chosen = rng.choice(len(prompts), 16 // depth, replace=False)
            ids = [pid for i in chosen for pid in by_prompt[prompts[i]][:depth]]
            _run(
                root,
                cache,
                f"{strategy}-s{seed}",
                strategy,
                seed,
                ids,
                gain + rng.normal(0, 0.005),
                computed_features=strategy == "deep",
            )
    _run(root, cache, "control-s0", "control", 0, [by_prompt[p][0] for p in prompts[:16]], -0.3, flipped=True)
    # a strategy that selected exactly what "wide" did, seed by seed, is counted once in the correlations
    for seed in range(2):
        wide = json.loads((root / f"wide-s{seed}" / "selection.json").read_text())["pair_ids"]
        _run(root, cache, f"twin-s{seed}", "twin", seed, list(reversed(wide)), 0.20)
    out_file = tmp_path / "diagnostics.json"
    out = CliRunner().invoke(main, ["diagnostics", str(root), "--out", str(out_file)])
    assert out.exit_code == 0, out.output
    result = json.loads(out_file.read_text())
    cells = {c["cell"]: c for c in result["cells"]}
    # one pair per prompt spans 16 directions, four per prompt only 4 (the features came from the deep run's manifest)
    assert cells["wide"]["g_vendi"] > 12 and cells["deep"]["g_vendi"] < 5
    assert cells["wide"]["breadth"] == 16 and cells["deep"]["mean_depth"] == 4
    assert cells["control"]["control"] and cells["wide"]["chosen_score"] == 1.0
    corr = {r["property"]: r for r in result["correlations"]}
    assert corr["g_vendi"]["n_cells"] == 5  # the control is left out, and the twin of "wide" counts once
    assert (
        sorted([cells["twin"]["same_as"] or "", cells["wide"]["same_as"] or ""]) in (["", "twin"], ["", "wide"])
        and "counted once" in out.output
    )
    degenerate = {by_prompt[f"p{p}"][j] for p in range(6) for j in range(4)}
    wide_ids = json.loads((root / "wide-s0" / "selection.json").read_text())["pair_ids"]
    assert (
        result["runs"][[r["run"] for r in result["runs"]].index("wide-s0")]["chosen_degenerate"]
        == sum(i in degenerate for i in wide_ids) / 16
    )
    assert cells["wide"]["rejected_degenerate"] == 1.0 and corr["rejected_degenerate"]["r"] is None
    assert corr["g_vendi"]["r"] > 0.9 and corr["g_vendi"]["low"] > 0
    assert corr["chosen_score"]["r"] is None  # every chosen answer scores 1: nothing to correlate
    assert "G-Vendi" in out.output and "control" in out.output


def test_runs_with_one_folder_name_in_two_matrices_keep_their_own_gains(tmp_path: Path) -> None:
    """runs/testbed-primary/bpo-s0-bpo and runs/testbed-lr/bpo-s0-bpo are two runs: each cell reads its own."""
    cache = tmp_path / "cache"
    pairs = _pool(cache)
    for matrix, strategy, gain in (("primary", "wide", 0.20), ("lr", "deep", 0.05)):
        (tmp_path / matrix).mkdir()
        _run(tmp_path / matrix, cache, "same-s0", strategy, 0, [x["id"] for x in pairs[:8]], gain)
    out_file = tmp_path / "diagnostics.json"
    out = CliRunner().invoke(
        main, ["diagnostics", str(tmp_path / "primary"), str(tmp_path / "lr"), "--out", str(out_file)]
    )
    assert out.exit_code == 0, out.output
    cells = {c["cell"]: c for c in json.loads(out_file.read_text())["cells"]}
    assert abs(cells["wide"]["gain"] - 0.20) < 1e-9 and abs(cells["deep"]["gain"] - 0.05) < 1e-9
