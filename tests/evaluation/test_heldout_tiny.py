"""Held-out evaluation: paired metrics with CIs, sampled rewards, held-out preference accuracy and its pairs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harness.core.io import read_jsonl
from harness.data.config import PromptsConfig
from harness.evaluation.config import EvaluateConfig
from harness.evaluation.constraint_accuracy import compute_metrics
from harness.models.choices import resolve_train
from harness.models.resolve import engine_key
from harness.training.config import TrainConfig
from harness.training.dpo import train_dpo

ENGINE = engine_key("auto", "auto")
"""what this machine generates with: the engine a run would resolve here"""


def _row(pid: str, strict: list[bool], output: str = "x y z") -> dict:
    return {"prompt_id": pid, "output": output, "strict": strict, "loose": strict}


def test_metrics_are_paired_with_cis() -> None:
    base = [_row("a", [False]), _row("b", [True, False]), _row("c", [True]), _row("d", [False])]
    tuned = [_row("a", [True]), _row("b", [True, True]), _row("c", [True]), _row("d", [False])]
    m = compute_metrics(base, tuned, EvaluateConfig(bootstrap=200))["ifeval_heldout"]
    assert m["base.prompt_strict_acc"]["value"] == pytest.approx(0.25)
    assert m["tuned.prompt_strict_acc"]["value"] == pytest.approx(0.75)
    assert m["base.instruction_strict_acc"]["value"] == pytest.approx(2 / 5)
    assert m["paired_diff.prompt_strict_acc"]["value"] == pytest.approx(0.5)
    assert m["win_rate_vs_base"]["value"] == pytest.approx((1 + 1 + 0.5 + 0.5) / 4)
    for rec in m.values():
        assert rec["ci_low"] <= rec["value"] <= rec["ci_high"] and rec["n"] > 0 and rec["judge"]
    with pytest.raises(AssertionError):
        compute_metrics(base, list(reversed(tuned)), EvaluateConfig(bootstrap=200))


def test_sampled_reward_is_averaged_per_prompt_and_paired() -> None:
    base = [_row("a", [False]), _row("b", [True, False])]
    tuned = [_row("a", [True]), _row("b", [True, True])]
    base[0]["sampled_strict"], tuned[0]["sampled_strict"] = [[False], [True], [False]], [[True], [True], [False]]
    base[1]["sampled_strict"], tuned[1]["sampled_strict"] = (
        [[True, False], [False, False], [True, True]],
        [[True, True]] * 3,
    )
    m = compute_metrics(base, tuned, EvaluateConfig(bootstrap=200))["ifeval_heldout"]
    assert m["base.mean_verifiable_reward"]["value"] == pytest.approx(np.mean([1 / 3, np.mean([0.5, 0.0, 1.0])]))
    assert m["tuned.mean_verifiable_reward"]["value"] == pytest.approx(np.mean([2 / 3, 1.0]))
    assert m["paired_diff.mean_verifiable_reward"]["value"] == pytest.approx(np.mean([1 / 3, 0.5]))
    assert m["tuned.mean_verifiable_reward"]["samples_per_prompt"] == 3
    without_samples = compute_metrics([_row("a", [False])], [_row("a", [True])], EvaluateConfig(bootstrap=200))
    assert "base.mean_verifiable_reward" not in without_samples["ifeval_heldout"]


def test_sampled_evaluation_draws_seeded_samples_per_prompt(tiny_model: Path, tmp_path: Path) -> None:
    from harness.data.heldout import HeldoutSet
    from harness.evaluation.constraint_accuracy import evaluate_target, read_outputs
    from harness.suites import EvalTarget, SuiteContext

    cfg = EvaluateConfig(n_prompts=3, max_new_tokens=8, batch_size=8, samples=2)
    heldout = HeldoutSet.of(cfg, PromptsConfig())
    for name in ("a", "b"):  # separate caches: each draws its samples anew
        (tmp_path / name).mkdir()
        evaluate_target(
            EvalTarget(str(tiny_model), ENGINE), cfg, SuiteContext(tmp_path / f"cache-{name}", heldout), tmp_path / name
        )
    rows_a, rows_b = read_outputs(tmp_path / "a"), read_outputs(tmp_path / "b")
    assert len(rows_a) == 3 and all(len(r["sampled_strict"]) == 2 for r in rows_a)
    assert [r["prompt_id"] for r in rows_a] == [p.id for p in heldout.prompts()]
    assert rows_a == rows_b  # seeded: the base model draws the same samples every time
    assert compute_metrics(rows_a, rows_b, cfg)["ifeval_heldout"]["paired_diff.mean_verifiable_reward"]["value"] == 0.0


def test_heldout_preference_accuracy_sees_what_training_taught(tiny_model: Path, tmp_path: Path) -> None:
    from harness.core.records import Pair, Prompt, Response, pair_id, response_id
    from harness.evaluation.preference import preference_accuracy, reference_logps, reserve_heldout
    from strategies.base import CandidatePool

    prompts, responses, pairs = {}, {}, []
    for i in range(20):
        p = Prompt.make([{"role": "user", "content": f"Describe thing {i}."}], "test")
        good = Response(response_id(p.id, "g", "m", 0), p.id, "A short plain answer.", "m")
        bad = Response(
            response_id(p.id, "b", "m", 1), p.id, "A long, rambling, comma-filled answer, with, commas" + "!" * i, "m"
        )
        prompts[p.id] = p
        responses.update({good.id: good, bad.id: bad})
        pairs.append(Pair(pair_id(good.id, bad.id), p.id, good.id, bad.id, 1.0))
    pool = CandidatePool(prompts, responses, {}, tuple(pairs))
    selectable, heldout = reserve_heldout(pool, 0.25, 64, seed=7)
    assert len(heldout) == 5 and len(selectable.pairs) == 15
    assert not {p.prompt_id for p in heldout} & {p.prompt_id for p in selectable.pairs}
    assert reserve_heldout(pool, 0.25, 64, seed=7)[1] == heldout and reserve_heldout(pool, 0.0, 64, seed=7) == (
        pool,
        [],
    )

    rows = [
        {
            "prompt": prompts[p.prompt_id].messages,
            "chosen": [{"role": "assistant", "content": responses[p.chosen_id].text}],
            "rejected": [{"role": "assistant", "content": responses[p.rejected_id].text}],
        }
        for p in selectable.pairs[:8]
    ]
    cfg = resolve_train(TrainConfig(learning_rate=1e-2, batch_size=4, max_length=64), str(tiny_model))
    train_dpo(str(tiny_model), rows, cfg, seed=0, out_dir=tmp_path / "train")
    reference_logps(str(tiny_model), heldout, pool, cfg, tmp_path)
    reference = json.loads((tmp_path / "reference_logps.json").read_text())
    assert set(reference) == {r for p in heldout for r in (p.chosen_id, p.rejected_id)}
    metrics = preference_accuracy(
        str(tiny_model), tmp_path / "train" / "adapter", heldout, pool, reference, cfg, tmp_path, n_boot=200
    )
    acc, margin = metrics["tuned.preference_accuracy"], metrics["tuned.implicit_reward_margin"]
    assert acc["n"] == 5 and acc["value"] == 1.0 and margin["value"] > 0
    assert len(read_jsonl(tmp_path / "heldout_preferences.jsonl")) == 5


@pytest.mark.skipif(
    not (Path(__file__).resolve().parents[3] / "shared/data/hh_rlhf").is_dir(), reason="shared HH-RLHF data not present"
)
def test_heldout_pairs_from_a_preference_source_leave_out_training_prompts() -> None:
    from harness.data.config import PromptsConfig
    from harness.evaluation.config import PreferenceConfig
    from harness.evaluation.preference import heldout_from_source
    from harness.stages.prompts import load_training_prompts

    source = str(Path(__file__).resolve().parents[3] / "shared/data/hh_rlhf/harmless-base-test.jsonl.gz")
    train, native, _ = load_training_prompts(PromptsConfig(source=source, n_train=40), seed=0)
    cfg = PreferenceConfig(source=source, pairs=300)
    pool, pairs = heldout_from_source(cfg, 3, {p.id for p in train})
    assert len(pairs) == 300 and all(p.native for p in pairs)
    assert not {p.prompt_id for p in pairs} & {p.id for p in train}
    for pair in pairs[:20]:  # the data set's own labels: chosen is the source's chosen reply
        assert pool.responses[pair.chosen_id].text != pool.responses[pair.rejected_id].text
        assert pair.prompt_id in pool.prompts
    assert [p.id for p in heldout_from_source(cfg, 3, {p.id for p in train})[1]] == [p.id for p in pairs]  # seeded
    with pytest.raises(ValueError, match="not both"):
        PreferenceConfig(source=source, k=4)
