"""Candidate pairs from scored responses (docs/design.md §2), shared by every strategy."""

from __future__ import annotations

from collections import defaultdict
from typing import Literal

from harness.core.records import Pair, Response, pair_id, response_id

Pairing = Literal["all", "best_vs_rest", "best_worst"]


def build_pairs(
    responses: list[Response],
    scores: dict[str, float | None],
    *,
    pairing: Pairing,
    min_margin: float,
    drop_truncated: bool,
    max_length_gap: float | None = None,
) -> list[Pair]:
    """(higher, lower) pairs per prompt whose score gap exceeds `min_margin`.

    Truncated samples are dropped first when asked: a response cut off at max_new_tokens
    would otherwise teach the model that unfinished answers are preferred (or not). A sample
    the judge failed on (score None) has no rank and joins no pair; the pool counts them.

    `max_length_gap` makes pairs length-matched: a pair is kept only if its two responses'
    word counts differ by at most that fraction of the longer one. DPO learns length first,
    so without it a judge that happens to favour short answers teaches brevity (docs/design.md §6).
    """
    by_prompt: dict[str, list[Response]] = defaultdict(list)
    for r in responses:
        if (drop_truncated and r.truncated) or scores.get(r.id) is None:
            continue
        by_prompt[r.prompt_id].append(r)
    pairs: list[Pair] = []
    for prompt_id, group in by_prompt.items():
        ranked = sorted(group, key=lambda r: (-scores[r.id], r.id))  # type: ignore[operator]
        if pairing == "all":
            candidates = [(a, b) for i, a in enumerate(ranked) for b in ranked[i + 1 :]]
        elif pairing == "best_vs_rest":
            candidates = [(ranked[0], b) for b in ranked[1:]]
        else:
            candidates = [(ranked[0], ranked[-1])] if len(ranked) > 1 else []
        seen_texts: set[tuple[str, str]] = set()
        for chosen, rejected in candidates:
            margin = scores[chosen.id] - scores[rejected.id]  # type: ignore[operator]
            key = (chosen.text, rejected.text)
            if margin <= min_margin or chosen.text == rejected.text or key in seen_texts:
                continue
            if max_length_gap is not None and relative_length_gap(chosen.text, rejected.text) > max_length_gap:
                continue
            seen_texts.add(key)
            pairs.append(
                Pair(
                    id=pair_id(chosen.id, rejected.id),
                    prompt_id=prompt_id,
                    chosen_id=chosen.id,
                    rejected_id=rejected.id,
                    margin=margin,
                )
            )
    return pairs


def relative_length_gap(a: str, b: str) -> float:
    """|words(a) - words(b)| / max(words): 0 for equal lengths, 1 when one is empty."""
    wa, wb = len(a.split()), len(b.split())
    return abs(wa - wb) / max(wa, wb, 1)


def native_records(native: list[dict]) -> tuple[list[Response], list[Pair]]:
    """A source's own chosen/rejected pairs join the pool, unscored, marked native."""
    responses, pairs = [], []
    for n, row in enumerate(native):
        chosen = Response(
            response_id(row["prompt_id"], row["chosen"], "native", 2 * n), row["prompt_id"], row["chosen"], "native"
        )
        rejected = Response(
            response_id(row["prompt_id"], row["rejected"], "native", 2 * n + 1),
            row["prompt_id"],
            row["rejected"],
            "native",
        )
        responses += [chosen, rejected]
        pairs.append(Pair(pair_id(chosen.id, rejected.id), row["prompt_id"], chosen.id, rejected.id, None, native=True))
    return responses, pairs
