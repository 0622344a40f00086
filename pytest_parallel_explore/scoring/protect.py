"""Which files an agent may not change, and the tree that is scored with them put back.

Protected, whatever ``score.protect`` adds: the test files that exist at the
base commit, the hold-out paths, every ``conftest.py``, and every file that
changes how pytest or Python starts (``pytest.ini``, ``tox.ini``,
``setup.cfg``, the ``[tool.pytest...]`` tables of ``pyproject.toml``,
``sitecustomize.py``, ``usercustomize.py``, ``*.pth``), package metadata
and compiled Python (``*.pyc``, ``__pycache__/``), plus any new
top-level module that would shadow an installed or standard-library module
(a ``pytest.py`` next to the code would *be* pytest in the scoring run).
Adding, changing, deleting or renaming such a file is tampering: it is
recorded and, in the scored tree, undone.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import functools
import importlib.util
import posixpath
import re
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ..repo.gitcmd import Git
from ..repo.treefiles import note_tree, tree_changes, tree_id
from ..repo.trees import under
from .pinning import pytest_table

#: Files that configure pytest or Python's start-up, wherever they are.
STARTUP_FILES = frozenset(
    {
        "conftest.py",
        "pytest.ini",
        ".pytest.ini",
        "pytest.toml",
        ".pytest.toml",
        "tox.ini",
        "setup.cfg",
        "sitecustomize.py",
        "usercustomize.py",
    }
)
_TEST_FOLDERS = frozenset({"tests", "test", "testing"})
_PYTEST_TABLE = re.compile(r"^\s*\[+\s*tool\s*\.\s*pytest\b")
_TABLE = re.compile(r"^\s*\[")
#: Folders importlib.metadata reads distributions from (any case): a planted one's ``[pytest11]`` entry
#: points would answer pytest's plugin look-ups in the scoring run.
_METADATA_FOLDERS = (".dist-info", ".egg-info")
#: Byte code Python imports without reading (or, with an unchecked hash, without checking) any source:
#: what the scored run imports must be what was read, diffed and checked.
_COMPILED = (".pyc", ".pyo")


@dataclasses.dataclass(frozen=True)
class Policy:
    """What is protected in one experiment: ``score.holdout`` and ``score.protect`` on top of the defaults."""

    holdout: tuple[str, ...] = ()
    globs: tuple[str, ...] = ()
    repo_root: Path | None = None  # modules found here are the project's own, not shadowed ones

    def reason(self, path: str, *, at_base: bool) -> str | None:
        """Why ``path`` is protected, or None when the agent may change it."""
        name = posixpath.basename(path)
        if name in STARTUP_FILES or name.endswith(".pth"):
            return "configures pytest or Python"
        if any(part.lower().endswith(_METADATA_FOLDERS) for part in path.split("/")[:-1]):
            return "package metadata (its entry points are plugins)"
        if name.endswith(_COMPILED) or "__pycache__" in path.split("/")[:-1]:
            return "compiled Python (imported instead of its source, or without one)"
        if under(path, self.holdout):
            return "hold-out"
        if at_base and is_test_file(path):
            return "a test of the base commit"
        if any(_glob_match(path, g) for g in self.globs):
            return "score.protect"
        if not at_base and self._shadows_installed_module(path):
            return "shadows an installed module"
        return None

    def _shadows_installed_module(self, path: str) -> bool:
        parts = path.split("/")
        if parts[0] == "src" and len(parts) > 1:
            parts = parts[1:]
        if len(parts) == 1 and parts[0].endswith((".py", ".so")):
            module = parts[0].split(".", 1)[0]
        elif len(parts) == 2 and parts[1] == "__init__.py":
            module = parts[0]
        else:
            return False
        if module in sys.stdlib_module_names:
            return True
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            return False
        origin = spec.origin if spec is not None else None
        if origin is None:
            return False
        return self.repo_root is None or not Path(origin).resolve().is_relative_to(self.repo_root)


@functools.lru_cache(maxsize=1 << 16)  # asked of every file of the scoring checkout after each suite run
def decides_outcome(path: str, holdout: tuple[str, ...]) -> bool:
    """Whether pytest reads ``path`` as tests or their set-up: a test module, a ``conftest.py``, a hold-out file."""
    name = posixpath.basename(path)
    return name == "conftest.py" or (name.endswith(".py") and is_test_file(path)) or under(path, holdout)


def is_test_file(path: str) -> bool:
    """A test file by pytest's default names (``test_*.py``, ``*_test.py``), or anything in a tests folder."""
    folder, _, name = path.rpartition("/")
    return (
        (name.startswith("test_") and name.endswith(".py"))
        or name.endswith("_test.py")
        or (bool(folder) and not _TEST_FOLDERS.isdisjoint(folder.split("/")))
    )


def _glob_match(path: str, pattern: str) -> bool:
    """``fnmatch`` where ``**`` also matches across folders and ``dir/**`` matches ``dir`` itself."""
    return fnmatch.fnmatchcase(path, pattern.replace("**", "*")) or (
        pattern.endswith("/**") and path == pattern[: -len("/**")]
    )


@dataclasses.dataclass(frozen=True)
class Sealed:
    """The tree to score, and what had to be undone to get it."""

    tree: str
    tampering: list[str]


def sealed_tree(git: Git, base: str, commit: str, policy: Policy) -> Sealed:
    """``commit``'s tree with the base's version of every protected path it changed.

    Renames count as a deletion and an addition; a protected file the agent
    added is removed; ``pyproject.toml`` keeps the agent's changes except in
    its ``[tool.pytest...]`` tables, which are the base's.
    """
    updates: list[str] = []
    tampering: list[str] = []
    tree = tree_id(git, commit)  # the tree, not the commit: the suspicious-code check diffs the same two
    for path, (before, after) in sorted(tree_changes(git, base, tree).items()):
        if posixpath.basename(path) == "pyproject.toml":
            update = _pyproject_update(git, path, before, after)
            if update is not None:
                tampering.append(path)
                updates.append(update)
            continue
        if policy.reason(path, at_base=before is not None) is None:
            continue
        tampering.append(path)
        if before is not None:
            mode, sha = before
            updates.append(f"{mode} {sha}\t{path}")
        else:
            updates.append(f"0 {'0' * 40}\t{path}")
    if not updates:
        return Sealed(tree, [])
    with tempfile.TemporaryDirectory(prefix="explore-index-") as scratch:
        index = git.with_(index=Path(scratch) / "index")
        index.run("read-tree", commit)
        index.run("update-index", "-z", "--index-info", input="\0".join(updates) + "\0")
        sealed = index.run("write-tree")
    note_tree(git, sealed, sealed)
    return Sealed(sealed, tampering)


def _pyproject_update(git: Git, path: str, before: tuple[str, str] | None, after: tuple[str, str] | None) -> str | None:
    """The index line that gives a changed ``pyproject.toml`` the base's pytest configuration; None if unchanged.

    What is pytest configuration is decided by parsing (``tomllib``), not by
    lines: ``[tool]`` with dotted keys, inline tables and quoted keys are the
    same ``tool.pytest``.  The agent's other changes are kept where moving
    the base's ``[tool.pytest...]`` tables back by lines gives a file that
    parses to the base's ``tool.pytest``; otherwise the whole file is the base's.
    """
    base = git.run("cat-file", "blob", before[1]) if before else ""
    new = git.run("cat-file", "blob", after[1]) if after else ""
    wanted = pytest_table(base) if before else None
    if pytest_table(new) == wanted and (after or wanted is None):
        return None
    if after is not None:
        base_tables = _split_pytest_tables(base)[0]
        rest = _split_pytest_tables(new)[1]
        restored = rest.rstrip("\n") + ("\n\n" + base_tables if base_tables else "") + "\n"
        if pytest_table(restored) == wanted and not isinstance(wanted, str):
            sha = git.run("hash-object", "-w", "--no-filters", "--stdin", input=restored)
            return f"{after[0]} {sha}\t{path}"
    if before is not None:
        return f"{before[0]} {before[1]}\t{path}"
    return f"0 {'0' * 40}\t{path}"


def _split_pytest_tables(text: str) -> tuple[str, str]:
    """``(the [tool.pytest...] tables, everything else)`` of a TOML document, as text."""
    tables: list[str] = []
    rest: list[str] = []
    inside = False
    for line in text.splitlines():
        if _TABLE.match(line):
            inside = bool(_PYTEST_TABLE.match(line))
        (tables if inside else rest).append(line)
    return "\n".join(tables).strip("\n"), "\n".join(rest)


def holdout_written(worktree: Path, holdout: Sequence[str]) -> list[str]:
    """Hold-out paths that exist in an agent's worktree, where the plugin had removed them."""
    return [h for h in holdout if (worktree / h).exists() or (worktree / h).is_symlink()]
