"""The shape of the house: no import cycle, commands never import each other (nor does the
library import a command), no source file over 500 lines. Read from the code with ``ast``."""

from __future__ import annotations

import ast
from pathlib import Path

from fixtures import REPO_ROOT

PACKAGES = ("mast_core", "pipelines")
MAX_LINES = 500


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_files() -> dict[str, Path]:
    return {module_name(p): p for package in PACKAGES for p in sorted((REPO_ROOT / package).rglob("*.py"))}


def imported_modules(path: Path, name: str, modules: dict[str, Path]) -> set[str]:
    """The project modules that ``path`` imports anywhere (module level or inside functions)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - (node.level - 1)] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    # importing an enclosing package's __init__ does not tie a module to its siblings
    return {m for m in found if m in modules and m != name and not name.startswith(m + ".")}


def import_graph() -> dict[str, set[str]]:
    modules = source_files()
    return {name: imported_modules(path, name, modules) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), plus self-loops."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle():
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_cycles():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_commands_never_import_each_other_and_nothing_imports_a_command():
    graph = import_graph()
    commands = {name for name in graph if name.startswith("pipelines.commands.")}
    assert {"pipelines.commands.pretrain", "pipelines.commands.sweep", "pipelines.commands.demo"} <= commands
    offenders = sorted(
        (name, target)
        for name, targets in graph.items()
        for target in targets
        if (target in commands or target == "pipelines.cli") and name != "pipelines.cli" and name != "pipelines.__main__"
    )
    assert offenders == []


def test_the_library_imports_no_recipe():
    graph = import_graph()
    assert sorted((n, t) for n, ts in graph.items() if n.startswith("mast_core") for t in ts if t.startswith("pipelines")) == []


def test_no_source_file_over_500_lines():
    long = {str(p.relative_to(REPO_ROOT)): len(p.read_text().splitlines()) for p in source_files().values()}
    assert {path: lines for path, lines in long.items() if lines > MAX_LINES} == {}
