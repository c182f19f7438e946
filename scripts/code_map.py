"""How walkable the code is, measured the way a newcomer meets it (issue 29): run from the repository root.

    python3 scripts/code_map.py

Prints: top-level modules of harness/; modules that share a basename with a stage module;
import circles; imports that point up a layer (LAYERS, lowest first); calls of the
machine-dependent resolvers outside the models package (other than by `Run` and the preflight);
stage functions whose `run` parameter has no type; the records of a finished run in the
analysis code; modules that spell a run-folder file name; budget guards; the ways plugins register;
imports inside functions; lines over 120 characters; README lines and its Quick start's; docs/testbed.md's lines.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import networkx

REPO = Path(__file__).resolve().parents[1]
LAYERS = [
    {"core", "constraints"},
    {"data"},
    {"models"},
    {"generation"},
    {"training", "judges", "suites", "evaluation"},
    {"analysis"},
    {"stages", "pool_views"},
    {"(orchestration)"},
    {"matrix"},
    {"cli"},
]
"""harness from the bottom up: packages, then the top-level orchestration modules (runner, run_folder, preflight,
...), the matrix package that runs cells through the runner, and the command line. The package root (`harness`,
its version) is the bottom; the constraint catalogue is vocabulary the config schema validates against."""
RESOLVERS = (
    "resolve_backend",
    "resolve_dtype",
    "resolve_attention",
    "resolve_target_modules",
    "resolve_train",
    "engine_key",
)
"""What decides `auto` by the machine (back end, dtype, attention kernels, LoRA targets). `model_fingerprint` is not
one: it names the weights, the same on every machine, and an evaluation target's key reads it. Nor is `device`: it
says where this process's tensors live, which no key records, and under `accelerate launch` each worker has its own."""
ALLOWED_RESOLVER_CALLERS = ("harness/run_folder.py", "harness/preflight.py", "harness/eval_runner.py")


def modules(packages: tuple[str, ...] = ("harness",)) -> dict[str, Path]:
    """Dotted module name -> file, for every module of `packages` (a package is named by its folder)."""
    found = {}
    for package in packages:
        for path in (REPO / package).rglob("*.py"):
            found[".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")] = path
    return found


def imports(path: Path) -> set[str]:
    """Every runtime import (function-local ones too); an `if TYPE_CHECKING:` import names a type, not a dependency."""
    deps: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            return
        if isinstance(node, ast.Import):
            deps.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                raise ValueError(f"{path}:{node.lineno}: relative import; the import graph reads absolute ones only")
            deps.update(f"{node.module}.{a.name}" for a in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return deps


def graph(packages: tuple[str, ...] = ("harness",)) -> dict[str, set[str]]:
    """Module -> the modules of `packages` it imports at run time."""
    mods = modules(packages)

    def owner(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    return {m: {d for d in map(owner, imports(p)) if d and d != m} for m, p in mods.items()}


def layer(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1:
        return 0  # the package root
    for i, group in enumerate(LAYERS):
        if parts[1] in group:
            return i
    return next(i for i, group in enumerate(LAYERS) if "(orchestration)" in group)


def upward(g: dict[str, set[str]]) -> list[str]:
    """The imports that point up a layer ("a -> b"), function-local ones too: core/ reaches nothing above itself."""
    return sorted(f"{m} -> {d}" for m, deps in g.items() for d in deps if layer(d) > layer(m))


def circles(g: dict[str, set[str]]) -> list[list[str]]:
    """The import circles: strongly connected groups of more than one module, each sorted."""
    components = networkx.strongly_connected_components(
        networkx.DiGraph([(m, d) for m, deps in g.items() for d in deps])
    )
    return sorted(sorted(c) for c in components if len(c) > 1)


def resolver_calls() -> list[str]:
    out = []
    for path in sorted((REPO / "harness").rglob("*.py")):
        rel = str(path.relative_to(REPO))
        if rel.startswith("harness/models/") or rel in ALLOWED_RESOLVER_CALLERS:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                if name in RESOLVERS:
                    out.append(f"{rel}:{node.lineno} {name}")
    return out


def strategy_lookups() -> list[str]:
    """Registry lookups of a strategy by name in harness/: a run's one is `Selector.of` (harness/stages/select.py),
    which `Run` calls once; `bench strategies` lists them."""
    out = []
    for path in sorted((REPO / "harness").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", getattr(node.func, "attr", "")) == "get_strategy"
            ):
                out.append(f"{path.relative_to(REPO)}:{node.lineno}")
    return out


def untyped_run_parameters() -> list[str]:
    out = []
    for path in sorted((REPO / "harness" / "stages").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                out += [
                    f"{path.relative_to(REPO)}:{node.lineno} {node.name}"
                    for a in node.args.args
                    if a.arg == "run" and a.annotation is None
                ]
    return out


def run_records() -> list[str]:
    """Dataclasses in the analysis code that hold one finished run (named *Run* or *RunRecord*)."""
    out = []
    for path in sorted((REPO / "harness").rglob("*.py")):
        if "analysis" not in path.parts and path.name not in {"comparisons.py", "power.py"}:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and re.search(r"Run(Summary|Record)?$", node.name):
                out.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name}")
    return out


def run_file_literals() -> list[str]:
    """Modules outside harness/core/run_files.py that spell a run-folder file's name instead of asking RunFolder."""
    sys.path.insert(0, str(REPO))
    from harness.core.run_files import RunFolder

    names = {v for k, v in vars(RunFolder).items() if k.isupper() and isinstance(v, str)}
    out = []
    for path in sorted([*(REPO / "harness").rglob("*.py"), *(REPO / "reports").rglob("*.py")]):
        if path.name == "run_files.py":
            continue
        found = sorted(
            {
                n.value
                for n in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
                if isinstance(n, ast.Constant) and n.value in names
            }
        )
        if found:
            out.append(f"{path.relative_to(REPO)}: {', '.join(found)}")
    return out


def function_imports() -> list[str]:
    """Import statements inside functions in harness/ (each one a dependency hidden from a reader of the module's head)."""
    out = []
    for path in sorted((REPO / "harness").rglob("*.py")):
        for fn in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                out += [
                    f"{path.relative_to(REPO)}:{n.lineno}"
                    for n in fn.body
                    for n in ast.walk(n)
                    if isinstance(n, (ast.Import, ast.ImportFrom))
                ]
    return sorted(set(out))


def budget_guards() -> list[str]:
    """Places in harness/ that refuse a budget by comparing it with what is available (`if ... budget > ...: raise`):
    one for the strategy (`Selector.check_budget`), and the pool's coverage check before any sampling."""
    out = []
    for path in sorted((REPO / "harness").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.If)
                and isinstance(node.test, ast.Compare)
                and "budget" in ast.unparse(node.test.left)
                and any(isinstance(op, (ast.Gt, ast.GtE)) for op in node.test.ops)
                and any(isinstance(n, ast.Raise) for n in node.body)
            ):
                out.append(f"{path.relative_to(REPO)}:{node.lineno} {ast.unparse(node.test)}")
    return out


PLUGIN_PACKAGES = ("strategies", "harness/judges", "harness/suites", "harness/pool_views", "harness/stages")
"""Where plugins register (the last: where pool views registered before they had a package of their own)."""


def plugin_shapes() -> list[str]:
    """The distinct ways plugin files register a plugin: the callee of each module-level registering call or decorator
    (`register(...)`, `@register_judge`, `POOL_VIEWS.register(...)`), with the files that use it."""
    shapes: dict[str, set[str]] = {}
    for package in PLUGIN_PACKAGES:
        for path in sorted((REPO / package).glob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            callees = [
                ast.unparse(d.func if isinstance(d, ast.Call) else d)
                for n in tree.body
                if isinstance(n, ast.ClassDef)
                for d in n.decorator_list
            ]
            callees += [
                ast.unparse(n.value.func)
                for n in tree.body
                if isinstance(n, ast.Expr) and isinstance(n.value, ast.Call)
            ]
            for callee in callees:
                if "register" in callee:
                    shapes.setdefault(callee, set()).add(str(path.relative_to(REPO)))
    return [f"{callee} ({len(files)} files)" for callee, files in sorted(shapes.items())]


def long_lines() -> list[str]:
    return [
        f"{p.relative_to(REPO)}:{i}"
        for p in sorted((REPO / "harness").rglob("*.py"))
        for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if len(line) > 120
    ]


def main() -> None:
    mods = modules()
    top = sorted(m for m in mods if m.count(".") == 1 and not (REPO / m.replace(".", "/")).is_dir())
    # every package keeps its config section in config.py (stages/ too, for pool and select): a convention, no stage
    stages = {m.rsplit(".", 1)[1] for m in mods if m.startswith("harness.stages.")} - {"config"}
    # a pool view's file is named as it registers, after the stage it attaches: the same thing's plugin face, no twin
    twins = sorted(
        m
        for m in mods
        if not m.startswith(("harness.stages.", "harness.pool_views.")) and m.rsplit(".", 1)[-1] in stages
    )
    g = graph()
    readme = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    start = next((i for i, line in enumerate(readme) if line.startswith("## Quick start")), None)
    quick = (
        next((j for j in range(start + 1, len(readme)) if readme[j].startswith("## ")), len(readme)) - start
        if start is not None
        else 0
    )
    rows = [
        ("top-level modules in harness/", top),
        ("modules sharing a basename with a stage", twins),
        ("import circles", [" -> ".join(c) for c in circles(g)]),
        ("imports pointing up a layer", upward(g)),
        ("machine resolvers called outside models/, Run and preflight", resolver_calls()),
        ("strategy lookups by name in harness/ (a run's one: Selector.of)", strategy_lookups()),
        ("untyped `run` parameters in stages", untyped_run_parameters()),
        ("run records in the analysis code", run_records()),
        ("modules spelling a run-folder file name (not through RunFolder)", run_file_literals()),
        ("budget guards (a budget compared with what is available, then refused)", budget_guards()),
        ("plugin shapes (distinct registering calls in plugin files)", plugin_shapes()),
        ("imports inside functions in harness/", function_imports()),
        ("lines over 120 characters in harness/", long_lines()),
    ]
    for title, items in rows:
        print(f"{len(items):>4}  {title}")
        for item in items:
            print(f"        {item}")
    print(f"{len(readme):>4}  README.md lines (Quick start: {quick})")
    print(f"{len((REPO / 'docs' / 'testbed.md').read_text(encoding='utf-8').splitlines()):>4}  docs/testbed.md lines")


if __name__ == "__main__":
    main()
