"""The task check against hand labels: agreement overall, per kind of failure and per constraint type.

Labels: benchmarks/data/task_check_labels.jsonl, real answers (the testbed pool's samples and committed runs'
held-out outputs, base and tuned), each read by hand and labelled "does the task: yes/no" with the kind
of failure. Also the adversarial corpus of tests/fixtures/task_check_adversarial.jsonl (answers written to
pass the constraint checkers without doing the task, beside real ones).

Required (issue 34): >= 90% agreement overall, and >= 95% of the degenerate answers (marker-only, loop,
echo, refusal, off-topic) rejected. `--split` also prints the agreement on each half of the labels by id
hash, as a check that nothing was fitted to one half.

`--ceiling` asks how far the signals the check may use (nothing beyond what is installed) can go: a logistic
regression over the check's own measurements and MiniLM's similarity of the answer to its task and to the task's
reference answer (harness/data/task_keys.jsonl), fitted on one half of the labels by id hash and scored on the
other. It is an upper bound for any rule over these signals, not a check: a fitted rule would trade real
answers for degenerate ones (see the real answers it accepts).

    python3 benchmarks/task_check.py [--labels FILE] [--adversarial FILE] [--out runs/benchmarks/task_check.json]
        [--show-disagreements 20] [--split] [--ceiling]
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import random
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from harness.constraints.metrics import DEGENERATE_KINDS  # noqa: E402
from harness.core.records import Prompt  # noqa: E402
from harness.evaluation.task_check import TaskCheck  # noqa: E402


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def as_prompt(row: dict) -> Prompt:
    instructions = row.get("instructions") or [row["instruction"]]
    return Prompt.make(
        [{"role": "user", "content": row["prompt"]}],
        "builtin",
        {"base_task": row["base_task"], "instruction_id_list": instructions},
    )


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
        "n": len(rows),
        "agreement": sum(agree) / len(rows),
        "degenerate_n": len(degenerate),
        "degenerate_rejected": sum(degenerate) / max(1, len(degenerate)),
        "real_n": len(real),
        "real_accepted": sum(real) / max(1, len(real)),
    }
    return verdicts, summary


def half_of(row: dict) -> int:
    return int(hashlib.sha256(row["id"].encode()).hexdigest(), 16) % 2


def signals(rows: list[dict], verdicts: list) -> np.ndarray:
    """Per labelled answer, what a check may read: its measurements, and how close MiniLM puts what it says once
    (markers and echoes removed) to its task and to the task's reference answer, also as a rank in the task set."""
    from harness.data.builtin import load_builtin_tasks, task_reference, task_set_of
    from harness.evaluation.task_check import context_of, substance, words
    from harness.models.embedder import embed_texts

    contexts = [context_of(as_prompt(r)) for r in rows]
    measured = [substance(c, r["response"]) for c, r in zip(contexts, rows)]
    said = embed_texts([m["remainder"] or " " for m in measured])
    sets: dict[str, tuple[list[str], np.ndarray, np.ndarray]] = {}
    for name in {task_set_of(r["base_task"]) for r in rows}:
        tasks = load_builtin_tasks(name)
        sets[name] = (
            [t.task_id for t in tasks],
            embed_texts([t.text for t in tasks]),
            embed_texts([task_reference(t.task_id) for t in tasks]),
        )
    out = []
    for i, (row, m, v) in enumerate(zip(rows, measured, verdicts)):
        ids, task_vectors, reference_vectors = sets[task_set_of(row["base_task"])]
        own = ids.index(row["base_task"])
        by_task, by_reference = task_vectors @ said[i], reference_vectors @ said[i]
        out.append(
            [
                float(v.done),
                m["novel"],
                m["echoed"],
                m["echo_units"],
                m["meta"],
                len(m["terms"]),
                m["repeated_share"],
                float(m["refusal"]),
                float(m["rewritten"]),
                by_task[own],
                by_reference[own],
                (by_task > by_task[own]).sum(),
                (by_reference > by_reference[own]).sum(),
                len(words(m["remainder"])),
            ]
        )
    return np.asarray(out, dtype=float)


def ceiling(rows: list[dict], verdicts: list) -> list[str]:
    """Agreement of a logistic regression over `signals`, fitted on each half of the labels and scored on the other."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y, half = signals(rows, verdicts), np.array([r["does_task"] for r in rows]), np.array([half_of(r) for r in rows])
    predicted = np.zeros(len(rows), dtype=bool)
    for h in (0, 1):
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)).fit(x[half != h], y[half != h])
        predicted[half == h] = model.predict(x[half == h])
    degenerate = np.array([r["kind"] in DEGENERATE_KINDS for r in rows])
    return [
        f"\nceiling (a rule fitted on one half of the labels, scored on the other): agreement {np.mean(predicted == y):.3f}; "
        f"degenerate rejected {np.mean(~predicted[degenerate]):.3f}; real answers accepted {np.mean(predicted[y]):.3f}"
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--labels", type=Path, default=REPO / "benchmarks" / "data" / "task_check_labels.jsonl")
    parser.add_argument(
        "--adversarial", type=Path, default=REPO / "tests" / "fixtures" / "task_check_adversarial.jsonl"
    )
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "benchmarks" / "task_check.json")
    parser.add_argument("--show-disagreements", type=int, default=0, metavar="N")
    parser.add_argument("--split", action="store_true")
    parser.add_argument("--ceiling", action="store_true")
    args = parser.parse_args()

    check = TaskCheck()
    rows = read_rows(args.labels)
    verdicts, summary = evaluate(rows, check)
    agree = [v.done == r["does_task"] for r, v in zip(rows, verdicts)]
    lines = [
        f"labels: {args.labels.relative_to(REPO) if args.labels.is_relative_to(REPO) else args.labels} ({len(rows)} answers)",
        f"agreement overall {summary['agreement']:.3f} (n {len(rows)}); degenerate rejected {summary['degenerate_rejected']:.3f} "
        f"(n {summary['degenerate_n']}); real answers accepted {summary['real_accepted']:.3f} (n {summary['real_n']})",
    ]
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
    lines.append(
        "\nlabel kind -> check kind: " + "; ".join(f"{a} -> {b}: {n}" for (a, b), n in sorted(confusion.items()))
    )
    if args.split:
        half = [half_of(r) for r in rows]
        for h in (0, 1):
            hits = [a for a, x in zip(agree, half) if x == h]
            lines.append(f"half {h}: agreement {sum(hits) / len(hits):.3f} (n {len(hits)})")
    if args.ceiling:
        lines += ceiling(rows, verdicts)
    result = {
        "labels": summary,
        "per_kind": {k: [len(v), sum(v) / len(v)] for k, v in by_kind.items()},
        "per_type": {k: [len(v), sum(v) / len(v)] for k, v in by_type.items()},
    }
    if args.adversarial.is_file():
        adversarial = read_rows(args.adversarial)
        adv_verdicts, adv = evaluate(adversarial, check)
        result["adversarial"] = adv
        lines.append(
            f"\nadversarial corpus: {args.adversarial.name} ({len(adversarial)} answers that pass their constraint): "
            f"degenerate rejected {adv['degenerate_rejected']:.3f} (n {adv['degenerate_n']}), real accepted "
            f"{adv['real_accepted']:.3f} (n {adv['real_n']})"
        )
        for row, v in zip(adversarial, adv_verdicts):
            if v.done != row["does_task"]:
                lines.append(f"  missed {row['id']} ({row['kind']} -> {v.kind}): {row['response'][:100]!r}")
    if args.show_disagreements:
        wrong = [(r, v) for r, v in zip(rows, verdicts) if v.done != r["does_task"]]
        for r, v in random.Random(0).sample(wrong, min(args.show_disagreements, len(wrong))):
            lines.append(
                f"\n[{r['kind']} -> {v.kind}] {r['prompt'][:90]!r}\n   {r['response'][:200]!r}\n   {(r.get('adjudication') or r['annotator_a']['note'])[:120]} "
                f"| {json.dumps({k: x for k, x in v.details.items() if k != 'terms'})} terms={v.details.get('terms')}"
            )
    print("\n".join(lines))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
