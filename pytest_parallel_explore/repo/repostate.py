"""The user's repository as it was before the trials, and putting it back.

Taken once by the controller before any agent runs: every ref (except the
experiment's own branches), ``HEAD``, the shared configuration, the hooks,
``info/exclude`` and ``info/attributes``, the main checkout's index, the
state of a merge, cherry-pick, revert, rebase or sequencer in progress,
what changes which objects git sees (``shallow``, ``info/grafts``,
``objects/info/alternates``, ``commondir``), and every other worktree's
admin folder (``worktrees/*`` other than the plugin's own).  After each
trial (in the process that ran it) and at the end of the run, any
difference is put back and reported as tampering.  Nothing here touches the
user's working tree (see ``checkoutstate``).
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import os
import shutil
from pathlib import Path
from typing import Any

from . import checkoutstate, objects, treefiles
from .checkoutstate import CheckoutState
from .gitcmd import Git, GitFailed
from .store import KeptFiles

#: Files of the shared git directory that are kept byte for byte (relative to it).
_FILES = (
    "HEAD",
    "config",
    "config.worktree",
    "info/exclude",
    "info/attributes",
    "info/sparse-checkout",
    "index",
    # An operation in progress: what the user's next `git commit` or `--continue` would do.
    "MERGE_HEAD",
    "MERGE_MSG",
    "MERGE_MODE",
    "AUTO_MERGE",
    "SQUASH_MSG",
    "CHERRY_PICK_HEAD",
    "REVERT_HEAD",
    "ORIG_HEAD",
    # What git takes the repository's history and objects to be.
    "shallow",
    "info/grafts",
    "objects/info/alternates",
    "objects/info/http-alternates",
    "commondir",
)
#: How the line of a worktree the user or an agent added during the run ends: it is reported, not undone.
FOREIGN_WORKTREE = " (a worktree that is no trial's; left as it is)"
#: The endings of the lines :func:`restore` gives for what it reports but leaves as it is.
LEFT_AS_IT_IS = (checkoutstate.NOT_RESTORED, checkoutstate.NOT_MOVED, FOREIGN_WORKTREE)
#: Folders of the shared git directory kept whole: a rebase or a sequence of picks in progress, and the
#: remotes git still reads from files of old (``remotes/<name>``, ``branches/<name>``: where a push goes).
_FOLDERS = ("rebase-merge", "rebase-apply", "sequencer", "remotes", "branches")


@dataclasses.dataclass(frozen=True)
class RepoState:
    refs: dict[str, str]  # refname -> sha, or "ref: <target>" for a symbolic ref
    files: dict[str, str | None]  # relative path -> base64 content, None when absent
    hooks: dict[str, tuple[str, int]]  # hook file -> (base64 content, mode)
    #: folder (relative to the git directory) -> {file relative to it -> base64 content}; {} when absent
    folders: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)
    plugin_dir: str | None = None  # worktrees whose folder is under it are the plugin's, not the user's
    #: The hold-out tests, read once before any agent ran (scoring writes this copy; see ``checkout.keep_holdout``).
    holdout: KeptFiles | None = None
    #: The main checkout's files, kept when some trial runs without a sandbox (see ``checkoutstate``).
    checkout: CheckoutState | None = None
    objects_since: int | None = None  # loose objects changed since are checked (see ``objects``)
    store: str | None = None  # the experiment's private store, where true copies of blobs may be found

    def to_json(self) -> dict[str, Any]:
        return {
            "refs": self.refs,
            "files": self.files,
            "hooks": {k: list(v) for k, v in self.hooks.items()},
            "folders": self.folders,
            "plugin_dir": self.plugin_dir,
            "holdout": self.holdout.to_json() if self.holdout is not None else None,
            "checkout": self.checkout.to_json() if self.checkout is not None else None,
            "objects_since": self.objects_since,
            "store": self.store,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RepoState:
        hooks = {k: (v[0], int(v[1])) for k, v in data["hooks"].items()}
        folders = {k: dict(v) for k, v in data.get("folders", {}).items()}
        holdout = KeptFiles.from_json(data["holdout"]) if data.get("holdout") else None
        checkout = CheckoutState.from_json(data["checkout"]) if data.get("checkout") else None
        return cls(
            dict(data["refs"]),
            dict(data["files"]),
            hooks,
            folders,
            data.get("plugin_dir"),
            holdout,
            checkout,
            data.get("objects_since"),
            data.get("store"),
        )


def capture(git_dir: Path, own_prefixes: tuple[str, ...], plugin_dir: Path | None = None) -> RepoState:
    """The state of ``git_dir`` now; refs under ``own_prefixes`` (the plugin's branches) are left out.

    So are the admin folders of worktrees under ``plugin_dir`` (the trials'); every other
    worktree's admin folder is the user's and is kept whole.
    """
    folders = [*_FOLDERS, *_user_worktrees(git_dir, plugin_dir)]
    return RepoState(
        _refs(git_dir, own_prefixes),
        _files(git_dir),
        _hooks(git_dir),
        {folder: _folder(git_dir / folder) for folder in folders},
        str(plugin_dir) if plugin_dir is not None else None,
        objects_since=objects.clock(git_dir),
    )


def restore_keeping(
    git_dir: Path, before: RepoState, own_prefixes: tuple[str, ...], kept: Path, root: Path, prefix: str
) -> list[str]:
    """:func:`restore`, what it moves aside kept in a new folder under ``kept`` (``checkoutstate.aside_folder``).

    The folder, and ``kept`` when this made it, are removed again when nothing went there.
    """
    made = [folder for folder in (kept, *kept.parents) if not os.path.lexists(folder)]
    aside = checkoutstate.aside_folder(kept, root, prefix)
    try:
        return restore(git_dir, before, own_prefixes, aside)
    finally:
        for folder in [aside, *made]:
            with contextlib.suppress(OSError):
                folder.rmdir()  # only when empty


def restore(git_dir: Path, before: RepoState, own_prefixes: tuple[str, ...], aside: Path) -> list[str]:
    """Put ``git_dir`` (and the main checkout, when it was kept) back as in ``before``; one line per change.

    Refs under ``own_prefixes`` (the plugin's branches) are neither compared nor restored.
    Files of the main checkout that are replaced or removed are moved under ``aside`` first.
    """
    changes: list[str] = []
    if before.objects_since is not None:
        store = Git(Path(before.store)) if before.store is not None else None
        changes += objects.check(git_dir, before.objects_since, aside, store)
    if before.checkout is not None:
        moved = checkoutstate.restore(before.checkout, aside)
        changes += [f"main checkout: {change}" for change in moved]
        if moved and aside.is_dir() and any(aside.iterdir()):
            changes.append(f"main checkout: what was there is kept in {aside}")
    changes += _restore_folders(git_dir, before)
    for relative, content in before.files.items():
        path = git_dir / relative
        now = _read(path)
        if now == content:
            continue
        changes.append(f"git: {relative} {'removed' if now is None else 'changed'}")
        if path.is_dir() and not path.is_symlink():
            treefiles.remove_tree(path)
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


def _user_worktrees(git_dir: Path, plugin_dir: Path | None) -> list[str]:
    """``worktrees/<name>`` of every linked worktree that is not one of the plugin's trials."""
    admin = git_dir / "worktrees"
    if not admin.is_dir():
        return []
    folders = []
    for path in sorted(admin.iterdir()):
        gitdir = _read(path / "gitdir")
        link = Path(base64.b64decode(gitdir).decode(errors="replace").strip()) if gitdir else None
        if link is not None and plugin_dir is not None and link.is_relative_to(plugin_dir):
            continue
        if link is not None and not link.exists() and not (path / "locked").exists():
            continue  # its checkout was deleted: `git worktree prune`, which the plugin runs, forgets it
        folders.append(f"worktrees/{path.name}")
    return folders


def _folder(path: Path) -> dict[str, str]:
    """Every file under ``path`` (but its reflogs) as base64, by path relative to it; {} when there is none."""
    if path.is_symlink() or not path.is_dir():
        return {}
    files = {}
    for folder, dirs, names in os.walk(path):
        dirs[:] = [d for d in dirs if not (folder == str(path) and d == "logs")]
        for name in names:
            content = _read(Path(folder) / name)
            if content is not None:
                files[(Path(folder) / name).relative_to(path).as_posix()] = content
    return files


def _restore_folders(git_dir: Path, before: RepoState) -> list[str]:
    """Put each kept folder back whole; say which were created, changed or removed.

    A worktree admin folder that appeared during the run and belongs to no trial is reported, not removed:
    the checkout it serves may hold someone's work.
    """
    changes = []
    for relative, files in sorted(before.folders.items()):
        path = git_dir / relative
        now = _folder(path)
        if now == files and not (path.is_symlink() or (path.exists() and not path.is_dir())):
            continue
        changes.append(f"git: {relative}/ {'created' if not files else 'removed' if not now else 'changed'}")
        kept_logs = path / "logs"
        for entry in sorted(path.iterdir()) if path.is_dir() and not path.is_symlink() else []:
            if entry == kept_logs:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        if path.is_symlink() or (path.exists() and not path.is_dir()):
            path.unlink()
        if not files and path.is_dir() and not any(path.iterdir()):
            path.rmdir()
        for name, content in files.items():
            (path / name).parent.mkdir(parents=True, exist_ok=True)
            _write(path / name, base64.b64decode(content))
    plugin_dir = Path(before.plugin_dir) if before.plugin_dir is not None else None
    for relative in _user_worktrees(git_dir, plugin_dir):
        if relative not in before.folders:
            changes.append(f"git: {relative}/ created{FOREIGN_WORKTREE}")
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
    """A file's content (base64); for a symlink or a folder put in its place, a value no content has; None: absent.

    A link is never followed: git would follow it (a ``commondir`` leading
    to a repository the agent made, whose ``core.fsmonitor`` runs on the
    user's next ``git status``).
    """
    try:
        if path.is_symlink():
            return f"symlink:{os.readlink(path)}"
        return base64.b64encode(path.read_bytes()).decode()
    except IsADirectoryError:
        return "folder:"
    except (FileNotFoundError, NotADirectoryError):
        return None


def _write(path: Path, content: bytes) -> None:
    """Replace ``path`` (even a symlink an agent put there) without following links."""
    tmp = path.with_name(f".{path.name}.explore-restore")
    tmp.write_bytes(content)
    os.replace(tmp, path)
