"""Generation back ends: which engine runs, and the outputs contract both must honour."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from harness.core.errors import BenchError
from harness.generation.generate import generate, generate_with, to_generation
from harness.models.resolve import engine_key, load_model, load_tokenizer, resolve_backend

REPO = Path(__file__).resolve().parents[2]
VLLM_USABLE = importlib.util.find_spec("vllm") is not None and torch.cuda.is_available()


@pytest.mark.skipif(VLLM_USABLE, reason="this machine can run vLLM")
def test_auto_falls_back_to_transformers_and_vllm_is_refused_with_the_reason() -> None:
    assert resolve_backend("auto") == "transformers"
    assert resolve_backend("transformers") == "transformers"
    with pytest.raises(BenchError, match=r"generation.backend = vllm.*(vllm package|CUDA GPU).*auto or transformers"):
        resolve_backend("vllm")


def test_outputs_contract_cuts_at_the_first_eos_and_flags_truncation(tiny_model: Path) -> None:
    tokenizer = load_tokenizer(str(tiny_model))
    words = tokenizer("Hello there, world", add_special_tokens=False).input_ids
    eos = {tokenizer.eos_token_id}
    ended = to_generation(words + [tokenizer.eos_token_id] + words, eos, tokenizer)
    assert (ended.text, ended.truncated, ended.n_tokens) == ("Hello there, world", False, len(words))
    cut = to_generation(words, eos, tokenizer)
    assert (cut.text, cut.truncated, cut.n_tokens) == ("Hello there, world", True, len(words))


def test_generate_with_transformers_is_the_plain_generator(tiny_model: Path) -> None:
    convs = [[{"role": "user", "content": f"Say something about {w}."}] for w in ("cats", "rain", "tea")]
    kw = dict(max_new_tokens=5, batch_size=2, do_sample=True, temperature=1.0, top_p=1.0, seed=3)
    engine = engine_key("auto", "auto")
    via_backend = generate_with(engine["backend"], str(tiny_model), None, convs, dtype=engine["dtype"], **kw)
    direct = generate(load_model(str(tiny_model)), convs, **kw)
    assert [(g.text, g.truncated, g.n_tokens) for g in via_backend] == [
        (g.text, g.truncated, g.n_tokens) for g in direct
    ]
    # the back end and dtype arrive resolved (the keys record them): an `auto` here would decide apart from the key
    with pytest.raises(ValueError, match="resolved"):
        generate_with("auto", str(tiny_model), None, convs, dtype=engine["dtype"], **kw)


@pytest.mark.skipif(VLLM_USABLE, reason="this machine can run vLLM")
def test_bench_run_with_an_unavailable_backend_stops_before_sampling(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness.cli",
            "run",
            "--config",
            str(REPO / "experiments" / "smoke.yaml"),
            "--set",
            "generation.backend=vllm",
            "--set",
            f"cache_dir={tmp_path / 'cache'}",
            "--out",
            str(tmp_path / "run"),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert proc.returncode != 0
    assert "generation.backend = vllm" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "cache" / "pool").exists()


def test_the_resolved_dtype_is_part_of_every_generating_key(tmp_path: Path) -> None:
    """bf16 and fp32 samples differ, so a pool, an evaluation or a suite generated in one is never served for the other."""
    from harness.experiment import ExperimentConfig
    from harness.models.resolve import engine_key, resolve_dtype
    from harness.stages import evaluate, preference_pool, samples
    from harness.suites.base import EvalTarget

    assert resolve_dtype("float32") == "float32" and resolve_dtype("auto") in ("float32", "bfloat16")
    assert engine_key("transformers", "float32") != engine_key("transformers", "bfloat16")
    configs = [ExperimentConfig.model_validate({"generation": {"dtype": d}}) for d in ("float32", "bfloat16")]
    from harness.models.choices import resolve

    for inputs in (
        lambda r: samples.inputs(r, samples.NAME, "p", r.config.pool, 0),
        evaluate.inputs,
        preference_pool.samples_inputs,
    ):
        fp32, bf16 = (inputs(resolve(c)) for c in configs)
        assert fp32["dtype"] == "float32" and bf16["dtype"] == "bfloat16" and fp32 != bf16
    assert (
        EvalTarget("m", engine_key("transformers", "float32")).cache_key()
        != EvalTarget("m", engine_key("transformers", "bfloat16")).cache_key()
    )
