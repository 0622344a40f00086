"""Objects of the user's repository written during the run, checked against their ids.

Git reads an object back without checking that its content still hashes to
its name, so anyone who can write ``objects/`` (an agent without a sandbox)
can make an id the user's history already names mean something else: in a
loose object, or in a pack whose index names other content (git looks in
packs first).  Every loose object whose ctime is not older than the run's
start is hashed again; one that does not match its id is moved aside, and
put back from the experiment's private store when the run kept that
content.  Every pack written since is verified by git (``verify-pack``
hashes each object) unless this process wrote it; one that fails is moved
aside, which leaves the objects it shadowed to be read again.  A fanout or
pack folder that is a link is replaced by a copy of what is behind it,
checked like the rest.  git's caches of what objects say (the commit-graph,
a multi-pack index) written since are checked by git's own ``verify``; one
that fails is moved aside (git reads the objects themselves without it).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import zlib
from pathlib import Path

from . import blobs
from .gitcmd import Git, GitFailed


def clock(git_dir: Path) -> int:
    """The object folder's filesystem clock now (ns): what :func:`check` compares ctimes with."""
    fd, marker = tempfile.mkstemp(prefix=".explore-clock-", dir=git_dir / "objects")
    try:
        return os.fstat(fd).st_ctime_ns
    finally:
        os.close(fd)
        os.unlink(marker)


def check(git_dir: Path, since: int, aside: Path, store: Git | None) -> list[str]:
    """Move aside every object written since ``since`` that does not hash to its id (see above); one line each."""
    changes = _unlink_folders(git_dir, aside)
    for path in _changed_since(git_dir / "objects", since):
        object_id = path.parent.name + path.name
        if _holds_its_id(path, object_id):
            continue
        relative = path.relative_to(git_dir).as_posix()
        target = aside / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(path, target)
        put_back = store is not None and _copy_from(store, Git(git_dir), object_id)
        changes.append(
            f"git: {relative} did not hold what its id says (forged); moved to {target}"
            + ("; put back from the run's copy" if put_back else "")
        )
    return changes + _check_packs(git_dir, since, aside) + _check_caches(git_dir, since, aside)


def _unlink_folders(git_dir: Path, aside: Path) -> list[str]:
    """Replace each fanout or pack folder that is a link (git follows it) by a copy of what is behind it.

    The copies are new, so :func:`check` then checks everything in them; one line each.
    """
    objects = git_dir / "objects"
    with os.scandir(objects) as entries:
        linked = [e.name for e in entries if (len(e.name) == 2 or e.name == "pack") and e.is_symlink()]
    changes = []
    for name in linked:
        link, copy, target = objects / name, objects / f"explore-copy-{name}", aside / "objects" / name
        shutil.rmtree(copy, ignore_errors=True)
        try:
            shutil.copytree(link, copy, symlinks=True)  # a link inside stays a link, and is moved aside below
        except OSError:  # dangling, or no folder behind it: git finds nothing there either
            copy.mkdir()
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(link, target)
        os.rename(copy, link)
        changes.append(f"git: objects/{name} was a link, which git follows; moved to {target}, what it led to checked")
    return changes


def _check_packs(git_dir: Path, since: int, aside: Path) -> list[str]:
    """Move aside each pack written since ``since`` whose objects do not hash to the ids its index gives."""
    folder = git_dir / "objects" / "pack"
    changes = []
    for index in sorted(folder.glob("pack-*.idx")):
        pack = index.with_suffix(".pack")
        key = blobs.stamp(index, pack)
        if key[1] < since or blobs.known_true(key):
            continue  # an index without its pack (git reads nothing from it), an old pack, or one known whole
        try:
            Git(git_dir).run("verify-pack", str(index))
        except GitFailed:
            target = aside / "objects" / "pack"
            target.mkdir(parents=True, exist_ok=True)
            for part in folder.glob(f"{index.stem}.*"):
                shutil.move(part, target / part.name)
            changes.append(
                f"git: objects/pack/{index.stem} did not hold what its index says (forged); moved to {target}"
            )
            continue
        blobs.note_true(key)
    return changes


#: git's own indexes of the objects, which it trusts as they say (a commit's tree and parents, where an
#: object sits among the packs), and the command that checks each against the objects.
_CACHES = {
    "info/commit-graph": ("commit-graph", "verify"),
    "info/commit-graphs": ("commit-graph", "verify"),
    "pack/multi-pack-index": ("multi-pack-index", "verify"),
}


def _check_caches(git_dir: Path, since: int, aside: Path) -> list[str]:
    """Move aside each of git's object caches written since ``since`` that git's own check finds untrue."""
    objects = git_dir / "objects"
    changes = []
    for relative, command in _CACHES.items():
        path = objects / relative
        key = blobs.stamp(path)
        if key[1] < since or blobs.known_true(key):
            continue
        try:
            Git(git_dir).run(*command, "--object-dir", str(objects))
        except GitFailed:
            target = aside / "objects" / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(path, target)
            changes.append(f"git: objects/{relative} did not say what the objects say (forged); moved to {target}")
            continue
        blobs.note_true(key)
    return changes


_OBJECT_NAME = re.compile(r"[0-9a-f]{38}|[0-9a-f]{62}")


def _changed_since(objects: Path, since: int) -> list[Path]:
    found = []
    with os.scandir(objects) as folders:
        fanout = [f.path for f in folders if len(f.name) == 2 and f.is_dir(follow_symlinks=False)]
    for folder in fanout:
        with os.scandir(folder) as entries:
            for entry in entries:
                if not _OBJECT_NAME.fullmatch(entry.name):
                    continue  # git's own temporary files (``tmp_obj_*``) while it writes an object
                if entry.is_symlink():
                    found.append(Path(entry.path))  # git follows it; the plugin never made one
                elif entry.is_file(follow_symlinks=False) and entry.stat(follow_symlinks=False).st_ctime_ns >= since:
                    found.append(Path(entry.path))
    return found


def _holds_its_id(path: Path, object_id: str) -> bool:
    if path.is_symlink():
        return False
    try:
        raw = zlib.decompress(path.read_bytes())
    except (OSError, zlib.error):
        return False
    digest = blobs.hasher(len(object_id))(raw)
    return digest.hexdigest() == object_id


def _copy_from(store: Git, git: Git, object_id: str) -> bool:
    """Write ``object_id`` into ``git`` from ``store`` when the store has it (a blob the run kept)."""
    try:
        content = store.run_bytes("cat-file", "blob", object_id)
        return git.run("hash-object", "-w", "--no-filters", "--stdin", input=content) == object_id
    except GitFailed:
        return False
