"""The package's shape: dependencies point one way, and no module grows past what one reader can hold.

Imports are read from the source with ``ast``, function-level imports
included: an import moved into a function to dodge a circle is still a circle.
Imports under ``if TYPE_CHECKING:`` are left out: they never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest_parallel_explore

PACKAGE = Path(pytest_parallel_explore.__file__).parent
NAME = "pytest_parallel_explore"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Each module of the package -> the package's modules it imports, anywhere in its body."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        tree = ast.parse(path.read_text(), str(path))
        typing_only = {
            id(inner)
            for node in ast.walk(tree)
            if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")
            for inner in ast.walk(node)
        }
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue  # imports for annotations only never run
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                for alias in node.names:
                    candidate = f"{base}.{alias.name}"
                    targets.add(candidate if candidate in modules else base)
            elif isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            else:
                continue
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every elementary cycle's shortest representative, found by a depth-first search from each module."""
    found: set[tuple[str, ...]] = set()
    for start in graph:
        stack = [(start, [start])]
        while stack:
            node, path = stack.pop()
            for nxt in graph[node]:
                if nxt == start:
                    cycle = path[path.index(min(path)) :] + path[: path.index(min(path))]
                    found.add(tuple(cycle))
                elif nxt not in path and len(path) < 8:
                    stack.append((nxt, [*path, nxt]))
    return sorted(list(c) for c in found)


def test_the_import_graph_has_no_cycles() -> None:
    graph = import_graph()
    assert graph.get(f"{NAME}.trial"), "the graph was not read"
    assert cycles(graph) == []


def test_a_cycle_is_found_when_there_is_one() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_is_longer_than_500_lines() -> None:
    lengths = {p.name: len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    assert {name: n for name, n in lengths.items() if n > 500} == {}


def test_the_worker_side_imports_no_report_code() -> None:
    # An xdist worker imports the items and everything a trial runs; the report is the controller's.
    reached = _reachable(import_graph(), f"{NAME}.items")
    assert f"{NAME}.trial" in reached, "the graph was not followed"
    assert sorted(m for m in reached if m.startswith(f"{NAME}.report")) == []


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = {start}, [start]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen
