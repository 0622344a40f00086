"""A checkout kept between suite runs and brought to the next tree by writing only what differs.

Writing a sealed checkout from scratch for every trial costs a write of every
file and a removal of every file: at 20,000 files, seconds a trial, most of
them for files no agent touched.  A :class:`PristineCheckout` keeps the folder
and what the plugin wrote into it (``path -> (mode, blob id)``, with each
file's ``lstat`` just after the write) and, for the next tree:

1. walks the folder without following links and removes everything the plugin
   did not write (whatever the suite or a set-up command created: caches,
   reports, a planted ``conftest.py``, links, FIFOs) and every file whose
   ``lstat`` changed;
2. removes the files the next tree does not have and writes those it has with
   another mode or blob id, each blob hashed again as it is read
   (:func:`blobs.write_files`);
3. removes the folders the next tree does not need.

A file is trusted to hold the blob it was written from only while its mode,
size, mtime, ctime and inode are unchanged; an unprivileged process can set a
file's mtime back but not its ctime, and any write, rename, link or ``chmod``
moves it.  Anything that does not fit (the folder replaced, a folder's mode
changed, an error) gives a fresh checkout: "when in doubt" is cheap to afford.
The cost of an update is one ``lstat`` a file plus the writes: O(changed
files + files the suite wrote), not O(all files).
"""

from __future__ import annotations

import dataclasses
import os
import stat
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

from . import blobs, treefiles
from .gitcmd import Git
from .treefiles import Stat, stat_of

#: ``path -> (mode, blob id)``, as in a git tree.
Entries = Mapping[str, tuple[str, str]]
#: The files to write: ``path -> (where the blob is, mode, blob id)``.
Target = Mapping[str, tuple[Git, str, str]]


@dataclasses.dataclass(frozen=True)
class Update:
    """What an update did: files written, things removed, and whether it started over."""

    written: int
    removed: int
    fresh: bool


class _Doubt(Exception):
    """The folder is not as the plugin left it in a way an update does not repair: start over."""


class PristineCheckout:
    """``folder`` kept at the files of a tree (and of layers over it), updated in place for the next one."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._files: dict[str, tuple[str, str, Stat]] = {}  # path -> (mode, blob id, lstat after writing)
        self._folders: dict[str, tuple[int, int]] = {}  # path ("" the top) -> (mode, inode)

    def update(self, layers: list[tuple[Git, Entries]]) -> Update:
        """Make the folder hold exactly ``layers`` (later ones win on a path), writing only what differs."""
        target: dict[str, tuple[Git, str, str]] = {}
        for git, entries in layers:
            for path, (mode, sha) in entries.items():
                target[path] = (git, mode, sha)
        # A path written before was checked before it was written.
        treefiles.refuse_unsafe([p for p in target if p not in self._files], "the scoring checkout")
        if self._folders:
            try:
                return self._update(target)
            except (_Doubt, OSError):
                pass
        treefiles.remove_tree(self.folder)
        self._files, self._folders = {}, {}
        self.folder.mkdir(parents=True)
        written = self._write(target)
        self._note_folders(_folders_of(target))
        return Update(written, 0, fresh=True)

    def overlay(self, git: Git, entries: Entries, replacing: Sequence[str]) -> None:
        """Write ``entries`` over the folder after removing whatever is at ``replacing`` (not kept in the tree).

        For files written after a set-up command ran (the hold-out tests): the
        next :meth:`update` removes them, as they are not in its tree.
        """
        target = {path: (git, mode, sha) for path, (mode, sha) in entries.items()}
        treefiles.refuse_unsafe(target, "the hold-out tests")
        for relative in [*replacing, *target]:
            treefiles.real_parents(self.folder, relative)
        for relative in replacing:
            treefiles.remove_tree(self.folder / relative)  # a link is removed, never followed
        self._write(target)
        self._note_folders(_folders_of(target))

    def altered(self, watched: Callable[[str], bool], planted: str) -> list[str]:
        """What the code run in the folder did to the files that decide a suite's outcome.

        The files ``watched`` picks among those the plugin wrote that are not
        as written any more (even with their content and mtime put back: the
        ctime moved), and the files called ``planted`` that it did not write
        (found without following a link).
        """
        top = f"{self.folder}/"
        altered = []
        for path, (_mode, _sha, written) in self._files.items():
            if watched(path):
                try:
                    now: Stat | None = stat_of(os.lstat(top + path))
                except OSError:
                    now = None
                if now != written:
                    altered.append(path)
        altered += [path for path in self._found(planted) if path not in self._files]
        return sorted(altered)

    def _found(self, name: str) -> Iterator[str]:
        """Every file called ``name`` (a link too), walking the folder without following a link."""
        pending = [""]
        while pending:
            relative = pending.pop()
            try:
                with os.scandir(f"{self.folder}/{relative}") as found:
                    children = [(child.name, child.is_dir(follow_symlinks=False)) for child in found]
            except OSError:
                continue
            for child, is_folder in children:
                path = f"{relative}/{child}" if relative else child
                if is_folder:
                    pending.append(path)
                elif child == name:
                    yield path

    def _update(self, target: Target) -> Update:
        removed = self._sweep()
        outdated = [
            p
            for p, (mode, sha, _) in self._files.items()
            if (t := target.get(p)) is None or t[2] != sha or t[1] != mode
        ]
        for path in outdated:
            os.unlink(self.folder / path)
            del self._files[path]
            removed += 1
        needed = _folders_of(target)
        for path in sorted(set(self._folders) - needed, key=len, reverse=True):
            os.rmdir(self.folder / path)  # empty now: its files are gone, and nothing else was left
            removed += 1
        written = self._write({p: e for p, e in target.items() if p not in self._files})
        self._folders = {p: v for p, v in self._folders.items() if p in needed}
        self._note_folders(needed)
        return Update(written, removed, fresh=False)

    def _sweep(self) -> int:
        """Remove everything the plugin did not write, and every file changed since; return how many.

        One ``lstat`` an entry, relative to its folder's descriptor (a tree of
        20,000 files: about 0.04 s of system time, a quarter less than by
        path), so the loop keeps to local names.  A folder is opened without
        following a link and must be the one noted (its mode and inode).
        """
        removed = 0
        folders, files = self._folders, self._files
        root = f"{self.folder}/"
        pending = [("", _open_folder(os.fspath(self.folder), None, folders.get(""), "the checkout folder"))]
        seen, intact = {""}, set()
        try:
            while pending:
                relative, fd = pending.pop()
                prefix = f"{relative}/" if relative else ""
                with os.scandir(fd) as found:
                    children = list(found)
                for child in children:
                    path = prefix + child.name
                    info = child.stat(follow_symlinks=False)
                    folder = folders.get(path)
                    if folder is not None:
                        if (info.st_mode, info.st_ino) != folder:
                            raise _Doubt(f"{path}: the folder was replaced or changed")
                        pending.append((path, _open_folder(child.name, fd, folder, path)))
                        seen.add(path)
                        continue
                    kept = files.get(path)
                    if kept is not None and kept[2] == stat_of(info):
                        intact.add(path)
                        continue
                    if stat.S_ISDIR(info.st_mode):
                        treefiles.remove_tree(Path(root + path))
                    else:
                        os.unlink(child.name, dir_fd=fd)
                    removed += 1
                os.close(fd)
        finally:
            for _relative, fd in pending:
                os.close(fd)
        # What is not here as written (changed, removed, replaced) is written again.
        if len(seen) != len(folders):
            self._folders = {p: v for p, v in folders.items() if p in seen}
        if len(intact) != len(files):
            self._files = {p: v for p, v in files.items() if p in intact}
        return removed

    def _write(self, entries: Target) -> int:
        by_source: dict[Git, dict[str, tuple[str, str]]] = {}
        for path, (git, mode, sha) in entries.items():
            by_source.setdefault(git, {})[path] = (mode, sha)
        for git, files in by_source.items():
            blobs.write_files(git, files, self.folder)
        top = f"{self.folder}/"
        for path, (_git, mode, sha) in entries.items():
            if mode != "160000":  # a submodule is an empty folder (see _folders_of)
                self._files[path] = (mode, sha, stat_of(os.lstat(top + path)))
        return len(entries)

    def _note_folders(self, folders: set[str]) -> None:
        for path in folders - self._folders.keys():
            info = os.lstat(self.folder / path)
            self._folders[path] = (info.st_mode, info.st_ino)


_FOLDER = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _open_folder(name: str, parent: int | None, noted: tuple[int, int] | None, shown: str) -> int:
    """A descriptor of the folder ``name`` (in ``parent``), opened without following a link, if it is the one noted.

    A default ACL on it is removed: the files written there next must get the modes they are written with.
    """
    try:
        fd = os.open(name, _FOLDER, dir_fd=parent)
    except OSError as exc:
        raise _Doubt(f"{shown}: {exc}") from None
    info = os.fstat(fd)
    if (info.st_mode, info.st_ino) != noted:
        os.close(fd)
        raise _Doubt(f"{shown} was replaced or changed")
    treefiles.drop_default_acl(fd)
    return fd


def _folders_of(target: Target) -> set[str]:
    """Every folder the files of ``target`` need, the top (``""``) included; a submodule is one too."""
    parents = {path.rpartition("/")[0] for path in target}  # many files, few folders: their parents next
    parents.update(path for path, (_git, mode, _sha) in target.items() if mode == "160000")
    folders = {""}
    for folder in parents:
        while folder not in folders:
            folders.add(folder)
            folder = folder.rpartition("/")[0]
    return folders
