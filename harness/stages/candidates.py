"""The engine of the sampling and pool stages: K sampled responses per prompt, judged, turned into candidate pairs."""

from __future__ import annotations

from pathlib import Path

from tqdm.auto import tqdm

from harness.core.io import read_jsonl, write_jsonl
from harness.core.records import CandidatePool, Pair, Prompt, Response, Score, from_row, response_id, to_row
from harness.data.pairs import build_pairs, native_records
from harness.generation.config import GenerationConfig
from harness.generation.generate import generate_with
from harness.judges import get_judge
from harness.judges._cache import CachedJudge
from harness.stages.config import PoolConfig


def draw_samples(
    model_name: str, prompts: list[Prompt], cfg: PoolConfig, seed: int, out: Path, generation: GenerationConfig
) -> dict:
    """K samples of every prompt into `out/responses.jsonl` (the `samples` stages)."""
    responses, tokens = _sample(model_name, prompts, cfg.k, 0, cfg, seed, generation)
    write_jsonl(out / "responses.jsonl", (to_row(r) for r in responses))
    return {
        "n_responses": len(responses),
        "n_truncated": sum(r.truncated for r in responses),
        "tokens_generated": tokens,
    }


def read_samples(samples_dir: Path) -> list[Response]:
    return [from_row(Response, r) for r in read_jsonl(samples_dir / "responses.jsonl")]


def build_pool(
    model_name: str,
    prompts: list[Prompt],
    native: list[dict],
    sampled: list[Response],
    cfg: PoolConfig,
    seed: int,
    out: Path,
    *,
    generation: GenerationConfig,
    cache_dir: Path,
) -> dict:
    """Judge the samples (through the judgment cache, so an interrupted pool re-asks nothing) and pair them.

    With `k_max`, prompts whose samples form no pair (all tied, or all cut off) are sampled again,
    k more per round, until they pair or reach k_max: extra samples go where they can still help.
    """
    judge = CachedJudge(get_judge(cfg.judge), cache_dir)  # its `.judge` is the judge itself
    responses, tokens = list(sampled), 0
    scores = _judge(judge, prompts, responses, cfg)
    pairs = _pairs(responses, scores, cfg)
    counts = {p.id: cfg.k for p in prompts}
    topped_up: set[str] = set()
    for round_ in range(1, 1 + (((cfg.k_max or cfg.k) - cfg.k) + cfg.k - 1) // cfg.k):
        paired = {p.prompt_id for p in pairs}
        tied = [p for p in prompts if p.id not in paired]
        if not tied:
            break
        n = min(cfg.k, cfg.k_max - counts[tied[0].id])  # every unpaired prompt has had the same rounds
        extra, extra_tokens = _sample(model_name, tied, n, counts[tied[0].id], cfg, seed + 7919 * round_, generation)
        scores.update(_judge(judge, prompts, extra, cfg))
        responses, tokens = responses + extra, tokens + extra_tokens
        topped_up.update(p.id for p in tied)
        counts.update({p.id: counts[p.id] + n for p in tied})
        pairs = _pairs(responses, scores, cfg)
    by_text = {r.id: r.text for r in responses}
    native_responses, native_pairs = native_records(native)
    write_jsonl(out / "responses.jsonl", (to_row(r) for r in responses + native_responses))
    write_jsonl(
        out / "scores.jsonl",
        (
            to_row(Score(response_id=r.id, judge=judge.judge.id, value=scores[r.id][0], details=scores[r.id][1]))
            for r in responses
        ),
    )
    write_jsonl(out / "pairs.jsonl", (to_row(p) for p in pairs + native_pairs))
    return {
        "n_responses": len(responses),
        "n_truncated": sum(r.truncated for r in responses),
        "n_pairs": len(pairs) + len(native_pairs),
        "pair_length_gap_words": _mean([_words(by_text[p.chosen_id]) - _words(by_text[p.rejected_id]) for p in pairs]),
        "n_prompts_with_pairs": len({p.prompt_id for p in pairs + native_pairs}),
        "n_prompts_topped_up": len(topped_up),
        "n_topped_up_that_paired": len(topped_up & {p.prompt_id for p in pairs}),
        "tokens_generated": tokens,
        "n_judge_failures": sum(value is None for value, _ in scores.values()),
        "mean_score": _mean([value for value, _ in scores.values() if value is not None]),
        **degenerate_shares(scores, pairs),
    }


def degenerate_shares(scores: dict[str, tuple[float | None, dict]], pairs: list[Pair]) -> dict[str, float | None]:
    """Where the judge ran the task check: the share of chosen and of rejected answers it rejects, over the pairs."""

    def share(ids: list[str]) -> float | None:
        tasks = [scores[i][1].get("task") for i in ids if i in scores]
        return _mean([float(not t["done"]) for t in tasks if t]) if tasks and all(tasks) else None

    return {
        "chosen_degenerate_share": share([p.chosen_id for p in pairs]),
        "rejected_degenerate_share": share([p.rejected_id for p in pairs]),
    }


def _sample(
    model_name: str,
    prompts: list[Prompt],
    n: int,
    first_index: int,
    cfg: PoolConfig,
    seed: int,
    generation: GenerationConfig,
) -> tuple[list[Response], int]:
    """n samples of each prompt, numbered from `first_index` (ids stay distinct across rounds)."""
    generations = generate_with(
        generation.backend,
        model_name,
        None,
        [p.messages for p in prompts for _ in range(n)],
        dtype=generation.dtype,
        max_new_tokens=cfg.max_new_tokens,
        batch_size=cfg.batch_size,
        do_sample=True,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        seed=seed,
        desc=f"pool: sampling {n} responses x {len(prompts)} prompts",
        gpu_memory_utilization=generation.vllm_gpu_memory_utilization,
    )
    sampling = {"temperature": cfg.temperature, "top_p": cfg.top_p, "max_new_tokens": cfg.max_new_tokens}
    responses = []
    for i, gen in enumerate(generations):
        prompt = prompts[i // n]
        index = first_index + i % n
        responses.append(
            Response(
                id=response_id(prompt.id, gen.text, model_name, index),
                prompt_id=prompt.id,
                text=gen.text,
                generator=model_name,
                sampling=sampling,
                seed=seed,
                truncated=gen.truncated,
            )
        )
    return responses, sum(g.n_tokens for g in generations)


def _judge(
    judge: CachedJudge, prompts: list[Prompt], responses: list[Response], cfg: PoolConfig
) -> dict[str, tuple[float | None, dict]]:
    """response id -> (score, details); None where the judge failed."""
    by_id = {p.id: p for p in prompts}
    scores: dict[str, tuple[float | None, dict]] = {}
    chunk = max(cfg.judge.batch_size, 1) * 4
    with tqdm(total=len(responses), desc=f"pool: judging ({judge.judge.name})", unit="resp") as bar:
        for start in range(0, len(responses), chunk):
            batch = responses[start : start + chunk]
            for r, judgment in zip(batch, judge.score_many([(by_id[r.prompt_id], r.text) for r in batch])):
                scores[r.id] = (judgment.value, judgment.details)
            bar.update(len(batch))
    return scores


def _pairs(responses: list[Response], scores: dict[str, tuple[float | None, dict]], cfg: PoolConfig) -> list[Pair]:
    return build_pairs(
        responses,
        {rid: value for rid, (value, _) in scores.items()},
        pairing=cfg.pairing,
        min_margin=cfg.min_margin,
        drop_truncated=cfg.drop_truncated,
        max_length_gap=cfg.max_length_gap,
    )


def _words(text: str) -> int:
    return len(text.split())


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def read_pool(pool_dir: Path, prompts: list[Prompt]) -> CandidatePool:
    responses = [from_row(Response, r) for r in read_jsonl(pool_dir / "responses.jsonl")]
    scores = {r["response_id"]: r["value"] for r in read_jsonl(pool_dir / "scores.jsonl")}
    pairs = [from_row(Pair, r) for r in read_jsonl(pool_dir / "pairs.jsonl")]
    return CandidatePool(
        prompts={p.id: p for p in prompts},
        responses={r.id: r for r in responses},
        scores=scores,
        pairs=tuple(pairs),
    )
