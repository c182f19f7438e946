"""kill -9 in every stage, then rerun: the result equals an uninterrupted run, byte for byte.

One run (tiny real model, bpo strategy, LLM pool judge on a loopback HTTP server) is killed
with SIGKILL in turn during generation, judging, gradient features, training, evaluation and
report writing; each restart resumes from the stage cache. The final selection, metrics and
report must equal those of an uninterrupted run with the same seed in another cache, the
killed judging must not be redone from scratch (the judgment cache kept the answers), no
temporary folder may survive, and the API key must appear in no artefact.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from fault_judge import FaultJudge

REPO = Path(__file__).resolve().parents[2]
KEY_ENV = "BENCH_FAKE_JUDGE_KEY"
SECRET = "sk-fake-SECRET-7f3a9c"
# (what is killed, the stderr text that says it is under way, extra wait before the kill)
KILL_POINTS = [
    ("generation", "pool: sampling", 0.5),
    ("judging", "pool: judging", 0.0),
    ("features", "features: response gradients", 0.0),
    ("training", "[bench] train: computing", 1.0),
    ("evaluation", "[bench] evaluate: computing", 0.5),
    ("report", "[bench] report: writing", 0.0),
]


@pytest.fixture(scope="module")
def judge_server():
    server = FaultJudge(delay=0.15)
    yield server
    server.close()


def _args(tiny_model: Path, server: FaultJudge, cache: Path, out: Path) -> list[str]:
    judge = f"{{type: llm, backend: openai, base_url: '{server.url('slow')}', model: fake-judge, api_key_env: {KEY_ENV}, concurrency: 2}}"
    sets = [
        f"model={tiny_model}",
        f"cache_dir={cache}",
        "prompts.n_train=8",
        "pool.k=4",
        "pool.max_new_tokens=24",
        f"pool.judge={judge}",
        "features.dim=64",
        "train.max_length=96",
        "evaluate.n_prompts=8",
        "evaluate.max_new_tokens=24",
    ]
    args = [
        sys.executable,
        "-m",
        "harness.cli",
        "run",
        "--config",
        "experiments/smoke.yaml",
        "--strategy",
        "bpo",
        "--budget",
        "4",
        "--out",
        str(out),
    ]
    for item in sets:
        args += ["--set", item]
    return args


def _env() -> dict[str, str]:
    return {**os.environ, KEY_ENV: SECRET, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}


def _run_to_end(args: list[str]) -> str:
    proc = subprocess.run(args, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def _run_and_kill(args: list[str], marker: str, wait: float) -> str:
    """Start the run, SIGKILL its process group once `marker` shows on stderr (+ `wait` s); return what it printed."""
    proc = subprocess.Popen(
        args, cwd=REPO, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    seen = threading.Event()
    chunks: list[str] = []

    def read() -> None:
        assert proc.stderr is not None
        while chunk := proc.stderr.read1(4096):  # type: ignore[attr-defined]
            chunks.append(chunk.decode("utf-8", "replace"))
            if marker in "".join(chunks[-3:]) or marker in "".join(chunks):
                seen.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    if not seen.wait(timeout=600):
        proc.kill()
        pytest.fail(f"the run never reached {marker!r}; it printed:\n{''.join(chunks)[-3000:]}")
    time.sleep(wait)
    assert proc.poll() is None, f"the run ended before it could be killed at {marker!r}"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    reader.join(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    return "".join(chunks)


def _normalised_report(out: Path, cache: Path) -> str:
    html = (out / "report.html").read_text(encoding="utf-8")
    html = html.replace(str(cache), "CACHE").replace(str(out), "OUT")
    # wall-clock figures differ by design: the cost table (and computed/cached), training throughput
    html = re.sub(r"<tr><td>train_(runtime|samples_per_second|steps_per_second)</td><td[^>]*>[^<]*</td></tr>", "", html)
    return re.sub(r"<h2>Cost per stage</h2>.*?(?=<h2>|</body>)", "", html, flags=re.S)


@pytest.mark.slow
def test_kill_9_in_every_stage_then_rerun_equals_an_uninterrupted_run(
    tiny_model: Path, judge_server: FaultJudge, tmp_path: Path
) -> None:
    clean_out, clean_cache = tmp_path / "clean" / "run", tmp_path / "clean" / "cache"
    _run_to_end(_args(tiny_model, judge_server, clean_cache, clean_out))
    clean_calls = judge_server.count("slow")

    out, cache = tmp_path / "killed" / "run", tmp_path / "killed" / "cache"
    args = _args(tiny_model, judge_server, cache, out)
    killed_at = []
    for what, marker, wait in KILL_POINTS:
        printed = _run_and_kill(args, marker, wait)
        killed_at.append(what)
        if what == "judging":
            assert "pool: sampling" in printed  # the pool is recomputed from scratch after the generation kill
    log = _run_to_end(args)
    assert killed_at == [k[0] for k in KILL_POINTS]
    assert "[bench] prompts: cached" in log and "[bench] pool: cached" in log and "[bench] train: cached" in log

    # the same bytes as the uninterrupted run
    assert (out / "selection.json").read_bytes() == (clean_out / "selection.json").read_bytes()
    assert json.loads((out / "metrics.json").read_text()) == json.loads((clean_out / "metrics.json").read_text())
    assert (out / "train" / "adapter" / "adapter_model.safetensors").read_bytes() == (
        clean_out / "train" / "adapter" / "adapter_model.safetensors"
    ).read_bytes()
    assert _normalised_report(out, cache) == _normalised_report(clean_out, clean_cache)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "done"
    # what reproducing the run takes: the resolved config, seed, code, packages, machine, engine, command
    for key in ("config", "seed", "git_sha", "git_dirty", "versions", "machine", "generation", "argv"):
        assert key in manifest, key
    assert {"torch", "transformers", "trl", "peft"} <= set(manifest["versions"])
    assert {"platform", "cpu", "cpu_bf16", "device", "torch_threads"} <= set(manifest["machine"])

    # judging was resumed, not redone: at most the calls in flight at the kill are repeated
    killed_calls = judge_server.count("slow") - clean_calls
    assert killed_calls <= clean_calls + 2, (killed_calls, clean_calls)

    # nothing half-written survives; the key is in no artefact
    leftovers = [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == [], leftovers
    assert all(r["auth"] == f"Bearer {SECRET}" for r in judge_server.requests)
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), f"the API key leaked into {path}"
    assert SECRET not in log
