"""One small registry for every kind of plugin: strategies, suites, judges and pool views.

Modelled on lm-eval's `Registry`, with our manners: a name registered twice is refused (naming
the module that has it), an unknown name is answered with close matches and the known names.
Each registry finds its plugins by importing every module of its package the first time it is
asked, so adding a plugin is adding one file; nothing else lists them.

This module imports nothing of the project's, so the config can validate plugin names and any
module can register one without an import circle.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class UnknownName(KeyError):
    """A plugin name no module registered; `message` says which names exist and which are close."""

    def __init__(self, message: str):
        self.message = message
        super().__init__(message)

    def __str__(self) -> str:
        return self.message


class Registry(Generic[T]):
    """Name -> plugin for one kind of plugin, filled by the modules of `package`."""

    def __init__(self, kind: str, package: str, plural: str | None = None, see: str | None = None):
        self.kind, self.package = kind, package
        self.plural = plural or kind + "s"
        self.see = see
        self._items: dict[str, T] = {}
        self._discovered = False

    def register(self, name: str, item: T) -> T:
        if name in self._items:
            where = getattr(self._items[name], "__module__", "another module")
            raise ValueError(f"{self.kind} {name!r} is already registered by {where}")
        self._items[name] = item
        return item

    def add(self, name: str) -> Callable[[T], T]:
        """Decorator form of `register`."""
        return lambda item: self.register(name, item)

    def discover(self) -> None:
        """Import every module of the package once (registration is their import side effect)."""
        if self._discovered:
            return
        self._discovered = True
        package = importlib.import_module(self.package)
        for module in pkgutil.iter_modules(package.__path__):
            if not module.name.startswith("_"):
                importlib.import_module(f"{self.package}.{module.name}")

    def get(self, name: str) -> T:
        self.discover()
        if name not in self._items:
            raise UnknownName(self.unknown(name))
        return self._items[name]

    def validate(self, name: str) -> str:
        """`name` if registered, else ValueError with close matches (a pydantic validator adds the field path)."""
        if name not in self:
            raise ValueError(self.unknown(name))
        return name

    def unknown(self, name: str) -> str:
        close = difflib.get_close_matches(name, list(self._items), n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        see = f" (see `{self.see}`)" if self.see else ""
        return f"Unknown {self.kind} {name!r}.{hint} Known {self.plural}: {', '.join(self.names())}{see}."

    def names(self) -> list[str]:
        self.discover()
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        self.discover()
        return name in self._items


STRATEGIES: Registry = Registry("strategy", "strategies", plural="strategies", see="bench strategies")
SUITES: Registry = Registry("suite", "harness.suites")
JUDGES: Registry = Registry("judge", "harness.judges")
POOL_VIEWS: Registry = Registry("pool view", "harness.stages")
