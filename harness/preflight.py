"""Checks that run before any stage, so a bad input fails in seconds, not after the pool.

Every model a run will load, every judge endpoint it will call and every evaluation file it
will read is looked at first (a config file, a socket connect, a parse; no weights, no
generation); every optional library the configured run will need is imported (the embedding
library when the strategy embeds, the embedded model's packages, the judges' and suites' back
ends); every model that is prompted has a chat template or is given one. Each failure is a
`BenchError`: one paragraph naming the config field or package and the fix.
"""

from __future__ import annotations

from pathlib import Path

from harness.constraints.checkers import registry
from harness.core.bundle import read_index
from harness.core.errors import BenchError, require
from harness.core.registry import JUDGES
from harness.data.config import PromptsConfig
from harness.data.heldout import HeldoutSet
from harness.evaluation.config import EvaluateConfig, PreferenceConfig
from harness.experiment import ExperimentConfig
from harness.judges.config import JudgeConfig
from harness.models.checks import check_chat_template, check_model
from harness.models.resolve import resolve_backend
from harness.stages import views
from harness.suites.base import get_suite
from harness.suites.config import SuiteConfig


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

    registry()  # the verifiable checkers of the held-out evaluation (lm-eval's IFEval, nltk, langdetect)

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

    if not Path(bundle).is_file():
        raise BenchError(
            f"bundle = {bundle}: no such file (paths are relative to the folder you run bench in); "
            "write one with `bench cache export`, or set bundle: null."
        )
    read_index(Path(bundle))
