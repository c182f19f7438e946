"""The `lm_eval` suite: any lm-evaluation-harness task, scored by lm-eval itself.

Why delegate rather than re-implement: lm-eval's prompts, few-shot sampling and metrics are what
published numbers use, so the only way to be comparable is to run its code unchanged. What this
module adds is what lm-eval lacks for our purposes:

- a stage cache keyed by the model, the adapter, the suite config, the lm-eval version and the
  content of `include_path`, so evaluating the same model twice costs nothing;
- relative data paths in your own task YAMLs: lm-eval hands `dataset_kwargs` (`data_files`,
  `data_dir`) and a local `dataset_path` to `datasets`, which resolves them against the working
  directory, so a task folder would only work from one place. Tasks are therefore built with
  `include_path` as the working directory: relative paths in your YAMLs are relative to it;
- metric records with a 95% CI (lm-eval's stderr × 1.96) in the form every suite reports;
- user-fixable errors (unknown task, unreachable dataset) as BenchError, not tracebacks.

Indexing lm-eval's ~15k built-in task YAMLs takes ~10 s, so the TaskManager is built once per
process and task folder. Data outside `include_path` (hub datasets, absolute paths) is not part
of the cache key: clear the cache if it changes under the same name.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import shutil
from pathlib import Path
from typing import Any

from harness.core.cache import run_stage
from harness.core.errors import BenchError, require
from harness.core.io import atomic_path, content_hash, read_json, safe_filename, write_json, write_jsonl
from harness.core.stats import metric
from harness.models.resolve import device, resolve_model
from harness.suites.base import EvalTarget, Suite, SuiteContext, register
from harness.suites.config import SuiteConfig

STAGE = "suite_lm_eval"
JUDGE = "lm-eval task metric"
RESULTS_FILE = "lm_eval_results.json"
Z_95 = 1.959963984540054
# lm-eval's own defaults, pinned so numbers match a plain `lm_eval --tasks ...` run
SEEDS = {"random_seed": 0, "numpy_random_seed": 1234, "torch_random_seed": 1234, "fewshot_random_seed": 1234}


def evaluate_lm_eval(cfg: SuiteConfig, target: EvalTarget, out: Path, ctx: SuiteContext) -> dict[str, dict[str, Any]]:
    """Run `cfg.tasks` on the target; export lm-eval's results and samples into `out`."""
    cache_dir = ctx.cache_dir
    import lm_eval

    include = _include_dir(cfg.include_path)
    include_key = _folder_fingerprint(include) if include is not None else None
    inputs = {
        "target": target.cache_key(),
        "suite": cfg.model_dump(),
        "include": include_key,
        "lm_eval": lm_eval.__version__,
    }

    def compute(tmp: Path) -> dict[str, Any]:
        results = _simple_evaluate(cfg, target, include, include_key)
        samples = results.pop("samples", {})
        write_json(tmp / RESULTS_FILE, results)
        for task, rows in samples.items():
            write_jsonl(tmp / _samples_file(task), rows)
        write_json(tmp / "metrics.json", _metrics(results))
        return {"tasks": sorted(samples)}

    stage = run_stage(cache_dir, STAGE, inputs, compute)
    for task in read_json(stage.path / "stage.json")["tasks"]:
        _copy(stage.path / _samples_file(task), Path(out))
    _copy(stage.path / RESULTS_FILE, Path(out))
    return read_json(stage.path / "metrics.json")


def _include_dir(path: str | None) -> Path | None:
    if path is None:
        return None
    folder = Path(path).expanduser().resolve()
    if not folder.is_dir():
        raise BenchError(
            f"lm_eval include_path {path!r} is not a folder: set it to the folder holding your task YAMLs "
            "(relative data paths inside them are read relative to that folder)."
        )
    return folder


def _folder_fingerprint(folder: Path) -> str:
    """Content hash of every file under the task folder (YAMLs, data, utils.py)."""
    digests = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        with open(path, "rb") as handle:
            digests.append((path.relative_to(folder).as_posix(), hashlib.file_digest(handle, "sha256").hexdigest()))
    return content_hash(digests)


@functools.lru_cache(maxsize=2)
def _task_manager(include: Path | None, include_key: str | None) -> Any:
    """One index per task folder and content (`include_key` is only part of the memo key)."""
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=str(include) if include is not None else None)


def _simple_evaluate(
    cfg: SuiteConfig, target: EvalTarget, include: Path | None, include_key: str | None
) -> dict[str, Any]:
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM

    manager = _task_manager(include, include_key)
    tasks = _load_tasks(manager, cfg.tasks, include)
    try:
        lm = HFLM(
            pretrained=str(resolve_model(target.model)),
            peft=str(target.adapter) if target.adapter is not None else None,
            device=device(),
            batch_size=cfg.batch_size,
            dtype="float32",
        )
    except OSError as exc:
        adapter = f" with adapter {target.adapter}" if target.adapter is not None else ""
        raise BenchError(
            f"lm-eval could not load model {target.model!r}{adapter}: {exc}. Use a local folder, the embedded "
            "default, or a hub id already in the local Hugging Face cache."
        ) from None
    return simple_evaluate(
        model=lm,
        tasks=tasks,
        num_fewshot=cfg.num_fewshot,
        limit=cfg.limit,
        task_manager=manager,
        bootstrap_iters=cfg.bootstrap,
        log_samples=True,
        **SEEDS,
    )


def _load_tasks(manager: Any, names: list[str], include: Path | None) -> list[Any]:
    """Task and group objects, built (and their data loaded) with `include` as working directory."""
    unknown = [name for name in names if name not in manager.all_tasks]
    if unknown:
        where = f" nor in include_path {include}" if include is not None else ""
        raise BenchError(
            f"lm-eval has no task named {', '.join(map(repr, unknown))} among its built-in tasks{where}. "
            "Check the spelling against `lm_eval --tasks list`, or put the task's YAML in a folder and set "
            "`include_path:` to it."
        )
    built: list[Any] = []
    with contextlib.chdir(include) if include is not None else contextlib.nullcontext():
        for name in names:
            try:
                loaded = manager.load([name])
            except Exception as exc:
                raise BenchError(
                    f"lm-eval could not build task {name!r}: {type(exc).__name__}: {exc}. Check the task's YAML "
                    "and that its dataset is reachable: hub datasets must already be in the local Hugging Face "
                    "cache when offline (set HF_DATASETS_OFFLINE=1), local files are read relative to include_path."
                ) from exc
            if name in loaded["groups"]:
                built.append(loaded["groups"][name])
            else:  # a task, or a tag standing for several tasks
                built.extend(loaded["tasks"].values())
    return built


def _metrics(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """One record per (task or group, metric, filter): `task.metric`, or `task.metric.filter`."""
    records: dict[str, dict[str, Any]] = {}
    for task, row in results["results"].items():
        n = _n_samples(results, task)
        higher = results.get("higher_is_better", {}).get(task, {})
        for key, value in row.items():
            name, comma, filt = key.partition(",")
            if not comma or name.endswith("_stderr") or _number(value) is None:
                continue
            value = float(value)
            stderr = _number(row.get(f"{name}_stderr,{filt}"))
            stderr = float("nan") if stderr is None else stderr
            label = f"{task}.{name}" if filt == "none" else f"{task}.{name}.{filt}"
            ci = (value, value - Z_95 * stderr, value + Z_95 * stderr)
            records[label] = metric(ci, n, JUDGE, stderr=stderr, higher_is_better=higher.get(name))
    return records


def _number(value: Any) -> float | None:
    """A float for numeric results; None for lm-eval's "N/A" and other non-numbers."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _n_samples(results: dict[str, Any], name: str) -> int:
    """Documents scored for a task; for a group, summed over its tasks."""
    counts = results.get("n-samples", {})
    if name in counts:
        return int(counts[name]["effective"])
    return sum(_n_samples(results, child) for child in results.get("group_subtasks", {}).get(name, []))


def _samples_file(task: str) -> str:
    return f"samples_{safe_filename(task)}.jsonl"


def _copy(src: Path, out: Path) -> None:
    with atomic_path(out / src.name) as tmp:
        shutil.copyfile(src, tmp)


def _needs_tasks(cfg: SuiteConfig) -> None:
    if not cfg.tasks:
        raise ValueError("the lm_eval suite needs `tasks` (lm-evaluation-harness task names)")


def _preflight(cfg: SuiteConfig, field: str) -> None:
    require("lm_eval", "pip install 'lm-eval>=0.4.13'", f"{field} (lm_eval)")


register(
    Suite(
        evaluate_lm_eval,
        default_judge=None,
        fields=frozenset({"tasks", "include_path", "num_fewshot"}),
        preflight=_preflight,
        check=_needs_tasks,
        name="lm_eval",
    )
)
