"""What a trial's commands may use: the ``limits`` section as data (see :mod:`..isolation.limits`)."""

from __future__ import annotations

import dataclasses

LIMIT_KEYS = frozenset({"memory", "processes", "file_size", "disk", "output", "files", "trial_size"})
#: Limits that count things, not bytes.
COUNTS = frozenset({"processes", "files"})

UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one command (with everything it starts) may use; None: no limit."""

    memory: int | None = 8 << 30  # bytes resident, over the process tree
    processes: int | None = 1024  # processes at once
    file_size: int | None = 1 << 30  # bytes, the largest file it may write (and the plugin store)
    disk: int | None = 20 << 30  # bytes in the folders it writes
    output: int | None = 100 << 20  # bytes of output kept in its log
    files: int | None = 100_000  # files a trial adds or changes
    trial_size: int | None = 2 << 30  # bytes of all of them together

    def hit(self, name: str) -> str:
        """How a hit limit is named in a trial's reason: ``memory 8G``."""
        value = getattr(self, name)
        return f"{name} {value}" if name in COUNTS else f"{name} {format_size(value)}"


#: The limits of a run whose variants file sets none.
DEFAULT_LIMITS = Limits()
NO_LIMITS = Limits(memory=None, processes=None, file_size=None, disk=None, output=None, files=None, trial_size=None)


def format_size(size: int) -> str:
    """``8589934592`` -> ``8G``: the largest unit that divides it, as a user would write it."""
    for unit in ("T", "G", "M", "K"):
        if size % UNITS[unit] == 0:
            return f"{size // UNITS[unit]}{unit}"
    return str(size)
