"""One cell of an experiment, top to bottom: the stages in order (harness/stages/, one module each).

Each stage derives its own cache key (its config section plus upstream hashes), runs through the
content-addressed cache and publishes what the run folder contract asks for; the run folder
(harness/run_folder.py) rewrites the manifest after every stage, so a killed run shows how far it
got and the same command resumes from there.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

from harness.core.bundle import import_bundle, sampled_by, why_not
from harness.core.cache import stage_hash
from harness.core.console import run_log
from harness.core.errors import BenchError
from harness.core.io import content_hash
from harness.core.records import CandidatePool
from harness.core.run_files import RunFolder
from harness.experiment import ExperimentConfig
from harness.models.choices import Resolved, resolve
from harness.models.resolve import ENGINE_FIELDS
from harness.preflight import check_experiment
from harness.run_folder import Run
from harness.stages import evaluate, outputs, pool, preference_pool, prompts, samples, select, suite_runs, train, views
from reports.run_report import write_report


def run_experiment(config: ExperimentConfig, out_dir: Path) -> dict[str, Any]:
    """Run every stage (reusing cached ones) and return the final manifest."""

    check_experiment(config)
    resolved = resolve_run(config)
    if config.bundle:
        import_bundle(Path(config.bundle), Path(config.cache_dir))
    run = Run(config, out_dir, resolved)
    with run_log(run.out):  # third-party warnings and log records: <run>/run.log, off the console
        try:
            return _pipeline(run)
        except BaseException as exc:
            run.fail(exc)
            raise


def _pipeline(run: Run) -> dict[str, Any]:
    s_prompts, training_prompts, native = prompts.run(run)
    s_pool, candidate_pool = pool.run(run, s_prompts, training_prompts, native)
    # held-out pairs: reserved from this pool before any strategy sees it, or shared by every seed
    heldout = preference_pool.heldout(run, candidate_pool)
    run.selector.check_budget(heldout.selectable)
    run.open()  # the inputs are usable: from here on a failure leaves its record in the run folder

    # the views a strategy declares cover what it may select (shared by every strategy and seed on this pool)
    candidate_pool, view_info = views.attach(run, heldout.selectable, selectable_key(s_pool.hash, heldout.selectable))
    s_select = select.run(run, candidate_pool, s_pool.hash, view_info, heldout.key)
    s_train = train.run(run, s_select)

    s_base = evaluate.run_base(run)
    s_reference = evaluate.run_reference(run, heldout)
    s_eval = evaluate.run_tuned(run, s_train, s_base, heldout, s_reference)
    metrics = {**evaluate.metrics(run.config, s_base, s_eval), **suite_runs.run(run, s_train.path / "adapter")}
    run.record_cost(selection=[*view_info["stages"].values(), s_select.name], training=s_train.name)

    outputs.publish(run, metrics, s_base, s_eval, s_select, candidate_pool)
    _report(run)
    return RunFolder(run.out).manifest()


def _report(run: Run) -> None:
    """The report reads the finished run folder, so the manifest says "done" first; its seconds are then recorded."""
    run.write_manifest("done")
    start = time.perf_counter()
    print("[bench] report: writing", file=sys.stderr, flush=True)
    write_report(run.out)
    run.stages["report"] = {"hash": None, "status": "computed", "seconds": round(time.perf_counter() - start, 3)}
    run.write_manifest("done")


def selectable_key(pool_hash: str, selectable: CandidatePool) -> str:
    """The pool and which of its pairs strategies may select: what the pool views are computed over."""
    return content_hash([pool_hash, sorted(p.id for p in selectable.pairs)], 16)


def resolve_run(config: ExperimentConfig) -> Resolved:
    """The config resolved on this machine, with the samples a configured bundle supplies keyed by the engine that
    drew them: samples are data, so those drawn in bf16 serve a machine that resolves fp32 (and the other way
    round), while every later stage (the pool's labels included, where its judge or pairing differs) is computed
    and keyed here. A bundle whose samples differ in anything else (prompts, sampling settings, model, seed,
    bpo-bench version) is refused, naming what differs."""
    resolved = resolve(config)
    if not config.bundle:
        return resolved

    bundle = Path(config.bundle)
    local = _sampling_inputs(config, resolved)
    found = {name: sampled_by(bundle, name, inputs, ENGINE_FIELDS) for name, inputs in local.items()}
    if found[samples.NAME] is None:
        raise BenchError(
            why_not(
                bundle, samples.NAME, local[samples.NAME], ENGINE_FIELDS, upstream={"prompts": prompts.inputs(config)}
            )
        )
    return dataclasses.replace(resolved, bundled={name: engine for name, engine in found.items() if engine is not None})


def _sampling_inputs(config: ExperimentConfig, resolved: Resolved) -> dict[str, dict[str, Any]]:
    """The keys of the stages that sample: the training pool's samples, and the held-out pool's where configured."""
    local = {
        samples.NAME: samples.inputs(
            resolved, samples.NAME, stage_hash(prompts.NAME, prompts.inputs(config)), config.pool, config.pool_seed
        )
    }
    if config.preference.k:
        local[samples.PREFERENCE] = preference_pool.samples_inputs(resolved)
    return local


def shared_stage_hashes(resolved: Resolved) -> dict[str, str]:
    """Hashes of the stages a config (resolved on this machine: `resolve_run`) shares with others, known before
    running, for matrix planning."""
    config = resolved.config
    hashes = {"prompts": stage_hash(prompts.NAME, prompts.inputs(config))}
    for name, inputs in _sampling_inputs(config, resolved).items():
        hashes[name] = stage_hash(name, inputs)
    hashes[pool.NAME] = stage_hash(pool.NAME, pool.inputs(resolved, hashes[samples.NAME]))
    hashes[evaluate.BASE] = stage_hash(evaluate.BASE, evaluate.inputs(resolved))
    if config.preference.k:
        cfg = preference_pool.preference_pool_config(config)
        hashes[preference_pool.NAME] = stage_hash(
            preference_pool.NAME, pool.inputs(resolved, hashes[samples.PREFERENCE], cfg)
        )
    return hashes
