"""Matplotlib figures embedded as base64 PNG, so a report is one self-contained file."""

from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def to_img_tag(fig, alt: str) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img alt="{alt}" src="data:image/png;base64,{data}">'


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
