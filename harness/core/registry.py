"""One small registry for every kind of plugin: strategies, suites, judges and pool views.

Modelled on lm-eval's `Registry`, with our manners: a name registered twice is refused (naming
the module that has it), an unknown name is answered with close matches and the known names.
Each registry finds its plugins by importing every module of its package the first time it is
asked, so adding a plugin is adding one file; nothing else lists them.

This module imports only harness/core/errors.py, so the config can validate plugin names and any
module can register one without an import circle.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Generic, TypeVar

from harness.core.errors import BenchError

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
        """Import every module of the package once (registration is their import side effect).

        A module that fails to import (a plugin with a bug, a name registered twice) is a BenchError
        naming its file, and the next lookup tries again rather than seeing half the plugins.
        """
        if self._discovered:
            return
        package = importlib.import_module(self.package)
        for module in pkgutil.iter_modules(package.__path__):
            if module.name.startswith("_"):
                continue
            try:
                importlib.import_module(f"{self.package}.{module.name}")
            except Exception as exc:
                where = Path(getattr(module.module_finder, "path", "")) / f"{module.name}.py"
                raise BenchError(
                    f"the {self.kind} plugin {where} could not be imported ({type(exc).__name__}: {exc}); fix or remove that file."
                ) from exc
        self._discovered = True

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

    def readers(self, field: str, fields: Sequence[str]) -> tuple[list[str], list[str]]:
        """(the optional fields read by exactly the plugins that read `field`, those plugins' names),
        for "a, b and c only apply to ..." errors; each plugin lists the optional fields it reads in `fields`."""

        def takers(name: str) -> list[str]:
            return [n for n in self.names() if name in getattr(self.get(n), "fields", ())]

        return [f for f in fields if takers(f) == takers(field)], takers(field)

    def names(self) -> list[str]:
        self.discover()
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        self.discover()
        return name in self._items


def and_list(items: Sequence[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return ", ".join(items[:-1]) + " and " + items[-1] if len(items) > 1 else items[0]


STRATEGIES: Registry = Registry("strategy", "strategies", plural="strategies", see="bench strategies")
SUITES: Registry = Registry("suite", "harness.suites")
JUDGES: Registry = Registry("judge", "harness.judges")
POOL_VIEWS: Registry = Registry("pool view", "harness.stages")
