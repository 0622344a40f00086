"""A static check of the Python files a trial changed: code that could forge its score from inside the run.

The scored suite imports the agent's code into pytest's own process, where it can do anything pytest
can: patch ``_pytest`` at import so every test reports passed, write the junit file named on the
command line and ``os._exit(0)``, raise a ``SkipTest`` subclass.  No sandbox prevents that, so the
plugin looks for it: every ``.py`` file the scored tree adds or changes (read from git as blobs, never
from the agent's folder, bounded in size) is parsed, never run, and each use of what :data:`.sourcecheck.NAMES`
lists (through any import alias), each patch of the interpreter or of pytest, and each name computed
at run time to reach those modules is a finding ``path:line: what it does``.  It is a detector, not a
proof: code built to hide can pass it.  A file that does not parse is a finding too.
"""

from __future__ import annotations

from collections.abc import Iterator

from ..repo import blobs
from ..repo.gitcmd import Git
from ..repo.treefiles import tree_changes
from .sourcecheck import check_source

#: A file larger than this is not parsed (a finding says so); nor are the files past the total.
MAX_FILE_BYTES = 512 << 10
MAX_TOTAL_BYTES = 4 << 20


def in_short(findings: list[str], shown: int = 3) -> str:
    """The first findings, and how many more: for a one-line reason."""
    more = len(findings) - shown
    return "; ".join(findings[:shown]) + (f"; and {more} more" if more > 0 else "")


def changed_python_files(git: Git, base: str, tree: str) -> dict[str, str]:
    """``path -> blob id`` of each regular ``.py`` file that ``tree`` adds or changes against ``base``."""
    return {
        path: after[1]
        for path, (_before, after) in tree_changes(git, base, tree).items()
        if path.endswith(".py") and after is not None and after[0] in ("100644", "100755")
    }


#: Compiled extension modules (``calc.cpython-311-x86_64-linux-gnu.so``, ``calc.abi3.so``, ``calc.pyd``).
_EXTENSIONS = (".so", ".pyd")


def check_tree(git: Git, base: str, tree: str) -> list[str]:
    """The findings in the Python files ``tree`` adds or changes against ``base``, file by file.

    An extension module it adds or changes is a finding of its own: Python
    imports it in place of the ``.py`` file of the same name, and nothing
    here can read what it runs.
    """
    files = changed_python_files(git, base, tree)
    findings: list[str] = [
        f"{path}:1: a compiled extension module, imported in place of a .py file of its name: not checked"
        for path, (_before, after) in sorted(tree_changes(git, base, tree).items())
        if path.endswith(_EXTENSIONS) and after is not None
    ]
    for path, content in _blobs(git, files):
        if isinstance(content, str):
            findings.append(f"{path}:1: not checked: {content}")
        else:
            findings.extend(check_source(path, content))
    return findings


def _blobs(git: Git, files: dict[str, str]) -> Iterator[tuple[str, bytes | str]]:
    """Each file's content from git, in path order; instead, why not, for one over the size limits."""
    if not files:
        return
    paths = sorted(files)
    sizes = [
        int(line.split()[2])
        for line in git.run("cat-file", "--batch-check", input="".join(f"{files[p]}\n" for p in paths)).splitlines()
    ]
    wanted: list[str] = []
    total = 0
    for path, size in zip(paths, sizes, strict=True):
        if size > MAX_FILE_BYTES:
            yield path, f"{size} bytes, over the {MAX_FILE_BYTES} bytes a file may have to be checked"
        elif total + size > MAX_TOTAL_BYTES:
            yield path, f"the changed Python files pass the {MAX_TOTAL_BYTES} bytes checked in all"
        else:
            total += size
            wanted.append(path)
    if not wanted:
        return
    ids = [files[p] for p in wanted]
    yield from zip(wanted, blobs.read_blobs(git, ids, {files[p]: p for p in wanted}), strict=True)
