"""The `evaluate_base`, `preference_reference` and `evaluate` stages (engines: harness/evaluation/constraint_accuracy.py,
which runs the registered `ifeval` suite on the run's held-out prompts, and
harness/evaluation/preference.py), and the metrics computed from their outputs.

`evaluate_base` is keyed by the model, the greedy-evaluation settings of the evaluate section,
the built-in set, the engine and the evaluation path (the suite it runs): every strategy and seed
is scored against the very same base outputs. `preference_reference` (the base model's log-probs of the held-out pairs) by the model,
the pair set and max_length. `evaluate` (the tuned model) by the train stage, the base stage,
the same settings, and the held-out pairs with their reference.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.core.cache import StageResult
from harness.core.io import read_json, read_jsonl
from harness.core.run_files import RunFolder
from harness.data.heldout import HeldoutSet
from harness.evaluation import constraint_accuracy
from harness.evaluation import preference as preference_eval
from harness.stages.preference_pool import HeldoutPairs
from harness.stages.shared import builtin_set
from harness.suites import EvalTarget, SuiteContext, get_suite

if TYPE_CHECKING:
    from harness.experiment import ExperimentConfig
    from harness.models.choices import Resolved
    from harness.run_folder import Run

BASE = "evaluate_base"
REFERENCE = "preference_reference"
TUNED = "evaluate"


def inputs(resolved: Resolved) -> dict[str, Any]:
    """The key of `evaluate_base`, and the common part of `evaluate`'s."""
    config = resolved.config
    return {
        "model": resolved.model_key,
        "evaluate": config.evaluate.key(),
        "suite": constraint_accuracy.HELDOUT_SUITE,
        "grader": get_suite(constraint_accuracy.HELDOUT_SUITE).grader,
        **builtin_set(config),
        **resolved.engine,
    }


def suite_context(run: Run) -> SuiteContext:
    """What the run's suites read besides their config: the cache, and the run's held-out prompts."""
    return SuiteContext(run.cache, HeldoutSet.of(run.config.evaluate, run.config.prompts))


def target(run: Run, adapter: Path | None) -> EvalTarget:
    """The base model, or with `adapter` the tuned one, on the run's generation engine."""
    return EvalTarget(
        run.model,
        run.resolved.engine,
        adapter,
        "tuned" if adapter else "base",
        run.resolved.generation.vllm_gpu_memory_utilization,
    )


def reference_inputs(resolved: Resolved, heldout_key: str) -> dict[str, Any]:
    """The key of `preference_reference`: the base model's log-probs of the held-out pairs."""
    return {"model": resolved.model_key, "heldout": heldout_key, "max_length": resolved.train.max_length}


def preference_inputs(config: ExperimentConfig, heldout_key: str, reference: StageResult | None) -> dict[str, Any]:
    return {
        "heldout": heldout_key,
        "reference": reference.hash if reference else None,
        "preference": config.preference.key(),
    }


def run_base(run: Run) -> StageResult:
    return run.stage(
        BASE,
        inputs(run.resolved),
        lambda out: constraint_accuracy.evaluate_target(
            target(run, None), run.config.evaluate, suite_context(run), out
        ),
    )


def run_reference(run: Run, heldout: HeldoutPairs) -> StageResult | None:
    """Shared by every strategy (and, for pairs shared by seeds, by every seed); None without held-out pairs."""
    if not heldout.pairs:
        return None
    return run.stage(
        REFERENCE,
        reference_inputs(run.resolved, heldout.key),
        lambda out: preference_eval.reference_logps(run.model, heldout.pairs, heldout.texts, run.train, out),
    )


def run_tuned(
    run: Run, trained: StageResult, base: StageResult, heldout: HeldoutPairs, reference: StageResult | None
) -> StageResult:
    config = run.config

    def compute(out: Path) -> dict:
        adapter = trained.path / "adapter"
        stats = constraint_accuracy.evaluate_target(target(run, adapter), config.evaluate, suite_context(run), out)
        if reference is not None:
            logps = read_json(reference.path / "reference_logps.json")
            preference_eval.preference_accuracy(
                run.model, adapter, heldout.pairs, heldout.texts, logps, run.train, out, config.evaluate.bootstrap
            )
        return stats

    key = {
        "train": trained.hash,
        "base": base.hash,
        **inputs(run.resolved),
        **preference_inputs(config, heldout.key, reference),
    }
    return run.stage(TUNED, key, compute)


def metrics(config: ExperimentConfig, base: StageResult, tuned: StageResult) -> dict[str, dict]:
    """A cheap, pure function of the cached outputs, so better intervals never need a re-run."""
    out = constraint_accuracy.compute_metrics(
        constraint_accuracy.read_outputs(base.path), constraint_accuracy.read_outputs(tuned.path), config.evaluate
    )
    if (tuned.path / RunFolder.HELDOUT_PREFERENCES).is_file():
        rows = read_jsonl(tuned.path / RunFolder.HELDOUT_PREFERENCES)
        out[preference_eval.SUITE] = preference_eval.preference_metrics(rows, config.evaluate.bootstrap)
    return out
