"""The `pool` stage: K sampled responses per prompt, judged, turned into candidate pairs."""

from __future__ import annotations

from pathlib import Path

from tqdm.auto import tqdm

from harness.config import GenerationConfig, PoolConfig
from harness.generation import generate_with
from harness.io import read_jsonl, write_jsonl
from harness.judges import get_judge
from harness.judges.cache import CachedJudge
from harness.pairs import build_pairs
from harness.records import Pair, Prompt, Response, Score, from_row, pair_id, response_id, to_row
from strategies.base import CandidatePool


def build_pool(
    model_name: str,
    prompts: list[Prompt],
    native: list[dict],
    cfg: PoolConfig,
    seed: int,
    out: Path,
    *,
    generation: GenerationConfig,
    cache_dir: Path,
) -> dict:
    """Sample, judge (through the judgment cache, so an interrupted pool re-asks nothing), pair."""
    judge = get_judge(cfg.judge)
    conversations = [p.messages for p in prompts for _ in range(cfg.k)]
    generations = generate_with(
        generation.backend,
        model_name,
        None,
        conversations,
        max_new_tokens=cfg.max_new_tokens,
        batch_size=cfg.batch_size,
        do_sample=True,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        seed=seed,
        desc=f"pool: sampling {cfg.k} responses x {len(prompts)} prompts",
        gpu_memory_utilization=generation.vllm_gpu_memory_utilization,
    )
    sampling = {"temperature": cfg.temperature, "top_p": cfg.top_p, "max_new_tokens": cfg.max_new_tokens}
    responses: list[Response] = []
    for n, gen in enumerate(generations):
        prompt = prompts[n // cfg.k]
        index = n % cfg.k
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
    by_id = {p.id: p for p in prompts}
    cached = CachedJudge(judge, cache_dir)
    scores: list[Score] = []
    chunk = max(cfg.judge.batch_size, 1) * 4
    with tqdm(total=len(responses), desc=f"pool: judging ({judge.name})", unit="resp") as bar:
        for start in range(0, len(responses), chunk):
            batch = responses[start : start + chunk]
            for r, judgment in zip(batch, cached.score_many([(by_id[r.prompt_id], r.text) for r in batch])):
                scores.append(Score(response_id=r.id, judge=judge.id, value=judgment.value, details=judgment.details))
            bar.update(len(batch))
    pairs = build_pairs(
        responses,
        {s.response_id: s.value for s in scores},
        pairing=cfg.pairing,
        min_margin=cfg.min_margin,
        drop_truncated=cfg.drop_truncated,
        max_length_gap=cfg.max_length_gap,
    )
    by_text = {r.id: r.text for r in responses}
    native_responses, native_pairs = native_records(native)
    write_jsonl(out / "responses.jsonl", (to_row(r) for r in responses + native_responses))
    write_jsonl(out / "scores.jsonl", (to_row(s) for s in scores))
    write_jsonl(out / "pairs.jsonl", (to_row(p) for p in pairs + native_pairs))
    return {
        "n_responses": len(responses),
        "n_truncated": sum(r.truncated for r in responses),
        "n_pairs": len(pairs) + len(native_pairs),
        "pair_length_gap_words": _mean([_words(by_text[p.chosen_id]) - _words(by_text[p.rejected_id]) for p in pairs]),
        "n_prompts_with_pairs": len({p.prompt_id for p in pairs + native_pairs}),
        "tokens_generated": sum(g.n_tokens for g in generations),
        "n_judge_failures": sum(s.value is None for s in scores),
        "mean_score": _mean([s.value for s in scores if s.value is not None]),
    }


def _words(text: str) -> int:
    return len(text.split())


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def native_records(native: list[dict]) -> tuple[list[Response], list[Pair]]:
    """A source's own chosen/rejected pairs join the pool, unscored, marked native."""
    responses, pairs = [], []
    for n, row in enumerate(native):
        chosen = Response(response_id(row["prompt_id"], row["chosen"], "native", 2 * n), row["prompt_id"], row["chosen"], "native")
        rejected = Response(response_id(row["prompt_id"], row["rejected"], "native", 2 * n + 1), row["prompt_id"], row["rejected"], "native")
        responses += [chosen, rejected]
        pairs.append(Pair(pair_id(chosen.id, rejected.id), row["prompt_id"], chosen.id, rejected.id, None, native=True))
    return responses, pairs


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
