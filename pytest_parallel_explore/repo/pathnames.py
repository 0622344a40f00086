"""The names of paths an agent wrote: which can be shown as they are, and which git records as they are.

Names are hostile input: a control character would forge a line of git's
input or of a report, and git refuses to index some spellings (of ``.git``
above all) that other tools write without a word.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable

#: A name of a path git records as it is: fast-import, which checks no name, is given only these.
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_.+-]+")


def all_plain(removed: Iterable[str], changed: Iterable[tuple[str, str, str]]) -> bool:
    """Whether every path is one git's index would take as it is (see ``verify_path`` in git's ``read-cache.c``).

    Names of letters, digits and ``_.+-`` only, none of them ``.``, ``..``
    or a spelling of ``.git`` (``.GIT``, ``.git.``); and no link whose name
    starts with a dot (git refuses a ``.gitmodules`` link).  Anything else
    goes through the index, which refuses what git will not record.
    """
    return all(map(_plain, removed)) and all(
        _plain(path) and not (mode == "120000" and posixpath.basename(path).startswith("."))
        for mode, _sha, path in changed
    )


def _plain(path: str) -> bool:
    return all(
        _PLAIN_NAME.fullmatch(name) and name not in (".", "..") and name.lower().rstrip(".") != ".git"
        for name in path.split("/")
    )


#: Characters HFS+ ignores in a name, which ``git fsck`` ignores too when it spots a ``.gitmodules``.
_HFS_IGNORED = dict.fromkeys([*range(0x200C, 0x2010), *range(0x202A, 0x202F), *range(0x206A, 0x2070), 0xFEFF])


def gitmodules_name(path: str) -> bool:
    """Whether ``git fsck`` reads the file at ``path`` as a ``.gitmodules`` (any case, HFS+ and NTFS spellings).

    Its content then decides whether the user's repository passes ``git fsck``
    (and a push to a server that checks): a trial's own is never recorded.
    """
    name = posixpath.basename(path).translate(_HFS_IGNORED).lower()
    return name.startswith((".gitmodules", "gitmod~", "gi7eba~"))


#: A name git's line-based input, a terminal or a report would show as something else.
_CONTROL = re.compile("[\x00-\x1f\x7f]")


def hostile_name(path: str) -> str | None:
    """``path`` as a message shows it (``repr``) when it cannot be recorded safely: control characters, not UTF-8.

    ``path`` is as :class:`Git` decodes git's output (UTF-8, undecodable bytes surrogate-escaped).
    """
    raw = encoded(path)
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        return repr(raw)
    return repr(text) if _CONTROL.search(text) else None


def encoded(path: str) -> bytes:
    return path.encode(errors="surrogateescape")
