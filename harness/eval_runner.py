"""`bench eval`: one model, one suite, an output folder in the run-directory format.

The folder appears whole or not at all (built in a temp folder, then renamed), holding
`metrics.json` ({suite: {metric: record}}), `manifest.json` (suite config, model, judge,
versions, seconds; never an API key) and the suite's exports. Generations and judgments are
cached under `cache_dir`, so a rerun makes no new model or judge call.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

from harness.core.io import atomic_dir, write_json
from harness.core.run_files import RunFolder
from harness.data.heldout import HeldoutSet
from harness.models.checks import check_chat_template, check_model
from harness.models.resolve import engine_key, with_chat_template
from harness.preflight import check_suite
from harness.provenance import versions
from harness.suites import EvalTarget, SuiteContext, get_suite
from harness.suites._common import resolve_target
from harness.suites.config import SuiteConfig


def eval_target(spec: str, chat_template: str | None = None, backend: str = "auto", dtype: str = "auto") -> EvalTarget:
    """What `bench eval --model SPEC` evaluates, resolved once for this run as `Run` resolves an experiment: the model
    (a run folder's, an adapter's base, or SPEC) with `chat_template` applied, and the engine this machine generates
    with for `backend` and `dtype`."""

    target = resolve_target(spec, engine_key(backend, dtype))
    return dataclasses.replace(target, model=with_chat_template(target.model, chat_template))


def run_suite(
    cfg: SuiteConfig, target: EvalTarget, out: Path, cache_dir: Path, heldout: HeldoutSet | None = None
) -> dict[str, dict[str, Any]]:
    """Run a suite into `out` (replaced atomically); returns its metrics. `heldout`: the held-out prompts
    a pathless `ifeval` asks (a run folder's own; default the built-in defaults)."""

    check_suite(cfg, cfg.name)
    check_model(target.model, "--model")
    check_chat_template(target.model, "--model")
    suite = get_suite(cfg.name)
    start = time.perf_counter()
    with atomic_dir(out) as tmp:
        metrics = suite.evaluate(cfg, target, tmp, SuiteContext(Path(cache_dir), heldout or HeldoutSet()))
        seconds = time.perf_counter() - start
        write_json(tmp / RunFolder.METRICS, {cfg.name: metrics})
        write_json(
            tmp / RunFolder.MANIFEST,
            {
                "status": "complete",
                "kind": "eval",
                "suite": cfg.model_dump(),
                "model": target.model,
                "adapter": str(target.adapter) if target.adapter else None,
                "label": target.label,
                "seconds": round(seconds, 2),
                "versions": versions(),
            },
        )
    return metrics
