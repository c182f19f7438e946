"""Strategies are registered by name in the project's one plugin registry (harness/core/registry.py).

A strategy is one module of this package whose class carries `@register`; the registry imports
every module here the first time a name is asked for, so nothing else lists them.
"""

from __future__ import annotations

from harness.core.registry import STRATEGIES, UnknownName
from strategies.base import Strategy, register

__all__ = ["UnknownStrategy", "get_strategy", "register", "strategy_names"]

UnknownStrategy = UnknownName
"""What an unknown strategy name raises (a KeyError whose message lists close matches)."""


def get_strategy(name: str) -> Strategy:
    return STRATEGIES.get(name)()


def strategy_names() -> list[str]:
    return STRATEGIES.names()
