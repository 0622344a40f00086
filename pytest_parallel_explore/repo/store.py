"""The experiment's private object store: copies of the user's files that no agent's git can reach.

A bare repository in the experiment's folder (``<experiment>/store.git``),
never the user's object store: the hold-out tests and, without a sandbox,
the main checkout's files are kept here when the run starts.  What was kept
is a :class:`KeptFiles`: ``path -> (mode, blob id)``, held in the plugin's
memory (and handed to xdist workers); every blob is hashed again when it is
written back (:func:`blobs.write_files`), so a store an agent rewrote gives
a named fault, never other content.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from . import blobs
from .gitcmd import Git

#: A file's mode and blob id, as in a git tree.
Entry = tuple[str, str]


def open_store(path: Path) -> Git:
    """Sealed git on the private bare repository at ``path``, made when missing."""
    git = Git(path)
    if not (path / "objects").is_dir():
        path.mkdir(parents=True, exist_ok=True)
        Git(path).run("init", "--quiet", "--bare", str(path))
    return git


def keep_files(store: Git, root: Path, paths: Sequence[str], *, links: bool = False) -> dict[str, Entry]:
    """Write the files at ``paths`` under ``root`` into ``store``; ``path -> (mode, blob id)``.

    Regular files as they are on disk (no filter or attribute applies); a
    symbolic link is kept as a link (its target) with ``links``, else read as
    the file it leads to.  Anything else (a folder, a FIFO) is left out.  The
    contents go to git as data, never as paths: a name may hold a newline.
    """
    entries: dict[str, Entry] = {}
    with blobs.new_objects(store) as write:
        for path in paths:
            full = root / path
            info = os.lstat(full) if links else os.stat(full)
            if stat.S_ISREG(info.st_mode):
                content, mode = full.read_bytes(), "100755" if info.st_mode & 0o111 else "100644"
            elif stat.S_ISLNK(info.st_mode):
                content, mode = os.fsencode(os.readlink(full)), "120000"
            else:
                continue
            write(content)
            entries[path] = (mode, blobs.blob_id(content))
    return entries


@dataclasses.dataclass(frozen=True)
class KeptFiles:
    """Files kept in a private store: ``path -> (mode, blob id)``."""

    store: str
    entries: Mapping[str, Entry]

    def write(self, target: Path, paths: Sequence[str] | None = None) -> None:
        """Write the kept files (or those of ``paths``) under the folder ``target``, each blob checked."""
        chosen = self.entries if paths is None else {p: self.entries[p] for p in paths}
        target.mkdir(parents=True, exist_ok=True)
        blobs.write_files(Git(Path(self.store)), chosen, target)

    def digest(self) -> str:
        """What the kept files hold, in one value (for the score cache's key)."""
        listing = "".join(f"{mode} {sha} {path}\0" for path, (mode, sha) in sorted(self.entries.items()))
        return hashlib.sha256(listing.encode()).hexdigest()[:32]

    def to_json(self) -> dict[str, Any]:
        return {"store": self.store, "entries": {p: list(e) for p, e in self.entries.items()}}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> KeptFiles:
        return cls(str(data["store"]), {p: (str(e[0]), str(e[1])) for p, e in data["entries"].items()})
