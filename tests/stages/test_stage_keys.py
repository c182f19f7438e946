"""Each stage's cache key: which settings change it and which do not (one test per stage key), and the
default config's shared keys pinned, so a refactor that re-keys a stage fails here first."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pinned_keys import PINNED

from harness.core.cache import stage_hash
from harness.core.sections import apply_overrides
from harness.data.heldout import HeldoutSet
from harness.experiment import ExperimentConfig
from harness.models.choices import resolve
from harness.models.resolve import engine_key, resolve_dtype
from harness.runner import resolve_run, shared_stage_hashes
from harness.stages import (
    embeddings,
    evaluate,
    features,
    pool,
    preference_pool,
    prompts,
    samples,
    select,
    suite_runs,
    train,
)
from harness.suites import EvalTarget, SuiteContext
from harness.suites.config import SuiteConfig

ENGINE = engine_key("auto", "auto")
"""what this machine generates with: the engine a run would resolve here"""

Key = Callable[[ExperimentConfig], Any]


def config(*overrides: str) -> ExperimentConfig:
    return ExperimentConfig.model_validate(apply_overrides({}, list(overrides)))


OTHER_DTYPE = "float32" if resolve_dtype("auto") == "bfloat16" else "bfloat16"
"""The generation dtype `auto` does not resolve to on this machine: setting it must re-key what generates."""


def check(key: Key, changes: list[str], keeps: list[str]) -> None:
    base = key(config())
    for item in changes:
        assert key(config(item)) != base, f"{item} should re-key the stage"
    for item in keeps:
        assert key(config(item)) == base, f"{item} should not re-key the stage"


@pytest.mark.parametrize("dtype", sorted(PINNED))
def test_pinned_default_keys(dtype: str) -> None:
    """Pinned with the dtype set, so both pins are checked on every machine; `auto` keys as its resolved dtype does."""
    assert shared_stage_hashes(resolve_run(config(f"generation.dtype={dtype}"))) == PINNED[dtype]
    if resolve_dtype("auto") == dtype:
        assert shared_stage_hashes(resolve_run(ExperimentConfig())) == PINNED[dtype]


def test_prompts_key() -> None:
    check(
        prompts.inputs,
        ["prompts.n_train=12", "seed=1", "pool.seed=5", "prompts.tasks=short"],
        ["pool.k=3", "select.budget=7", "train.learning_rate=1e-3", "evaluate.n_prompts=5"],
    )


def test_samples_keys() -> None:
    """What draws the samples keys them; the judge and the pairing do not (another judge labels the same samples)."""
    check(
        lambda c: samples.inputs(resolve(c), samples.NAME, "prompts-hash", c.pool, c.pool_seed),
        [
            "pool.k=3",
            "pool.max_new_tokens=32",
            "pool.temperature=0.5",
            "pool.batch_size=8",
            "seed=1",
            f"generation.dtype={OTHER_DTYPE}",
            "chat_template=README.md",
        ],
        [
            "pool.judge.type=verifiable_task",
            "pool.pairing=best_worst",
            "pool.min_margin=0.5",
            "pool.judge.timeout_s=5",
            "select.budget=7",
            "evaluate.n_prompts=5",
            "train.epochs=2",
            "embeddings.batch_size=8",
        ],
    )
    r = resolve(config())
    assert samples.inputs(r, samples.NAME, "a", r.config.pool, 0) != samples.inputs(
        r, samples.NAME, "b", r.config.pool, 0
    )  # the upstream prompts
    check(
        lambda c: preference_pool.samples_inputs(resolve(c)),
        ["preference.k=4", "preference.prompts=8", "evaluate.prompt_seed=2", "pool.max_new_tokens=32"],
        [
            "seed=1",
            "pool.seed=3",
            "select.budget=7",
            "evaluate.n_prompts=5",
            "evaluate.bootstrap=200",
            "preference.pairs=8",
            "pool.judge.type=verifiable_task",
        ],
    )


def test_pool_key() -> None:
    """The pool judges and pairs its samples: keyed by them, the judge and the pairing; by this machine's engine only
    where `k_max` samples more."""
    check(
        lambda c: pool.inputs(resolve(c), "samples-hash"),
        [
            "pool.judge.type=verifiable_task",
            "pool.judge.type=llm",
            "pool.pairing=best_worst",
            "pool.min_margin=0.5",
            "pool.k_max=16",
        ],
        [
            "pool.judge.timeout_s=5",
            "pool.judge.batch_size=2",
            "select.budget=7",
            "evaluate.n_prompts=5",
            "train.epochs=2",
            "embeddings.batch_size=8",
            f"generation.dtype={OTHER_DTYPE}",
        ],
    )
    assert pool.inputs(resolve(config()), "a") != pool.inputs(resolve(config()), "b")  # the upstream samples
    assert pool.inputs(resolve(config("pool.k_max=16")), "a") != pool.inputs(
        resolve(config("pool.k_max=16", f"generation.dtype={OTHER_DTYPE}")), "a"
    )


def test_views_keys() -> None:
    check(
        lambda c: embeddings.inputs(c, "pool-hash"),
        ["embeddings.batch_size=8"],
        ["seed=1", "select.budget=7", "train.learning_rate=1e-3"],
    )
    check(
        lambda c: features.inputs(resolve(c), "pool-hash"),
        ["features.dim=64", "train.lora_r=4", "pool.seed=3"],
        ["select.budget=7", "evaluate.n_prompts=5"],
    )


def test_select_key() -> None:
    check(
        lambda c: select.inputs(c, "pool-hash", {}, "heldout"),
        ["select.budget=7", "select.strategy=original", "seed=1"],
        ["pool.seed=3", "train.learning_rate=1e-3", "evaluate.n_prompts=5"],
    )
    assert select.inputs(config(), "p", {"gradients": "g"}, "h") != select.inputs(
        config(), "p", {}, "h"
    )  # the views read


def test_train_key() -> None:
    check(
        lambda c: train.inputs(resolve(c), "select-hash"),
        ["train.learning_rate=1e-3", "seed=1"],
        ["select.budget=7", "pool.k=3", "evaluate.n_prompts=5"],
    )


def test_evaluate_keys() -> None:
    check(
        lambda c: evaluate.inputs(resolve(c)),
        [
            "evaluate.n_prompts=5",
            "evaluate.max_new_tokens=64",
            "evaluate.samples=2",
            "prompts.tasks=short",
            f"generation.dtype={OTHER_DTYPE}",
        ],
        [
            "seed=1",
            "select.budget=7",
            "train.learning_rate=1e-3",
            "evaluate.control=true",
            "evaluate.suites=[{name: ifeval}]",
            "preference.pairs=8",
            "preference.k=4",
            "report.n_examples=2",
        ],
    )
    check(
        lambda c: evaluate.preference_inputs(c, "heldout", None),
        ["preference.pairs=8", "preference.k=4"],
        ["evaluate.n_prompts=5", "preference.split=validation", "report.n_examples=2"],
    )
    with_source = config("preference.source=README.md")
    assert evaluate.preference_inputs(with_source, "h", None) != evaluate.preference_inputs(
        config("preference.source=README.md", "preference.split=validation"), "h", None
    )


@pytest.mark.parametrize("field,value", [("limit", 3), ("max_new_tokens", 32), ("bootstrap", 200)])
def test_suite_key(field: str, value: int) -> None:
    target, ctx = EvalTarget("m", ENGINE, None, "base"), SuiteContext(Path("cache"), HeldoutSet())
    base = stage_hash("suite", suite_runs.inputs(SuiteConfig(name="ifeval"), target, ctx))
    assert stage_hash("suite", suite_runs.inputs(SuiteConfig(name="ifeval", **{field: value}), target, ctx)) != base
    assert (
        stage_hash("suite", suite_runs.inputs(SuiteConfig(name="ifeval"), EvalTarget("m", ENGINE, None, "tuned"), ctx))
        == base
    )  # the label is not the model
    # a pathless ifeval asks the run's held-out prompts, so they key it; a suite reading its own file is not keyed by them
    other_run = SuiteContext(Path("cache"), HeldoutSet(tasks="short"))
    assert stage_hash("suite", suite_runs.inputs(SuiteConfig(name="ifeval"), target, other_run)) != base
    ifbench = SuiteConfig(name="ifbench")
    assert suite_runs.inputs(ifbench, target, other_run) == suite_runs.inputs(ifbench, target, ctx)


def test_report_settings_are_no_setting_of_a_cell() -> None:
    """Runs that differ only in what the report shows repeat one setting (one cell of a comparison)."""
    from harness.analysis.grouping import cell_key, setting

    shown = [setting(config(f"report.n_examples={n}").model_dump(mode="json"), "uniform", 16) for n in (2, 6)]
    assert cell_key(shown[0]) == cell_key(shown[1])
    assert cell_key(setting(config("evaluate.n_prompts=5").model_dump(mode="json"), "uniform", 16)) != cell_key(
        shown[0]
    )
