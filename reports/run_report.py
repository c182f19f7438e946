"""The per-run report: `report.html`, rendered only from the run folder's files."""

from __future__ import annotations

import html
import math
from pathlib import Path

import yaml

from harness.io import read_json, read_jsonl, write_text
from reports.figures import depth_histogram, training_curves

CSS = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f3f3f3}.num{text-align:right;font-variant-numeric:tabular-nums}.missing{color:#a00}
.note{background:#fff8e1;border-left:4px solid #f0b400;padding:.5em 1em}pre{white-space:pre-wrap;margin:0;font-size:.9em}
.ok{color:#080}.bad{color:#a00}
"""


def _esc(value) -> str:
    return html.escape(str(value))


def _fmt(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return '<span class="missing">missing</span>'
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return _esc(value)


_PER_PROMPT_DIAGNOSTICS = {"depth", "weights", "mean_response_words"}
"""Keyed by prompt id: too long for the summary table (they stay in selection.json)."""


def _fmt_diag(value) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{_esc(k)}: {_fmt(v, 2)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(_fmt(v, 3) for v in value)
    return _fmt(value)


def _table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _load(path: Path):
    if not path.exists():
        return None
    return read_jsonl(path) if path.suffix == ".jsonl" else read_json(path)


def _metrics_section(metrics: dict | None) -> str:
    if not metrics:
        return '<p class="missing">No metrics: the evaluate stage has not finished.</p>'
    parts = []
    for suite, table in metrics.items():
        rows = [
            [
                _esc(name),
                _fmt(m.get("value")),
                f"[{_fmt(m.get('ci_low'))}, {_fmt(m.get('ci_high'))}]",
                _fmt(m.get("n")),
                _fmt(m.get("n_failed", 0)) + (f" (+{m['n_unscorable']} unscorable)" if m.get("n_unscorable") else ""),
                _esc(m.get("judge")) + (' <b class="weak">weak judge</b>' if m.get("weak_judge") else ""),
            ]
            for name, m in table.items()
        ]
        parts.append(
            f"<h3>{_esc(suite)}</h3>" + _table(["metric", "value", "95% CI", "n", "judge failures", "judge"], rows)
        )
        diff = table.get("paired_diff.prompt_strict_acc")
        if diff:
            significant = diff["ci_low"] > 0 or diff["ci_high"] < 0
            verdict = (
                "The paired difference (tuned − base) is significant at 95%."
                if significant
                else "The paired difference (tuned − base) is <b>not significant</b>: its 95% CI contains 0."
            )
            parts.append(f'<p class="note">{verdict}</p>')
    return "".join(parts)


def _examples_section(rows: list[dict] | None, n: int) -> str:
    if not rows:
        return '<p class="missing">No held-out outputs.</p>'
    # prompts where the tuned model's verdict changed come first: they are what training did
    changed = sorted(rows, key=lambda r: (r["base_strict"] == r["tuned_strict"], r["base_output"] == r["tuned_output"]))
    body = []
    for r in changed[:n]:
        body.append(
            [
                f"<pre>{_esc(r['prompt'])}</pre><br><small>{_esc(', '.join(r['instructions']))}</small>",
                f"<pre>{_esc(r['base_output'])}</pre><br><small>followed: {_esc(r['base_strict'])}</small>",
                f"<pre>{_esc(r['tuned_output'])}</pre><br><small>followed: {_esc(r['tuned_strict'])}</small>",
            ]
        )
    return _table(["held-out prompt", "base model", "tuned model"], body)


def render_run_report(run_dir: Path) -> str:
    run_dir = Path(run_dir)
    manifest = _load(run_dir / "manifest.json") or {}
    config = manifest.get("config", {})
    selection = _load(run_dir / "selection.json") or {}
    diag = selection.get("diagnostics", {})
    log = _load(run_dir / "train" / "log.jsonl") or []
    metrics = _load(run_dir / "metrics.json")
    examples = _load(run_dir / "eval_outputs.jsonl")
    pairs = _load(run_dir / "selected_pairs.jsonl") or []
    n_examples = config.get("evaluate", {}).get("n_examples", 6)

    title = f"{config.get('name', '?')}: {selection.get('strategy', config.get('select', {}).get('strategy', '?'))}"
    stage_rows = [
        [_esc(name), _esc(s.get("status")), _fmt(s.get("seconds"), 1), _fmt(s.get("compute_seconds"), 1), f"<code>{_esc(s.get('hash'))}</code>"]
        for name, s in manifest.get("stages", {}).items()
    ]
    diag_rows = [[_esc(k), _fmt_diag(v)] for k, v in diag.items() if k not in _PER_PROMPT_DIAGNOSTICS]
    train_summary = [r for r in log if "train_runtime" in r]
    # step 1 is scored before any update, when policy == reference: its rewards are exactly 0
    first_acc = [r["rewards/accuracies"] for r in log if "rewards/accuracies" in r and r.get("step", 0) > 1]
    sections = [
        f"<h1>{_esc(title)}</h1>",
        "<p>Model <code>{}</code>, budget {} pairs, seed {}, git <code>{}</code>, status {}.</p>".format(
            _esc(config.get("model")), _esc(selection.get("budget")), _esc(manifest.get("seed")),
            _esc(manifest.get("git_sha")), _esc(manifest.get("status")),
        ),
        "<h2>Held-out metrics</h2>",
        '<p class="note">Judge: verifiable IFEval checkers. They check the stated output constraints only, '
        "not whether an answer is helpful or correct: a weak judge of quality.</p>",
        _metrics_section(metrics),
        "<h2>Selection</h2>",
        _table(["diagnostic", "value"], diag_rows),
        depth_histogram(diag.get("depth_histogram", {})) or '<p class="missing">No depth histogram.</p>',
        "<h2>Training</h2>",
        training_curves(log) or '<p class="missing">No training log.</p>',
        "<p>Mean logged reward accuracy over steps 2+: {}. With one epoch each batch is logged before the model "
        "trains on it, so this is a held-out signal (step 1 is left out: policy = reference there).</p>".format(_fmt(sum(first_acc) / len(first_acc) if first_acc else None)),
        _table(["key", "value"], [[_esc(k), _fmt(v)] for k, v in (train_summary[-1] if train_summary else {}).items()]),
        "<h2>Held-out examples</h2>",
        _examples_section(examples, n_examples),
        "<h2>Selected pairs (first 5)</h2>",
        _table(
            ["prompt", "chosen", "rejected", "margin"],
            [[f"<pre>{_esc(p['prompt'])}</pre>", f"<pre>{_esc(p['chosen'])}</pre>", f"<pre>{_esc(p['rejected'])}</pre>", _fmt(p["margin"])] for p in pairs[:5]],
        ),
        "<h2>Cost per stage</h2>",
        _table(["stage", "status", "seconds (this run)", "seconds (when computed)", "hash"], stage_rows),
        "<h2>Provenance</h2>",
        _table(["package", "version"], [[_esc(k), _esc(v)] for k, v in manifest.get("versions", {}).items()]),
        f"<h3>Resolved config</h3><pre>{_esc(yaml.safe_dump(config, sort_keys=False))}</pre>",
    ]
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{_esc(title)}</title><style>{CSS}</style></head>"
        f"<body>{''.join(sections)}</body></html>"
    )


def write_report(run_dir: Path) -> Path:
    path = Path(run_dir) / "report.html"
    write_text(path, render_run_report(run_dir))
    return path
