"""The lm_eval suite on a tiny real Llama and a local task folder (tests/fixtures/lm_eval_task)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from harness.core.errors import BenchError
from harness.core.io import read_json, read_jsonl
from harness.data.heldout import HeldoutSet
from harness.models.resolve import engine_key
from harness.suites import SuiteContext
from harness.suites.base import EvalTarget, get_suite
from harness.suites.config import SuiteConfig
from harness.suites.lm_eval import STAGE, evaluate_lm_eval

ENGINE = engine_key("auto", "auto")
"""what this machine generates with: the engine a run would resolve here"""

TASK_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "lm_eval_task"
N_DOCS = len(read_jsonl(TASK_DIR / "bench_tiny_mc.jsonl"))


def _cfg(**overrides) -> SuiteConfig:
    fields = dict(name="lm_eval", tasks=["bench_tiny_mc"], include_path=str(TASK_DIR), batch_size=8, bootstrap=100)
    return SuiteConfig(**(fields | overrides))


def _stage_dirs(cache: Path) -> list[Path]:
    folder = cache / STAGE
    return sorted(p for p in folder.iterdir() if not p.name.startswith(".")) if folder.is_dir() else []


def _ctx(cache: Path) -> SuiteContext:
    return SuiteContext(cache, HeldoutSet())


def test_local_task_scores_exports_and_caches(tiny_model: Path, tmp_path: Path, monkeypatch) -> None:
    # the YAML's data_files path is relative: it must resolve against include_path, not the cwd
    monkeypatch.chdir(tmp_path)
    assert get_suite("lm_eval").evaluate is evaluate_lm_eval
    target, cache = EvalTarget(str(tiny_model), ENGINE), tmp_path / "cache"
    metrics = evaluate_lm_eval(_cfg(), target, tmp_path / "out", _ctx(cache))

    acc = metrics["bench_tiny_mc.acc"]
    assert 0.0 <= acc["value"] <= 1.0 and acc["n"] == N_DOCS
    assert acc["judge"] == "lm-eval task metric" and acc["weak_judge"] is False
    assert acc["ci_low"] <= acc["value"] <= acc["ci_high"]
    assert acc["ci_high"] - acc["value"] == pytest.approx(1.96 * acc["stderr"], rel=1e-3)

    results = read_json(tmp_path / "out" / "lm_eval_results.json")
    assert "samples" not in results and results["results"]["bench_tiny_mc"]["acc,none"] == acc["value"]
    samples = read_jsonl(tmp_path / "out" / "samples_bench_tiny_mc.jsonl")
    assert len(samples) == N_DOCS and sum(s["acc"] for s in samples) / N_DOCS == pytest.approx(acc["value"])

    [stage] = _stage_dirs(cache)
    stamp = (stage / "stage.json").stat().st_mtime_ns
    again = evaluate_lm_eval(_cfg(), target, tmp_path / "out2", _ctx(cache))
    assert again == metrics and (tmp_path / "out2" / "samples_bench_tiny_mc.jsonl").is_file()
    assert _stage_dirs(cache) == [stage] and (stage / "stage.json").stat().st_mtime_ns == stamp, "not served from cache"


def test_adapter_is_applied_and_keyed(tiny_model: Path, tmp_path: Path) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    lora = LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model), lora).save_pretrained(tmp_path / "adapter")
    plain, tuned = (
        EvalTarget(str(tiny_model), ENGINE),
        EvalTarget(str(tiny_model), ENGINE, adapter=tmp_path / "adapter"),
    )
    assert plain.cache_key() != tuned.cache_key()

    cache = tmp_path / "cache"
    evaluate_lm_eval(_cfg(), plain, tmp_path / "plain", _ctx(cache))
    metrics = evaluate_lm_eval(_cfg(), tuned, tmp_path / "tuned", _ctx(cache))
    assert 0.0 <= metrics["bench_tiny_mc.acc"]["value"] <= 1.0 and metrics["bench_tiny_mc.acc"]["n"] == N_DOCS
    assert len(_stage_dirs(cache)) == 2
    loglik = {
        name: [s["resps"] for s in read_jsonl(tmp_path / name / "samples_bench_tiny_mc.jsonl")]
        for name in ("plain", "tuned")
    }
    assert loglik["plain"] != loglik["tuned"], "the adapter did not change the model's log-likelihoods"


def test_unknown_task_and_missing_folder_are_user_errors(tiny_model: Path, tmp_path: Path) -> None:
    target, cache = EvalTarget(str(tiny_model), ENGINE), tmp_path / "cache"
    with pytest.raises(BenchError, match="bench_no_such_task.*include_path"):
        evaluate_lm_eval(_cfg(tasks=["bench_no_such_task"]), target, tmp_path / "out", _ctx(cache))
    with pytest.raises(BenchError, match="include_path"):
        evaluate_lm_eval(_cfg(include_path=str(tmp_path / "missing")), target, tmp_path / "out", _ctx(cache))
    assert _stage_dirs(cache) == [], "a failed evaluation must not be cached"
