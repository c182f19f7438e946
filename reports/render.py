"""Jinja2 rendering with autoescaping: model and dataset text can never become markup.

Only figures produced by our own code (base64 PNG <img> tags) are passed as `Markup`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from harness.core.records import CONTROL

CSS = """
body{font-family:system-ui,sans-serif;max-width:1150px;margin:2em auto;padding:0 1em;color:#222;line-height:1.4}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f3f3f3}.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}.missing{color:#a00}tr.flag td{background:#fde8e8}.flag-key{background:#fde8e8}
.note{background:#fff8e1;border-left:4px solid #f0b400;padding:.5em 1em}pre{white-space:pre-wrap;margin:0;font-size:.9em}
.headline{font-size:1.05em;background:#eef6ff;border-left:4px solid #2a6fdb;padding:.5em 1em}
.ok{color:#080}.bad{color:#a00}.weak{color:#a60}img{max-width:100%}details{margin:.5em 0 1em}
.figs{display:flex;flex-wrap:wrap;gap:1em}.figs>div{flex:1 1 480px;min-width:0}
table{width:100%}td{overflow-wrap:anywhere}th{font-size:.85em}td.name{word-break:break-all}.ci{color:#555;font-size:.85em;white-space:nowrap}
.small{font-size:.9em}figure.wide{margin:1em 0}figure.wide img{width:100%}ul.answer li{margin:.3em 0}
"""


def fmt(value: Any, digits: int = 3) -> Markup | str:
    """A number for a table cell; None/NaN shows as 'missing', never as a blank or 0."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return Markup('<span class="missing">missing</span>')
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def format_p(p: float | None, floor: float = 0.0) -> str:
    """p to 3 decimals; a bootstrap p at its floor (no resample crossed 0) reads '< floor', never 0."""
    if p is None:
        return "—"
    if floor and p <= floor + 1e-12:
        return f"< {floor:.4f}".rstrip("0")
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


_ENV = Environment(
    loader=FileSystemLoader(Path(__file__).with_name("templates")),
    autoescape=select_autoescape(["html", "j2"], default_for_string=True, default=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_ENV.filters["fmt"] = fmt
_ENV.filters["pval"] = format_p


def render(template: str, **context: Any) -> str:
    context.setdefault("css", Markup(CSS))
    context.setdefault("control", CONTROL)
    context["figures"] = [Markup(f) for f in context.get("figures", [])]
    if context.get("surface"):
        context["surface"] = Markup(context["surface"])
    return _ENV.get_template(template).render(**context)
