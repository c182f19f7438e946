"""Run the `bench` CLI as on a machine where one package is not installed.

`python tests/blocked_import.py PACKAGE ARGS...`: importing PACKAGE (or a submodule) raises
ModuleNotFoundError and `importlib.util.find_spec` finds nothing, exactly what a missing install
looks like to the code, so the test exercises the real preflight instead of a mock of it.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from pathlib import Path

# Python put this script's folder (tests/) first on sys.path; its package folders (tests/strategies, tests/reports)
# would shadow the project's packages of the same names as namespace packages
sys.path[:] = [p for p in sys.path if Path(p or '.').resolve() != Path(__file__).resolve().parent]


class _Missing(importlib.abc.MetaPathFinder):
    def __init__(self, name: str):
        self.name = name

    def find_spec(self, fullname, path=None, target=None):
        if fullname == self.name or fullname.startswith(self.name + "."):
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)
        return None


def _hide_from_find_spec(name: str) -> None:
    """`importlib.util.find_spec` answers None for a package that is not installed (it does not raise)."""
    real = importlib.util.find_spec

    def find_spec(fullname, package=None):
        if fullname == name or fullname.startswith(name + "."):
            return None
        return real(fullname, package)

    importlib.util.find_spec = find_spec


if __name__ == "__main__":
    blocked = sys.argv.pop(1)
    sys.meta_path.insert(0, _Missing(blocked))
    _hide_from_find_spec(blocked)
    from harness.cli import main

    sys.argv[0] = "bench"
    main()
