"""The shape the code keeps: no import circles, a runner that reads as the pipeline, short functions,
and the lenient ruff + mypy configuration of pyproject.toml passing."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("harness", "strategies", "reports")


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            name = ".".join(path.relative_to(REPO).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def _runtime_imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement, function-local ones included, except under `if TYPE_CHECKING:`."""
    out: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            return
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            out.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return out


def import_graph() -> dict[str, set[str]]:
    modules = _modules()

    def owner(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps: set[str] = set()
        for node in _runtime_imports(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                assert not node.level, f"{path}: relative import"
                targets = [f"{node.module}.{a.name}" for a in node.names]
            deps.update(d for d in map(owner, targets) if d and d != name)
        graph[name] = deps
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in graph:
        if v not in index:
            strong(v)
    return found


def functions(package: str) -> list[tuple[int, str]]:
    """(lines, where) of every function, nested ones counted in their parent too."""
    out = []
    for path in (REPO / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                out.append((node.end_lineno - node.lineno + 1, f"{path.relative_to(REPO)}:{node.lineno} {node.name}"))
    return sorted(out, reverse=True)


def test_the_import_graph_has_no_circles() -> None:
    graph = import_graph()
    # the graph sees function-local imports (the config reaches the registry only inside its validators)
    assert "harness.runner" in graph and "harness.core.registry" in graph["harness.core.config"]
    assert cycles(graph) == []


def test_only_the_select_stage_and_front_ends_import_strategies() -> None:
    """Shared records and errors live at the bottom, so the engine needs no strategy code."""
    allowed = {"harness.stages.select", "harness.stages.views", "harness.cli"}  # the config validates through the registry
    importers = {m for m, deps in import_graph().items() if any(d.split(".")[0] == "strategies" for d in deps) and not m.startswith("strategies")}
    assert importers <= allowed, importers - allowed


def test_the_runner_reads_as_the_pipeline_and_functions_are_short() -> None:
    assert len((REPO / "harness" / "runner.py").read_text(encoding="utf-8").splitlines()) < 150
    long = [f"{n} lines: {where}" for n, where in functions("harness") if n > 60]
    assert not long, long


@pytest.mark.parametrize("tool", ["ruff", "mypy"])
def test_lint_and_types_pass(tool: str) -> None:
    if importlib_missing(tool):
        pytest.fail(f"{tool} is a dev dependency (pip install -e '.[dev]'); it is missing here")
    command = [sys.executable, "-m", "ruff", "check", *PACKAGES, "tests", "benchmarks"] if tool == "ruff" else [sys.executable, "-m", "mypy", *PACKAGES]
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


def importlib_missing(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is None and shutil.which(module) is None


def test_paths_and_design_sections_the_code_and_docs_cite_exist() -> None:
    """Docs resolve inside the repository: every repo path a module, the README or a doc names exists,
    and every `docs/design.md §n` a docstring cites is a section of it."""
    import re

    path = re.compile(r"(?<![\w/.-])((?:docs|harness|strategies|reports|experiments|benchmarks|tests|scripts)/[\w./-]*\w)(?![\w/*<-])")
    sources = [p for package in (*PACKAGES, "benchmarks") for p in (REPO / package).rglob("*.py")] + [REPO / "README.md", *(REPO / "docs").glob("*.md")]
    missing = [f"{s.relative_to(REPO)}: {m}" for s in sources for m in path.findall(s.read_text(encoding="utf-8")) if not (REPO / m).exists()]
    assert not missing, missing
    sections = set(re.findall(r"^## (\d+)\.", (REPO / "docs" / "design.md").read_text(encoding="utf-8"), re.M))
    cited = {(s.name, n) for s in sources for n in re.findall(r"docs/design\.md §(\d+)", s.read_text(encoding="utf-8"))}
    assert len(cited) >= 10 and {n for _, n in cited} <= sections, sorted(cited)
