"""Turn a pool bundle written before sampling was a stage of its own into one whose samples restore as the
`samples` and `preference_samples` stages, so that another judge labels the very same samples.

    python3 scripts/split_pool_bundle.py OLD.tar.gz --cache-dir runs/cache -o samples.tar.gz

Each `pool` / `preference_pool` stage of OLD holds its samples (responses.jsonl) and the inputs it was keyed by;
the samples stage they imply is written into --cache-dir under the key this bpo-bench version computes, and
exported with OLD's prompts stage. A run naming the new bundle adopts the samples under the engine that drew
them (harness/runner.py `resolve_run`) and judges, pairs and computes everything after them itself.
It also prints the task check's verdict on OLD's pairs: the share of chosen and of rejected answers that do not
do their task, the "before" of a relabelling.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from harness.core.bundle import bundled_stages, export_bundle, import_bundle  # noqa: E402
from harness.core.cache import run_stage  # noqa: E402
from harness.core.io import read_jsonl, write_jsonl  # noqa: E402
from harness.core.records import Prompt, from_row  # noqa: E402
from harness.evaluation.task_check import TaskCheck  # noqa: E402
from harness.provenance import machine  # noqa: E402
from harness.stages import samples  # noqa: E402

SPLIT = {"pool": samples.NAME, "preference_pool": samples.PREFERENCE}


def samples_inputs(pool_inputs: dict) -> dict:
    """The samples stage's key from the inputs an old pool stage was keyed by (harness/stages/samples.py `inputs`)."""
    sampling = {k: pool_inputs["pool"][k] for k in samples.SAMPLING}
    engine = {k: pool_inputs[k] for k in ("backend", "dtype", "decoder") if k in pool_inputs}
    return {
        "prompts": pool_inputs["prompts"],
        "model": pool_inputs["model"],
        "sampling": sampling,
        **engine,
        "seed": pool_inputs["seed"],
    }


def degenerate_pairs(pool_dir: Path, prompts: dict[str, Prompt]) -> tuple[float, float, int]:
    """(chosen, rejected) shares of an old pool's pairs that the task check rejects, and the number of pairs."""
    responses = {r["id"]: r["text"] for r in read_jsonl(pool_dir / "responses.jsonl")}
    pairs = [p for p in read_jsonl(pool_dir / "pairs.jsonl") if p["prompt_id"] in prompts]
    check = TaskCheck()
    shares = []
    for side in ("chosen_id", "rejected_id"):
        verdicts = check.check_many([(prompts[p["prompt_id"]], responses[p[side]]) for p in pairs])
        shares.append(sum(not v.done for v in verdicts) / max(1, len(verdicts)))
    return shares[0], shares[1], len(pairs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--cache-dir", type=Path, default=Path("runs/cache"))
    parser.add_argument("-o", "--out", type=Path, required=True)
    args = parser.parse_args()

    import_bundle(args.bundle, args.cache_dir)
    held = bundled_stages(args.bundle)
    prompts_stage = next(s for s in held if s.name == "prompts")
    prompt_rows = read_jsonl(args.cache_dir / "prompts" / prompts_stage.hash / "prompts.jsonl")
    prompts = {p.id: p for p in (from_row(Prompt, r) for r in prompt_rows)}
    out = [("prompts", prompts_stage.hash, args.cache_dir / "prompts" / prompts_stage.hash)]
    for stage in held:
        if stage.name not in SPLIT or stage.inputs is None:
            continue
        old = args.cache_dir / stage.name / stage.hash
        rows = [r for r in read_jsonl(old / "responses.jsonl") if r.get("sampling")]  # native responses are not samples

        def compute(folder: Path, rows=rows) -> dict:
            write_jsonl(folder / "responses.jsonl", rows)
            return {
                "n_responses": len(rows),
                "n_truncated": sum(bool(r.get("truncated")) for r in rows),
                "split_from": f"{stage.name}/{stage.hash}",
            }

        result = run_stage(args.cache_dir, SPLIT[stage.name], samples_inputs(stage.inputs), compute)
        out.append((result.name, result.hash, result.path))
        print(
            f"{stage.name} {stage.hash} -> {result.name} {result.hash} ({len(rows)} samples, drawn in {stage.inputs.get('dtype')})"
        )
        if stage.name == "pool":
            chosen, rejected, n = degenerate_pairs(old, prompts)
            print(
                f"  before relabelling: {n} pairs; the task check rejects {chosen:.1%} of chosen and {rejected:.1%} of rejected answers"
            )
    bundled = export_bundle(out, args.out, machine())
    print(f"wrote {args.out} ({', '.join(f'{b.name} {b.hash}' for b in bundled)})")


if __name__ == "__main__":
    main()
