"""Gradient features on the tiny real Llama: the DPO algebra, batching, projections, the stage.

The reference computations here are deliberately naive (one unpadded sequence, full logits, a
real DPO loss with a reference pass, plain `autograd.grad`), so that they share no code path
with the batched hook implementation they check.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from harness.core.records import Pair, Prompt, Response, pair_id, response_id
from harness.training.config import FeaturesConfig, TrainConfig
from harness.training.dpo import lora_config
from harness.training.gradient_features import (
    CountSketch,
    GaussianProjection,
    LoraGradients,
    TokenizedResponse,
    compute_gradient_features,
    load_gradient_features,
    load_lora_model,
    make_projection,
    normalise,
    tokenize_response,
)

BETA = 0.1
# fp32: the algebra is checked to 1e-4; what bf16 changes is checked on its own (test_bf16_features_point_where_fp32_ones_do)
TRAIN = TrainConfig(
    max_length=96,
    beta=BETA,
    target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
    precision="float32",
    attention="eager",
)

# Responses of very different lengths, so a batch pads; the last one is cut at max_length.
TEXTS = [
    "Yes.",
    "A short, plain answer with a few words.",
    "Here is a longer answer: first, we list the steps; second, we explain each one in turn.",
    "Sure! " + "This sentence repeats to run past the maximum length. " * 12,
]


def _pool() -> tuple[dict[str, Prompt], dict[str, Response], list[Pair]]:
    """Two prompts with every response text each; pairs (earlier text, later text)."""
    prompts = [
        Prompt.make([{"role": "user", "content": "Describe a quiet morning."}], source="test"),
        Prompt.make([{"role": "user", "content": "List three uses of a paperclip, in detail please."}], source="test"),
    ]
    responses, pairs = {}, []
    for prompt in prompts:
        ids = []
        for n, text in enumerate(TEXTS):
            r = Response(response_id(prompt.id, text, "test", n), prompt.id, text, "test")
            responses[r.id] = r
            ids.append(r.id)
        for i in range(len(ids)):
            for j in range(i + 1, len(ids)):
                pairs.append(Pair(pair_id(ids[i], ids[j]), prompt.id, ids[i], ids[j], 1.0))
    return {p.id: p for p in prompts}, responses, pairs


def _tokenized(tokenizer) -> tuple[dict[str, TokenizedResponse], list[Pair]]:
    prompts, responses, pairs = _pool()
    items = {
        rid: tokenize_response(tokenizer, rid, prompts[r.prompt_id].messages, r.text, TRAIN.max_length)
        for rid, r in responses.items()
    }
    return items, pairs


def _naive_logp(model, item: TokenizedResponse) -> torch.Tensor:
    ids = torch.tensor([item.input_ids])
    logits = model(input_ids=ids).logits[0, :-1].float()
    token_logps = torch.log_softmax(logits, -1).gather(-1, ids[0, 1:, None])[:, 0]
    return token_logps[item.start - 1 :].sum()


def _direct_dpo_gradient(
    model, params: list[torch.Tensor], chosen: TokenizedResponse, rejected: TokenizedResponse
) -> tuple[torch.Tensor, torch.Tensor]:
    """(flat ∇ of the real DPO loss w.r.t. `params`, the margin), reference = adapter disabled."""
    with torch.no_grad(), model.disable_adapter():
        ref_c, ref_r = _naive_logp(model, chosen), _naive_logp(model, rejected)
    margin = (_naive_logp(model, chosen) - ref_c) - (_naive_logp(model, rejected) - ref_r)
    loss = -F.logsigmoid(BETA * margin)
    grads = torch.autograd.grad(loss, params)
    return torch.cat([g.flatten() for g in grads]), margin.detach()


def _rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


@pytest.fixture(scope="module")
def fresh(tiny_model: Path):
    """Model with a fresh adapter (B = 0) and its tokenizer; tests must not modify it."""
    return load_lora_model(str(tiny_model), TRAIN, seed=0)


def test_tokenisation_matches_trl_dpo_trainer(tiny_model: Path, fresh, tmp_path: Path) -> None:
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    from harness.training.dpo import preference_rows

    _, tokenizer = fresh
    prompts, responses, pairs = _pool()
    pairs = pairs[:3] + pairs[-3:]  # both prompts, every text as chosen or rejected
    args = DPOConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, report_to="none", max_length=TRAIN.max_length)
    trainer = DPOTrainer(
        model=str(tiny_model),
        args=args,
        train_dataset=Dataset.from_list(preference_rows(pairs, prompts, responses)),
        processing_class=tokenizer,
        peft_config=lora_config(TRAIN),
    )
    truncated = 0
    for pair, row in zip(pairs, trainer.train_dataset, strict=True):
        for rid, key in ((pair.chosen_id, "chosen_ids"), (pair.rejected_id, "rejected_ids")):
            r = responses[rid]
            item = tokenize_response(tokenizer, rid, prompts[r.prompt_id].messages, r.text, TRAIN.max_length)
            full = row["prompt_ids"] + row[key]
            assert item.start == len(row["prompt_ids"])
            # TRL's collator truncates prompt + completion at max_length, keeping the start
            assert item.input_ids == full[: TRAIN.max_length]
            truncated += len(full) > TRAIN.max_length
    assert truncated > 0


def test_batched_response_gradients_give_the_exact_dpo_gradient_at_b_zero(fresh) -> None:
    model, tokenizer = fresh
    items, pairs = _tokenized(tokenizer)
    assert max(len(i.input_ids) for i in items.values()) == TRAIN.max_length  # one response is truncated
    grads = LoraGradients(model, include_a=False)
    order = list(items)
    batched = dict(zip(order, grads([items[rid] for rid in order])))  # one padded batch
    for pair in (pairs[0], pairs[5], pairs[8]):  # texts (0,1) and (2,3) of prompt 0, (0,3) of prompt 1
        direct, margin = _direct_dpo_gradient(model, grads.parameters, items[pair.chosen_id], items[pair.rejected_id])
        assert abs(margin.item()) < 1e-6  # B = 0: policy == reference
        ours = -BETA / 2 * (batched[pair.chosen_id] - batched[pair.rejected_id])
        assert _rel_err(ours, direct) < 1e-4


def test_lora_a_gradient_is_exactly_zero_at_b_zero(fresh) -> None:
    model, tokenizer = fresh
    items, _ = _tokenized(tokenizer)
    grads = LoraGradients(model, include_a=True)
    g = grads(list(items.values())[:3])
    chunks = g.split([p.numel() for p in grads.parameters], dim=1)  # A, B, A, B, ...
    assert all(torch.count_nonzero(a) == 0 for a in chunks[0::2])
    assert all(torch.count_nonzero(b) > 0 for b in chunks[1::2])
    assert grads.dim == LoraGradients(model, include_a=False).dim + sum(a.shape[1] for a in chunks[0::2])


def test_after_warm_up_the_feature_direction_is_the_dpo_gradient(tiny_model: Path) -> None:
    """With B != 0 the margin is not 0, yet ∇L = -β σ(-β m) (g_c - g_r): same direction."""
    model, tokenizer = load_lora_model(str(tiny_model), TRAIN, seed=0)
    torch.manual_seed(1)
    for name, param in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.5)
    items, pairs = _tokenized(tokenizer)
    grads = LoraGradients(model, include_a=True)
    for pair in (pairs[1], pairs[-1]):  # texts (0,2) of prompt 0, (2,3) of prompt 1
        c, r = items[pair.chosen_id], items[pair.rejected_id]
        g = grads([c, r])
        direct, margin = _direct_dpo_gradient(model, grads.parameters, c, r)
        assert abs(margin.item()) > 1e-3
        scale = BETA * torch.sigmoid(-BETA * margin)
        assert _rel_err(-scale * (g[0] - g[1]), direct) < 1e-4


def _correlated(n: int, dim: int, seed: int) -> torch.Tensor:
    """Rows sharing a few latent directions plus noise: cosines spread over about [-0.7, 0.7]."""
    gen = torch.Generator().manual_seed(seed)
    latent = torch.randn(n, 4, generator=gen) @ torch.randn(4, dim, generator=gen)
    return latent + 0.7 * torch.randn(n, dim, generator=gen) * latent.std()


def _cosines(x: torch.Tensor) -> np.ndarray:
    unit = normalise(x.double().numpy())
    return (unit @ unit.T)[np.triu_indices(len(x), 1)]


@pytest.mark.parametrize("kind", ["countsketch", "gaussian"])
def test_projection_preserves_cosines_and_is_seeded_and_linear(kind: str) -> None:
    dim = 30_000
    x = _correlated(24, dim, seed=0)
    proj = make_projection(kind, dim, 1024, seed=3)
    true, projected = _cosines(x), _cosines(proj(x))
    assert true.std() > 0.2  # the test vectors do have structure
    assert np.abs(projected - true).mean() < 0.05
    assert np.abs(projected - true).max() < 0.2
    assert torch.equal(proj(x), make_projection(kind, dim, 1024, seed=3)(x))
    assert not torch.allclose(proj(x), make_projection(kind, dim, 1024, seed=4)(x))
    a, b = x[:4], x[4:8]
    assert torch.allclose(proj(a - b), proj(a) - proj(b), atol=1e-4 * proj(a).abs().max().item())


def test_projection_classes_are_the_configured_ones() -> None:
    assert isinstance(make_projection("countsketch", 10, 4, 0), CountSketch)
    assert isinstance(make_projection("gaussian", 10, 4, 0), GaussianProjection)


def _check_features(out: Path, prompts, pairs: list[Pair], dim: int) -> None:
    feats = load_gradient_features(out)
    n_responses = len({rid for p in pairs for rid in (p.chosen_id, p.rejected_id)})
    assert feats.pair_features.shape == (len(pairs), dim) and feats.pair_features.dtype == np.float32
    assert feats.prompt_features.shape == (len(prompts), dim)
    assert feats.response_features.shape == (n_responses, dim)
    np.testing.assert_allclose(np.linalg.norm(feats.pair_features, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(feats.prompt_features, axis=1), 1.0, atol=1e-5)
    for pair in pairs:
        expected = normalise(feats.response(pair.chosen_id) - feats.response(pair.rejected_id))
        np.testing.assert_allclose(feats.pair(pair.id), expected, atol=1e-6)
    for pid in prompts:
        mean = np.mean([feats.pair(p.id) for p in pairs if p.prompt_id == pid], axis=0)
        np.testing.assert_allclose(feats.prompt(pid), normalise(mean), atol=1e-6)


def test_compute_gradient_features_writes_consistent_features(tiny_model: Path, fresh, tmp_path: Path) -> None:
    prompts, responses, pairs = _pool()
    cfg = FeaturesConfig(dim=64, batch_size=3)
    stats = compute_gradient_features(str(tiny_model), prompts, responses, pairs, TRAIN, cfg, seed=0, out_dir=tmp_path)
    assert stats["n_pairs"] == len(pairs) and stats["n_responses"] == len(responses) and stats["n_prompts"] == 2
    assert stats["tokens"] > stats["response_tokens"] > 0 and stats["seconds_gradients"] > 0
    _check_features(tmp_path, prompts, pairs, cfg.dim)
    # a stored response feature is the projection of that response's unbatched gradient
    model, tokenizer = fresh
    grads = LoraGradients(model, include_a=False)
    assert stats["param_dim"] == grads.dim
    rid = pairs[0].chosen_id
    item = tokenize_response(
        tokenizer, rid, prompts[responses[rid].prompt_id].messages, responses[rid].text, TRAIN.max_length
    )
    expected = make_projection(cfg.projection, grads.dim, cfg.dim, cfg.projection_seed)(grads([item]))[0].numpy()
    np.testing.assert_allclose(
        load_gradient_features(tmp_path).response(rid), expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max()
    )


def test_bf16_features_point_where_fp32_ones_do(tiny_model: Path, tmp_path: Path) -> None:
    """train.precision = bfloat16 runs the base weights and the adapter in bf16: pair features stay within a few
    degrees of fp32's (the 135M model's are at cosine 0.996-0.999: benchmarks/throughput.py)."""
    prompts, responses, pairs = _pool()
    cfg = FeaturesConfig(dim=64)
    features = {}
    for precision in ("float32", "bfloat16"):
        compute_gradient_features(
            str(tiny_model),
            prompts,
            responses,
            pairs,
            TRAIN.model_copy(update={"precision": precision}),
            cfg,
            seed=0,
            out_dir=tmp_path / precision,
        )
        features[precision] = load_gradient_features(tmp_path / precision).pair_features
    cosines = (features["float32"] * features["bfloat16"]).sum(1)
    assert cosines.min() > 0.98, cosines
    assert not np.array_equal(features["float32"], features["bfloat16"])  # bf16 really ran


def test_warmup_features_use_a_and_b_of_a_trained_adapter(tiny_model: Path, fresh, tmp_path: Path) -> None:
    prompts, responses, pairs = _pool()
    cfg = FeaturesConfig(dim=32, projection="gaussian", lora_init="warmup", warmup_pairs=2)
    train = TRAIN.model_copy(update={"learning_rate": 1e-2, "batch_size": 2})
    stats = compute_gradient_features(str(tiny_model), prompts, responses, pairs, train, cfg, seed=0, out_dir=tmp_path)
    assert (tmp_path / "warmup" / "adapter").is_dir() and stats["seconds_warmup"] > 0
    model, _ = fresh
    assert stats["param_dim"] == LoraGradients(model, include_a=True).dim
    _check_features(tmp_path, prompts, pairs, cfg.dim)
