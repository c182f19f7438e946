"""What a `--model` argument names (a run folder, an adapter, a model) and the held-out prompts it asks. The pieces a
suite itself calls (cached generation and judging) are its plugin surface, harness/suites/base.py."""

from __future__ import annotations

from pathlib import Path

from harness.core.errors import BenchError
from harness.core.io import read_json
from harness.core.run_files import RunFolder
from harness.data.config import PromptsConfig
from harness.data.heldout import HeldoutSet
from harness.evaluation.config import EvaluateConfig
from harness.models.resolve import with_chat_template
from harness.suites.base import EvalTarget, cached_judge, check_supported, failure_summary, generate_cached

__all__ = ["cached_judge", "check_supported", "failure_summary", "generate_cached", "resolve_target", "run_heldout"]
"""the last two are this module's; the others moved to harness/suites/base.py and answer here for plugins written before"""


def resolve_target(spec: str, engine: dict[str, str]) -> EvalTarget:
    """A run folder (its base model + trained adapter), an adapter folder, or a model (embedded, hub id, folder), to
    generate with `engine` (resolved by the caller that owns the run)."""
    path = Path(spec).expanduser()
    folder = RunFolder(path)
    if folder.is_run():
        manifest = folder.manifest()
        adapter = folder / RunFolder.ADAPTER
        if not (adapter / "adapter_config.json").is_file():
            raise BenchError(
                f"{path} is a run folder without a trained adapter ({RunFolder.ADAPTER}); was the run completed?"
            )

        config = manifest["config"]
        return EvalTarget(
            with_chat_template(config["model"], config.get("chat_template")), engine, adapter, label=path.name
        )
    if (path / "adapter_config.json").is_file():
        base = read_json(path / "adapter_config.json").get("base_model_name_or_path")
        if not base:
            raise BenchError(
                f"{path}/adapter_config.json names no base_model_name_or_path; pass the base model with --model."
            )
        return EvalTarget(base, engine, path, label=path.name)
    return EvalTarget(spec, engine, None, label=path.name if path.exists() else spec)


def run_heldout(spec: str) -> HeldoutSet:
    """The held-out prompts of the run folder `spec` (what a pathless `ifeval` asks for it), else the defaults."""
    path = Path(spec).expanduser()
    if not RunFolder(path).is_run():
        return HeldoutSet()
    from pydantic import ValidationError

    config = RunFolder(path).manifest().get("config", {})
    try:
        return HeldoutSet.of(
            EvaluateConfig.model_validate(config.get("evaluate", {})),
            PromptsConfig.model_validate(config.get("prompts", {})),
        )
    except ValidationError as err:
        raise BenchError(
            f"{path / RunFolder.MANIFEST}: its evaluate or prompts section no longer validates ({err.errors()[0]['msg']}), so its "
            "held-out prompts are unknown; pass the prompts with --path (an IFEval-format JSONL)."
        ) from None
