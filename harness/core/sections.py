"""How a config is read: the strict section base, YAML files, `--set` overrides and their errors.

Every section lives beside the code that reads it (harness/training/config.py, harness/suites/config.py, ...), as
TRL keeps `DPOConfig` beside its trainer; harness/experiment.py assembles them. This module is what they share:
it knows how a config is read, not what one holds, so it imports nothing above core.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from harness.core.errors import ConfigError, format_validation_error

M = TypeVar("M", bound=BaseModel)


class Section(BaseModel):
    """A config section: an unknown key is refused (a typo never passes silently), and so is an assignment that
    breaks a field's rule."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _parse_override(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected dotted.key=value, e.g. --set train.learning_rate=1e-4.")
    key, raw = item.split("=", 1)
    # YAML parsing gives numbers, booleans, null and lists their natural types.
    return key.strip().split("."), yaml.safe_load(raw) if raw.strip() else ""


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """`data` with each `dotted.key=value` set in it, sections created on the way; a value in the way is refused."""
    for item in overrides:
        keys, value = _parse_override(item)
        node = data
        for key in keys[:-1]:
            child = node.get(key)
            if child is None:
                child = node[key] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"--set {item!r}: '{key}' is a value, not a section.")
            node = child
        node[keys[-1]] = value
    return data


def read_mapping(path: str | Path | None, example: str) -> tuple[dict[str, Any], str]:
    """(the YAML mapping at `path`, where it came from); no path gives an empty one from "defaults". Every problem is a
    ConfigError naming the file and line; `example` is an existing file to name in the hint."""
    if path is None:
        return {}, "defaults"
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Config file {path} does not exist. Pass an existing YAML file, e.g. {example}.")
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}{where}: not valid YAML ({getattr(exc, 'problem', exc)}).") from None
    if loaded is None:
        loaded = {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys to values.")
    return loaded, str(path)


def validated(model: type[M], data: dict[str, Any], origin: str) -> M:
    """`data` as a `model`, every problem reported at once with its field path (ConfigError)."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, origin)) from None
