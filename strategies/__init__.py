"""Balancing strategies, one module each, plugged in through the registry.

A new strategy is a new module here with a `@register`ed class: the registry finds it.
"""

from __future__ import annotations

from pydantic import BaseModel, ValidationError

from harness.core.errors import ConfigError, format_validation_error
from strategies.base import BudgetError, CandidatePool, Strategy
from strategies.registry import UnknownStrategy, get_strategy, register, strategy_names

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


def validate_strategy_config(name: str, params: dict, origin: str) -> BaseModel:
    """Check the strategy name and its `select.params` when the config loads, not mid-run."""
    try:
        strategy = get_strategy(name)
    except UnknownStrategy as exc:
        raise ConfigError(f"{origin}: select.strategy: {exc.message}") from None
    try:
        return strategy.Params.model_validate(params)
    except ValidationError as err:
        msg = format_validation_error(err, origin).replace("  - ", "  - select.params.")
        raise ConfigError(msg) from None
