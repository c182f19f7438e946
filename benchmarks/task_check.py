"""The task check against hand labels: agreement overall, per kind of failure and per constraint type.

Labels: benchmarks/data/task_check_labels.jsonl, real answers (the testbed pool's samples and committed runs'
held-out outputs, base and tuned), each read by hand and labelled "does the task: yes/no" with the kind
of failure. Also the adversarial corpus of tests/fixtures/task_check_adversarial.jsonl (answers written to
pass the constraint checkers without doing the task, beside real ones).

Required (issue 34): >= 90% agreement overall, and >= 95% of the degenerate answers (marker-only, loop,
echo, refusal, off-topic) rejected. `--split` also prints the agreement on each half of the labels by id
hash, as a check that nothing was fitted to one half.

    python3 benchmarks/task_check.py [--labels FILE] [--adversarial FILE] [--out runs/benchmarks/task_check.json]
        [--show-disagreements 20]
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import random
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from harness.constraints.metrics import DEGENERATE_KINDS  # noqa: E402
from harness.core.records import Prompt  # noqa: E402
from harness.judges.task_check import TaskCheck  # noqa: E402


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def as_prompt(row: dict) -> Prompt:
    instructions = row.get("instructions") or [row["instruction"]]
    return Prompt.make([{"role": "user", "content": row["prompt"]}], "builtin", {"base_task": row["base_task"], "instruction_id_list": instructions})


def table(title: str, groups: dict[str, list[bool]]) -> list[str]:
    lines = [f"\n{title}", f"{'':<44} {'n':>4} {'agreement':>9}"]
    for name, hits in sorted(groups.items()):
        lines.append(f"{name:<44} {len(hits):>4} {sum(hits) / len(hits):>9.3f}")
    return lines


def evaluate(rows: list[dict], check: TaskCheck) -> tuple[list, dict]:
    verdicts = check.check_many([(as_prompt(r), r["response"]) for r in rows])
    agree = [v.done == r["does_task"] for r, v in zip(rows, verdicts)]
    degenerate = [v.done is False for r, v in zip(rows, verdicts) if r["kind"] in DEGENERATE_KINDS]
    real = [v.done for r, v in zip(rows, verdicts) if r["does_task"]]
    summary = {
        "n": len(rows), "agreement": sum(agree) / len(rows),
        "degenerate_n": len(degenerate), "degenerate_rejected": sum(degenerate) / max(1, len(degenerate)),
        "real_n": len(real), "real_accepted": sum(real) / max(1, len(real)),
    }
    return verdicts, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--labels", type=Path, default=REPO / "benchmarks" / "data" / "task_check_labels.jsonl")
    parser.add_argument("--adversarial", type=Path, default=REPO / "tests" / "fixtures" / "task_check_adversarial.jsonl")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "benchmarks" / "task_check.json")
    parser.add_argument("--show-disagreements", type=int, default=0, metavar="N")
    parser.add_argument("--split", action="store_true")
    args = parser.parse_args()

    check = TaskCheck()
    rows = read_rows(args.labels)
    verdicts, summary = evaluate(rows, check)
    agree = [v.done == r["does_task"] for r, v in zip(rows, verdicts)]
    lines = [f"labels: {args.labels.relative_to(REPO) if args.labels.is_relative_to(REPO) else args.labels} ({len(rows)} answers)",
             f"agreement overall {summary['agreement']:.3f} (n {len(rows)}); degenerate rejected {summary['degenerate_rejected']:.3f} "
             f"(n {summary['degenerate_n']}); real answers accepted {summary['real_accepted']:.3f} (n {summary['real_n']})"]
    by_kind: dict[str, list[bool]] = collections.defaultdict(list)
    by_type: dict[str, list[bool]] = collections.defaultdict(list)
    by_source: dict[str, list[bool]] = collections.defaultdict(list)
    for row, hit in zip(rows, agree):
        by_kind[row["kind"]].append(hit)
        for instruction in row["instructions"]:
            by_type[instruction].append(hit)
        by_source[f"{row['source']} / {row['side']}"].append(hit)
    lines += table("per labelled kind (agreement = the check's done/not done matches the label)", by_kind)
    lines += table("per constraint type", by_type)
    lines += table("per source", by_source)
    confusion = collections.Counter((r["kind"], v.kind) for r, v in zip(rows, verdicts))
    lines.append("\nlabel kind -> check kind: " + "; ".join(f"{a} -> {b}: {n}" for (a, b), n in sorted(confusion.items())))
    if args.split:
        half = [int(hashlib.sha256(r["id"].encode()).hexdigest(), 16) % 2 for r in rows]
        for h in (0, 1):
            hits = [a for a, x in zip(agree, half) if x == h]
            lines.append(f"half {h}: agreement {sum(hits) / len(hits):.3f} (n {len(hits)})")
    result = {"labels": summary, "per_kind": {k: [len(v), sum(v) / len(v)] for k, v in by_kind.items()},
              "per_type": {k: [len(v), sum(v) / len(v)] for k, v in by_type.items()}}
    if args.adversarial.is_file():
        adversarial = read_rows(args.adversarial)
        adv_verdicts, adv = evaluate(adversarial, check)
        result["adversarial"] = adv
        lines.append(f"\nadversarial corpus: {args.adversarial.name} ({len(adversarial)} answers that pass their constraint): "
                     f"degenerate rejected {adv['degenerate_rejected']:.3f} (n {adv['degenerate_n']}), real accepted "
                     f"{adv['real_accepted']:.3f} (n {adv['real_n']})")
        for row, v in zip(adversarial, adv_verdicts):
            if v.done != row["does_task"]:
                lines.append(f"  missed {row['id']} ({row['kind']} -> {v.kind}): {row['response'][:100]!r}")
    if args.show_disagreements:
        wrong = [(r, v) for r, v in zip(rows, verdicts) if v.done != r["does_task"]]
        for r, v in random.Random(0).sample(wrong, min(args.show_disagreements, len(wrong))):
            lines.append(f"\n[{r['kind']} -> {v.kind}] {r['prompt'][:90]!r}\n   {r['response'][:200]!r}\n   {(r.get('adjudication') or r['annotator_a']['note'])[:120]} "
                         f"| {json.dumps({k: x for k, x in v.details.items() if k != 'terms'})} terms={v.details.get('terms')}")
    print("\n".join(lines))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
