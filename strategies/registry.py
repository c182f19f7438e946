"""Strategy registry: refuses duplicate names, answers unknown ones with close matches."""

from __future__ import annotations

import difflib

from strategies.base import Strategy

_REGISTRY: dict[str, type[Strategy]] = {}


def register(cls: type[Strategy]) -> type[Strategy]:
    if cls.name in _REGISTRY:
        raise ValueError(f"strategy {cls.name!r} is already registered by {_REGISTRY[cls.name].__module__}")
    _REGISTRY[cls.name] = cls
    return cls


class UnknownStrategy(KeyError):
    def __init__(self, name: str):
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        self.message = f"Unknown strategy {name!r}.{hint} Known strategies: {', '.join(sorted(_REGISTRY))} (see `bench strategies`)."
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


def get_strategy(name: str) -> Strategy:
    if name not in _REGISTRY:
        raise UnknownStrategy(name)
    return _REGISTRY[name]()


def strategy_names() -> list[str]:
    return sorted(_REGISTRY)
