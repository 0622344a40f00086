"""``limits: {files, file_size, trial_size}``: how much of an agent's files the plugin reads and stores.

What an agent leaves in its worktree is stored in the user's repository, so
it is bounded like any hostile input: the files a trial adds or changes, the
bytes of one file, the bytes of all of them.  The defaults never stop an
honest agent; a trial over a bound fails (``agent_failed``) and adds nothing
to the repository.  Set at the top of the variants file and per variant
(a variant's keys override the experiment's one by one).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .checks import describe, positive_int, size, unknown_keys

#: The keys of ``limits`` that bound the agent's files; other limits (of processes) may share the section.
FILE_LIMIT_KEYS = frozenset({"files", "file_size", "trial_size"})


@dataclasses.dataclass(frozen=True)
class FileLimits:
    files: int = 100_000  # files a trial adds or changes
    file_size: int = 100 << 20  # bytes of one added or changed file
    trial_size: int = 1 << 30  # bytes of all of them together


#: The limits of a run whose variants file sets none.
DEFAULT_FILE_LIMITS = FileLimits()


def parse_file_limits(raw: Any, default: FileLimits, where: str, problems: list[str]) -> FileLimits:
    """``limits: {files: 100000, file_size: 100M, trial_size: 1G}`` on top of ``default``."""
    if not isinstance(raw, dict):
        problems.append(f"{where}: expected a mapping (files, file_size, trial_size), got {describe(raw)}")
        return default
    problems.extend(unknown_keys(raw, FILE_LIMIT_KEYS, where + "."))
    prefix = where + "."
    return FileLimits(
        files=positive_int(raw, "files", prefix, problems) or default.files,
        file_size=size(raw, "file_size", prefix, problems) or default.file_size,
        trial_size=size(raw, "trial_size", prefix, problems) or default.trial_size,
    )
