"""What an agent and a scoring run may see, write and use, as sandbox policies (see ``sandbox``).

Both are allow-lists.  An agent writes its own private repository (see
``repo.private``); it reads the base objects that repository borrows, its
prompt, the Python environment, the programs its command names, and the
paths of the home folder that ``sandbox.home`` lists.  A scoring run writes
only its own folder and reads the Python environment and the programs its
commands name.  Neither sees the user's repository or git directory, home
folder, ``/run``, other trials or the experiment's folders; both get their
own empty ``$HOME`` and ``/tmp``.

Without bubblewrap (``sandbox: none``, or ``auto`` without it) the policy is
only the resource limits (``limits:``).
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
import os
import shlex
import shutil
import sys
import urllib.parse
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from ..model.limits import Limits
from ..model.paths import Workspace
from ..model.spec import SandboxSpec
from .sandbox import Sandbox, in_system, wanted


def hidden_paths(workspace: Workspace, git_dir: Path, holdout: Sequence[str]) -> tuple[Path, ...]:
    """What neither an agent nor a scoring run may see, even where a folder it is shown holds it.

    The plugin's folders, the repository's git directory and the hold-out
    tests (``holdout``: paths relative to the repository).
    """
    return (workspace.explore_dir, git_dir, *(workspace.repo_root / h for h in holdout))


def for_agent(
    spec: SandboxSpec,
    limits: Limits,
    programs: Iterable[str],
    *,
    worktree: Path,
    shared: Path,
    prompt_file: Path,
    hidden: Sequence[Path],
    repo_root: Path,
) -> Sandbox:
    """The agent's policy: ``worktree`` (its private repository) writable, ``shared`` (the base objects) read-only.

    ``programs``: the commands the agent starts (see ``AgentBackend.programs``), whose programs stay
    runnable; ``repo_root`` is the user's repository (see :func:`_interpreter`).
    """
    if not wanted(spec.mode):
        return Sandbox(isolated=False, limits=limits)
    home = _home_paths(spec)
    return Sandbox(
        writable=(worktree, *(path for path, writable in home if writable)),
        readonly=(
            shared,
            prompt_file,
            *_interpreter(repo_root),
            *_programs(programs),
            *(path for path, writable in home if not writable),
        ),
        hidden=tuple(hidden),
        network=True,
        limits=limits,
    )


def for_scoring(
    spec: SandboxSpec,
    limits: Limits,
    commands: Iterable[str | None],
    *,
    folder: Path,
    hidden: Sequence[Path],
    repo_root: Path,
) -> Sandbox:
    """A scoring run's policy: only ``folder`` writable; the programs ``commands`` start stay runnable."""
    if not wanted(spec.mode):
        return Sandbox(isolated=False, limits=limits)
    return Sandbox(
        writable=(folder,),
        readonly=(*_interpreter(repo_root), *_programs(c for c in commands if c)),
        hidden=tuple(hidden),
        network=spec.scoring_network,
        limits=limits,
    )


def _home_paths(spec: SandboxSpec) -> list[tuple[Path, bool]]:
    """``sandbox.home``'s paths, expanded; a missing folder is made, so an agent CLI keeps what it writes there.

    A missing path whose name has a suffix (``~/.claude.json``) is taken
    for a file, and shared only once it exists.
    """
    paths = []
    for entry in spec.home:
        path = Path(entry.path).expanduser()
        if not path.exists() and not path.suffix:
            path.mkdir(parents=True, exist_ok=True)
        paths.append((path, entry.writable))
    return paths


def _interpreter(repo_root: Path) -> tuple[Path, ...]:
    """The Python environment that runs ``{python}``: it must stay visible (read-only) inside the sandbox.

    Its prefix and every folder on its import path: an editable install of
    the project or of this plugin lives outside site-packages, possibly
    under ``/tmp``, which the sandbox replaces with a private one.  Left out:
    folders in the user's repository (pytest puts its root on the import
    path) other than a virtualenv there, and the home folder or ``/`` itself.
    """
    prefixes = {Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve()}
    folders = {*prefixes, *(Path(p).resolve() for p in sys.path if p and Path(p).is_dir())}
    folders.update(Path(p) for p in _editable_sources())
    repo, home = repo_root.resolve(), Path.home().resolve()

    def shown(folder: Path) -> bool:
        if folder == home or folder in home.parents or folder in repo.parents:
            return False
        in_prefix = any(folder == p or p in folder.parents for p in prefixes)
        return in_prefix or not (folder == repo or repo in folder.parents)

    return tuple(sorted(f for f in folders if shown(f)))


@functools.lru_cache(maxsize=1)
def _editable_sources() -> frozenset[str]:
    """Where editable installs (this plugin's included) keep their code: not on ``sys.path``, but imported."""
    sources = {str(Path(__file__).resolve().parent.parent)}
    for distribution in importlib.metadata.distributions():
        try:
            direct = json.loads(distribution.read_text("direct_url.json") or "{}")
        except ValueError:
            continue
        url = direct.get("url", "")
        if direct.get("dir_info", {}).get("editable") and url.startswith("file://"):
            sources.add(urllib.parse.unquote(url.removeprefix("file://")))
    return frozenset(p for p in sources if Path(p).is_dir())


def _programs(commands: Iterable[str]) -> list[Path]:
    """The folders of the programs the commands start with, found on ``PATH`` as the shell would.

    A CLI installed under ``/tmp`` or a home folder must still run in the
    sandbox: its install folder (``~/.npm-global`` for ``bin/claude``), the
    folder its link points into, and those of its ``#!`` interpreter
    (``#!/usr/bin/env node`` on an nvm install) are shown read-only.
    """
    folders: list[Path] = []
    for command in commands:
        program = _first_program(command)
        found = shutil.which(program) if program else None
        if program is None or found is None or _on_system_path(program):
            continue
        for executable in (Path(found), *_interpreter_of(Path(found))):
            for path in {executable, executable.resolve()}:
                folders.extend(_install_folder(path))
    return folders


def _on_system_path(program: str) -> bool:
    """Whether a bare ``program`` is also found in a system folder on ``PATH``, which the sandbox always shows.

    Then nothing more is shown: the shell inside falls through to it.  A
    version manager's shim found first (pyenv's ``~/.pyenv/shims/python3``)
    would run in the sandbox without the manager it calls, and fail.
    """
    if "/" in program:
        return False
    return any(os.access(os.path.join(f, program), os.X_OK) for f in _system_folders(os.environ.get("PATH", "")))


@functools.lru_cache(maxsize=4)
def _system_folders(search_path: str) -> list[str]:
    """The folders of a ``PATH`` value that are system folders (asked for every trial's sandboxes)."""
    return [f for f in search_path.split(os.pathsep) if in_system(os.path.normpath(f))]


def _first_program(command: str) -> str | None:
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    words = [w for w in words if not ("=" in w and w.split("=", 1)[0].isidentifier())]  # FOO=1 claude ...
    return words[0] if words else None


def _interpreter_of(program: Path) -> Iterator[Path]:
    """The program named by the ``#!`` line of a script (through ``env``), if any."""
    try:
        with program.open("rb") as file:
            line = file.readline(256)
    except OSError:
        return
    words = line[2:].decode(errors="replace").split() if line.startswith(b"#!") else []
    if words and Path(words[0]).name == "env":
        words = [w for w in words[1:] if not w.startswith("-")]
    found = shutil.which(words[0]) if words else None
    if found is not None:
        yield Path(found)


def _install_folder(path: Path) -> list[Path]:
    """What to show of an executable: the prefix above its ``bin`` folder, else its folder, else itself.

    Never a folder holding the home folder or the working folder of this
    process (``~/bin/claude`` shows ``~/bin``, not ``~``) nor one inside the
    latter (the user's repository); never a prefix in the home folder
    (``~/.local/bin/claude`` shows ``~/.local/bin``, not ``~/.local`` and its
    keyrings: the real file a link leads to is shown by its own folder);
    nothing of the system folders, shown anyway.  A program of an npm
    install shows the whole ``node_modules`` folder: its launcher starts a
    binary from a sibling package (``@openai/codex-linux-x64``).
    """
    if in_system(path):
        return []
    home, here = Path.home().resolve(), Path(os.getcwd()).resolve()
    modules = [p for p in path.parents if p.name == "node_modules"]
    for folder in modules[-1:]:  # the outermost
        if not any(folder == p or folder in p.parents for p in (home, here)) and here not in folder.parents:
            return [folder]
    prefix = path.parent.name == "bin" and home not in path.parents
    for folder in (path.parent.parent, path.parent) if prefix else (path.parent,):
        if not any(folder == p or folder in p.parents for p in (home, here)) and here not in folder.parents:
            return [folder]
    return [path]
