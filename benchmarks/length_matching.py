"""What length-matched pairing does to a pool: pairs kept, and the chosen-minus-rejected length gap.

Re-pairs the judged samples of existing pool stages (no generation, no judging) under several
`pool.max_length_gap` values and prints one row per (pool, limit): the pairs and prompts left,
the mean length gap in words, and how often the chosen answer is the shorter one. A gap far
from 0 means the pairs teach length as much as the constraints.

    python benchmarks/length_matching.py runs/cache/pool/<hash> [...] [--limits none 0.5 0.3 0.2] [--out FILE.json]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from harness.core.io import read_json, read_jsonl, write_json
from harness.core.records import Response, from_row
from harness.data.pairs import build_pairs


def _limit(text: str) -> float | None:
    return None if text.lower() == "none" else float(text)


def measure(pool_dir: Path, limits: list[float | None]) -> list[dict]:
    stage = read_json(pool_dir / "stage.json")
    cfg = stage["inputs"]["pool"]
    responses = [
        from_row(Response, r) for r in read_jsonl(pool_dir / "responses.jsonl") if r.get("generator") != "native"
    ]
    scores = {r["response_id"]: r["value"] for r in read_jsonl(pool_dir / "scores.jsonl")}
    words = {r.id: len(r.text.split()) for r in responses}
    rows = []
    for limit in limits:
        pairs = build_pairs(
            responses,
            scores,
            pairing=cfg["pairing"],
            min_margin=cfg["min_margin"],
            drop_truncated=cfg["drop_truncated"],
            max_length_gap=limit,
        )
        gaps = [words[p.chosen_id] - words[p.rejected_id] for p in pairs]
        rows.append(
            {
                "pool": pool_dir.name,
                "k": cfg["k"],
                "max_new_tokens": cfg["max_new_tokens"],
                "max_length_gap": limit,
                "pairs": len(pairs),
                "prompts": len({p.prompt_id for p in pairs}),
                "gap_words_mean": float(np.mean(gaps)) if gaps else None,
                "chosen_shorter_share": float(np.mean([g < 0 for g in gaps])) if gaps else None,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("pools", nargs="+", type=Path, help="pool stage folders (runs/cache/pool/<hash>)")
    parser.add_argument("--limits", nargs="+", type=_limit, default=[None, 0.5, 0.3, 0.2, 0.1])
    parser.add_argument("--out", type=Path, help="also write the rows as JSON")
    args = parser.parse_args()
    rows = [row for pool in args.pools for row in measure(pool, args.limits)]
    print(f"{'pool':<18} {'k':>2} {'limit':>6} {'pairs':>6} {'prompts':>7} {'gap (words)':>12} {'chosen shorter':>15}")
    for r in rows:
        gap = "-" if r["gap_words_mean"] is None else f"{r['gap_words_mean']:+.1f}"
        shorter = "-" if r["chosen_shorter_share"] is None else f"{r['chosen_shorter_share']:.2f}"
        limit = "none" if r["max_length_gap"] is None else f"{r['max_length_gap']:.2f}"
        print(f"{r['pool']:<18} {r['k']:>2} {limit:>6} {r['pairs']:>6} {r['prompts']:>7} {gap:>12} {shorter:>15}")
    if args.out:
        write_json(args.out, rows)


if __name__ == "__main__":
    main()
