"""Balancing strategies, one module each, plugged in through the registry.

A new strategy is a new module here with a `@register`ed class: the registry finds it.
"""

from __future__ import annotations

from strategies.base import (
    BudgetError,
    CandidatePool,
    Strategy,
    UnknownStrategy,
    get_strategy,
    register,
    strategy_names,
)

__all__ = [
    "BudgetError",
    "CandidatePool",
    "Strategy",
    "UnknownStrategy",
    "get_strategy",
    "register",
    "strategy_names",
]
