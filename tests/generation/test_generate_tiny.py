"""Generation on a tiny real Llama: seeded, batched, truncation flagged; the packed and contiguous paths decode exactly."""

from __future__ import annotations

from pathlib import Path

import torch

from harness.generation.generate import generate
from harness.models.resolve import load_model


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


def test_packed_linears_decode_exactly_as_plain_ones(tiny_model: Path) -> None:
    """oneDNN-packed bf16 weights change no token: greedy outputs with and without packing are identical. On a CPU
    whose oneDNN has no bf16 kernels (AVX2 only) nothing is packed, and bf16 decoding runs all the same."""
    import contextlib

    from harness.generation import engine as decoding

    loaded = load_model(str(tiny_model), dtype="bfloat16")
    linears = sum(isinstance(m, torch.nn.Linear) for m in loaded.model.modules())
    with decoding.packed_linears(loaded.model, 8) as packed:
        assert packed == (linears if decoding.bf16_packing_supported() else 0)
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
