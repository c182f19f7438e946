"""Checks that run before any stage, so a bad input fails in seconds, not after the pool.

Every model a run will load, every judge endpoint it will call and every evaluation file it
will read is looked at first (a config file, a socket connect, a parse; no weights, no
generation). Each failure is a `BenchError` naming the config field and the fix.
"""

from __future__ import annotations

import socket
from pathlib import Path
from urllib.parse import urlparse

from harness.config import EMBEDDED_MODEL, BenchError, EvaluateConfig, ExperimentConfig, JudgeConfig, SuiteConfig
from harness.models import resolve_backend, trust_remote_code


def check_model(name: str, field: str = "model") -> None:
    """A local folder with a config.json, or a hub id whose config can be fetched (or is cached)."""
    if name == EMBEDDED_MODEL:
        return
    path = Path(name).expanduser()
    if name.startswith(("/", "./", "../", "~")) or path.exists():
        if not path.exists():
            raise BenchError(f"{field}: {name} does not exist; pass an existing model folder, a hub id, or {EMBEDDED_MODEL}.")
        if not (path / "config.json").is_file():
            raise BenchError(f"{field}: {path} exists but has no config.json; pass a transformers model folder or a hub id.")
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


def check_judge(config: JudgeConfig, field: str) -> None:
    if config.type == "verifiable":
        return
    if config.type == "llm" and config.backend == "openai":
        from harness.judges.llm_backends import OpenAIBackend

        OpenAIBackend(config)  # refuses an unset key variable, with the same message the judge would give
        url = urlparse(config.base_url or "")
        if url.scheme not in ("http", "https") or not url.hostname:
            raise BenchError(f"{field}.base_url = {config.base_url!r}: expected an http(s) URL such as http://127.0.0.1:8000/v1.")
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            socket.create_connection((url.hostname, port), timeout=min(config.timeout_s, 10.0)).close()
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise BenchError(
                f"{field}: cannot reach {config.base_url} ({reason.lower()}); start the server or fix base_url."
            ) from None
        return
    check_model(config.model or EMBEDDED_MODEL, f"{field}.model")


def check_suite(cfg: SuiteConfig, field: str) -> None:
    """Read the suite's data now (it is small), so a typo in a path does not wait for training."""
    if cfg.name in ("ifeval", "ifbench"):
        from harness.suites.instruction_following import suite_prompts

        suite_prompts(cfg)
    elif cfg.name == "mt_bench":
        from harness.suites.mt_bench import read_questions

        read_questions(cfg)
    elif cfg.name == "alpaca_eval" and cfg.path and Path(cfg.path).expanduser().exists():
        from harness.suites.alpaca_eval import read_instructions

        read_instructions(cfg.path)
    judge = cfg.judge_config()
    if judge is not None:
        check_judge(judge, f"{field}.judge")


def check_evaluation(cfg: EvaluateConfig) -> None:
    for index, suite in enumerate(cfg.suites):
        check_suite(suite, f"evaluate.suites[{index}]")
    if cfg.preference_source:
        from harness.preference_eval import heldout_from_source

        heldout_from_source(cfg, set())


def check_experiment(config: ExperimentConfig) -> None:
    check_model(config.model)
    resolve_backend(config.generation.backend)
    check_judge(config.pool.judge, "pool.judge")
    check_evaluation(config.evaluate)
