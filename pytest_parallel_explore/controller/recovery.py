"""Closing what a stopped run left behind: trials whose process died midway, and what they started.

Called by the controller when a run starts, when an xdist worker dies, and
when the session ends, whatever ended it.
"""

from __future__ import annotations

import os
import time

from ..isolation import procs
from ..model.record import Status, save, try_load
from ..model.settings import Settings


def recover_interrupted(settings: Settings, *, only_dead_owners: bool = False) -> list[str]:
    """Close the records of trials whose run stopped midway; kill what they left running.

    A trial's record lists the process groups alive in it (agents and their
    children).  When the process that ran the trial is gone (an xdist worker
    killed, a run stopped with SIGKILL), nothing else would ever stop them.
    Returns a notice per trial closed.
    """
    notices = []
    for trial in settings.trials:
        path = settings.paths.trial_file(trial.name, "_progress.json")
        record = try_load(path)
        if record is None or (record.status.finished and not record.process_groups):
            continue
        if only_dead_owners and (record.owner_pid is None or _alive(record.owner_pid)):
            continue
        killed = procs.reap(record.process_groups)
        record.process_groups = []
        if not record.status.finished:
            record.reason = f"interrupted during {record.status.value}: the process running it stopped"
            record.status = Status.ERROR
            record.finished_at = record.finished_at or time.time()
            record.end_attempt(record.agent.cost_usd)
            notices.append(
                f"{trial.name}: {record.reason}" + (f"; killed {len(killed)} process groups" if killed else "")
            )
        save(record, path)
    return notices


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
