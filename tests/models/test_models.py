"""Models as users have them: GGUF files of any architecture transformers reads, folders whose
tokenizer has no chat template, and LoRA targets found per architecture."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from harness.core.errors import BenchError
from harness.experiment import load_config
from harness.models.checks import check_model
from harness.models.config import EMBEDDED_MODEL
from harness.models.resolve import (
    attention_projections,
    has_chat_template,
    model_fingerprint,
    resolve_model,
    resolve_target_modules,
    with_chat_template,
)
from harness.preflight import check_experiment


@pytest.fixture
def user_cache(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "bpo-bench"


def test_a_gguf_file_is_converted_once_keyed_by_its_content(tiny_qwen2, user_cache: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = tiny_qwen2["gguf"]
    folder = Path(resolve_model(str(gguf)))
    assert folder.parent == user_cache / "models" and folder.name.startswith("gguf-")
    assert json.loads((folder / "config.json").read_text())["model_type"] == "qwen2"
    converted = AutoModelForCausalLM.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert tokenizer.chat_template == tiny_qwen2["chat_template"]  # from the GGUF metadata
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Name a colour."}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )["input_ids"]
    with torch.no_grad():
        assert torch.allclose(converted(ids).logits, tiny_qwen2["model"](ids).logits, atol=1e-5)
    # the same bytes under another name are the same model: same folder, same cache key, no second conversion
    stamp = (folder / "config.json").stat().st_mtime_ns
    copy = shutil.copyfile(gguf, tmp_path / "renamed.gguf")
    assert Path(resolve_model(str(copy))) == folder and (folder / "config.json").stat().st_mtime_ns == stamp
    assert model_fingerprint(str(copy)) == model_fingerprint(str(gguf)) and model_fingerprint(str(gguf)).startswith(
        "gguf:"
    )


def test_attention_projections_are_found_per_architecture() -> None:
    from transformers import AutoModelForCausalLM, GPT2Config, LlamaConfig, Phi3Config

    small = {"num_hidden_layers": 1, "vocab_size": 64}
    cases = {
        "llama": (
            LlamaConfig(hidden_size=32, intermediate_size=64, num_attention_heads=4, **small),
            ["q_proj", "k_proj", "v_proj", "o_proj"],
        ),
        "phi3": (
            Phi3Config(hidden_size=32, intermediate_size=64, num_attention_heads=4, pad_token_id=0, **small),
            ["o_proj", "qkv_proj"],
        ),
        "gpt2": (GPT2Config(n_embd=32, n_head=4, n_layer=1, vocab_size=64), ["c_attn", "c_proj"]),
    }
    for name, (config, expected) in cases.items():
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config)
        assert attention_projections(model) == expected, name


def test_target_modules_auto_resolves_on_the_model_and_a_wrong_name_is_refused(
    tiny_qwen2, tiny_model: Path, user_cache: Path
) -> None:
    assert resolve_target_modules(str(tiny_qwen2["gguf"]), "auto") == ["q_proj", "k_proj", "v_proj", "o_proj"]
    assert resolve_target_modules(str(tiny_model), ["q_proj", "v_proj"]) == ["q_proj", "v_proj"]
    with pytest.raises(BenchError, match=r"c_attn not found .*q_proj, k_proj, v_proj, o_proj"):
        resolve_target_modules(str(tiny_model), ["q_proj", "c_attn"])


def test_a_model_without_a_chat_template_is_refused_before_any_stage_unless_one_is_configured(
    tiny_qwen2, tiny_model_without_chat_template: Path, user_cache: Path, tmp_path: Path
) -> None:
    from transformers import AutoTokenizer

    bare_gguf = str(tiny_qwen2["gguf_without_template"])
    folder = tiny_model_without_chat_template
    template = tmp_path / "template.jinja"
    template.write_text(tiny_qwen2["chat_template"], encoding="utf-8")
    for model in (bare_gguf, str(folder)):
        assert not has_chat_template(model)
        config = load_config(None, [f"model={model}", "select.strategy=original"])
        with pytest.raises(BenchError, match=r"no chat template.*chat_template:"):
            check_experiment(config)
        check_experiment(load_config(None, [f"model={model}", "select.strategy=original", f"chat_template={template}"]))
        overlay = with_chat_template(model, str(template))
        assert AutoTokenizer.from_pretrained(overlay).chat_template == tiny_qwen2["chat_template"]
        weights = Path(overlay) / "model.safetensors"
        assert weights.is_symlink()  # linked, not copied
    assert has_chat_template(str(tiny_qwen2["gguf"])) and has_chat_template(EMBEDDED_MODEL)
    with pytest.raises(BenchError, match="does not exist"):
        load_config(None, ["chat_template=/nonexistent/template.jinja"])


def test_a_file_that_is_not_gguf_is_refused_in_preflight(tmp_path: Path) -> None:
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"this is not a GGUF file" * 10)
    with pytest.raises(BenchError, match="not a readable GGUF file"):
        check_model(str(fake))


def test_a_model_folder_without_tokenizer_files_is_refused_in_preflight(tiny_model: Path, tmp_path: Path) -> None:
    folder = tmp_path / "weights-only"
    folder.mkdir()
    for name in ("config.json", "generation_config.json", "model.safetensors"):
        if (tiny_model / name).is_file():
            shutil.copyfile(tiny_model / name, folder / name)
    with pytest.raises(BenchError, match="tokenizer cannot be loaded"):
        check_experiment(load_config(None, [f"model={folder}", "select.strategy=original"]))
