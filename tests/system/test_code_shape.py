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
sys.path.insert(0, str(REPO / "scripts"))
from code_map import budget_guards, circles, graph, resolver_calls, strategy_lookups, upward  # noqa: E402  (the import graph has one owner: scripts/code_map.py)


def import_graph() -> dict[str, set[str]]:
    return graph(PACKAGES)


def functions(package: str) -> list[tuple[int, str]]:
    """(statements, where) of every function, nested ones counted in their parent too. Statements, not physical
    lines, so that the formatter wrapping a long call changes nothing."""
    out = []
    for path in (REPO / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                statements = {s.lineno for s in ast.walk(node) if isinstance(s, ast.stmt)}
                out.append((len(statements), f"{path.relative_to(REPO)}:{node.lineno} {node.name}"))
    return sorted(out, reverse=True)


def test_the_import_graph_has_no_circles() -> None:
    graph = import_graph()
    # the graph sees every module, and every section beside its code reaches only what it validates against
    assert "harness.runner" in graph and "harness.core.registry" in graph["harness.judges.config"]
    assert circles(graph) == []
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]  # the finder sees one


def test_no_import_points_up_a_layer() -> None:
    """Each config section sits beside its code and harness/experiment.py assembles them, so core/ imports nothing
    above itself, even inside a function; a type named only for annotations is imported under TYPE_CHECKING."""
    harness = graph()
    assert upward(harness) == []
    assert upward({"harness.core.io": {"harness.stages.pool"}}) == [
        "harness.core.io -> harness.stages.pool"
    ]  # it sees one


def test_no_stage_imports_the_reports() -> None:
    """Reports are a pure function of the run folder: the runner writes one after the last stage."""
    importers = {m for m, deps in import_graph().items() if any(d.startswith("reports") for d in deps)}
    assert importers and not {m for m in importers if m.startswith("harness.stages")}, importers


def test_only_the_select_stage_and_front_ends_import_strategies() -> None:
    """Shared records and errors live at the bottom, so the engine needs no strategy code."""
    allowed = {
        "harness.stages.select",
        "harness.stages.views",
        "harness.cli",
    }  # the config validates through the registry
    importers = {
        m
        for m, deps in import_graph().items()
        if any(d.split(".")[0] == "strategies" for d in deps) and not m.startswith("strategies")
    }
    assert importers <= allowed, importers - allowed


def test_a_run_looks_its_strategy_up_once() -> None:
    """The budget guard, the pool views and the select stage read `Run.selector`; the registry is asked by
    Selector.of alone (and by `bench strategies`, which lists them)."""
    assert sorted(site.split(":")[0] for site in strategy_lookups()) == ["harness/cli.py", "harness/stages/select.py"]


def test_the_machine_is_resolved_in_one_place() -> None:
    """`auto` (back end, dtype, attention, LoRA targets) is decided by models/ for `Run`, the preflight and bench eval's
    run; stages, trainers, suites and judges receive what was decided, so no key can name one choice while
    another ran."""
    assert resolver_calls() == []


def test_a_budget_is_guarded_once_for_the_strategy_and_once_for_the_pool() -> None:
    assert sorted(site.split(":")[0] for site in budget_guards()) == [
        "harness/stages/pool.py",
        "harness/stages/select.py",
    ]


def test_the_runner_reads_as_the_pipeline_and_functions_are_short() -> None:
    assert len((REPO / "harness" / "runner.py").read_text(encoding="utf-8").splitlines()) < 150
    long = [f"{n} statements: {where}" for n, where in functions("harness") if n > 45]
    assert not long, long


@pytest.mark.parametrize("tool", ["ruff", "ruff format", "mypy"])
def test_lint_and_types_pass(tool: str) -> None:
    if importlib_missing(tool.split()[0]):
        pytest.fail(f"{tool.split()[0]} is a dev dependency (pip install -e '.[dev]'); it is missing here")
    commands = {
        "ruff": [sys.executable, "-m", "ruff", "check", *PACKAGES, "tests", "benchmarks", "scripts"],
        "ruff format": [sys.executable, "-m", "ruff", "format", "--check", *PACKAGES, "tests", "benchmarks", "scripts"],
        "mypy": [sys.executable, "-m", "mypy", *PACKAGES],
    }
    proc = subprocess.run(commands[tool], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


def importlib_missing(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is None and shutil.which(module) is None


def test_paths_and_design_sections_the_code_and_docs_cite_exist() -> None:
    """Docs resolve inside the repository: every repo path a module, the README or a doc names exists,
    and every `docs/design.md §n` a docstring cites is a section of it."""
    import re

    path = re.compile(
        r"(?<![\w/.-])((?:docs|harness|strategies|reports|experiments|benchmarks|tests|scripts)/[\w./-]*\w)(?![\w/*<-])"
    )
    sources = [p for package in (*PACKAGES, "benchmarks") for p in (REPO / package).rglob("*.py")] + [
        REPO / "README.md",
        *(REPO / "docs").glob("*.md"),
    ]
    missing = [
        f"{s.relative_to(REPO)}: {m}"
        for s in sources
        for m in path.findall(s.read_text(encoding="utf-8"))
        if not (REPO / m).exists()
    ]
    assert not missing, missing
    sections = set(re.findall(r"^## (\d+)\.", (REPO / "docs" / "design.md").read_text(encoding="utf-8"), re.M))
    cited = {(s.name, n) for s in sources for n in re.findall(r"docs/design\.md §(\d+)", s.read_text(encoding="utf-8"))}
    assert len(cited) >= 10 and {n for _, n in cited} <= sections, sorted(cited)
