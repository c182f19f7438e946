"""Matplotlib figures embedded as base64 PNG, so a report is one self-contained file."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def legend_beside(ax, gap: float = 0.02, **kw):
    """The legend outside the data, to the right of the axes: a legend inside the axes covers the points a reader came
    for. `to_img_tag` saves with a tight box, so it stays in the image."""
    return ax.legend(loc="upper left", bbox_to_anchor=(1.0 + gap, 1.0), borderaxespad=0.0, frameon=False, **kw)


def to_img_tag(fig, alt: str, save_to: Path | None = None) -> str:
    """The figure as a self-contained <img> tag; `save_to` also writes the same PNG there (a README can show it)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    if save_to is not None:
        save_to.parent.mkdir(parents=True, exist_ok=True)
        save_to.write_bytes(buf.getvalue())
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img alt="{html.escape(alt, quote=True)}" src="data:image/png;base64,{data}">'


def training_curves(log: list[dict]) -> str | None:
    steps = [r for r in log if "loss" in r and "train_runtime" not in r]
    if not steps:
        return None
    series = [k for k in ("loss", "rewards/accuracies", "rewards/margins") if any(k in r for r in steps)]
    fig, axes = plt.subplots(1, len(series), figsize=(4 * len(series), 3))
    axes = axes if len(series) > 1 else [axes]
    for ax, key in zip(axes, series):
        xs = [r["step"] for r in steps if key in r]
        ax.plot(xs, [r[key] for r in steps if key in r], marker="o", ms=3)
        ax.set_title(key)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    return to_img_tag(fig, "training curves")


def depth_histogram(histogram: dict[str, int]) -> str | None:
    if not histogram:
        return None
    fig, ax = plt.subplots(figsize=(4, 2.6))
    keys = sorted(histogram, key=int)
    ax.bar([int(k) for k in keys], [histogram[k] for k in keys])
    ax.set_xlabel("pairs per prompt (depth)")
    ax.set_ylabel("prompts")
    ax.set_xticks([int(k) for k in keys])
    return to_img_tag(fig, "depth histogram")


def pool_distributions(pool_dir: Path) -> str | None:
    """Histograms of the pool's response scores and pair margins (what every strategy chose from)."""
    import json

    scores = [json.loads(x)["value"] for x in (pool_dir / "scores.jsonl").read_text().splitlines() if x.strip()]
    margins = [json.loads(x)["margin"] for x in (pool_dir / "pairs.jsonl").read_text().splitlines() if x.strip()]
    margins = [m for m in margins if m is not None]
    if not scores:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(8, 2.6))
    axes[0].hist(scores, bins=10)
    axes[0].set_xlabel("response score (pool judge)")
    axes[0].set_ylabel("responses")
    axes[1].hist(margins or [0], bins=10)
    axes[1].set_xlabel(f"pair margin ({len(margins)} pairs)")
    axes[1].set_ylabel("pairs")
    return to_img_tag(fig, "pool score and margin distributions")


def prompt_map(embeddings_file: Path, selected: set[str], k: int = 4) -> str | None:
    """Prompts in 2-D (PCA of their sentence embeddings), coloured by k-means cluster, selected ones ringed."""
    import numpy as np
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA

    data = np.load(embeddings_file, allow_pickle=False)
    ids, vectors = [str(x) for x in data["prompt_ids"]], data["prompt"]
    if len(ids) < 3:
        return None
    xy = PCA(n_components=2, random_state=0).fit_transform(vectors)
    labels = KMeans(n_clusters=min(k, len(ids)), n_init=10, random_state=0).fit_predict(vectors)
    mask = np.array([i in selected for i in ids])
    fig, ax = plt.subplots(figsize=(4.6, 3.4))
    ax.scatter(xy[:, 0], xy[:, 1], c=labels, cmap="tab10", s=18, alpha=0.8)
    ax.scatter(
        xy[mask, 0],
        xy[mask, 1],
        s=80,
        facecolors="none",
        edgecolors="k",
        linewidths=1.2,
        label=f"selected ({mask.sum()})",
    )
    ax.set_title(f"training prompts: PCA of embeddings, {min(k, len(ids))} k-means clusters", fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
    legend_beside(ax, fontsize=7)
    return to_img_tag(fig, "prompt map")


def suite_radar(suite: str, table: dict[str, dict]) -> str | None:
    """Per-category scores (metrics named `[tuned.|base.]score.<category>`) on a radar, base vs tuned."""
    import math

    import numpy as np

    series: dict[str, dict[str, float]] = {}
    for name, record in table.items():
        label, _, rest = name.rpartition("score.") if "score." in name else ("", "", "")
        value = record.get("value")
        if rest and isinstance(value, (int, float)) and math.isfinite(value):
            series.setdefault(label.rstrip(".") or "model", {})[rest] = value
    cats = sorted({c for s in series.values() for c in s})
    if len(cats) < 3:
        return None
    angles = np.linspace(0, 2 * np.pi, len(cats), endpoint=False).tolist()
    fig, ax = plt.subplots(figsize=(4, 4), subplot_kw={"polar": True})
    for label, values in sorted(series.items()):
        vals = [values.get(c, np.nan) for c in cats]
        ax.plot(angles + angles[:1], vals + vals[:1], marker="o", label=label)
    ax.set_xticks(angles)
    ax.set_xticklabels(cats, fontsize=8)
    ax.set_ylim(0, 10)
    ax.set_title(f"{suite}: score by category", fontsize=9)
    legend_beside(ax, gap=0.12, fontsize=7)  # clear of the category labels around the circle
    return to_img_tag(fig, f"{suite} radar")
