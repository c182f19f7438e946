"""What every evaluation suite shares: the model under evaluation and the suite contract.

A suite turns (model, suite config) into a folder holding its outputs, its exports in the
format of the tool it imitates, and `metrics`: name -> {value, ci_low, ci_high, n, judge,
weak_judge, ...}. Generations are a cached stage of their own, keyed by the model and the
generation settings only, so changing the judge re-judges without regenerating.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.core.cache import run_stage
from harness.core.errors import BenchError
from harness.core.io import content_hash, read_jsonl, write_jsonl
from harness.core.moved import warn_renamed
from harness.core.records import Prompt
from harness.core.registry import SUITES, UnknownName, and_list
from harness.judges import Judge, Judgment, get_judge
from harness.judges._cache import CachedJudge
from harness.models.resolve import model_fingerprint

if TYPE_CHECKING:
    from harness.data.heldout import HeldoutSet
    from harness.judges.config import JudgeConfig
    from harness.suites.config import SuiteConfig


@dataclass(frozen=True)
class EvalTarget:
    """A model to evaluate: base weights plus an optional LoRA adapter folder, and the engine that runs it."""

    model: str
    engine: dict[str, str]
    """what generates: the back end and dtype as resolved for the run (`harness.models.resolve.engine_key`), which every
    generating key records"""
    adapter: Path | None = None
    label: str = "model"
    gpu_memory_utilization: float = 0.85
    """vLLM only: the share of GPU memory it may take (changes no token, so no part of the key)"""

    def cache_key(self) -> dict[str, Any]:

        key: dict[str, Any] = {"model": model_fingerprint(self.model), **self.engine}
        if self.adapter is not None:
            files = sorted(p for p in Path(self.adapter).iterdir() if p.is_file())
            key["adapter"] = content_hash(
                [(p.name, p.read_bytes().hex()) for p in files if p.stat().st_size < 64 << 20]
            )
        return key


@dataclass(frozen=True)
class SuiteContext:
    """What a suite reads besides its own config and target: the stage cache its generations and
    judgments live in, and the held-out prompts of the run it evaluates for (what `ifeval` asks when
    given no path; `bench eval` passes a run folder's, or the defaults)."""

    cache_dir: Path
    heldout: "HeldoutSet"


SuiteFn = Callable[["SuiteConfig", EvalTarget, Path, SuiteContext], dict[str, dict[str, Any]]]
"""(suite config, target, out folder, context) -> metrics; writes its exports into the out folder."""

SUITE_FIELDS = ("reference", "tasks", "include_path", "num_fewshot")
"""The `SuiteConfig` fields that only some suites read; each suite lists the ones it takes."""


@dataclass(frozen=True)
class Suite:
    """A suite as the harness sees it: how to run it and what it declares about its config.

    The config validation, the preflight and the run loop read these declarations only, so they
    never branch on a suite's name; a new suite is one module, named as it registers, calling
    `register(Suite(evaluate, name=...))`.
    """

    evaluate: SuiteFn
    default_judge: str | None = "verifiable"
    """the judge type when `judge` is unset; None: the suite scores itself and refuses a judge"""
    fields: frozenset[str] = frozenset()
    """which of SUITE_FIELDS it reads (the others are refused when set)"""
    preflight: Callable[["SuiteConfig", str], object] | None = None
    """(config, field path): reads its data and imports its back end now (result ignored), raising BenchError"""
    check: Callable[["SuiteConfig"], None] | None = None
    """(config) -> None: raises ValueError when the suite's own fields do not fit"""
    asks_heldout: Callable[["SuiteConfig"], bool] = lambda cfg: False
    """(config) -> whether this configuration asks the run's held-out prompts (`SuiteContext.heldout`),
    which then belong to its stages' keys"""
    grader: str = ""
    """the version of whatever grades its outputs besides its judge (e.g. the task check): part of its stages' keys"""
    name: str = ""
    """the name `suite:` configs ask for (last, so that a suite written before it had one still constructs)"""

    def check_config(self, cfg: "SuiteConfig", name: str) -> None:
        """Refuse the fields this suite does not read, then run its own check."""
        for field_ in SUITE_FIELDS:
            if field_ not in self.fields and getattr(cfg, field_) not in (None, []):
                raise ValueError(_only_for(field_))
        if self.default_judge is None and cfg.judge is not None:
            raise ValueError(f"{name} scores itself; remove `judge`")
        if self.check is not None:
            self.check(cfg)


def _only_for(field_: str) -> str:
    """'tasks, include_path and num_fewshot only apply to the lm_eval suite'."""
    group, takers = SUITES.readers(field_, SUITE_FIELDS)
    suites = and_list(takers) + (" suites" if len(takers) > 1 else " suite")
    return f"{and_list(group)} only appl{'y' if len(group) > 1 else 'ies'} to the {suites}"


def register(suite: Suite) -> Suite:
    """The suite `suite.name`, registered by the calling module (as every plugin kind registers: `register(plugin)`,
    the plugin carrying its name)."""
    if not suite.name:
        raise ValueError("register(Suite(...)): give the suite its name, Suite(evaluate, name='my_suite', ...)")
    return SUITES.register(suite.name, suite, origin=sys._getframe(1).f_globals.get("__name__"))


def register_suite(name: str, suite: Suite) -> Suite:
    """`register`'s old form, kept for one release: a plugin that calls it runs, with a warning naming its file."""
    warn_renamed("harness.suites.base.register_suite", sys._getframe(1).f_code.co_filename)
    return SUITES.register(
        name, dataclasses.replace(suite, name=name), origin=sys._getframe(1).f_globals.get("__name__")
    )


def get_suite(name: str) -> Suite:
    try:
        return SUITES.get(name)
    except UnknownName as exc:
        raise BenchError(exc.message) from None


def generate_cached(
    cfg: SuiteConfig,
    target: EvalTarget,
    cache_dir: Path,
    conversations: list[list[dict[str, str]]],
    what: str,
    sampling: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Completions of `conversations` (greedy, or with `sampling`: temperature, top_p, seed), cached by
    the target, the suite, the conversations and every generation setting that changes a token (the
    batch size among them: in bf16, a row's logits shift slightly with the rows beside it)."""
    from harness.generation.generate import generate_with

    inputs = {
        "target": target.cache_key(),
        "suite": cfg.name,
        "what": what,
        "max_new_tokens": cfg.max_new_tokens,
        "batch_size": cfg.batch_size,
        "sampling": sampling,
        "conversations": content_hash(conversations),
    }

    def compute(out: Path) -> dict:
        gens = generate_with(
            target.engine["backend"],
            target.model,
            target.adapter,
            conversations,
            dtype=target.engine["dtype"],
            max_new_tokens=cfg.max_new_tokens,
            batch_size=cfg.batch_size,
            do_sample=sampling is not None,
            **(sampling or {}),
            gpu_memory_utilization=target.gpu_memory_utilization,
            desc=f"{cfg.name}: {what} ({target.label})",
        )
        write_jsonl(
            out / "generations.jsonl",
            [{"text": g.text, "truncated": g.truncated, "n_tokens": g.n_tokens} for g in gens],
        )
        return {"n": len(gens), "tokens_generated": sum(g.n_tokens for g in gens)}

    stage = run_stage(cache_dir, f"generate_{cfg.name}", inputs, compute)
    return read_jsonl(stage.path / "generations.jsonl")


def cached_judge(config: JudgeConfig, cache_dir: Path) -> tuple[Judge, CachedJudge]:
    judge = get_judge(config)
    return judge, CachedJudge(judge, cache_dir)


def failure_summary(judgments: list[Judgment]) -> dict[str, Any]:
    """How many judgments failed and why (a few distinct reasons), for metrics and reports."""
    failed = [j for j in judgments if not j.ok]
    reasons = list(dict.fromkeys(j.error or "no value" for j in failed))
    return {"n_failed": len(failed), "failure_reasons": reasons[:5]}


def check_supported(judge: Judge, prompts: list[Prompt]) -> None:
    for prompt in prompts:
        reason = judge.unsupported_reason(prompt)
        if reason:
            raise BenchError(reason)
