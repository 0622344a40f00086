"""The package's shape: dependencies point one way, and no module grows past what one reader can hold.

Imports are read from the source with ``ast``, function-level imports and
``if TYPE_CHECKING:`` imports included: an import moved into a function or
under ``TYPE_CHECKING`` to dodge a circle still ties the two modules together.
Rules hold at file level (module to module) and at package level (a
subpackage such as ``scoring`` to another such as ``config``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import pytest_parallel_explore

PACKAGE = Path(pytest_parallel_explore.__file__).parent
NAME = "pytest_parallel_explore"

# Who may import whom, bottom to top: a package may import those listed, and
# nothing else of the package.  Top-level modules are their own units.
ALLOWED: dict[str, set[str]] = {
    "version": set(),
    "model": {"version"},
    "templating": set(),
    "config": {"model", "repo", "templating"},
    "repo": {"model"},
    "evidence": {"model"},
    "isolation": {"model"},
    "agents": {"model", "config", "isolation"},
    "scoring": {"model", "repo", "isolation", "version"},
    "report": {"model", "config", "evidence", "templating", "version"},
    "hookspecs": {"model", "agents", "report"},
    "worker": {"model", "config", "repo", "isolation", "agents", "scoring", "evidence", "templating", "hookspecs"},
    "controller": {"model", "config", "repo", "isolation", "agents", "scoring", "evidence", "report", "version"},
    "cli": {"model", "config", "repo", "report", "controller"},
    "plugin": {"model", "config", "repo", "agents", "hookspecs", "worker", "controller", "cli"},
    NAME: {"model", "cli", "report", "version"},
}


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
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
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
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def unit_of(module: str) -> str:
    """The package-level unit a module belongs to: its subpackage, or itself at the top."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    units: dict[str, set[str]] = {}
    for module, targets in graph.items():
        units.setdefault(unit_of(module), set()).update(unit_of(t) for t in targets)
    return {unit: targets - {unit} for unit, targets in units.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every elementary cycle's shortest representative, found by a depth-first search from each node."""
    found: set[tuple[str, ...]] = set()
    for start in graph:
        stack = [(start, [start])]
        while stack:
            node, path = stack.pop()
            for nxt in graph.get(node, ()):
                if nxt == start:
                    cycle = path[path.index(min(path)) :] + path[: path.index(min(path))]
                    found.add(tuple(cycle))
                elif nxt not in path and len(path) < 8:
                    stack.append((nxt, [*path, nxt]))
    return sorted(list(c) for c in found)


def test_no_import_circle_between_modules() -> None:
    graph = import_graph()
    assert len(graph) > 50, "the graph was not read"
    assert cycles(graph) == []


def test_no_import_circle_between_packages() -> None:
    graph = package_graph(import_graph())
    assert {"model", "config", "worker", "controller"} <= set(graph), "the packages were not found"
    assert cycles(graph) == []


def test_a_circle_is_found_when_there_is_one() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    modules = {"p.x.one": {"p.y.two"}, "p.y.two": {"p.x.three"}, "p.x.three": set()}
    assert cycles(package_graph(modules)) == [["x", "y"]]


def test_a_type_checking_import_counts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "pkg"
    fake.mkdir()
    (fake / "__init__.py").write_text("")
    (fake / "a.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .b import B\n")
    (fake / "b.py").write_text("from .a import A\n")
    monkeypatch.setattr(f"{__name__}.PACKAGE", fake)
    assert cycles(import_graph()) == [["pkg.a", "pkg.b"]]


def test_each_package_imports_only_what_is_below_it() -> None:
    graph = package_graph(import_graph())
    assert set(graph) <= set(ALLOWED), f"a unit with no place in ALLOWED: {set(graph) - set(ALLOWED)}"
    wrong = {unit: sorted(targets - ALLOWED[unit]) for unit, targets in graph.items() if targets - ALLOWED[unit]}
    assert wrong == {}


def test_no_module_is_longer_than_400_lines() -> None:
    lengths = {_module_name(p): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    assert {name: n for name, n in lengths.items() if n > 400} == {}


def test_the_mechanisms_never_see_the_whole_settings() -> None:
    # repo, isolation and scoring take the small specs they need, so a
    # change to how settings are resolved cannot reach them.
    offenders = [
        str(path.relative_to(PACKAGE))
        for unit in ("repo", "isolation", "scoring")
        for path in (PACKAGE / unit).rglob("*.py")
        if "Settings" in {n.id for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Name)}
    ]
    assert offenders == []


def test_no_private_pytest_import() -> None:
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom | ast.Import)
        and any(
            name.startswith("_pytest")
            for name in ([node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names])
        )
    ]
    assert offenders == []
