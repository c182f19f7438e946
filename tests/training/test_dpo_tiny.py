"""DPO training on a tiny real Llama: every LoRA matrix moves, accelerate launches, non-finite values stop it, bf16 and cached reference log-probs keep the loss."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from preference_rows import preference_rows
from safetensors.torch import load_file

from harness.core.io import read_jsonl
from harness.data.builtin import build_builtin_prompts
from harness.models.choices import resolve_train
from harness.models.resolve import load_model
from harness.training.config import TrainConfig
from harness.training.dpo import train_dpo


def test_trainer_changes_every_lora_matrix_and_logs(tiny_model: Path, tmp_path: Path) -> None:
    rows = preference_rows(8)
    cfg = resolve_train(TrainConfig(learning_rate=1e-2, batch_size=4, max_length=64), str(tiny_model))
    summary = train_dpo(str(tiny_model), rows, cfg, seed=0, out_dir=tmp_path)
    assert summary["n_pairs"] == 8 and summary["steps"] == 2
    weights = load_file(tmp_path / "adapter" / "adapter_model.safetensors")
    lora_b = {k: v for k, v in weights.items() if "lora_B" in k}
    assert lora_b, "adapter has no LoRA B matrices"
    # LoRA B starts at zero: a non-zero B means the optimiser moved it
    assert all(torch.count_nonzero(v) > 0 for v in lora_b.values())
    log = read_jsonl(tmp_path / "log.jsonl")
    losses = [r["loss"] for r in log if "loss" in r]
    assert len(losses) == 2 and abs(losses[0] - 0.6931) < 1e-3  # log(2): policy == reference at step 1
    assert losses[-1] < losses[0]
    tuned = load_model(str(tiny_model), adapter=tmp_path / "adapter")
    base = load_model(str(tiny_model))
    ids = base.tokenizer("hello", return_tensors="pt").input_ids
    with torch.no_grad():
        assert not torch.allclose(tuned.model(ids).logits, base.model(ids).logits)


@pytest.mark.slow
def test_accelerate_launch_on_two_cpu_processes_matches_one_process(tiny_model: Path, tmp_path: Path) -> None:
    """DDP over 2 gloo workers x batch 2 takes the same steps on the same pairs as 1 process x batch 4."""
    rows = preference_rows(8)
    common = dict(learning_rate=1e-2, max_length=64, precision="float32")  # fp32: bf16 sums differ with the batch split
    single = train_dpo(
        str(tiny_model),
        rows,
        resolve_train(TrainConfig(batch_size=4, **common), str(tiny_model)),
        seed=0,
        out_dir=tmp_path / "one",
    )
    config = Path(__file__).resolve().parents[2] / "experiments" / "accelerate" / "ddp_cpu.yaml"
    dist = train_dpo(
        str(tiny_model),
        rows,
        resolve_train(TrainConfig(batch_size=2, accelerate_config=str(config), **common), str(tiny_model)),
        seed=0,
        out_dir=tmp_path / "two",
    )
    assert dist["processes"] == 2 and single["processes"] == 1
    assert dist["steps"] == single["steps"] == 2
    assert not (tmp_path / "two" / "launch").exists(), "the launch folder (rows, spec) is removed after success"
    one = load_file(tmp_path / "one" / "adapter" / "adapter_model.safetensors")
    two = load_file(tmp_path / "two" / "adapter" / "adapter_model.safetensors")
    assert one.keys() == two.keys()
    for key in one:
        assert torch.allclose(one[key], two[key], atol=1e-5), key
    losses = [r["loss"] for r in read_jsonl(tmp_path / "two" / "log.jsonl") if "loss" in r]
    assert len(losses) == 2 and abs(losses[0] - 0.6931) < 1e-3


def test_accelerate_launch_failure_is_one_clear_error(tiny_model: Path, tmp_path: Path) -> None:
    from harness.core.errors import BenchError

    config = Path(__file__).resolve().parents[2] / "experiments" / "accelerate" / "ddp_cpu.yaml"
    cfg = resolve_train(
        TrainConfig(batch_size=2, max_length=64, accelerate_config=str(config), num_processes=1), str(tiny_model)
    )
    with pytest.raises(BenchError, match="accelerate launch.*failed.*exit code"):
        train_dpo(str(tmp_path / "no-such-model"), preference_rows(2), cfg, seed=0, out_dir=tmp_path / "out")


@pytest.fixture(scope="module")
def nan_model(tiny_model: Path, tmp_path_factory) -> Path:
    """The tiny model with one NaN weight: every activation after layer 0 is NaN."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    with torch.no_grad():
        model.model.layers[0].mlp.down_proj.weight[0, 0] = float("nan")
    folder = tmp_path_factory.mktemp("nan-llama")
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(folder)
    return folder


def test_nonfinite_gradients_stop_training_without_an_adapter(nan_model: Path, tmp_path: Path) -> None:
    from harness.core.errors import BenchError

    cfg = resolve_train(TrainConfig(learning_rate=1e-2, batch_size=4, max_length=64), str(nan_model))
    with pytest.raises(
        BenchError, match=r"train: NaN or infinite gradient at step 1 .*no adapter saved.*nonfinite=skip_step"
    ):
        train_dpo(str(nan_model), preference_rows(8), cfg, seed=0, out_dir=tmp_path / "error")
    assert not (tmp_path / "error" / "adapter").exists()
    # configured to skip: both steps are dropped and counted, and the adapter is left as initialised (B = 0)
    summary = train_dpo(
        str(nan_model),
        preference_rows(8),
        cfg.model_copy(update={"nonfinite": "skip_step"}),
        seed=0,
        out_dir=tmp_path / "skip",
    )
    assert summary["skipped_nonfinite_steps"] == [1, 2]
    weights = load_file(tmp_path / "skip" / "adapter" / "adapter_model.safetensors")
    assert all(torch.count_nonzero(v) == 0 for k, v in weights.items() if "lora_B" in k)


def test_nonfinite_gradient_features_are_an_error_naming_the_response(nan_model: Path, tmp_path: Path) -> None:
    from harness.core.errors import BenchError
    from harness.core.records import Pair, Response, pair_id, response_id
    from harness.training.config import FeaturesConfig
    from harness.training.gradient_features import compute_gradient_features

    prompts, _ = build_builtin_prompts(seed=0, n_train=2)
    responses, pairs = {}, []
    for p in prompts:
        a = Response(response_id(p.id, "yes", "m", 0), p.id, "Yes, here it is.", "m")
        b = Response(response_id(p.id, "no", "m", 1), p.id, "No.", "m")
        responses.update({a.id: a, b.id: b})
        pairs.append(Pair(pair_id(a.id, b.id), p.id, a.id, b.id, 1.0))
    with pytest.raises(BenchError, match=r"features: the gradient of 4 response\(s\) is NaN or infinite \(first: "):
        compute_gradient_features(
            str(nan_model),
            {p.id: p for p in prompts},
            responses,
            pairs,
            resolve_train(TrainConfig(max_length=64), str(nan_model)),
            FeaturesConfig(dim=64, batch_size=4),
            0,
            tmp_path,
        )
    assert not (tmp_path / "features.npz").exists()


def _losses(out: Path) -> list[float]:
    return [r["loss"] for r in read_jsonl(out / "log.jsonl") if "loss" in r]


def test_completion_only_scoring_and_bf16_keep_the_fp32_loss_curve(
    tiny_model: Path, tmp_path: Path, monkeypatch
) -> None:
    """The CPU speed-ups of issue 17 change no result beyond rounding: scoring only completion positions gives TRL's
    loss exactly, and bf16 autocast starts at log 2 and follows the fp32 curve."""
    import contextlib
    import math

    from harness.training import dpo as trainer

    rows = preference_rows(8)
    common = dict(learning_rate=1e-2, max_length=64, batch_size=2)
    train_dpo(
        str(tiny_model),
        rows,
        resolve_train(TrainConfig(precision="float32", **common), str(tiny_model)),
        seed=0,
        out_dir=tmp_path / "completion",
    )
    train_dpo(
        str(tiny_model),
        rows,
        resolve_train(TrainConfig(precision="bfloat16", **common), str(tiny_model)),
        seed=0,
        out_dir=tmp_path / "bf16",
    )
    monkeypatch.setattr(
        trainer, "_completion_positions_only", contextlib.nullcontext
    )  # TRL's own CPU path: every position
    train_dpo(
        str(tiny_model),
        rows,
        resolve_train(TrainConfig(precision="float32", **common), str(tiny_model)),
        seed=0,
        out_dir=tmp_path / "every",
    )
    every, completion, bf16 = (_losses(tmp_path / name) for name in ("every", "completion", "bf16"))
    assert len(every) == len(completion) == len(bf16) == 4
    assert max(abs(a - b) for a, b in zip(every, completion)) < 1e-5
    assert abs(bf16[0] - math.log(2)) < 1e-3 and max(abs(a - b) for a, b in zip(every, bf16)) < 0.02


def test_cached_reference_logps_give_trl_s_loss_and_are_computed_once(tiny_model: Path, tmp_path: Path) -> None:
    """Reference log-probs read from the per-response store give the loss TRL computes with a reference forward
    pass in every step (same batches), and a second run on the same responses computes none of them."""
    from harness.training.reference_logps import ReferenceStore, with_reference_logps

    rows = preference_rows(8)
    cfg = resolve_train(
        TrainConfig(learning_rate=1e-2, max_length=64, batch_size=2, precision="float32", batching="random"),
        str(tiny_model),
    )
    cached, reuse = with_reference_logps(rows, str(tiny_model), "tiny", cfg, tmp_path / "cache")
    assert reuse == {"computed": 16, "reused": 0} and all(isinstance(r["ref_chosen_logps"], float) for r in cached)
    assert with_reference_logps(rows, str(tiny_model), "tiny", cfg, tmp_path / "cache")[1] == {
        "computed": 0,
        "reused": 16,
    }
    assert len(ReferenceStore(tmp_path / "cache", "tiny", cfg).known) == 16
    other = cfg.model_copy(update={"max_length": 48})  # another tokenisation: another store
    assert len(ReferenceStore(tmp_path / "cache", "tiny", other).known) == 0
    train_dpo(str(tiny_model), cached, cfg, seed=0, out_dir=tmp_path / "cached")
    train_dpo(str(tiny_model), rows, cfg, seed=0, out_dir=tmp_path / "per-step")
    per_step, from_store = _losses(tmp_path / "per-step"), _losses(tmp_path / "cached")
    assert len(per_step) == len(from_store) == 4
    assert max(abs(a - b) for a, b in zip(per_step, from_store)) < 1e-4


def test_length_grouped_batches_pad_less_and_keep_every_pair(tiny_model: Path) -> None:
    """The length-grouped sampler gives every pair once per epoch, in batches of similar length."""
    import torch as _torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from trl import DPOConfig

    from harness.models.resolve import load_tokenizer
    from harness.training import dpo as trainer

    rows = [
        {**r, "chosen": [{"role": "assistant", "content": "yes " * (1 + (7 * i) % 23)}]}
        for i, r in enumerate(preference_rows(24))
    ]
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=_torch.float32)
    args = DPOConfig(
        output_dir="/tmp/unused", per_device_train_batch_size=4, use_cpu=True, report_to="none", max_length=128
    )
    padded = {}
    for batching in ("random", "length_grouped"):
        _torch.manual_seed(0)
        dpo = trainer._trainer_class(TrainConfig(batching=batching))(
            model=model,
            args=args,
            train_dataset=Dataset.from_list(rows),
            processing_class=load_tokenizer(str(tiny_model)),
        )
        assert sorted(dpo._get_train_sampler()) == list(range(24))  # every pair once per epoch
        padded[batching] = sum(int(batch["input_ids"].numel()) for batch in dpo.get_train_dataloader())
    assert padded["length_grouped"] < padded["random"]


def test_trainers_refuse_a_train_section_left_at_auto(tiny_model: Path, tmp_path: Path) -> None:
    """The run's keys record the resolved precision, attention and LoRA targets; a trainer given `auto` would decide
    again, apart from them, so it refuses before loading anything."""
    from harness.training.gradient_features import load_lora_model

    with pytest.raises(ValueError, match="resolve_train.*precision, attention"):
        train_dpo(
            str(tiny_model), preference_rows(2), TrainConfig(target_modules=["q_proj"]), seed=0, out_dir=tmp_path / "t"
        )
    with pytest.raises(ValueError, match="target_modules, precision, attention still read auto"):
        load_lora_model(str(tiny_model), TrainConfig(), seed=0)
    assert not (tmp_path / "t").exists()
    assert resolve_train(TrainConfig(), str(tiny_model)).require_resolved("test").precision in ("float32", "bfloat16")
