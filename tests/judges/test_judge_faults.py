"""Judge faults against a real HTTP server on loopback: 5xx, timeouts, malformed JSON, no verdict.

The judge must retry transient faults with backoff up to its limit, cache only good answers,
count every failure, and never score a failed judgment as zero; a metric computed with
failures says how many.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from fault_judge import FaultJudge, rating_for

from harness.core.records import Prompt
from harness.judges._cache import CachedJudge
from harness.judges.config import JudgeConfig
from harness.judges.llm import LLMJudge
from harness.models.resolve import engine_key
from harness.suites.config import SuiteConfig

ENGINE = engine_key("auto", "auto")
"""what this machine generates with: the engine a run would resolve here"""

REPO = Path(__file__).resolve().parents[2]
MT_BENCH = REPO.parent / "shared" / "data" / "mt_bench"


@pytest.fixture(scope="module")
def server():
    judge = FaultJudge()
    yield judge
    judge.close()


def _judge(server: FaultJudge, mode: str, **kw) -> LLMJudge:
    fields = dict(
        type="llm",
        backend="openai",
        base_url=server.url(mode),
        model="fault-judge",
        concurrency=2,
        max_retries=2,
        timeout_s=5.0,
    )
    return LLMJudge(JudgeConfig(**{**fields, **kw}))


def _items(n: int = 3) -> list[tuple[Prompt, str]]:
    return [(Prompt.make([{"role": "user", "content": f"Question {i}?"}], "test"), f"Answer {i}.") for i in range(n)]


def _cached_rows(cache_dir: Path) -> list[dict]:
    files = list((cache_dir / "judgments").glob("*.jsonl"))
    return [json.loads(line) for f in files for line in f.read_text().splitlines() if line.strip()]


def test_transient_5xx_is_retried_with_backoff_until_it_succeeds(server: FaultJudge, tmp_path: Path) -> None:
    before = server.count("flaky")
    start = time.perf_counter()
    judgments = CachedJudge(_judge(server, "flaky"), tmp_path).score_many(_items())
    elapsed = time.perf_counter() - start
    assert all(j.ok and 1 <= j.value <= 10 for j in judgments)
    assert server.count("flaky") - before == 3 * 3  # two 503s, then the answer, for each item
    assert elapsed >= 0.5 + 1.0  # backoff 0.5 s, then 1 s (items run in parallel)
    assert len(_cached_rows(tmp_path)) == 3


@pytest.mark.parametrize(
    "mode, extra, error",
    [
        ("down", {}, r"gave up after 3 attempts: HTTP 500"),
        ("timeout", {"timeout_s": 0.5, "max_retries": 1}, r"gave up after 2 attempts: .*(timed out|TimeoutError)"),
        ("malformed", {}, r"gave up after 3 attempts: malformed response"),
        ("unparsable", {}, r"no \[\[rating\]\] in 1\.\.10"),
    ],
)
def test_failures_are_recorded_never_scored_and_never_cached(
    server: FaultJudge, tmp_path: Path, mode: str, extra: dict, error: str
) -> None:
    import re

    before = server.count(mode)
    cached = CachedJudge(_judge(server, mode, **extra), tmp_path)
    judgments = cached.score_many(_items(2))
    attempts = (
        1 if mode == "unparsable" else extra.get("max_retries", 2) + 1
    )  # a reply without a verdict is an answer, not a fault
    assert server.count(mode) - before == 2 * attempts
    for j in judgments:
        assert j.value is None and not j.ok and re.search(error, j.error), j.error
    assert _cached_rows(tmp_path) == []
    # asked again, the judge is asked again (nothing bad was cached)
    cached.score_many(_items(2))
    assert server.count(mode) - before == 4 * attempts


def test_a_metric_with_failed_judgments_says_so_and_averages_only_good_ones(
    server: FaultJudge, tiny_model: Path, tmp_path: Path
) -> None:
    if not (MT_BENCH / "question.jsonl").is_file():
        pytest.skip("shared MT-Bench data not present")
    from harness.eval_runner import run_suite
    from harness.suites import EvalTarget

    judge = JudgeConfig(type="llm", backend="openai", base_url=server.url("mixed"), model="fault-judge", max_retries=0)
    cfg = SuiteConfig(name="mt_bench", path=str(MT_BENCH), limit=4, max_new_tokens=8, judge=judge)
    before = len(server.requests)
    metrics = run_suite(cfg, EvalTarget(str(tiny_model), ENGINE, None, "tiny"), tmp_path / "out", tmp_path / "cache")
    sent = [r["text"] for r in server.requests[before:]]
    good = [rating_for(t) for t in sent if "Rating" not in _reply_kind(t)]
    assert len(sent) == 8  # 4 questions x 2 turns
    score = metrics["score"]
    assert 0 < score["n_failed"] < 8, "the fixture's hash split should fail some judgments and not others"
    assert score["n"] == len(good) and score["n_failed"] == 8 - len(good)
    assert score["value"] == pytest.approx(sum(good) / len(good))
    assert min(good) >= 1  # nothing scored as 0


def _reply_kind(text: str) -> str:
    """What the mixed server answers for `text` (mirrors fault_judge's rule)."""
    import hashlib

    return "unparsable Rating" if int(hashlib.sha256(text.encode()).hexdigest(), 16) % 2 == 0 else "ok"
