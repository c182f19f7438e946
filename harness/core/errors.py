"""The error classes every layer raises, at the bottom of the import graph.

They live apart from the configuration so that strategies, checkers and stages can raise them
without importing the config (and the config can validate strategies without a circle).
"""

from __future__ import annotations

import importlib

from pydantic import ValidationError


class BenchError(Exception):
    """An error the user can fix; the CLI prints it as one paragraph, without a traceback."""


class ConfigError(BenchError):
    pass


class BudgetError(ValueError):
    """The pool cannot supply the requested number of pairs under this strategy."""


class StageFailure(Exception):
    """An unexpected error inside a stage (a bug, not a user error): carries the stage's name, the
    original exception is its `__cause__`. The CLI prints one paragraph naming both and where the
    full traceback was written (`log_path`), and exits 1."""

    def __init__(self, stage: str, error: BaseException):
        super().__init__(f"stage {stage}: {type(error).__name__}: {error}")
        self.stage = stage
        self.log_path: str | None = None


def format_validation_error(err: ValidationError, origin: str) -> str:
    """One line per problem, each with its field path: every mistake in a config is shown at once."""
    lines = [f"{origin}: {err.error_count()} problem(s) in the configuration:"]
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"]) or "(top level)"
        if e["type"] == "extra_forbidden":
            msg = "unknown key; remove it or check its spelling (see `bench run --help` and experiments/default.yaml)"
        else:
            msg = f"{e['msg']} (got {e.get('input')!r})"
        lines.append(f"  - {where}: {msg}")
    return "\n".join(lines)


INSTALL_ALL = "bash scripts/install.sh"


def require(module: str, install: str, needed_for: str) -> None:
    """Import `module` now (no weights are loaded), or fail with the pip command that installs it."""
    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise BenchError(
            f"{needed_for} needs the Python package that provides `{module}`, which cannot be imported here ({exc}). "
            f"Install it with `{install}` ({INSTALL_ALL} installs everything bpo-bench uses), then run the command again."
        ) from None
