"""The user's repository as it was before the trials, and putting it back.

Taken once by the controller before any agent runs: every ref (except the
experiment's own branches), ``HEAD``, the shared configuration, the hooks,
``info/exclude`` and ``info/attributes``, and the main checkout's index.
After each trial (in the process that ran it) and at the end of the run,
any difference is put back and reported as tampering.  Nothing here touches
the user's working tree.
"""

from __future__ import annotations

import base64
import dataclasses
import os
from pathlib import Path
from typing import Any

from .gitcmd import Git, GitFailed

#: Files of the shared git directory that are kept byte for byte (relative to it).
_FILES = ("HEAD", "config", "config.worktree", "info/exclude", "info/attributes", "index")


@dataclasses.dataclass(frozen=True)
class RepoState:
    refs: dict[str, str]  # refname -> sha, or "ref: <target>" for a symbolic ref
    files: dict[str, str | None]  # relative path -> base64 content, None when absent
    hooks: dict[str, tuple[str, int]]  # hook file -> (base64 content, mode)

    def to_json(self) -> dict[str, Any]:
        return {"refs": self.refs, "files": self.files, "hooks": {k: list(v) for k, v in self.hooks.items()}}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RepoState:
        return cls(dict(data["refs"]), dict(data["files"]), {k: (v[0], int(v[1])) for k, v in data["hooks"].items()})


def capture(git_dir: Path, own_prefixes: tuple[str, ...]) -> RepoState:
    """The state of ``git_dir`` now; refs under ``own_prefixes`` (the plugin's branches) are left out."""
    return RepoState(_refs(git_dir, own_prefixes), _files(git_dir), _hooks(git_dir))


def restore(git_dir: Path, before: RepoState, own_prefixes: tuple[str, ...]) -> list[str]:
    """Put ``git_dir`` back as it was in ``before``; one line per thing that had changed.

    Refs under ``own_prefixes`` (the plugin's branches) are neither compared nor restored.
    """
    changes: list[str] = []
    for relative, content in before.files.items():
        path = git_dir / relative
        now = _read(path)
        if now == content:
            continue
        changes.append(f"git: {relative} {'removed' if now is None else 'changed'}")
        if content is None:
            path.unlink(missing_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            _write(path, base64.b64decode(content))
    changes += _restore_hooks(git_dir, before.hooks)
    user_refs = {name: value for name, value in before.refs.items() if not name.startswith(own_prefixes)}
    changes += _restore_refs(git_dir, user_refs, own_prefixes)
    return changes


def _refs(git_dir: Path, own_prefixes: tuple[str, ...]) -> dict[str, str]:
    listing = Git(git_dir).run("for-each-ref", "--format=%(refname)%00%(objectname)%00%(symref)")
    refs = {}
    for line in listing.splitlines():
        name, sha, symref = line.split("\0")
        if not name.startswith(own_prefixes):
            refs[name] = f"ref: {symref}" if symref else sha
    return refs


def _restore_refs(git_dir: Path, before: dict[str, str], own_prefixes: tuple[str, ...]) -> list[str]:
    git = Git(git_dir)
    now = _refs(git_dir, own_prefixes)
    changes = []
    for name in sorted(now.keys() - before.keys()):
        git.run("update-ref", "--no-deref", "-d", name)
        changes.append(f"git: {name} created")
    for name, value in sorted(before.items()):
        if now.get(name) == value:
            continue
        changes.append(f"git: {name} {'deleted' if name not in now else 'moved'}")
        try:
            if value.startswith("ref: "):
                git.run("symbolic-ref", name, value[len("ref: ") :])
            else:
                git.run("update-ref", "--no-deref", name, value)
        except GitFailed as exc:  # its commit is gone too: say so rather than stop
            changes.append(f"git: {name} could not be restored ({exc})")
    return changes


def _files(git_dir: Path) -> dict[str, str | None]:
    return {relative: _read(git_dir / relative) for relative in _FILES}


def _hooks(git_dir: Path) -> dict[str, tuple[str, int]]:
    folder = git_dir / "hooks"
    hooks = {}
    if folder.is_dir():
        for path in sorted(folder.iterdir()):
            if path.is_file() and not path.is_symlink():
                hooks[path.name] = (base64.b64encode(path.read_bytes()).decode(), path.stat().st_mode & 0o7777)
    return hooks


def _restore_hooks(git_dir: Path, before: dict[str, tuple[str, int]]) -> list[str]:
    folder = git_dir / "hooks"
    now = _hooks(git_dir)
    changes = []
    present = {p.name for p in folder.iterdir()} if folder.is_dir() else set()
    for name in sorted(present - before.keys()):
        target = folder / name
        if target.is_dir() and not target.is_symlink():
            continue  # a folder is no hook git runs
        target.unlink()
        changes.append(f"git: hooks/{name} created")
    for name, (content, mode) in sorted(before.items()):
        if now.get(name) == (content, mode):
            continue
        changes.append(f"git: hooks/{name} changed")
        _write(folder / name, base64.b64decode(content))
        os.chmod(folder / name, mode)
    return changes


def _read(path: Path) -> str | None:
    try:
        if path.is_symlink():
            return None
        return base64.b64encode(path.read_bytes()).decode()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


def _write(path: Path, content: bytes) -> None:
    """Replace ``path`` (even a symlink an agent put there) without following links."""
    tmp = path.with_name(f".{path.name}.explore-restore")
    tmp.write_bytes(content)
    os.replace(tmp, path)
