"""The `suite_<name>_{base,tuned}` stages: each configured suite on the base model (shared by every
strategy) and on the tuned one.

Keyed by the suite's own config, the target (model, adapter content, engine) and the interval
method (a suite computes its metrics inside the stage). Publishes suites/<suite>/{base,tuned}/.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from harness.core.io import read_json, write_json
from harness.core.stats import METHOD as INTERVALS
from harness.stages.evaluate import suite_context, target
from harness.suites import EvalTarget, SuiteContext, get_suite
from harness.suites.config import SuiteConfig

if TYPE_CHECKING:
    from harness.run_folder import Run


def suite_keys(suites: list[SuiteConfig]) -> list[str]:
    """A suite's name, or name_<index> when the same suite is configured twice."""
    names = [s.name for s in suites]
    return [s.name if names.count(s.name) == 1 else f"{s.name}_{index}" for index, s in enumerate(suites)]


def inputs(suite_cfg: SuiteConfig, model: EvalTarget, ctx: SuiteContext) -> dict:
    """The suite's config, the target and the interval method; and the run's held-out prompts where the suite asks them."""
    suite = get_suite(suite_cfg.name)
    return {
        "suite": suite_cfg.model_dump(),
        "target": model.cache_key(),
        "intervals": INTERVALS,
        **({"heldout": ctx.heldout.key()} if suite.asks_heldout(suite_cfg) else {}),
        **({"grader": suite.grader} if suite.grader else {}),
    }


def run(run: Run, adapter: Path) -> dict[str, dict]:
    """Metrics as `{suite: {"tuned.<metric>": ..., "base.<metric>": ...}}`."""
    config = run.config
    ctx = suite_context(run)
    metrics: dict[str, dict] = {}
    for key, suite_cfg in zip(suite_keys(config.evaluate.suites), config.evaluate.suites):
        suite = get_suite(suite_cfg.name)
        table: dict[str, dict] = {}
        for label, model in (("tuned", target(run, adapter)), ("base", target(run, None))):

            def compute(out: Path, suite=suite, suite_cfg=suite_cfg, model=model) -> dict:
                write_json(out / "metrics.json", suite.evaluate(suite_cfg, model, out, ctx))
                return {}

            stage = run.stage(f"suite_{key}_{label}", inputs(suite_cfg, model, ctx), compute)
            with run.publish_dir(f"suites/{key}/{label}") as tmp:
                shutil.copytree(stage.path, tmp, dirs_exist_ok=True)
            table.update({f"{label}.{name}": record for name, record in read_json(stage.path / "metrics.json").items()})
        metrics[key] = table
    return metrics
