"""What a worktree's files looked like when the plugin made it, so reading them back skips what is unchanged.

A snapshot maps each file of the base commit to its :data:`Stat`: read from
the index the checkout wrote (:func:`index_snapshot`, no system call a
file) or from each file (:func:`stat_snapshot`).  It lives in the plugin's
memory, never where an agent could edit it; :mod:`.trees` uses it.
"""

from __future__ import annotations

import os
import stat
import struct
import tempfile
from collections.abc import Iterable
from pathlib import Path

#: What a file's ``lstat`` says that any change to it changes: (size, mtime_ns, ctime_ns, inode);
#: size and inode cut to 32 bits, as a git index keeps them.
Stat = tuple[int, int, int, int]
_LOW_32 = 0xFFFFFFFF


def stat_of(info: os.stat_result) -> Stat:
    return (info.st_size & _LOW_32, info.st_mtime_ns, info.st_ctime_ns, info.st_ino & _LOW_32)


def index_snapshot(root: Path, id_length: int) -> dict[str, Stat] | None:
    """:func:`stat_snapshot` of a worktree git has just checked out, read from its index: no ``lstat`` a file.

    git takes each file's ``lstat`` right after writing it and keeps it in
    the index (``root/.git/index``), so reading the index back gives the
    same snapshot for the cost of parsing it.  It must be read before
    anything else ran there (no agent yet).  ``id_length`` is the length of
    the repository's object ids (40 for SHA-1).  None when the index is not
    one this reads (versions 2 and 3), and the caller takes the stat itself.
    """
    try:
        data = (root / ".git" / "index").read_bytes()
        recorded = _index_entries(data, id_length // 2)
    except (OSError, ValueError, struct.error):
        return None
    return _before_now(root, recorded)


_REGULAR_OR_LINK = frozenset({0o100644, 0o100755, 0o120000})


def _index_entries(data: bytes, hash_size: int) -> dict[str, Stat]:
    signature, version, count = struct.unpack_from(">4sII", data)
    if signature != b"DIRC" or version not in (2, 3):
        raise ValueError(f"not an index of version 2 or 3: {signature!r} {version}")
    # ctime s, ns, mtime s, ns, dev, ino, mode, uid, gid, size, the object id, flags
    entry = struct.Struct(f">10I{hash_size}xH")
    entries: dict[str, Stat] = {}
    at = 12
    for _ in range(count):
        ctime_s, ctime_ns, mtime_s, mtime_ns, _dev, ino, mode, _uid, _gid, size, flags = entry.unpack_from(data, at)
        name_at = at + entry.size + (2 if flags & 0x4000 else 0)
        length = flags & 0xFFF  # the name's length, or 0xFFF when it is longer
        end = name_at + length if length < 0xFFF else data.index(b"\0", name_at)
        at += (end - at + 8) & ~7  # the name's NUL and padding to a multiple of 8
        if mode in _REGULAR_OR_LINK and not flags & 0x3000:  # stage 0 only
            path = data[name_at:end].decode(errors="surrogateescape")
            entries[path] = (size, mtime_s * 1_000_000_000 + mtime_ns, ctime_s * 1_000_000_000 + ctime_ns, ino)
    return entries


def stat_snapshot(root: Path, paths: Iterable[str]) -> dict[str, Stat]:
    """The :data:`Stat` of each of ``paths`` under ``root``, taken by the plugin right after it made the worktree.

    :func:`tree_of_files` then skips hashing a file whose stat is unchanged.
    That is sound because the ctime cannot be set by an unprivileged process:
    every write, ``chmod``, rename onto the path or re-creation (even with the
    same inode, size and a restored mtime) sets it to the current time.  A
    file whose ctime is not older than the snapshot itself is left out
    ("racy", as git calls it: a change in the same clock tick would keep the
    same ctime), so it is always hashed.  The snapshot lives in the plugin's
    memory, never in the worktree or anywhere the agent could edit it.
    """
    snapshot: dict[str, Stat] = {}
    top = os.fspath(root) + os.sep  # strings, not Paths: a Path per file was most of the cost
    for path in paths:
        try:
            info = os.lstat(top + path)
        except OSError:
            continue
        if stat.S_ISREG(info.st_mode) or stat.S_ISLNK(info.st_mode):
            snapshot[path] = stat_of(info)
    return _before_now(root, snapshot)


def _before_now(root: Path, snapshot: dict[str, Stat]) -> dict[str, Stat]:
    """``snapshot`` without the racy entries: those whose ctime is not older than this moment (see stat_snapshot)."""
    fd, marker = tempfile.mkstemp(prefix=".explore-clock-", dir=root.parent)  # same filesystem, same clock
    try:
        now = os.fstat(fd).st_ctime_ns
    finally:
        os.close(fd)
        os.unlink(marker)
    return {path: value for path, value in snapshot.items() if value[2] < now}
