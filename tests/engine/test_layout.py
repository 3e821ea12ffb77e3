"""The engine's import graph: a leaf package of orch, with no import cycle inside it.

Every import statement counts, wherever it stands (module level, inside a function, under
``TYPE_CHECKING``): a cycle hidden behind a lazy import is still a cycle in the design.
"""

from __future__ import annotations

import ast
from pathlib import Path

import orch.engine

ROOT = Path(orch.engine.__file__).parent
PACKAGE = "orch.engine"


def module_name(path: Path) -> str:
    """The dotted name of a source file under ``ROOT``."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join((PACKAGE, *parts))


def imported(path: Path, modules: set[str]) -> set[str]:
    """Dotted names a file imports; ``from pkg import mod`` names ``pkg.mod`` when it is one."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in modules else base)
    return found


def import_graph() -> dict[str, set[str]]:
    """Every engine module and what it imports (outside names included)."""
    files = sorted(ROOT.rglob("*.py"))
    modules = {module_name(f) for f in files}
    return {module_name(f): imported(f, modules) for f in files}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle among the graph's own modules, as a path that returns to its start."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph[node]):
            if target not in graph:
                continue
            if state.get(target) == "open":
                return [*stack[stack.index(target) :], target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_graph_covers_the_engine():
    graph = import_graph()
    assert {"orch.engine.core", "orch.engine.server", "orch.engine.routes.common"} <= set(graph)
    assert "orch.engine.store" in graph["orch.engine.core"]


def test_no_import_cycle_inside_the_engine():
    assert find_cycle(import_graph()) is None


def test_engine_imports_nothing_else_from_orch():
    outside = sorted(
        f"{module} imports {target}"
        for module, targets in import_graph().items()
        for target in targets
        if (target == "orch" or target.startswith("orch."))
        and not (target == PACKAGE or target.startswith(PACKAGE + "."))
    )
    assert outside == []


def test_cycle_finder_sees_a_cycle():
    graph = {"a": {"b"}, "b": {"c", "os"}, "c": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
