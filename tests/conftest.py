"""Shared fixtures: real small models and real pools, no mocks."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A randomly initialised 2-layer Llama with the real SmolLM2 tokenizer, as a local folder."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from harness.models.config import EMBEDDED_MODEL
    from harness.models.resolve import resolve_model

    tokenizer = AutoTokenizer.from_pretrained(resolve_model(EMBEDDED_MODEL))
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_qwen2(tmp_path_factory):
    """A randomly initialised 2-layer Qwen2 (a second architecture: q/k/v biases, its own GGUF name
    map) with the SmolLM2 vocabulary, and that model written as an fp32 GGUF file with SmolLM2's
    tokenizer and chat template in its metadata."""
    import gguf
    import torch
    from gguf_writer import smollm2_tokenizer_fields, write_gguf
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tokenizer = smollm2_tokenizer_fields()
    config = Qwen2Config(
        vocab_size=len(tokenizer["tokenizer.ggml.tokens"]),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        rms_norm_eps=1e-6,
        tie_word_embeddings=False,
        bos_token_id=tokenizer["tokenizer.ggml.bos_token_id"],
        eos_token_id=tokenizer["tokenizer.ggml.eos_token_id"],
        pad_token_id=tokenizer["tokenizer.ggml.padding_token_id"],
    )
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config).eval()
    # A random model spreads its samples over 49k tokens, so no two samples differ in compliance and
    # the pool has no pairs. Its output head speaks a dozen tokens instead (commas, full stops,
    # bullets, newlines, a few words, EOS), whose mix varies with the context: samples then pass
    # and fail constraints like "no commas" or "end with ..." at random, as a real pool does.
    words = [",", ".", " the", " a", " and", " blue", "\n", "*", " *", " is", " P", "S"]
    ids = {tokenizer["tokenizer.ggml.tokens"].index(w.replace(" ", "Ġ").replace("\n", "Ċ")) for w in words}
    ids.add(config.eos_token_id)
    with torch.no_grad():
        model.model.embed_tokens.weight[:, 0] += 1.0  # a constant direction that survives to the last norm
        head = torch.zeros_like(model.lm_head.weight)
        for token in sorted(ids):
            head[token] = torch.randn(config.hidden_size) * 0.3
            head[token, 0] = 2.0  # these tokens outscore the rest along that direction
        model.lm_head.weight = torch.nn.Parameter(head)
    folder = tmp_path_factory.mktemp("tiny-qwen2-gguf")
    path = write_gguf(model, folder / "tiny-qwen2.gguf", gguf.MODEL_ARCH.QWEN2, tokenizer)
    bare = write_gguf(
        model, folder / "tiny-qwen2-no-template.gguf", gguf.MODEL_ARCH.QWEN2, tokenizer, chat_template=False
    )
    return {
        "model": model,
        "gguf": path,
        "gguf_without_template": bare,
        "chat_template": tokenizer["tokenizer.chat_template"],
    }


@pytest.fixture(scope="session")
def tiny_model_without_chat_template(tiny_model: Path, tmp_path_factory) -> Path:
    """The tiny Llama as a converted checkpoint often is: weights and tokenizer, no chat template."""
    import shutil

    from transformers import AutoTokenizer

    folder = tmp_path_factory.mktemp("no-template") / "model"
    shutil.copytree(tiny_model, folder)
    for stale in folder.glob("chat_template.*"):
        stale.unlink()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.chat_template = None
    tokenizer.save_pretrained(folder)
    return folder
