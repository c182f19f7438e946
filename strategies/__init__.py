"""Balancing strategies, one module each, plugged in through the registry.

Importing this package registers every built-in strategy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import ValidationError

from strategies import control, dynamic, less, margin, original, random_pairs, uniform  # noqa: F401  (registration side effect)
from strategies.base import BudgetError, CandidatePool, Strategy
from strategies.registry import UnknownStrategy, get_strategy, register, strategy_names

if TYPE_CHECKING:
    from harness.config import ExperimentConfig

__all__ = [
    "BudgetError",
    "CandidatePool",
    "Strategy",
    "UnknownStrategy",
    "get_strategy",
    "register",
    "strategy_names",
    "validate_strategy_config",
]


def validate_strategy_config(config: "ExperimentConfig", origin: str) -> None:
    """Check the strategy name and its `select.params` when the config loads, not mid-run."""
    from harness.config import ConfigError, format_validation_error

    try:
        strategy = get_strategy(config.select.strategy)
    except UnknownStrategy as exc:
        raise ConfigError(f"{origin}: select.strategy: {exc.message}") from None
    try:
        strategy.Params.model_validate(config.select.params)
    except ValidationError as err:
        msg = format_validation_error(err, origin).replace("  - ", "  - select.params.")
        raise ConfigError(msg) from None
