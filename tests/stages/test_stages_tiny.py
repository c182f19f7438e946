"""Generation, pool, trainer and metrics on a tiny real Llama (random weights, real tokenizer)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from harness.core.config import EvaluateConfig, GenerationConfig, PoolConfig, PromptsConfig, TrainConfig
from harness.core.io import read_jsonl
from harness.data.builtin import build_builtin_prompts
from harness.evaluation.heldout import compute_metrics
from harness.generation.generate import generate
from harness.models.resolve import load_model
from harness.stages.candidates import build_pool, read_pool
from harness.training.dpo import train_dpo


def test_generation_is_seeded_batched_and_flags_truncation(tiny_model: Path) -> None:
    loaded = load_model(str(tiny_model))
    convs = [[{"role": "user", "content": f"Tell me about topic {i}."}] for i in range(5)]
    kw = dict(max_new_tokens=6, batch_size=2, do_sample=True, temperature=1.0, top_p=1.0)
    a = generate(loaded, convs, seed=1, **kw)
    b = generate(loaded, convs, seed=1, **kw)
    c = generate(loaded, convs, seed=2, **kw)
    assert [g.text for g in a] == [g.text for g in b]
    assert [g.text for g in a] != [g.text for g in c]
    assert len(a) == 5 and all(g.n_tokens <= 6 for g in a)
    # a random model rarely emits <|im_end|> within 6 tokens: those outputs are truncated
    assert any(g.truncated for g in a)
    greedy1 = generate(loaded, convs, max_new_tokens=6, batch_size=5, do_sample=False)
    greedy2 = generate(loaded, convs, max_new_tokens=6, batch_size=1, do_sample=False)
    assert [g.text for g in greedy1] == [g.text for g in greedy2], "padding must not change greedy outputs"


def test_pool_stage_writes_judged_responses_and_valid_pairs(tiny_model: Path, tmp_path: Path) -> None:
    prompts, _ = build_builtin_prompts(seed=0, n_train=4)
    cfg = PoolConfig(k=3, max_new_tokens=8, batch_size=12, drop_truncated=False)
    stats = build_pool(str(tiny_model), prompts, [], cfg, seed=0, out=tmp_path, generation=GenerationConfig(), cache_dir=tmp_path / "cache")
    assert stats["n_responses"] == 12
    scores = read_jsonl(tmp_path / "scores.jsonl")
    assert len(scores) == 12 and all(0.0 <= s["value"] <= 1.0 for s in scores)
    pool = read_pool(tmp_path, prompts)
    for pair in pool.pairs:
        assert pool.scores[pair.chosen_id] > pool.scores[pair.rejected_id]
        assert pool.responses[pair.chosen_id].prompt_id == pair.prompt_id


def _rows(n: int) -> list[dict]:
    return [
        {
            "prompt": [{"role": "user", "content": f"Describe item {i}."}],
            "chosen": [{"role": "assistant", "content": "A short plain answer."}],
            "rejected": [{"role": "assistant", "content": "A long, rambling, comma-filled answer, with, commas" + "!" * i}],
        }
        for i in range(n)
    ]


def test_trainer_changes_every_lora_matrix_and_logs(tiny_model: Path, tmp_path: Path) -> None:
    rows = _rows(8)
    cfg = TrainConfig(learning_rate=1e-2, batch_size=4, max_length=64)
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
    rows = _rows(8)
    common = dict(learning_rate=1e-2, max_length=64, precision="float32")  # fp32: bf16 sums differ with the batch split
    single = train_dpo(str(tiny_model), rows, TrainConfig(batch_size=4, **common), seed=0, out_dir=tmp_path / "one")
    config = Path(__file__).resolve().parents[2] / "experiments" / "accelerate" / "ddp_cpu.yaml"
    dist = train_dpo(str(tiny_model), rows, TrainConfig(batch_size=2, accelerate_config=str(config), **common), seed=0, out_dir=tmp_path / "two")
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
    from harness.core.config import BenchError

    config = Path(__file__).resolve().parents[2] / "experiments" / "accelerate" / "ddp_cpu.yaml"
    cfg = TrainConfig(batch_size=2, max_length=64, accelerate_config=str(config), num_processes=1)
    with pytest.raises(BenchError, match="accelerate launch.*failed.*exit code"):
        train_dpo(str(tmp_path / "no-such-model"), _rows(2), cfg, seed=0, out_dir=tmp_path / "out")


def _row(pid: str, strict: list[bool], output: str = "x y z") -> dict:
    return {"prompt_id": pid, "output": output, "strict": strict, "loose": strict}


def test_metrics_are_paired_with_cis() -> None:
    base = [_row("a", [False]), _row("b", [True, False]), _row("c", [True]), _row("d", [False])]
    tuned = [_row("a", [True]), _row("b", [True, True]), _row("c", [True]), _row("d", [False])]
    m = compute_metrics(base, tuned, EvaluateConfig(bootstrap=200))["ifeval_heldout"]
    assert m["base.prompt_strict_acc"]["value"] == pytest.approx(0.25)
    assert m["tuned.prompt_strict_acc"]["value"] == pytest.approx(0.75)
    assert m["base.instruction_strict_acc"]["value"] == pytest.approx(2 / 5)
    assert m["paired_diff.prompt_strict_acc"]["value"] == pytest.approx(0.5)
    assert m["win_rate_vs_base"]["value"] == pytest.approx((1 + 1 + 0.5 + 0.5) / 4)
    for rec in m.values():
        assert rec["ci_low"] <= rec["value"] <= rec["ci_high"] and rec["n"] > 0 and rec["judge"]
    with pytest.raises(AssertionError):
        compute_metrics(base, list(reversed(tuned)), EvaluateConfig(bootstrap=200))


def test_sampled_reward_is_averaged_per_prompt_and_paired() -> None:
    base = [_row("a", [False]), _row("b", [True, False])]
    tuned = [_row("a", [True]), _row("b", [True, True])]
    base[0]["sampled_strict"], tuned[0]["sampled_strict"] = [[False], [True], [False]], [[True], [True], [False]]
    base[1]["sampled_strict"], tuned[1]["sampled_strict"] = [[True, False], [False, False], [True, True]], [[True, True]] * 3
    m = compute_metrics(base, tuned, EvaluateConfig(bootstrap=200))["ifeval_heldout"]
    assert m["base.mean_verifiable_reward"]["value"] == pytest.approx(np.mean([1 / 3, np.mean([0.5, 0.0, 1.0])]))
    assert m["tuned.mean_verifiable_reward"]["value"] == pytest.approx(np.mean([2 / 3, 1.0]))
    assert m["paired_diff.mean_verifiable_reward"]["value"] == pytest.approx(np.mean([1 / 3, 0.5]))
    assert m["tuned.mean_verifiable_reward"]["samples_per_prompt"] == 3
    without_samples = compute_metrics([_row("a", [False])], [_row("a", [True])], EvaluateConfig(bootstrap=200))
    assert "base.mean_verifiable_reward" not in without_samples["ifeval_heldout"]


def test_sampled_evaluation_draws_seeded_samples_per_prompt(tiny_model: Path, tmp_path: Path) -> None:
    from harness.data.heldout import HeldoutSet
    from harness.evaluation.heldout import evaluate_target, read_outputs
    from harness.suites import EvalTarget, SuiteContext

    cfg = EvaluateConfig(n_prompts=3, max_new_tokens=8, batch_size=8, samples=2)
    heldout = HeldoutSet.of(cfg, PromptsConfig())
    for name in ("a", "b"):  # separate caches: each draws its samples anew
        (tmp_path / name).mkdir()
        evaluate_target(EvalTarget(str(tiny_model)), cfg, SuiteContext(tmp_path / f"cache-{name}", heldout), tmp_path / name)
    rows_a, rows_b = read_outputs(tmp_path / "a"), read_outputs(tmp_path / "b")
    assert len(rows_a) == 3 and all(len(r["sampled_strict"]) == 2 for r in rows_a)
    assert [r["prompt_id"] for r in rows_a] == [p.id for p in heldout.prompts()]
    assert rows_a == rows_b  # seeded: the base model draws the same samples every time
    assert compute_metrics(rows_a, rows_b, cfg)["ifeval_heldout"]["paired_diff.mean_verifiable_reward"]["value"] == 0.0


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
    from harness.core.config import BenchError

    cfg = TrainConfig(learning_rate=1e-2, batch_size=4, max_length=64)
    with pytest.raises(BenchError, match=r"train: NaN or infinite gradient at step 1 .*no adapter saved.*nonfinite=skip_step"):
        train_dpo(str(nan_model), _rows(8), cfg, seed=0, out_dir=tmp_path / "error")
    assert not (tmp_path / "error" / "adapter").exists()
    # configured to skip: both steps are dropped and counted, and the adapter is left as initialised (B = 0)
    summary = train_dpo(str(nan_model), _rows(8), cfg.model_copy(update={"nonfinite": "skip_step"}), seed=0, out_dir=tmp_path / "skip")
    assert summary["skipped_nonfinite_steps"] == [1, 2]
    weights = load_file(tmp_path / "skip" / "adapter" / "adapter_model.safetensors")
    assert all(torch.count_nonzero(v) == 0 for k, v in weights.items() if "lora_B" in k)


def test_nonfinite_gradient_features_are_an_error_naming_the_response(nan_model: Path, tmp_path: Path) -> None:
    from harness.core.config import BenchError, FeaturesConfig
    from harness.core.records import Pair, Response, pair_id, response_id
    from harness.training.gradients import compute_gradient_features

    prompts, _ = build_builtin_prompts(seed=0, n_train=2)
    responses, pairs = {}, []
    for p in prompts:
        a = Response(response_id(p.id, "yes", "m", 0), p.id, "Yes, here it is.", "m")
        b = Response(response_id(p.id, "no", "m", 1), p.id, "No.", "m")
        responses.update({a.id: a, b.id: b})
        pairs.append(Pair(pair_id(a.id, b.id), p.id, a.id, b.id, 1.0))
    with pytest.raises(BenchError, match=r"features: the gradient of 4 response\(s\) is NaN or infinite \(first: "):
        compute_gradient_features(str(nan_model), {p.id: p for p in prompts}, responses, pairs, TrainConfig(max_length=64),
                                  FeaturesConfig(dim=64, batch_size=4), 0, tmp_path)
    assert not (tmp_path / "features.npz").exists()


def test_heldout_preference_accuracy_sees_what_training_taught(tiny_model: Path, tmp_path: Path) -> None:
    from harness.core.records import Pair, Prompt, Response, pair_id, response_id
    from harness.evaluation.preference import preference_accuracy, reference_logps, reserve_heldout
    from strategies.base import CandidatePool

    prompts, responses, pairs = {}, {}, []
    for i in range(20):
        p = Prompt.make([{"role": "user", "content": f"Describe thing {i}."}], "test")
        good = Response(response_id(p.id, "g", "m", 0), p.id, "A short plain answer.", "m")
        bad = Response(response_id(p.id, "b", "m", 1), p.id, "A long, rambling, comma-filled answer, with, commas" + "!" * i, "m")
        prompts[p.id] = p
        responses.update({good.id: good, bad.id: bad})
        pairs.append(Pair(pair_id(good.id, bad.id), p.id, good.id, bad.id, 1.0))
    pool = CandidatePool(prompts, responses, {}, tuple(pairs))
    selectable, heldout = reserve_heldout(pool, 0.25, 64, seed=7)
    assert len(heldout) == 5 and len(selectable.pairs) == 15
    assert not {p.prompt_id for p in heldout} & {p.prompt_id for p in selectable.pairs}
    assert reserve_heldout(pool, 0.25, 64, seed=7)[1] == heldout and reserve_heldout(pool, 0.0, 64, seed=7) == (pool, [])

    rows = [{"prompt": prompts[p.prompt_id].messages, "chosen": [{"role": "assistant", "content": responses[p.chosen_id].text}],
             "rejected": [{"role": "assistant", "content": responses[p.rejected_id].text}]} for p in selectable.pairs[:8]]
    cfg = TrainConfig(learning_rate=1e-2, batch_size=4, max_length=64)
    train_dpo(str(tiny_model), rows, cfg, seed=0, out_dir=tmp_path / "train")
    reference_logps(str(tiny_model), heldout, pool, cfg, tmp_path)
    reference = json.loads((tmp_path / "reference_logps.json").read_text())
    assert set(reference) == {r for p in heldout for r in (p.chosen_id, p.rejected_id)}
    metrics = preference_accuracy(str(tiny_model), tmp_path / "train" / "adapter", heldout, pool, reference, cfg, tmp_path, n_boot=200)
    acc, margin = metrics["tuned.preference_accuracy"], metrics["tuned.implicit_reward_margin"]
    assert acc["n"] == 5 and acc["value"] == 1.0 and margin["value"] > 0
    assert len(read_jsonl(tmp_path / "heldout_preferences.jsonl")) == 5


@pytest.mark.skipif(not (Path(__file__).resolve().parents[3] / "shared/data/hh_rlhf").is_dir(), reason="shared HH-RLHF data not present")
def test_heldout_pairs_from_a_preference_source_leave_out_training_prompts() -> None:
    from harness.core.config import PreferenceConfig, PromptsConfig
    from harness.evaluation.preference import heldout_from_source
    from harness.stages.prompts import load_training_prompts

    source = str(Path(__file__).resolve().parents[3] / "shared/data/hh_rlhf/harmless-base-test.jsonl.gz")
    train, native, _ = load_training_prompts(PromptsConfig(source=source, n_train=40), seed=0)
    cfg = PreferenceConfig(source=source, pairs=300)
    pool, pairs = heldout_from_source(cfg, 3, {p.id for p in train})
    assert len(pairs) == 300 and all(p.native for p in pairs)
    assert not {p.prompt_id for p in pairs} & {p.id for p in train}
    for pair in pairs[:20]:  # the data set's own labels: chosen is the source's chosen reply
        assert pool.responses[pair.chosen_id].text != pool.responses[pair.rejected_id].text
        assert pair.prompt_id in pool.prompts
    assert [p.id for p in heldout_from_source(cfg, 3, {p.id for p in train})[1]] == [p.id for p in pairs]  # seeded
    with pytest.raises(ValueError, match="not both"):
        PreferenceConfig(source=source, k=4)


def test_pool_tops_up_prompts_whose_samples_all_tie(tiny_model: Path, tmp_path: Path) -> None:
    """The random tiny model fails every constraint: every prompt ties, so each is sampled up to k_max."""
    from harness.stages.candidates import build_pool, read_pool

    prompts, _ = build_builtin_prompts(seed=0, n_train=3, n_eval=0)
    cfg = PoolConfig(k=2, k_max=5, max_new_tokens=8, batch_size=8, drop_truncated=False)
    (tmp_path / "a").mkdir()
    summary = build_pool(str(tiny_model), prompts, [], cfg, 0, tmp_path / "a", generation=GenerationConfig(), cache_dir=tmp_path / "cache")
    pool = read_pool(tmp_path / "a", prompts)
    assert summary["n_pairs"] == 0 and summary["n_prompts_topped_up"] == 3 and summary["n_topped_up_that_paired"] == 0
    per_prompt = {p.id: sum(r.prompt_id == p.id for r in pool.responses.values()) for p in prompts}
    assert per_prompt == {p.id: 5 for p in prompts}  # 2, then +2, then +1
    assert len(read_jsonl(tmp_path / "a" / "scores.jsonl")) == 15
    (tmp_path / "b").mkdir()
    plain = build_pool(str(tiny_model), prompts, [], cfg.model_copy(update={"k_max": None}), 0, tmp_path / "b",
                       generation=GenerationConfig(), cache_dir=tmp_path / "cache")
    assert plain["n_responses"] == 6 and plain["n_prompts_topped_up"] == 0
    first_round = [r for r in read_jsonl(tmp_path / "a" / "responses.jsonl")][:6]
    assert first_round == read_jsonl(tmp_path / "b" / "responses.jsonl")  # the first round is the plain pool
    with pytest.raises(ValueError, match="must be larger than pool.k"):
        PoolConfig(k=4, k_max=4)


def _losses(out: Path) -> list[float]:
    return [r["loss"] for r in read_jsonl(out / "log.jsonl") if "loss" in r]


def test_completion_only_scoring_and_bf16_keep_the_fp32_loss_curve(tiny_model: Path, tmp_path: Path, monkeypatch) -> None:
    """The CPU speed-ups of issue 17 change no result beyond rounding: scoring only completion positions gives TRL's
    loss exactly, and bf16 autocast starts at log 2 and follows the fp32 curve."""
    import contextlib
    import math

    from harness import trainer

    rows = _rows(8)
    common = dict(learning_rate=1e-2, max_length=64, batch_size=2)
    train_dpo(str(tiny_model), rows, TrainConfig(precision="float32", **common), seed=0, out_dir=tmp_path / "completion")
    train_dpo(str(tiny_model), rows, TrainConfig(precision="bfloat16", **common), seed=0, out_dir=tmp_path / "bf16")
    monkeypatch.setattr(trainer, "_completion_positions_only", contextlib.nullcontext)  # TRL's own CPU path: every position
    train_dpo(str(tiny_model), rows, TrainConfig(precision="float32", **common), seed=0, out_dir=tmp_path / "every")
    every, completion, bf16 = (_losses(tmp_path / name) for name in ("every", "completion", "bf16"))
    assert len(every) == len(completion) == len(bf16) == 4
    assert max(abs(a - b) for a, b in zip(every, completion)) < 1e-5
    assert abs(bf16[0] - math.log(2)) < 1e-3 and max(abs(a - b) for a, b in zip(every, bf16)) < 0.02


def test_cached_reference_logps_give_trl_s_loss_and_are_computed_once(tiny_model: Path, tmp_path: Path) -> None:
    """Reference log-probs read from the per-response store give the loss TRL computes with a reference forward
    pass in every step (same batches), and a second run on the same responses computes none of them."""
    from harness.training.reference_logps import ReferenceStore, with_reference_logps

    rows = _rows(8)
    cfg = TrainConfig(learning_rate=1e-2, max_length=64, batch_size=2, precision="float32", batching="random")
    cached, reuse = with_reference_logps(rows, str(tiny_model), "tiny", cfg, tmp_path / "cache")
    assert reuse == {"computed": 16, "reused": 0} and all(isinstance(r["ref_chosen_logps"], float) for r in cached)
    assert with_reference_logps(rows, str(tiny_model), "tiny", cfg, tmp_path / "cache")[1] == {"computed": 0, "reused": 16}
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

    from harness import trainer
    from harness.models.resolve import load_tokenizer

    rows = [{**r, "chosen": [{"role": "assistant", "content": "yes " * (1 + (7 * i) % 23)}]} for i, r in enumerate(_rows(24))]
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=_torch.float32)
    args = DPOConfig(output_dir="/tmp/unused", per_device_train_batch_size=4, use_cpu=True, report_to="none", max_length=128)
    padded = {}
    for batching in ("random", "length_grouped"):
        _torch.manual_seed(0)
        dpo = trainer._trainer_class(TrainConfig(batching=batching))(model=model, args=args, train_dataset=Dataset.from_list(rows),
                                                                    processing_class=load_tokenizer(str(tiny_model)))
        assert sorted(dpo._get_train_sampler()) == list(range(24))  # every pair once per epoch
        padded[batching] = sum(int(batch["input_ids"].numel()) for batch in dpo.get_train_dataloader())
    assert padded["length_grouped"] < padded["random"]


def test_packed_linears_decode_exactly_as_plain_ones(tiny_model: Path) -> None:
    """oneDNN-packed bf16 weights change no token: greedy outputs with and without packing are identical."""
    import contextlib

    from harness import decoding

    loaded = load_model(str(tiny_model), dtype="bfloat16")
    with decoding.packed_linears(loaded.model, 8) as packed:
        assert packed == sum(isinstance(m, torch.nn.Linear) for m in loaded.model.modules())
    convs = [[{"role": "user", "content": f"Tell me about {w}."}] for w in ("cats", "rain", "tea", "the sea", "x")]
    settings = dict(max_new_tokens=12, batch_size=3, do_sample=False)
    with_packing = generate(loaded, convs, **settings)
    original = decoding.packed_linears
    decoding.packed_linears = lambda model, rows: contextlib.nullcontext(0)
    try:
        without = generate(loaded, convs, **settings)
    finally:
        decoding.packed_linears = original
    assert [g.text for g in with_packing] == [g.text for g in without]
    assert all("forward" not in vars(m) for m in loaded.model.modules())  # every layer got its own forward back


def test_the_lm_head_gets_contiguous_inputs(tiny_model: Path) -> None:
    """`logits_to_keep` hands the head a strided slice; the hook load_model adds makes it contiguous, values unchanged."""
    loaded = load_model(str(tiny_model))
    head = loaded.model.get_output_embeddings()
    seen = []
    head.register_forward_pre_hook(lambda module, args: seen.append(args[0].is_contiguous()))
    ids = torch.tensor([[1, 2, 3, 4, 5, 6], [6, 5, 4, 3, 2, 1]])  # two rows: the last two positions are a strided slice
    kept = loaded.model(input_ids=ids, logits_to_keep=2).logits
    full = loaded.model(input_ids=ids).logits[:, -2:]
    assert seen == [True, True] and torch.allclose(kept, full, atol=1e-6)
