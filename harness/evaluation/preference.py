"""Held-out preference accuracy: does the tuned model's implicit reward rank held-out pairs right?

DPO's implicit reward of a response is r(y) = β·(log π_θ(y|x) − log π_ref(y|x)), the reference
being the base model. On pairs the training never saw, the share with r(chosen) > r(rejected)
measures what the preferences taught, with no generation and no judge in the loop (docs/design.md §6);
its unit is a held-out prompt, its pairs averaged. The base model's
implicit reward is 0 for every response, so its accuracy is 0.5 by construction (all ties).

The held-out pairs come from one of two places. With `preference.k` > 0 they are
sampled on evaluation prompts (held-out tasks) by the base model, judged and paired like the
pool, seeded by `evaluate.prompt_seed`: every strategy and every seed is scored on the same
pairs, which a matrix pays for once and which the power analysis can treat as shared units.
With `preference.source` they are a preference data set's own pairs (for HH-RLHF,
human labels) on prompts the training never saw. Otherwise a fixed share of the run's own pool's prompts with pairs (chosen with
`evaluate.prompt_seed`, never the run seed) is reserved before any strategy sees the pool:
free, but a few pairs per pool, and different pairs for each seed.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.core.errors import BenchError
from harness.core.io import write_json, write_jsonl
from harness.core.records import CandidatePool
from harness.core.run_files import RunFolder
from harness.core.stats import metric, ratio_ci
from harness.data.pairs import native_records
from harness.data.sources import SourceError, load_source
from harness.evaluation.config import PreferenceConfig
from harness.models.resolve import load_model
from harness.training.config import TrainConfig
from harness.training.gradient_features import response_logps, tokenize_response

SUITE = "preference_heldout"
JUDGE = "implicit DPO reward of the tuned model vs the base model (no judge)"


def reserve_heldout(pool: CandidatePool, fraction: float, max_pairs: int, seed: int) -> tuple[CandidatePool, list]:
    """(the pool strategies may select from, the held-out pairs); prompts are reserved whole."""
    if fraction <= 0:
        return pool, []
    prompt_ids = sorted(pool.pairs_by_prompt)
    n_reserved = min(len(prompt_ids) - 1, max(1, round(fraction * len(prompt_ids))))
    if n_reserved < 1:
        return pool, []
    reserved = set(np.random.default_rng(seed).permutation(prompt_ids)[:n_reserved].tolist())
    heldout = cap_pairs(
        [p for p in pool.pairs if p.prompt_id in reserved], max_pairs, seed
    )  # spread over the reserved prompts
    kept = tuple(p for p in pool.pairs if p.prompt_id not in reserved)
    return dataclasses.replace(pool, pairs=kept), heldout


def heldout_from_source(cfg: PreferenceConfig, seed: int, exclude_prompts: set[str]) -> tuple[CandidatePool, list]:
    """The native pairs of `cfg.source` whose prompts are not training prompts, capped (seeded by `seed`).

    These carry the data set's own labels (for HH-RLHF, human preferences), so the metric does
    not depend on the pool's judge, which offline is a weak one.
    """

    try:
        loaded = load_source(cfg.source, split=cfg.split, data_dir=None)
    except SourceError as exc:
        raise BenchError(f"preference.source: {exc}") from None
    native = [dataclasses.asdict(p) for p in loaded.native_pairs if p.prompt_id not in exclude_prompts]
    if not native:
        raise BenchError(
            f"preference.source {cfg.source} has no pairs outside the training prompts; "
            "use another split or fewer prompts.n_train."
        )
    responses, pairs = native_records(native)
    pool = CandidatePool(
        prompts={p.id: p for p in loaded.prompts if p.id not in exclude_prompts},
        responses={r.id: r for r in responses},
        scores={},
        pairs=tuple(pairs),
    )
    return pool, cap_pairs(pairs, cfg.pairs, seed)


def cap_pairs(pairs: list, max_pairs: int, seed: int) -> list:
    """At most `max_pairs` pairs, a seeded random subset in pool order (pool order groups pairs by prompt)."""
    if len(pairs) <= max_pairs:
        return pairs
    keep = set(np.random.default_rng(seed).permutation(len(pairs))[:max_pairs].tolist())
    return [p for i, p in enumerate(pairs) if i in keep]


@torch.no_grad()
def _logps(model: Any, items: list, batch_size: int) -> dict[str, float]:
    """Summed response log-prob per response id; batches of similar length, so little is padding."""
    order = sorted(items, key=lambda item: len(item.input_ids))
    out: dict[str, float] = {}
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        for item, value in zip(batch, response_logps(model, batch).float().cpu().tolist()):
            out[item.response_id] = value
    return out


def _items(model_name: str, pairs: list, pool: CandidatePool, max_length: int) -> list:
    """Each distinct response once: with "all" pairing a response sits in several pairs."""
    tokenizer = load_model(model_name).tokenizer
    seen: dict[str, Any] = {}
    for pair in pairs:
        messages = pool.prompts[pair.prompt_id].messages
        for rid in (pair.chosen_id, pair.rejected_id):
            if rid not in seen:
                seen[rid] = tokenize_response(tokenizer, rid, messages, pool.responses[rid].text, max_length)
    return list(seen.values())


def reference_logps(
    model_name: str, pairs: list, pool: CandidatePool, train_cfg: TrainConfig, out: Path, batch_size: int = 8
) -> dict:
    """The base model's log-probs of the held-out responses: the same for every strategy, so a stage of its own."""
    base = load_model(model_name).model.eval()
    logps = _logps(base, _items(model_name, pairs, pool, train_cfg.max_length), batch_size)
    write_json(out / "reference_logps.json", logps)
    return {"n_responses": len(logps), "n_pairs": len(pairs)}


def preference_accuracy(
    model_name: str,
    adapter: Path,
    pairs: list,
    pool: CandidatePool,
    reference: dict[str, float],
    train_cfg: TrainConfig,
    out: Path,
    n_boot: int,
    batch_size: int = 8,
) -> dict[str, dict]:
    """Score each held-out pair with the tuned model against the base model's `reference` log-probs."""
    tuned = load_model(model_name, adapter=adapter).model.eval()
    policy = _logps(tuned, _items(model_name, pairs, pool, train_cfg.max_length), batch_size)
    reward = {rid: train_cfg.beta * (policy[rid] - reference[rid]) for rid in policy}
    rows = []
    for p in pairs:
        m = reward[p.chosen_id] - reward[p.rejected_id]
        rows.append(
            {
                "pair_id": p.id,
                "prompt_id": p.prompt_id,
                "margin": float(m),
                "correct": float(m > 0) + 0.5 * float(m == 0),
            }
        )
    write_jsonl(out / RunFolder.HELDOUT_PREFERENCES, rows)
    return preference_metrics(rows, n_boot)


def preference_metrics(rows: list[dict], n_boot: int) -> dict[str, dict]:
    """Preference accuracy and the implicit reward margin over held-out pairs, with CIs over their prompts.

    n counts the prompts, the units the interval (and any paired test) resamples: pairs of one
    prompt share its responses and are not independent. The pairs are counted in `n_pairs`.
    """
    n_prompts, n_pairs = len({r["prompt_id"] for r in rows}), len(rows)
    return {
        name: metric(_by_prompt_ci(rows, key, n_boot), n_prompts, JUDGE, unit="held-out prompt", n_pairs=n_pairs)
        for name, key in (("tuned.preference_accuracy", "correct"), ("tuned.implicit_reward_margin", "margin"))
    }


def _by_prompt_ci(rows: list[dict], key: str, n_boot: int) -> tuple[float, float, float]:
    """Mean over pairs, CI by resampling prompts: pairs of one prompt are not independent."""
    groups: dict[str, list[float]] = {}
    for row in rows:
        groups.setdefault(row["prompt_id"], []).append(row[key])
    return ratio_ci([sum(v) for v in groups.values()], [len(v) for v in groups.values()], n_boot=n_boot, seed=0)
