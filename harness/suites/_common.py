"""Pieces every generative suite shares: what a `--model` argument names, cached greedy
generation, and cached judging with failure accounting."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.core.cache import run_stage
from harness.core.config import JudgeConfig, SuiteConfig
from harness.core.errors import BenchError
from harness.core.io import content_hash, read_json, read_jsonl, write_jsonl
from harness.core.records import Prompt
from harness.core.run_files import RunFolder
from harness.data.heldout import HeldoutSet
from harness.judges import Judge, Judgment, get_judge
from harness.judges._cache import CachedJudge
from harness.suites.base import EvalTarget


def resolve_target(spec: str, engine: dict[str, str]) -> EvalTarget:
    """A run folder (its base model + trained adapter), an adapter folder, or a model (embedded, hub id, folder), to
    generate with `engine` (resolved by the caller that owns the run)."""
    path = Path(spec).expanduser()
    folder = RunFolder(path)
    if folder.is_run():
        manifest = folder.manifest()
        adapter = folder / RunFolder.ADAPTER
        if not (adapter / "adapter_config.json").is_file():
            raise BenchError(f"{path} is a run folder without a trained adapter ({RunFolder.ADAPTER}); was the run completed?")
        from harness.models.resolve import with_chat_template

        config = manifest["config"]
        return EvalTarget(with_chat_template(config["model"], config.get("chat_template")), engine, adapter, label=path.name)
    if (path / "adapter_config.json").is_file():
        base = read_json(path / "adapter_config.json").get("base_model_name_or_path")
        if not base:
            raise BenchError(f"{path}/adapter_config.json names no base_model_name_or_path; pass the base model with --model.")
        return EvalTarget(base, engine, path, label=path.name)
    return EvalTarget(spec, engine, None, label=path.name if path.exists() else spec)


def run_heldout(spec: str) -> HeldoutSet:
    """The held-out prompts of the run folder `spec` (what a pathless `ifeval` asks for it), else the defaults."""
    path = Path(spec).expanduser()
    if not RunFolder(path).is_run():
        return HeldoutSet()
    from pydantic import ValidationError

    from harness.core.config import EvaluateConfig, PromptsConfig

    config = RunFolder(path).manifest().get("config", {})
    try:
        return HeldoutSet.of(EvaluateConfig.model_validate(config.get("evaluate", {})), PromptsConfig.model_validate(config.get("prompts", {})))
    except ValidationError as err:
        raise BenchError(
            f"{path / RunFolder.MANIFEST}: its evaluate or prompts section no longer validates ({err.errors()[0]['msg']}), so its "
            "held-out prompts are unknown; pass the prompts with --path (an IFEval-format JSONL)."
        ) from None


def generate_cached(
    cfg: SuiteConfig, target: EvalTarget, cache_dir: Path, conversations: list[list[dict[str, str]]], what: str,
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
        write_jsonl(out / "generations.jsonl", [{"text": g.text, "truncated": g.truncated, "n_tokens": g.n_tokens} for g in gens])
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
