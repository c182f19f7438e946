"""The sampling and pool engine on a tiny real Llama: samples, judged responses, valid pairs, topped-up prompts."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.core.io import read_jsonl
from harness.data.builtin import build_builtin_prompts
from harness.generation.config import GenerationConfig
from harness.models.choices import resolve_generation
from harness.stages.candidates import build_pool, draw_samples, read_pool, read_samples
from harness.stages.config import PoolConfig


def sampled(model: Path, prompts, cfg: PoolConfig, folder: Path) -> list:
    folder.mkdir(parents=True, exist_ok=True)
    draw_samples(str(model), prompts, cfg, 0, folder, resolve_generation(GenerationConfig()))
    return read_samples(folder)


def test_pool_stage_writes_judged_responses_and_valid_pairs(tiny_model: Path, tmp_path: Path) -> None:
    prompts, _ = build_builtin_prompts(seed=0, n_train=4)
    cfg = PoolConfig(k=3, max_new_tokens=8, batch_size=12, drop_truncated=False)
    samples = sampled(tiny_model, prompts, cfg, tmp_path / "samples")
    assert len(samples) == 12 and {r.prompt_id for r in samples} == {p.id for p in prompts}
    stats = build_pool(
        str(tiny_model),
        prompts,
        [],
        samples,
        cfg,
        seed=0,
        out=tmp_path,
        generation=resolve_generation(GenerationConfig()),
        cache_dir=tmp_path / "cache",
    )
    assert stats["n_responses"] == 12 and stats["tokens_generated"] == 0  # judged, not sampled again
    scores = read_jsonl(tmp_path / "scores.jsonl")
    assert len(scores) == 12 and all(0.0 <= s["value"] <= 1.0 for s in scores)
    pool = read_pool(tmp_path, prompts)
    for pair in pool.pairs:
        assert pool.scores[pair.chosen_id] > pool.scores[pair.rejected_id]
        assert pool.responses[pair.chosen_id].prompt_id == pair.prompt_id


def test_pool_tops_up_prompts_whose_samples_all_tie(tiny_model: Path, tmp_path: Path) -> None:
    """The random tiny model fails every constraint: every prompt ties, so each is sampled up to k_max."""
    prompts, _ = build_builtin_prompts(seed=0, n_train=3, n_eval=0)
    cfg = PoolConfig(k=2, k_max=5, max_new_tokens=8, batch_size=8, drop_truncated=False)
    samples = sampled(tiny_model, prompts, cfg, tmp_path / "samples")
    (tmp_path / "a").mkdir()
    summary = build_pool(
        str(tiny_model),
        prompts,
        [],
        samples,
        cfg,
        0,
        tmp_path / "a",
        generation=resolve_generation(GenerationConfig()),
        cache_dir=tmp_path / "cache",
    )
    pool = read_pool(tmp_path / "a", prompts)
    assert summary["n_pairs"] == 0 and summary["n_prompts_topped_up"] == 3 and summary["n_topped_up_that_paired"] == 0
    per_prompt = {p.id: sum(r.prompt_id == p.id for r in pool.responses.values()) for p in prompts}
    assert per_prompt == {p.id: 5 for p in prompts}  # 2, then +2, then +1
    assert len(read_jsonl(tmp_path / "a" / "scores.jsonl")) == 15
    (tmp_path / "b").mkdir()
    plain = build_pool(
        str(tiny_model),
        prompts,
        [],
        samples,
        cfg.model_copy(update={"k_max": None}),
        0,
        tmp_path / "b",
        generation=resolve_generation(GenerationConfig()),
        cache_dir=tmp_path / "cache",
    )
    assert plain["n_responses"] == 6 and plain["n_prompts_topped_up"] == 0
    first_round = [r for r in read_jsonl(tmp_path / "a" / "responses.jsonl")][:6]
    assert first_round == read_jsonl(tmp_path / "b" / "responses.jsonl")  # the first round is the plain pool
    with pytest.raises(ValueError, match="must be larger than pool.k"):
        PoolConfig(k=4, k_max=4)
