"""The fast decoding path: exact top-p by partial sort, and the generation contract on a tiny real model."""

from __future__ import annotations

import torch
from transformers.generation.logits_process import (
    LogitsProcessor,
    LogitsProcessorList,
    TemperatureLogitsWarper,
    TopPLogitsWarper,
)

from harness.generation import engine as decoding
from harness.generation.engine import (
    SHARED_PREFIX_MIN,
    _shared_prefix,
    decode,
    full_attention_only,
    greedy,
    sample_top_p,
)


def _reference(logits: torch.Tensor, temperature: float, top_p: float) -> torch.Tensor:
    """transformers' own warpers, as `model.generate` applies them: the distribution to match."""
    warped = TopPLogitsWarper(top_p)(None, TemperatureLogitsWarper(temperature)(None, logits.clone()))
    return torch.softmax(warped, dim=-1)


def test_partial_sort_top_p_samples_the_same_distribution_as_the_full_sort() -> None:
    torch.manual_seed(0)
    vocab, widths = 120, (12, 60)
    peaked = torch.randn(3, vocab) * 4  # the nucleus fits in the top 12: the first partial sort decides
    medium = torch.randn(3, vocab) * 1.5  # in the top 60: the second one does
    flat = torch.randn(3, vocab) * 0.3  # in neither: these rows take the full sort
    logits = torch.cat([peaked, medium, flat])
    expected = _reference(logits, 0.9, 0.9)
    sizes = (expected > 0).sum(-1)
    assert (
        sizes[:3].max() < 12 < sizes[3:6].min() and sizes[3:6].max() < 60 < sizes[6:].min()
    )  # every path is exercised
    draws = 20000
    gen = torch.Generator().manual_seed(1)
    counts = torch.zeros_like(expected)
    for _ in range(draws // 500):
        picked = sample_top_p(logits.repeat_interleave(500, 0), 0.9, 0.9, gen, widths=widths).view(-1, 500)
        counts += torch.nn.functional.one_hot(picked, vocab).sum(1).float()
    freq = counts / draws
    assert torch.all(freq[expected == 0] == 0)  # nothing outside the nucleus, ever
    tolerance = 4 * torch.sqrt(expected * (1 - expected) / draws) + 1e-9
    assert torch.all((freq - expected).abs() <= tolerance)


def test_decode_honours_the_generation_contract(tiny_model, monkeypatch) -> None:
    """Greedy decode equals model.generate's greedy tokens up to the first EOS, also when rows finish (and leave)
    early and when a batch repeats a prompt."""
    from harness.generation.generate import _eos_ids, chat_texts
    from harness.models.resolve import load_model

    loaded = load_model(str(tiny_model))
    # float64 weights, scores rounded to float32 as model.generate rounds them: the two paths' kernels (SDPA there,
    # grouped attention and a KV slab here) differ by ~1e-15, which rounding to float32 erases, so ties break alike
    tok, model = loaded.tokenizer, loaded.model.double()
    tok.padding_side = "left"
    # repeated prompts are prefilled once and fanned out (as the pool's K samples of a prompt are)
    questions = (
        "hi",
        "a longer question here",
        "x y z",
        "hi",
        "what is blue",
        "tell me about the sea and the sky",
        "x y z",
    )
    texts = chat_texts(tok, [[{"role": "user", "content": c}] for c in questions])
    enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    # the fast paths under test are the ones taken: KV slabs, and the chat template's system prompt prefilled once
    assert full_attention_only(model)
    assert _shared_prefix(enc["input_ids"], enc["attention_mask"].sum(-1)) >= SHARED_PREFIX_MIN

    # a random model's greedy output repeats one token; a fixed smooth warp of the scores (applied by both) varies it
    def warp(scores: torch.Tensor) -> torch.Tensor:
        return scores + 2 * torch.sin(7 * scores)

    class Warp(LogitsProcessor):
        def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
            return warp(scores)

    prompts = [tok(t, add_special_tokens=False).input_ids for t in texts]
    merges = []
    monkeypatch.setattr(
        decoding, "_merge", lambda old, new, merge=decoding._merge: merges.append(len(new.sequence)) or merge(old, new)
    )
    # the model's own EOS (rarely reached by a random model), then one token in 13 as an end: rows end at different steps
    for eos in (set(_eos_ids(model, tok)), set(_eos_ids(model, tok)) | set(range(0, len(tok), 13))):
        theirs = model.generate(
            **enc,
            max_new_tokens=24,
            do_sample=False,
            pad_token_id=tok.pad_token_id,
            eos_token_id=sorted(eos),
            logits_processor=LogitsProcessorList([Warp()]),
        )[:, enc["input_ids"].shape[1] :].tolist()
        # all rows at once; and 3 at a time, so finished rows are replaced by waiting prompts (continuous batching)
        for batch_size in (len(prompts), 3):
            mine = decode(
                model,
                prompts,
                max_new_tokens=24,
                eos_ids=eos,
                pick=lambda x: greedy(warp(x.float())),
                batch_size=batch_size,
                pad_id=tok.pad_token_id,
            )
            for row, ref in zip(mine, theirs):
                end = next((n + 1 for n, t in enumerate(ref) if t in eos), len(ref))
                assert row == ref[:end]
    assert len({len(row) for row in mine}) > 1  # rows finished (and left the batch) at different steps
    assert merges  # waiting prompts joined rows that were still decoding
