"""One small registry for every kind of plugin: strategies, suites, judges and pool views.

Modelled on lm-eval's `Registry`, with our manners: a name registered twice is refused (naming
the module that has it), an unknown name is answered with close matches and the known names.
Each registry finds its plugins by importing every module of its package the first time it is
asked, so adding a plugin is adding one file; nothing else lists them. A module that fails to import
stops only the commands that ask for a name it may hold: the others run, with a warning naming the
file (one user's broken plugin must not stop `bench run --strategy original`).

This module imports only harness/core/errors.py, so the config can validate plugin names and any
module can register one without an import circle.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
import sys
from collections.abc import Sequence
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


class DuplicateName(ValueError):
    """A plugin registered a name another plugin already has."""

    def __init__(self, message: str, name: str):
        self.name = name
        super().__init__(message)


class Registry(Generic[T]):
    """Name -> plugin for one kind of plugin, filled by the modules of `package`."""

    def __init__(self, kind: str, package: str, plural: str | None = None, see: str | None = None):
        self.kind, self.package = kind, package
        self.plural = plural or kind + "s"
        self.see = see
        self._items: dict[str, T] = {}
        self._discovered = False
        self._broken: dict[str, str] = {}
        """plugin file -> why it could not be imported, as of the last discovery"""
        self._clashes: dict[str, str] = {}
        """name -> the module that registered it a second time"""
        self._warned: set[str] = set()
        self._origins: dict[str, str] = {}
        """name -> the module that registered it"""

    def register(self, name: str, item: T, origin: str | None = None) -> T:
        """Make `item` available as `name`; `origin` is the registering module (default: the item's own module)."""
        if name in self._items:
            raise DuplicateName(f"{self.kind} {name!r} is already registered by {self.origin(name)}", name)
        self._items[name] = item
        self._origins[name] = origin or getattr(item, "__module__", "another module")
        return item

    def origin(self, name: str) -> str:
        """The module that registered `name` (where a reader finds it: the plugin's file is named as it registers)."""
        return self._origins.get(name, "another module")

    def discover(self) -> None:
        """Import every module of the package once (registration is their import side effect).

        A module that fails to import (a plugin with a bug, a name registered twice) is remembered with
        its file and error, not raised: lookups of the names that did register work, with a warning, and
        a lookup that may need the broken file says which file to fix. Discovery is tried again on the
        next lookup while any file is broken, so a mended file is found without a restart.
        """
        if self._discovered:
            return
        self._broken, self._clashes = {}, {}
        package = importlib.import_module(self.package)
        for module in pkgutil.iter_modules(package.__path__):
            if module.name.startswith("_"):
                continue
            try:
                importlib.import_module(f"{self.package}.{module.name}")
            except Exception as exc:  # any bug in a user's file; it is reported, never swallowed
                sys.modules.pop(f"{self.package}.{module.name}", None)
                where = str(Path(getattr(module.module_finder, "path", "")) / f"{module.name}.py")
                self._broken[where] = f"{type(exc).__name__}: {exc}"
                if isinstance(exc, DuplicateName):
                    self._clashes[exc.name] = f"{self.package}.{module.name}"
        self._discovered = not self._broken

    def broken(self) -> str:
        """The plugin files that could not be imported, as one sentence ('' when none)."""
        files = [f"the {self.kind} plugin {where} could not be imported ({why})" for where, why in self._broken.items()]
        return (
            "; ".join(files) + ("; fix or remove that file." if len(files) == 1 else "; fix or remove those files.")
            if files
            else ""
        )

    def _warn_broken(self) -> None:
        """Say once per process and file that some plugins are missing, when the command goes on without them."""
        fresh = [where for where in self._broken if where not in self._warned]
        if fresh:
            self._warned.update(fresh)
            print(
                f"[bench] warning: {self.broken()} Commands that do not use it still run.", file=sys.stderr, flush=True
            )

    def get(self, name: str) -> T:
        self.discover()
        if name in self._clashes:
            raise BenchError(
                f"{self.kind} {name!r} is registered twice, by {self.origin(name)} and "
                f"{self._clashes[name]}; rename one of them."
            )
        if name not in self._items:
            if self._broken:
                raise BenchError(f"{self.unknown(name)} It may be registered by a file that is broken: {self.broken()}")
            raise UnknownName(self.unknown(name))
        self._warn_broken()
        return self._items[name]

    def validate(self, name: str) -> str:
        """`name` if registered, else ValueError with close matches (a pydantic validator adds the field path)."""
        try:
            self.get(name)
        except (UnknownName, BenchError) as exc:  # unknown, in a broken file, or registered twice
            raise ValueError(str(exc)) from None
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
        self._warn_broken()
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
POOL_VIEWS: Registry = Registry("pool view", "harness.pool_views")
