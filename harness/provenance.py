"""What besides config and seed decides a run's numbers: package versions, the machine, the code.

Every manifest records these, so a number can be traced to the exact code and environment that
produced it, and a rerun elsewhere knows whether to expect the same bytes.
"""

from __future__ import annotations

import functools
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from harness import __version__
from harness.models.resolve import cpu_bf16_flags, device, trust_remote_code

KEY_PACKAGES = ("torch", "transformers", "trl", "peft", "lm_eval", "numpy", "scikit-learn", "pydantic")


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
    elsewhere can expect the same bytes (CPU vs GPU kernels, the CPU's bf16 instructions and the
    thread count change float sums).
    """
    import torch

    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": cpu_model(),
        "cpu_bf16": cpu_bf16_flags(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": device(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "trust_remote_code": trust_remote_code(),
    }


def cpu_model() -> str | None:
    """The CPU's model name (Linux /proc/cpuinfo): bf16 kernels differ between CPUs (AMX vs AVX512-BF16),
    so two machines with the same versions and thread count can sample different pools under one key."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return platform.processor() or None
    return next((ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("model name")), None)


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
        out = subprocess.run(
            ["git", "status", "--porcelain"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
        return bool(out.stdout.strip()) if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None
