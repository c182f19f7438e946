"""One cell of an experiment, top to bottom: prompts -> pool -> select -> train -> evaluate -> report.

Each stage names its inputs explicitly (config slice + upstream hashes), runs through the
content-addressed cache, and copies what the run directory contract asks for into the run
folder. The manifest is rewritten after every stage, so a killed run shows how far it got and
the same command resumes from there.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import platform
import shutil
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from harness import __version__
from harness.cache import StageResult, run_stage, stage_hash
from harness.config import BenchError, ExperimentConfig, PoolConfig
from harness.io import atomic_dir, atomic_path, content_hash, read_json, read_jsonl, write_json, write_jsonl
from harness.models import engine_key, model_fingerprint, resolve_dtype, resolve_target_modules, with_chat_template
from harness.records import Pair, from_row, to_row
from harness.stats import METHOD as INTERVALS

KEY_PACKAGES = ("torch", "transformers", "trl", "peft", "lm_eval", "numpy", "scikit-learn", "pydantic")


def default_out_dir(config: ExperimentConfig) -> Path:
    s = config.select
    return Path("runs") / f"{config.name}-{s.strategy}-b{s.budget}-s{config.seed}"


def versions() -> dict[str, str]:
    found = {"python": platform.python_version(), "bpo-bench": __version__}
    for name in KEY_PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def machine() -> dict[str, Any]:
    """What besides config, seed and versions decides the numbers: platform, device, threads, engine.

    Byte-identical results are promised on the same machine; these fields say whether a rerun
    elsewhere can expect the same bytes (CPU vs GPU kernels, thread counts change float sums).
    """
    import torch

    from harness.models import device, trust_remote_code

    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": device(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "trust_remote_code": trust_remote_code(),
    }


@functools.cache  # once per process: a commit made while a long matrix runs is not the code that runs it
def git_sha() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


@functools.cache
def git_dirty() -> bool | None:
    """True when the checkout has uncommitted changes: the sha alone then does not pin the code."""
    try:
        out = subprocess.run(["git", "status", "--porcelain"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5)
        return bool(out.stdout.strip()) if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


class Run:
    """Bookkeeping for one run folder: the stages done so far and the manifest."""

    def __init__(self, config: ExperimentConfig, out_dir: Path):
        self.config = config
        self.out = Path(out_dir)
        self.cache = Path(config.cache_dir)
        self.stages: dict[str, dict[str, Any]] = {}
        self.started = time.time()
        self.opened = False
        self.machine = machine()
        self.git_sha, self.git_dirty = git_sha(), git_dirty()
        # what the stages load: the model with its configured chat template, and the LoRA targets
        # of `target_modules: auto` found on this architecture (the keys record the resolved list)
        self.model = with_chat_template(config.model, config.chat_template)
        self.train = config.train.model_copy(
            update={"target_modules": resolve_target_modules(self.model, config.train.target_modules), "precision": resolve_dtype(config.train.precision)}
        )

    def open(self) -> None:
        """Create the run folder once the inputs are known to be usable.

        Before this, only complete cache entries exist, so a refused budget or a bad source
        leaves no run folder behind, and a killed run resumes from the cache.
        """
        self.out.mkdir(parents=True, exist_ok=True)
        self.opened = True
        self.write_manifest("running")

    def stage(self, name: str, inputs: dict[str, Any], compute) -> StageResult:
        result = run_stage(self.cache, name, inputs, compute)
        self.stages[name] = {
            "hash": result.hash,
            "status": result.status,
            "seconds": round(result.seconds, 3),
            "compute_seconds": round(result.compute_seconds, 3),
            "path": str(result.path),
        }
        if self.opened:
            self.write_manifest("running")
        return result

    def write_manifest(self, status: str, error: str | None = None, error_log: str | None = None) -> None:
        write_json(
            self.out / "manifest.json",
            {
                "status": status,
                "config": self.config.model_dump(mode="json"),
                "seed": self.config.seed,
                "pool_seed": self.config.pool_seed,
                "versions": versions(),
                "git_sha": self.git_sha,
                "git_dirty": self.git_dirty,
                "argv": sys.argv,
                "machine": self.machine,
                "generation": generation_engine(self.config),
                "resolved": {"model": self.model, "target_modules": self.train.target_modules, "train_precision": self.train.precision},
                "started": self.started,
                "stages": self.stages,
                **({"error": error} if error else {}),
                **({"error_log": error_log} if error_log else {}),
            },
        )


def run_experiment(config: ExperimentConfig, out_dir: Path) -> dict[str, Any]:
    """Run every stage (reusing cached ones) and return the final manifest."""
    from harness.preflight import check_experiment

    check_experiment(config)
    run = Run(config, out_dir)
    try:
        return _run_stages(run)
    except BaseException as exc:
        unexpected = not isinstance(exc, (BenchError, KeyboardInterrupt))
        if unexpected and not run.opened:  # a refused input leaves no run folder; a crash leaves its record
            run.open()
        if run.opened:
            log = write_error_log(run.out / "error.log", exc) if unexpected else None  # a user error needs no traceback
            run.write_manifest("failed", error=f"{type(exc).__name__}: {exc}", error_log=log)
        raise


def write_error_log(path: Path, exc: BaseException) -> str:
    """The full traceback of an unexpected failure, next to what it broke; its path is recorded on the
    exception (`log_path`) so the CLI can say where it is."""
    import traceback

    from harness.io import write_text

    write_text(path, "".join(traceback.format_exception(exc)))
    try:
        exc.log_path = str(path)  # type: ignore[attr-defined]
    except AttributeError:
        pass
    return str(path)


def generation_engine(config: ExperimentConfig) -> dict[str, str]:
    return engine_key(config.generation.backend, config.generation.dtype)


def model_key(config: ExperimentConfig) -> str:
    """The policy model in every cache key: its weights' fingerprint, and the configured chat template's
    text when there is one (it changes every prompt the model sees)."""
    key = model_fingerprint(config.model)
    if config.chat_template:
        key += "+chat_template:" + content_hash(Path(config.chat_template).expanduser().read_text(encoding="utf-8"), 16)
    return key


def prompts_inputs(config: ExperimentConfig) -> dict[str, Any]:
    return {"prompts": config.prompts.key(), "seed": config.pool_seed}


def pool_inputs(config: ExperimentConfig, prompts_hash: str) -> dict[str, Any]:
    return {
        "prompts": prompts_hash,
        "model": model_key(config),
        "pool": pool_key(config.pool),
        **generation_engine(config),
        "seed": config.pool_seed,
    }


def pool_key(cfg: PoolConfig) -> dict[str, Any]:
    """The pool settings that change its contents: not the judge's transport settings, and `k_max`
    only when set, so that pools made before it existed stay cached. `seed` enters the pool's
    inputs resolved (`ExperimentConfig.pool_seed`), not here."""
    exclude: dict[str, Any] = {"judge": {"concurrency", "timeout_s", "max_retries", "api_key_env", "batch_size"}, "seed": True}
    if cfg.k_max is None:
        exclude["k_max"] = True
    return cfg.model_dump(exclude=exclude)


def evaluate_inputs(config: ExperimentConfig) -> dict[str, Any]:
    return {
        "model": model_key(config),
        "evaluate": config.evaluate.model_dump(exclude=NOT_IN_EVALUATE_KEY),
        **_builtin_set(config),
        **generation_engine(config),
    }


def _builtin_set(config: ExperimentConfig) -> dict[str, Any]:
    """The held-out prompts come from the training prompts' task set and constraint types."""
    chosen = config.prompts.builtin_set()
    return {"builtin_set": chosen} if chosen else {}


# evaluate settings that do not change the greedy evaluation: held-out preference pairs (their own
# stage and the tuned evaluation's key), further suites (their own stages), the control (its own run)
NOT_IN_EVALUATE_KEY = {"control", "suites", "preference_holdout", "preference_pairs", "preference_k", "preference_prompts", "preference_source", "preference_split"}


def preference_pool_config(config: ExperimentConfig) -> PoolConfig:
    """The pool's own sampling, judge and pairing at `preference_k` samples: held-out pairs are made like training pairs."""
    return config.pool.model_copy(update={"k": config.evaluate.preference_k})


def preference_pool_inputs(config: ExperimentConfig) -> dict[str, Any]:
    """Keyed by the evaluation prompts and prompt_seed, never the run seed: one pool serves a whole matrix."""
    ecfg = config.evaluate
    prompts = {"n": ecfg.preference_prompts, "seed": ecfg.prompt_seed, "constraints_per_prompt": ecfg.constraints_per_prompt, **config.prompts.builtin_set()}
    return {
        "prompts": prompts,
        "model": model_key(config),
        "pool": pool_key(preference_pool_config(config)),
        **generation_engine(config),
        "seed": ecfg.prompt_seed,
    }


def _preference_pool(config: ExperimentConfig, model: str, out: Path, cache: Path) -> dict:
    from harness import evaluate, pool

    ecfg = config.evaluate
    prompts = evaluate.eval_prompts(ecfg, ecfg.preference_prompts, config.prompts)
    return pool.build_pool(
        model, prompts, [], preference_pool_config(config), ecfg.prompt_seed, out, generation=config.generation, cache_dir=cache
    )


def shared_stage_hashes(config: ExperimentConfig) -> dict[str, str]:
    """Hashes of the stages a config shares with others (known before running), for matrix planning."""
    prompts = stage_hash("prompts", prompts_inputs(config))
    return {
        "prompts": prompts,
        "pool": stage_hash("pool", pool_inputs(config, prompts)),
        "evaluate_base": stage_hash("evaluate_base", evaluate_inputs(config)),
        **({"preference_pool": stage_hash("preference_pool", preference_pool_inputs(config))} if config.evaluate.preference_k else {}),
    }


def _run_stages(run: Run) -> dict[str, Any]:
    from harness import evaluate, pool, preference_eval, prompts_stage, selection, trainer
    from reports.run_report import write_report

    config = run.config
    seed, model = config.seed, model_key(config)

    # prompts: normalised training prompts (+ native pairs)
    def _prompts(out: Path) -> dict:
        prompts, native, dropped = prompts_stage.load_training_prompts(config.prompts, config.pool_seed)
        return prompts_stage.write_prompts(out, prompts, native, dropped)

    s_prompts = run.stage("prompts", prompts_inputs(config), _prompts)
    prompts, native = prompts_stage.read_prompts(s_prompts.path)
    _check_pool_can_cover(config, prompts, len(native))

    # pool: K samples per prompt, judged, paired
    def _pool(out: Path) -> dict:
        return pool.build_pool(run.model, prompts, native, config.pool, config.pool_seed, out, generation=config.generation, cache_dir=run.cache)

    s_pool = run.stage("pool", pool_inputs(config, s_prompts.hash), _pool)
    candidate_pool = pool.read_pool(s_pool.path, prompts)

    # held-out pairs for preference accuracy: a data set's own pairs or base-model samples on
    # evaluation prompts (both shared by every seed), or else reserved from this pool before any
    # strategy sees it
    ecfg = config.evaluate
    if ecfg.preference_source:
        heldout_pool, heldout = preference_eval.heldout_from_source(ecfg, {p.id for p in prompts})
        selectable = candidate_pool
    elif ecfg.preference_k > 0:
        s_heldout_pool = run.stage("preference_pool", preference_pool_inputs(config), lambda out: _preference_pool(config, run.model, out, run.cache))
        heldout_pool = pool.read_pool(s_heldout_pool.path, evaluate.eval_prompts(ecfg, ecfg.preference_prompts, config.prompts))
        selectable, heldout = candidate_pool, preference_eval.cap_pairs(list(heldout_pool.pairs), ecfg.preference_pairs, ecfg.prompt_seed)
    else:
        selectable, heldout = preference_eval.reserve_heldout(candidate_pool, ecfg.preference_holdout, ecfg.preference_pairs, ecfg.prompt_seed)
        heldout_pool = None
    heldout_key = content_hash(sorted(p.id for p in heldout))

    # select: the strategy under test, same budget for all
    selection.check_budget(selectable, config.select)
    run.open()
    full_pool, views = _attach_views(run, candidate_pool, s_pool.hash, model)  # views cover the whole pool, so they are shared
    candidate_pool = dataclasses.replace(full_pool, pairs=selectable.pairs)

    def _select(out: Path) -> dict:
        chosen = selection.run_strategy(candidate_pool, config.select, seed)
        # timings go to the stage summary, not selection.json: a selection must be byte-identical across reruns
        seconds = {**views["seconds"], "clustering": chosen.diagnostics.pop("seconds_clustering", None)}
        write_json(out / "selection.json", to_row(chosen))
        pairs = selection.training_pairs(chosen, candidate_pool)
        write_jsonl(out / "pairs.jsonl", (to_row(p) for p in pairs))
        write_jsonl(out / "train.jsonl", trainer.preference_rows(pairs, candidate_pool.prompts, candidate_pool.responses))
        return {"breadth": chosen.diagnostics["breadth"], "seconds_by_part": seconds}

    select_inputs = {"pool": s_pool.hash, "views": views["hashes"], "select": config.select.model_dump(), "seed": seed, "heldout": heldout_key}
    s_select = run.stage("select", select_inputs, _select)
    with atomic_path(run.out / "selection.json") as tmp:
        shutil.copyfile(s_select.path / "selection.json", tmp)

    # train: the shared DPO + LoRA trainer
    def _train(out: Path) -> dict:
        return trainer.train_dpo(run.model, read_jsonl(s_select.path / "train.jsonl"), run.train, seed, out)

    s_train = run.stage("train", {"select": s_select.hash, "model": model, "train": run.train.model_dump(), "seed": seed}, _train)
    with atomic_dir(run.out / "train") as tmp:
        shutil.copytree(s_train.path / "adapter", tmp / "adapter")
        shutil.copyfile(s_train.path / "log.jsonl", tmp / "log.jsonl")
        shutil.copyfile(s_train.path / "stage.json", tmp / "summary.json")

    # evaluate: base outputs (shared by every strategy), tuned outputs, paired metrics
    eval_inputs = evaluate_inputs(config)
    s_base = run.stage(
        "evaluate_base", eval_inputs, lambda out: evaluate.generate_and_judge(run.model, None, config.evaluate, out, config.generation, config.prompts)
    )

    # the base model's log-probs of the held-out pairs: shared by every strategy (and, for pairs
    # shared by seeds, by every seed)
    heldout_texts = heldout_pool or full_pool
    s_reference = None
    if heldout:
        s_reference = run.stage(
            "preference_reference",
            {"model": model, "heldout": heldout_key, "max_length": run.train.max_length},
            lambda out: preference_eval.reference_logps(run.model, heldout, heldout_texts, run.train, out),
        )

    def _evaluate(out: Path) -> dict:
        adapter = s_train.path / "adapter"
        stats = evaluate.generate_and_judge(run.model, adapter, config.evaluate, out, config.generation, config.prompts)
        if s_reference is not None:
            reference = read_json(s_reference.path / "reference_logps.json")
            preference_eval.preference_accuracy(run.model, adapter, heldout, heldout_texts, reference, run.train, out, config.evaluate.bootstrap)
        return stats

    preference = [ecfg.preference_holdout, ecfg.preference_pairs, ecfg.preference_k, ecfg.preference_prompts]
    preference_inputs = {
        "heldout": heldout_key,
        "reference": s_reference.hash if s_reference else None,
        "preference": preference + ([ecfg.preference_source, ecfg.preference_split] if ecfg.preference_source else []),
    }
    s_eval = run.stage("evaluate", {"train": s_train.hash, "base": s_base.hash, **eval_inputs, **preference_inputs}, _evaluate)
    # metrics: a cheap, pure function of the cached outputs, so better intervals never need a re-run
    metrics = evaluate.compute_metrics(evaluate.read_outputs(s_base.path), evaluate.read_outputs(s_eval.path), config.evaluate)
    if (s_eval.path / "heldout_preferences.jsonl").is_file():
        metrics[preference_eval.SUITE] = preference_eval.preference_metrics(
            read_jsonl(s_eval.path / "heldout_preferences.jsonl"), config.evaluate.bootstrap
        )
    metrics.update(_run_suites(run, s_train.path / "adapter"))
    write_json(run.out / "metrics.json", metrics)
    _write_eval_outputs(run.out, evaluate.read_outputs(s_base.path), evaluate.read_outputs(s_eval.path))
    if (s_eval.path / "heldout_preferences.jsonl").is_file():
        with atomic_path(run.out / "heldout_preferences.jsonl") as tmp:
            shutil.copyfile(s_eval.path / "heldout_preferences.jsonl", tmp)
    _write_pairs_preview(run.out, s_select.path, candidate_pool)

    # report: a pure function of the files written above (the manifest says "done" first)
    run.write_manifest("done")
    start = time.perf_counter()
    print("[bench] report: writing", file=sys.stderr, flush=True)
    write_report(run.out)
    run.stages["report"] = {"hash": None, "status": "computed", "seconds": round(time.perf_counter() - start, 3)}
    run.write_manifest("done")
    return read_json(run.out / "manifest.json")


def _run_suites(run: Run, adapter: Path) -> dict[str, dict]:
    """Each configured suite on the base model (a stage shared by every strategy) and the tuned one.

    Metrics come back as `{suite: {"tuned.<metric>": ..., "base.<metric>": ...}}`; the suites'
    exports are copied to `suites/<suite>/{base,tuned}/` in the run folder.
    """
    from harness.suites import EvalTarget, get_suite

    config = run.config
    metrics: dict[str, dict] = {}
    for index, suite_cfg in enumerate(config.evaluate.suites):
        suite = get_suite(suite_cfg.name)
        key = f"{suite_cfg.name}" if [s.name for s in config.evaluate.suites].count(suite_cfg.name) == 1 else f"{suite_cfg.name}_{index}"
        table: dict[str, dict] = {}
        engine = {"backend": config.generation.backend, "dtype": config.generation.dtype}
        for label, target in (("tuned", EvalTarget(run.model, adapter, "tuned", **engine)), ("base", EvalTarget(run.model, None, "base", **engine))):
            # the suite computes its own metrics inside the stage: their interval method is an input
            inputs = {"suite": suite_cfg.model_dump(), "target": target.cache_key(), "intervals": INTERVALS}

            def compute(out: Path, suite=suite, suite_cfg=suite_cfg, target=target) -> dict:
                write_json(out / "metrics.json", suite.evaluate(suite_cfg, target, out, run.cache))
                return {}

            stage = run.stage(f"suite_{key}_{label}", inputs, compute)
            with atomic_dir(run.out / "suites" / key / label) as tmp:
                shutil.copytree(stage.path, tmp, dirs_exist_ok=True)
            for name, record in read_json(stage.path / "metrics.json").items():
                table[f"{label}.{name}"] = record
        metrics[key] = table
    return metrics


def _attach_views(run: Run, candidate_pool, pool_hash: str, model: str):
    """Compute the pool views the strategy declares in `requires` (embeddings, gradients).

    The runner reads the declaration only; it never branches on a strategy's name.
    """
    import dataclasses

    from harness import embeddings
    from strategies import get_strategy

    config = run.config
    strategy = get_strategy(config.select.strategy)
    needs = strategy.needs(strategy.Params.model_validate(config.select.params))
    views: dict[str, Any] = {"hashes": {}, "seconds": {}}
    extra: dict[str, Any] = {}
    if "embeddings" in needs:
        s_emb = run.stage(
            "embeddings",
            {"pool": pool_hash, "embeddings": config.embeddings.model_dump()},
            lambda out: embeddings.compute_pool_embeddings(candidate_pool, config.embeddings.model, config.embeddings.batch_size, out),
        )
        extra["prompt_embeddings"], extra["response_embeddings"] = embeddings.load_pool_embeddings(s_emb.path)
        views["hashes"]["embeddings"] = s_emb.hash
        views["seconds"]["embeddings"] = read_json(s_emb.path / "stage.json").get("seconds_embeddings")
    if "gradients" in needs:
        from harness import features
        from strategies.base import Features

        def _features(out: Path) -> dict:
            return features.compute_gradient_features(
                run.model, candidate_pool.prompts, candidate_pool.responses, list(candidate_pool.pairs),
                run.train, config.features, config.pool_seed, out,
            )

        s_feat = run.stage(
            "features",
            {"pool": pool_hash, "model": model, "train": run.train.model_dump(), "features": config.features.model_dump(), "seed": config.pool_seed},
            _features,
        )
        grads = features.load_gradient_features(s_feat.path)
        extra["pair_gradients"] = Features(dict(zip(grads.pair_ids, grads.pair_features)))
        extra["prompt_gradients"] = Features(dict(zip(grads.prompt_ids, grads.prompt_features)))
        views["hashes"]["gradients"] = s_feat.hash
        stats = read_json(s_feat.path / "stage.json")
        views["seconds"].update({k.removeprefix("seconds_"): v for k, v in stats.items() if k.startswith("seconds_")})
    unknown = set(needs) - {"embeddings", "gradients"}
    if unknown:
        raise ValueError(f"strategy {config.select.strategy} requires unknown pool views {sorted(unknown)}")
    return dataclasses.replace(candidate_pool, **extra), views


def _check_pool_can_cover(config: ExperimentConfig, prompts: list, n_native: int) -> None:
    """Refuse, before any sampling, prompts the judge cannot score and budgets no pool could supply."""
    n_prompts = len(prompts)
    from harness.judges import get_judge

    judge = get_judge(config.pool.judge)
    reasons = [r for r in (judge.unsupported_reason(p) for p in prompts) if r]
    if reasons:
        raise BenchError(f"pool.judge = {config.pool.judge}: {len(reasons)} of {len(prompts)} prompts cannot be judged; first: {reasons[0]}")
    k = config.pool.k
    per_prompt = {"all": k * (k - 1) // 2, "best_vs_rest": k - 1, "best_worst": 1}[config.pool.pairing]
    ceiling = n_prompts * per_prompt + n_native
    if config.select.budget > ceiling:
        raise BenchError(
            f"select.budget = {config.select.budget} pairs cannot be met: {n_prompts} prompts x at most {per_prompt} "
            f"pairs each (pool.k = {k}, pool.pairing = {config.pool.pairing}) gives at most {ceiling}. "
            "Lower --budget or raise prompts.n_train / pool.k."
        )


def _write_eval_outputs(out: Path, base: list[dict], tuned: list[dict]) -> None:
    from harness.evaluate import sampled_reward

    rows = [
        {
            "prompt_id": b["prompt"]["id"],
            "prompt": b["prompt"]["messages"][-1]["content"],
            "instructions": b["prompt"]["meta"].get("instruction_id_list", []),
            "base_output": b["output"],
            "base_strict": b["strict"],
            "base_loose": b["loose"],
            "tuned_output": t["output"],
            "tuned_strict": t["strict"],
            "tuned_loose": t["loose"],
            **({"base_sampled_reward": sampled_reward(b), "tuned_sampled_reward": sampled_reward(t)} if "sampled_strict" in t else {}),
        }
        for b, t in zip(base, tuned)
    ]
    write_jsonl(out / "eval_outputs.jsonl", rows)


def _write_pairs_preview(out: Path, select_dir: Path, candidate_pool) -> None:
    """The selected dataset itself: TRL's conversational preference rows (the full prompt, every
    message, and the responses as assistant messages, exactly what the trainer saw), plus ids,
    scores and margin as extra columns, so `datasets.load_dataset("json", ...)` feeds it straight
    to `DPOTrainer`. Only the report's preview shortens it."""
    from harness.trainer import preference_rows

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
            }
        )
    write_jsonl(out / "selected_pairs.jsonl", rows)
