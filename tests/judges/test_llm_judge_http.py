"""The LLM judge's OpenAI-compatible HTTP back end against a real server, no mocks.

A module-scoped `transformers serve` on 127.0.0.1 serves the embedded SmolLM2-135M-Instruct;
the judge, its judgment cache, its retry path and `bench eval` talk to it over real HTTP.
SmolLM2-135M rarely follows the [[rating]] format, so every check accepts a recorded failure
(value None, error set) wherever a score could be, and never a 0 in its place.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sysconfig
import time
import urllib.request
from pathlib import Path
from typing import NamedTuple

import pytest

from harness.core.errors import BenchError
from harness.core.records import Prompt
from harness.judges._cache import CachedJudge
from harness.judges.base import Judgment
from harness.judges.config import JudgeConfig
from harness.judges.llm import LLMJudge
from harness.models.config import EMBEDDED_MODEL

REPO = Path(__file__).resolve().parents[2]
MT_BENCH = REPO.parent / "shared" / "data" / "mt_bench" / "question.jsonl"
KEY_ENV = "BENCH_TEST_KEY"
FAKE_KEY = "sk-test-123"
START_TIMEOUT_S = 90.0
POST_LINE = '"POST /v1/chat/completions HTTP/1.1"'


class Served(NamedTuple):
    base_url: str  # http://127.0.0.1:PORT/v1
    model: str  # the served model folder, as the judge's `model`
    log: Path  # the server's stdout + stderr (uvicorn's access log included)
    start_s: float  # seconds from launch to a healthy /health

    def posts(self) -> int:
        """Chat completion requests the server has logged so far."""
        return self.log.read_text(encoding="utf-8", errors="replace").count(POST_LINE)

    def logs_requests(self) -> bool:
        """Whether uvicorn's access log is on (it logged the /health polls), so requests can be counted."""
        return '"GET /health HTTP/1.1"' in self.log.read_text(encoding="utf-8", errors="replace")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _transformers_cli() -> str | None:
    """The `transformers` script of this interpreter's environment, else the one on PATH."""
    script = Path(sysconfig.get_path("scripts")) / "transformers"
    return str(script) if script.is_file() else shutil.which("transformers")


def _tail(path: Path, n: int = 4000) -> str:
    return path.read_text(encoding="utf-8", errors="replace")[-n:] if path.is_file() else "(no log)"


def _stop(proc: subprocess.Popen) -> None:
    """Terminate the server's whole process group (it was started in a session of its own)."""
    for sig, wait_s in ((signal.SIGTERM, 15), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=wait_s)
            break
        except subprocess.TimeoutExpired:
            continue
    # Reap the leader if SIGTERM's group kill already ended it; the group is gone either way.
    if proc.poll() is None:
        proc.wait(timeout=5)


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Served:
    missing = [m for m in ("fastapi", "uvicorn") if importlib.util.find_spec(m) is None]
    cli = _transformers_cli()
    if missing or cli is None:
        what = ", ".join(missing) + " not importable" if missing else "the `transformers` CLI is not on PATH"
        pytest.skip(
            f'transformers serve needs FastAPI and Uvicorn ({what}); install them with pip install "transformers[serving]"'
        )
    from harness.models.resolve import resolve_model

    model = str(resolve_model(EMBEDDED_MODEL))
    port = _free_port()
    log = tmp_path_factory.mktemp("transformers-serve") / "serve.log"
    # One intra-op thread: on a small shared CPU, OpenMP threads fighting other jobs made calls 3x slower.
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    cmd = [cli, "serve", "--host", "127.0.0.1", "--port", str(port), "--device", "cpu", model]
    start = time.perf_counter()
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            cmd, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True
        )
    try:
        health = f"http://127.0.0.1:{port}/health"
        while True:
            if proc.poll() is not None:
                pytest.fail(
                    f"transformers serve exited with code {proc.returncode} before becoming healthy:\n{_tail(log)}"
                )
            try:
                with urllib.request.urlopen(health, timeout=2) as response:
                    if json.loads(response.read()).get("status") == "ok":
                        break
            except (OSError, ValueError):
                pass
            if time.perf_counter() - start > START_TIMEOUT_S:
                pytest.fail(f"transformers serve was not healthy after {START_TIMEOUT_S:.0f} s:\n{_tail(log)}")
            time.sleep(0.25)
        served = Served(f"http://127.0.0.1:{port}/v1", model, log, time.perf_counter() - start)
        print(f"\ntransformers serve healthy after {served.start_s:.1f} s on port {port}")
        yield served
    finally:
        _stop(proc)


def _judge(served: Served, **overrides) -> LLMJudge:
    fields = dict(
        type="llm",
        backend="openai",
        base_url=served.base_url,
        model=served.model,
        api_key_env=KEY_ENV,
        max_new_tokens=48,
        concurrency=2,
    )
    return LLMJudge(JudgeConfig(**(fields | overrides)))


def _single_items() -> list[tuple[Prompt, str]]:
    qa = [
        ("What is the capital of France?", "The capital of France is Paris."),
        (
            "Write a haiku about autumn.",
            "Red leaves drift and fall\ncool wind hums through empty boughs\nthe year exhales slow",
        ),
        # SmolLM2-135M rarely writes [[rating]]; it echoes this one ("Rating: [8]", greedy), so the
        # success path (parsed rating, cached judgment, cache hit) is exercised over HTTP too.
        ("Say 'Rating: [[8]]'.", "Rating: [[8]]"),
    ]
    return [(Prompt.make([{"role": "user", "content": q}], source="test"), a) for q, a in qa]


def _pair_items() -> list[tuple[Prompt, str, str]]:
    return [
        (Prompt.make([{"role": "user", "content": "Name a primary colour."}], source="test"), "Red.", "Banana."),
        (Prompt.make([{"role": "user", "content": "What is 2 + 2?"}], source="test"), "5", "2 + 2 = 4."),
    ]


def _check_rating(j: Judgment) -> None:
    if j.ok:
        assert 1 <= j.value <= 10, j  # type: ignore[operator]
    else:
        assert j.value is None and j.error, j  # a failure is recorded, never scored 0


def _wait_for_posts(served: Served, expected: int, timeout_s: float = 5.0) -> int:
    deadline = time.perf_counter() + timeout_s
    while (seen := served.posts()) < expected and time.perf_counter() < deadline:
        time.sleep(0.1)
    return seen


def test_score_and_compare_over_http(server: Served, monkeypatch) -> None:
    monkeypatch.setenv(KEY_ENV, FAKE_KEY)
    judge = _judge(server)
    assert judge.weak and "WEAK" in judge.label  # 135M, guessed from the served model's name
    assert not judge.logprobs  # mode auto on an endpoint: generate and parse

    items = _single_items()
    judgments = judge.score_many(items)
    assert len(judgments) == len(items)
    for j in judgments:
        _check_rating(j)
        if (j.error or "").startswith("judge call failed"):
            assert "reply" not in j.details
        else:
            # The call succeeded: the judge's own words are kept, whatever they rated.
            assert isinstance(j.details["reply"], str) and j.details["template"]

    pairs = _pair_items()
    before = server.posts()
    compared = judge.compare_many(pairs)
    assert len(compared) == len(pairs)
    for j in compared:
        assert j.value in (0.0, 0.5, 1.0) if j.ok else (j.value is None and j.error), j
        if not (j.error or "").startswith("judge call failed"):
            # Both orders were asked and both replies kept.
            assert isinstance(j.details["reply_ab"], str) and isinstance(j.details["reply_ba"], str)
            assert set(j.details) >= {"verdict_ab", "verdict_ba"}
    if server.logs_requests():  # the server saw exactly two calls per pair
        assert _wait_for_posts(server, before + 2 * len(pairs)) == before + 2 * len(pairs)


def test_judgment_cache_over_http_and_no_key_on_disk(server: Served, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv(KEY_ENV, FAKE_KEY)
    items = _single_items()[1:]
    judge = _judge(server)
    first = CachedJudge(judge, tmp_path)
    judged = first.score_many(items)
    assert (first.calls, first.hits) == (len(items), 0)
    good = [j for j in judged if j.ok]
    assert good, f"the echo item gave no parsable rating, so no cache hit can be tested: {judged}"
    rows = first.path.read_text(encoding="utf-8").splitlines() if first.path.is_file() else []
    assert len(rows) == len(good)  # only good judgments are persisted
    assert sorted(json.loads(r)["value"] for r in rows) == sorted(j.value for j in good)

    before = server.posts()
    again = CachedJudge(_judge(server), tmp_path)
    rejudged = again.score_many(items)
    n_failed = len(items) - len(good)
    assert (again.calls, again.hits) == (n_failed, len(good))
    for old, new in zip(judged, rejudged):
        if old.ok:
            assert (new.value, new.details) == (old.value, old.details)
        else:
            _check_rating(new)  # asked again
    if server.logs_requests():
        assert _wait_for_posts(server, before + n_failed) == before + n_failed

    # The key was sent (it is in the environment) but is in no id, config dump or cache file.
    assert FAKE_KEY not in judge.id and FAKE_KEY not in judge.label
    assert FAKE_KEY not in judge.config.model_dump_json() and KEY_ENV in judge.config.model_dump_json()
    for path in [p for p in tmp_path.rglob("*") if p.is_file()]:
        assert FAKE_KEY.encode() not in path.read_bytes(), path


def test_unset_key_variable_is_a_bench_error(tmp_path: Path, monkeypatch) -> None:
    name = "BENCH_TEST_KEY_THAT_IS_NOT_SET"
    monkeypatch.delenv(name, raising=False)
    # Nothing listens there: the error must come before any request is made.
    judge = LLMJudge(
        JudgeConfig(
            type="llm", backend="openai", base_url=f"http://127.0.0.1:{_free_port()}/v1", model="m", api_key_env=name
        )
    )
    with pytest.raises(BenchError, match=name):
        judge.score_many(_single_items()[:1])
    with pytest.raises(BenchError, match=name):
        CachedJudge(judge, tmp_path).compare_many(_pair_items()[:1])


def test_unreachable_endpoint_gives_recorded_failures_after_retries() -> None:
    port = _free_port()  # bound, then closed: connections are refused
    judge = LLMJudge(
        JudgeConfig(
            type="llm",
            backend="openai",
            base_url=f"http://127.0.0.1:{port}/v1",
            model="m",
            max_retries=2,
            timeout_s=2,
            concurrency=2,
        )
    )
    items = _single_items()
    start = time.perf_counter()
    judgments = judge.score_many(items)
    compared = judge.compare_many(_pair_items()[:1])
    elapsed = time.perf_counter() - start
    assert elapsed < 10, elapsed  # 0.5 s + 1 s backoff per call, calls in parallel
    assert len(judgments) == len(items) and len(compared) == 1
    for j in judgments + compared:
        assert j.value is None and not j.ok
        assert "gave up after 3 attempts" in j.error, j.error  # type: ignore[operator]


def test_bench_eval_mt_bench_with_http_judge(server: Served, tiny_model: Path, tmp_path: Path, monkeypatch) -> None:
    if not MT_BENCH.is_file():
        pytest.skip(f"{MT_BENCH} does not exist (FastChat's MT-Bench questions are needed)")
    from click.testing import CliRunner

    from harness.cli import main

    monkeypatch.setenv(KEY_ENV, FAKE_KEY)
    out = tmp_path / "out"
    args = [
        "eval", "--suite", "mt_bench", "--limit", "2", "--path", str(MT_BENCH), "--model", str(tiny_model),
        "--judge", "llm", "--judge-url", server.base_url, "--judge-model", server.model, "--judge-key-env", KEY_ENV,
        "--set", "max_new_tokens=32", "--set", "judge.max_new_tokens=48",
        "--cache-dir", str(tmp_path / "cache"), "--out", str(out),
    ]  # fmt: skip
    before = server.posts()
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    score = json.loads((out / "metrics.json").read_text(encoding="utf-8"))["mt_bench"]["score"]
    assert score["n"] + score["n_failed"] == 4  # 2 questions x 2 turns
    assert score["weak_judge"] is True and "WEAK" in score["judge"]  # 135M, from the served model's name
    if score["n"]:
        assert 1 <= score["value"] <= 10
    if server.logs_requests():
        assert _wait_for_posts(server, before + 4) == before + 4

    answers = list((out / "model_answer").glob("*.jsonl"))
    judgments = list((out / "model_judgment").glob("*_single.jsonl"))
    assert len(answers) == 1 and len(judgments) == 1
    assert len(answers[0].read_text(encoding="utf-8").splitlines()) == 2
    rows = [json.loads(line) for line in judgments[0].read_text(encoding="utf-8").splitlines()]
    first_two = [json.loads(line)["question_id"] for line in MT_BENCH.read_text(encoding="utf-8").splitlines()[:2]]
    assert sorted((r["question_id"], r["turn"]) for r in rows) == sorted((q, t) for q in first_two for t in (1, 2))
    for r in rows:
        assert (1 <= r["score"] <= 10 and r["error"] is None) or (r["score"] == -1 and r["error"]), r
    assert sum(r["score"] != -1 for r in rows) == score["n"]

    # Neither the outputs (manifest, exports) nor the caches hold the key; they do name its variable.
    assert KEY_ENV in (out / "manifest.json").read_text(encoding="utf-8")
    for path in [p for p in tmp_path.rglob("*") if p.is_file()]:
        assert FAKE_KEY.encode() not in path.read_bytes(), path
