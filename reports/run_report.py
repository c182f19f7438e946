"""The per-run report: `report.html`, rendered only from the run folder's files (and the cache
stages its manifest points to), through an autoescaping jinja2 template."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from markupsafe import Markup

from harness.control import CONSTRAINT_ONLY, graded_by_task, headline
from harness.core.io import read_json, read_jsonl, write_text
from harness.core.run_files import RunFolder
from reports.figures import depth_histogram, pool_distributions, prompt_map, suite_radar, training_curves
from reports.render import render

_PER_PROMPT_DIAGNOSTICS = {"depth", "weights", "mean_response_words"}
"""Keyed by prompt id: too long for the summary table (they stay in selection.json)."""


def _stage_meta(manifest: dict) -> dict[str, dict]:
    """stage.json of each cached stage the manifest points to (empty where the cache is gone)."""
    out = {}
    for name, stage in manifest.get("stages", {}).items():
        path = Path(stage.get("path") or "") / "stage.json"
        out[name] = read_json(path) if stage.get("path") and path.is_file() else {}
    return out


def _cost_rows(manifest: dict, meta: dict[str, dict]) -> list[dict[str, Any]]:
    rows = []
    for name, s in manifest.get("stages", {}).items():
        m = meta.get(name, {})
        rows.append(
            {
                "stage": name,
                "status": s.get("status"),
                "seconds": s.get("seconds"),
                "compute_seconds": s.get("compute_seconds"),
                "tokens": m.get("tokens_generated"),
                "gradients": m.get("n_responses") if name == "features" else None,
                "hash": s.get("hash"),
            }
        )
    return rows


def _selected_prompt_ids(selection: dict, pool_dir: Path | None) -> set[str]:
    if pool_dir is None or not (pool_dir / "pairs.jsonl").is_file():
        return set()
    chosen = set(selection.get("pair_ids", []))
    return {p["prompt_id"] for p in read_jsonl(pool_dir / "pairs.jsonl") if p["id"] in chosen}


def _examples(rows: list[dict] | None, n: int) -> list[dict]:
    """Prompts where the tuned model's verdict changed first (they are what training did); where the task check
    graded the outputs, half of them are tuned answers it rejects, so that a reader sees what a gain is made of."""
    if not rows:
        return []
    changed = sorted(rows, key=lambda r: (r["base_strict"] == r["tuned_strict"], r["base_output"] == r["tuned_output"]))
    rejected = [r for r in changed if r.get("tuned_task_check") and not r["tuned_task_check"]["done"]]
    shown = rejected[: n // 2]
    return shown + [r for r in changed if r not in shown][: n - len(shown)]


def _diag_value(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}: {v:.2f}" if isinstance(v, float) else f"{k}: {v}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in value)
    return value


def _data_use_rows(meta: dict[str, dict]) -> list[tuple[str, Any]]:
    """What the data stages left out on purpose, so that nothing is dropped silently."""
    prompts, pool = meta.get("prompts", {}), meta.get("pool", {})
    rows = []
    if "rows_skipped" in prompts:
        rows.append(("source rows skipped (reason: rows)", _diag_value(prompts["rows_skipped"]) or "none"))
        rows.append(("source rows merged into an earlier prompt", _diag_value(prompts["rows_merged"]) or "none"))
    for key, label in (
        ("n_truncated", "pool samples cut at max_new_tokens"),
        ("n_judge_failures", "pool samples the judge failed on (no pairs)"),
    ):
        if key in pool:
            rows.append((label, pool[key]))
    return rows


def render_run_report(run_dir: Path) -> str:
    run_dir = Path(run_dir)
    folder = RunFolder(run_dir)
    manifest = folder.manifest()
    config = manifest.get("config", {})
    selection = folder.selection()
    diag = selection.get("diagnostics", {})
    log = read_jsonl(run_dir / "train" / "log.jsonl") if (run_dir / "train" / "log.jsonl").is_file() else []
    metrics = folder.metrics()
    meta = _stage_meta(manifest)
    control = folder.control()
    stage_path = {k: Path(v["path"]) for k, v in manifest.get("stages", {}).items() if v.get("path")}
    pool_dir = stage_path.get("pool") if stage_path.get("pool", Path("-")).is_dir() else None
    emb_file = stage_path.get("embeddings", Path("-")) / "embeddings.npz"
    # step 1 is scored before any update, when policy == reference: its rewards are exactly 0
    acc = [r["rewards/accuracies"] for r in log if "rewards/accuracies" in r and r.get("step", 0) > 1]
    train_summary = [r for r in log if "train_runtime" in r]
    strategy = selection.get("strategy", config.get("select", {}).get("strategy", "?"))
    figures = {
        "depth": depth_histogram(diag.get("depth_histogram", {})),
        "training": training_curves(log),
        "pool": pool_distributions(pool_dir) if pool_dir else None,
        "map": prompt_map(emb_file, _selected_prompt_ids(selection, pool_dir)) if emb_file.is_file() else None,
        "radars": {suite: suite_radar(suite, table) for suite, table in metrics.items()},
    }
    figures["radars"] = {k: Markup(v) for k, v in figures["radars"].items() if v}
    figures = {k: (Markup(v) if isinstance(v, str) else v) for k, v in figures.items()}
    return render(
        "run.html.j2",
        title=f"{config.get('name', '?')}: {strategy}",
        manifest=manifest,
        config=config,
        config_yaml=yaml.safe_dump(config, sort_keys=False),
        selection=selection,
        diag_rows=[(k, _diag_value(v)) for k, v in diag.items() if k not in _PER_PROMPT_DIAGNOSTICS]
        + _data_use_rows(meta),
        metrics=metrics,
        reward_accuracy=sum(acc) / len(acc) if acc else None,
        train_summary=train_summary[-1] if train_summary else {},
        examples=_examples(
            folder.eval_outputs(),
            config.get("report", {}).get("n_examples", config.get("evaluate", {}).get("n_examples", 6)),
        ),
        pairs=[_pair_preview(row) for row in folder.selected_pairs()[:5]],
        cost=_cost_rows(manifest, meta),
        selection_cost=manifest.get("cost") or {},
        selection_seconds=meta.get("select", {}).get("seconds_by_part") or {},
        fig=figures,
        headline=headline(metrics),
        constraint_only=headline(metrics, CONSTRAINT_ONLY),
        graded=graded_by_task(metrics),
        control=control,
        control_link=os.path.relpath(RunFolder(control["run"]) / RunFolder.REPORT, run_dir) if control else None,
    )


def _text(value: Any) -> str:
    """A message list (TRL's conversational format) as readable lines; older run folders hold plain strings."""
    if isinstance(value, list):
        return "\n\n".join(f"[{m.get('role', '?')}] {m.get('content', '')}" for m in value)
    return str(value)


def _pair_preview(row: dict) -> dict:
    """One row of selected_pairs.jsonl for the report: the whole prompt (system and earlier turns too)."""
    return {
        "prompt": _text(row.get("prompt")),
        "chosen": _text(row.get("chosen")),
        "rejected": _text(row.get("rejected")),
        "margin": row.get("margin"),
    }


def write_report(run_dir: Path) -> Path:
    path = RunFolder(run_dir) / RunFolder.REPORT
    write_text(path, render_run_report(run_dir))
    return path
