"""The `suite_<name>_{base,tuned}` stages: each configured suite on the base model (shared by every
strategy) and on the tuned one.

Keyed by the suite's own config, the target (model, adapter content, engine) and the interval
method (a suite computes its metrics inside the stage). Publishes suites/<suite>/{base,tuned}/.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from harness.config import SuiteConfig
from harness.io import read_json, write_json
from harness.stats import METHOD as INTERVALS
from harness.suites import EvalTarget, get_suite


def suite_keys(suites: list[SuiteConfig]) -> list[str]:
    """A suite's name, or name_<index> when the same suite is configured twice."""
    names = [s.name for s in suites]
    return [s.name if names.count(s.name) == 1 else f"{s.name}_{index}" for index, s in enumerate(suites)]


def inputs(suite_cfg: SuiteConfig, target: EvalTarget) -> dict:
    return {"suite": suite_cfg.model_dump(), "target": target.cache_key(), "intervals": INTERVALS}


def run(run, adapter: Path) -> dict[str, dict]:
    """Metrics as `{suite: {"tuned.<metric>": ..., "base.<metric>": ...}}`."""
    config = run.config
    engine = {"backend": config.generation.backend, "dtype": config.generation.dtype}
    metrics: dict[str, dict] = {}
    for key, suite_cfg in zip(suite_keys(config.evaluate.suites), config.evaluate.suites):
        suite = get_suite(suite_cfg.name)
        table: dict[str, dict] = {}
        for label, target in (("tuned", EvalTarget(run.model, adapter, "tuned", **engine)), ("base", EvalTarget(run.model, None, "base", **engine))):

            def compute(out: Path, suite=suite, suite_cfg=suite_cfg, target=target) -> dict:
                write_json(out / "metrics.json", suite.evaluate(suite_cfg, target, out, run.cache))
                return {}

            stage = run.stage(f"suite_{key}_{label}", inputs(suite_cfg, target), compute)
            with run.publish_dir(f"suites/{key}/{label}") as tmp:
                shutil.copytree(stage.path, tmp, dirs_exist_ok=True)
            table.update({f"{label}.{name}": record for name, record in read_json(stage.path / "metrics.json").items()})
        metrics[key] = table
    return metrics
