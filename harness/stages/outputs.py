"""What a finished run folder holds besides the stages' own copies: metrics.json, the held-out
outputs side by side, the held-out preference rows and the selected pairs as a DPO data set; the runner writes the
report from them last (no stage imports reports/)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from harness.core.cache import StageResult
from harness.core.io import read_jsonl, write_json, write_jsonl
from harness.core.records import CandidatePool, Pair, from_row
from harness.core.run_files import RunFolder
from harness.evaluation import constraint_accuracy
from harness.training.dpo import preference_rows

if TYPE_CHECKING:
    from harness.run_folder import Run


def publish(
    run: Run, metrics: dict, base: StageResult, tuned: StageResult, selected: StageResult, candidate_pool: CandidatePool
) -> None:
    write_json(run.out / RunFolder.METRICS, metrics)
    write_eval_outputs(
        run.out, constraint_accuracy.read_outputs(base.path), constraint_accuracy.read_outputs(tuned.path)
    )
    if (tuned.path / RunFolder.HELDOUT_PREFERENCES).is_file():
        run.publish_file(tuned.path / RunFolder.HELDOUT_PREFERENCES, RunFolder.HELDOUT_PREFERENCES)
    write_pairs_preview(run.out, selected.path, candidate_pool)


def write_eval_outputs(out: Path, base: list[dict], tuned: list[dict]) -> None:
    rows = [
        {
            "prompt_id": b["prompt_id"],
            "prompt": b["prompt"],
            "instructions": b["instruction_id_list"] or [],
            "base_task": b["base_task"],
            "base_output": b["output"],
            "base_strict": b["strict"],
            "base_loose": b["loose"],
            "tuned_output": t["output"],
            "tuned_strict": t["strict"],
            "tuned_loose": t["loose"],
            "base_truncated": b.get("truncated"),
            "tuned_truncated": t.get("truncated"),
            **({"base_task_check": b["task"], "tuned_task_check": t["task"]} if "task" in t and "task" in b else {}),
            **(
                {
                    "base_sampled_reward": constraint_accuracy.sampled_reward(b),
                    "tuned_sampled_reward": constraint_accuracy.sampled_reward(t),
                }
                if "sampled_strict" in t
                else {}
            ),
        }
        for b, t in zip(base, tuned)
    ]
    write_jsonl(out / RunFolder.EVAL_OUTPUTS, rows)


def write_pairs_preview(out: Path, select_dir: Path, candidate_pool: CandidatePool) -> None:
    """The selected dataset itself: TRL's conversational preference rows (the full prompt, every
    message, and the responses as assistant messages, exactly what the trainer saw), plus ids,
    scores and margin as extra columns, so `datasets.load_dataset("json", ...)` feeds it straight
    to `DPOTrainer`. Only the report's preview shortens it."""
    pairs = [from_row(Pair, row) for row in read_jsonl(select_dir / "pairs.jsonl")]
    rows = preference_rows(pairs, candidate_pool.prompts, candidate_pool.responses)
    for row, pair in zip(rows, pairs):
        row.update(
            {
                "pair_id": pair.id,
                "prompt_id": pair.prompt_id,
                "chosen_id": pair.chosen_id,
                "rejected_id": pair.rejected_id,
                "chosen_score": candidate_pool.scores.get(pair.chosen_id),
                "rejected_score": candidate_pool.scores.get(pair.rejected_id),
                "margin": pair.margin,
                "instructions": candidate_pool.prompts[pair.prompt_id].meta.get("instruction_id_list") or [],
            }
        )
    write_jsonl(out / RunFolder.SELECTED_PAIRS, rows)
