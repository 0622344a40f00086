"""JSON files written atomically: a reader sees the old file or the new one, never half of one.

Every file the plugin writes for a run (records, ``results.json``, the
baseline) goes through here, so a crash or Ctrl-C leaves no torn file.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so readers see the old or the new file, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: Any) -> None:
    write_atomic(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def read_json(path: Path) -> Any:
    """The JSON document at ``path``, or None when it is missing or unreadable."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


#: Without a sandbox an agent can put a FIFO, a folder or a link where a file goes: none blocks or is followed.
_OPEN_REGULAR = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


def read_regular(path: Path, cap: int) -> bytes | None:
    """The bytes of the regular file at ``path``, or None when there is none.

    ValueError when something else is there (a FIFO, a folder, a link) or the file has more than ``cap`` bytes.
    """
    try:
        fd = os.open(path, _OPEN_REGULAR)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ValueError(exc.strerror) from None
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > cap:
            raise ValueError("not a file the plugin wrote")
        return file.read(cap + 1)
