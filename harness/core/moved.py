"""Old import paths of modules that moved, and old names of registering functions, kept working for one release
with a warning.

A user's plugin is one file that imports from the harness; when a module moves, that file should keep
running and say what to change, not stop every command with "No module named ...". This table is the
one place that knows the old paths: `harness/__init__.py` installs the finder once, and an import of an
old path returns the module at its new one (the same object, so its registries and classes are shared)
after one line on stderr naming the importing file. Remove an entry one release after its move.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from types import ModuleType

MOVED: dict[str, str] = {
    "harness.records": "harness.core.records",
    "harness.registry": "harness.core.registry",
    "harness.errors": "harness.core.errors",
    "harness.config": "harness.experiment",
    "harness.core.config": "harness.experiment",
    "harness.io": "harness.core.io",
    "harness.cache": "harness.core.cache",
    "harness.stats": "harness.core.stats",
    "harness.pairs": "harness.data.pairs",
    "harness.metrics": "harness.constraints.metrics",
    "harness.evaluation.heldout": "harness.evaluation.constraint_accuracy",
    "strategies.dynamic": "strategies._dynamic",
    "strategies.breadth": "strategies._breadth",
    "strategies.depth": "strategies._depth",
    "strategies.control": "strategies.control_shuffled",
    "strategies.random_pairs": "strategies.random",
    "strategies.registry": "strategies.base",
    "harness.judges.task_check": "harness.evaluation.task_check",
    "harness.judges.cache": "harness.judges._cache",
    "harness.judges.llm_backends": "harness.judges._llm_backends",
    "harness.judges.llm_prompts": "harness.judges._llm_prompts",
    "harness.suites.common": "harness.suites._common",
    "harness.suites.lm_eval_suite": "harness.suites.lm_eval",
    "harness.suites.instruction_following": "harness.suites._instruction_following",
    "harness.models.resolved": "harness.models.choices",
    "harness.training.gradients": "harness.training.gradient_features",
}
"""old module path -> where it lives now (harness/: the domain packages' refactor; strategies/: one file per
registered name, helpers with a leading underscore; both bpo-bench 0.1)"""

RENAMED: dict[str, str] = {
    "harness.judges.base.register_judge": "harness.judges.base.register",
    "harness.suites.base.register_suite": "harness.suites.base.register",
    "harness.stages.views.PoolView": "harness.pool_views.base.PoolView",
    "harness.stages.views.ViewResult": "harness.pool_views.base.ViewResult",
    "harness.stages.views.POOL_VIEWS": "harness.core.registry.POOL_VIEWS",
}
"""old name -> the one that replaced it: every kind of plugin registers the same way, `register(plugin)`, the
plugin carrying its name, and pool views have a package of their own (bpo-bench 0.1)"""

REMOVED_IN = "0.2"


def _importer() -> str:
    """The file whose import statement asked for the old path (the first frame outside the import machinery)."""
    frame = sys._getframe(1)
    while frame is not None:
        name = frame.f_code.co_filename
        if not name.startswith("<frozen") and name != __file__ and "importlib" not in name:
            return name
        frame = frame.f_back  # type: ignore[assignment]
    return "a module"


def warn_renamed(old: str, caller: str) -> None:
    """One line on stderr: the plugin file `caller` uses `old`, which RENAMED replaced (it still works this release)."""
    print(
        f"[bench] warning: {caller} uses {old}, which is now {RENAMED[old]}; use that instead "
        f"(the old name stops working in bpo-bench {REMOVED_IN}).",
        file=sys.stderr,
        flush=True,
    )


class MovedFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Answers imports of MOVED's old paths with the module at its new path."""

    def find_spec(
        self, fullname: str, path: object = None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        return importlib.util.spec_from_loader(fullname, self) if fullname in MOVED else None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        new = MOVED[spec.name]
        print(
            f"[bench] warning: {_importer()} imports {spec.name}, which moved to {new}; import it from there "
            f"(the old path stops working in bpo-bench {REMOVED_IN}).",
            file=sys.stderr,
            flush=True,
        )
        return importlib.import_module(new)

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run: the module returned by `create_module` is already imported."""


def install() -> None:
    """Put the finder on the import path once (idempotent, so re-importing harness adds no second one)."""
    if not any(isinstance(finder, MovedFinder) for finder in sys.meta_path):
        sys.meta_path.append(MovedFinder())
