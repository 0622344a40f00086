"""The slot pool that suite runs share across processes: its bound, its order, and dead holders.

Threads stand in for processes where that is enough (each slot is its own
open file, so ``flock`` keeps them apart as it keeps processes apart); a
killed holder is a real process.  Nothing here sleeps to order events: each
waiter says it is queued through the pool's ``waiting`` callback.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pytest_parallel_explore.isolation.pool import RECHECK, SlotPool


class Asker(threading.Thread):
    """A thread that asks ``pool`` for a slot and holds it until told to let go."""

    def __init__(self, pool: SlotPool, name: str, log: list[str]) -> None:
        super().__init__(name=name, daemon=True)
        self.pool, self.log = pool, log
        self.queued, self.granted, self.release = threading.Event(), threading.Event(), threading.Event()

    def run(self) -> None:
        with self.pool.slot(lambda since: self.queued.set()):
            self.log.append(self.name)
            self.granted.set()
            self.release.wait(30)

    def done(self) -> None:
        self.release.set()
        self.join(30)
        assert not self.is_alive()


def test_slots_are_granted_at_once_up_to_the_size(tmp_path: Path) -> None:
    pool = SlotPool(tmp_path / "pool", 2)
    with pool.slot() as first, pool.slot() as second:
        assert first.waited < 5 and second.waited < 5
        assert len(list((tmp_path / "pool").glob("h-*"))) == 2
    assert not list((tmp_path / "pool").glob("[hw]-*")), "every entry is removed on release"


def test_a_waiter_gets_the_slot_a_holder_frees_and_not_before(tmp_path: Path) -> None:
    pool, log = SlotPool(tmp_path, 2), []
    holders = [Asker(pool, f"h{i}", log) for i in range(2)]
    for holder in holders:
        holder.start()
        assert holder.granted.wait(30)
    third = Asker(pool, "third", log)
    third.start()
    assert third.queued.wait(30)
    assert not third.granted.is_set()
    holders[1].done()
    assert third.granted.wait(30)
    for asker in (holders[0], third):
        asker.done()


def test_waiters_are_served_longest_waiting_first(tmp_path: Path) -> None:
    pool, log = SlotPool(tmp_path, 1), []
    holder = Asker(pool, "holder", log)
    holder.start()
    assert holder.granted.wait(30)
    waiters = [Asker(pool, name, log) for name in ("first", "second", "third", "fourth")]
    for waiter in waiters:
        waiter.start()
        assert waiter.queued.wait(30)  # in line before the next one comes
    holder.done()
    for waiter in waiters:
        assert waiter.granted.wait(30)
        assert sum(w.granted.is_set() for w in waiters) == 1 + waiters.index(waiter), "one slot, one holder"
        waiter.done()
    assert log == ["holder", "first", "second", "third", "fourth"]


def test_a_waiter_that_gives_up_passes_its_turn_on(tmp_path: Path) -> None:
    # Interrupted while waiting (Ctrl-C in a worker): its entry goes, the next in line is served.
    pool, log = SlotPool(tmp_path, 1), []
    holder = Asker(pool, "holder", log)
    holder.start()
    assert holder.granted.wait(30)

    def give_up(since: float) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt), pool.slot(give_up):
        pass
    later = Asker(pool, "later", log)
    later.start()
    assert later.queued.wait(30)
    holder.done()
    assert later.granted.wait(30)
    later.done()
    assert log == ["holder", "later"]


HOLDER = """
import sys
from pathlib import Path
from pytest_parallel_explore.isolation.pool import SlotPool

with SlotPool(Path(sys.argv[1]), 1).slot():
    print("held", flush=True)
    sys.stdin.read()
"""


def test_the_slot_of_a_killed_holder_is_taken_over(tmp_path: Path) -> None:
    # SIGKILL: no finally runs and nobody is woken; the kernel lets go of the entry's lock.
    with subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as holder:
        try:
            assert holder.stdout is not None and holder.stdout.readline() == "held\n"
            pool, log = SlotPool(tmp_path, 1), []
            waiter = Asker(pool, "waiter", log)
            waiter.start()
            assert waiter.queued.wait(30)
            killed = time.monotonic()
            os.kill(holder.pid, signal.SIGKILL)
            assert waiter.granted.wait(30)
            assert time.monotonic() - killed < RECHECK + 5, "found at the waiter's next look"
            waiter.done()
        finally:
            with contextlib.suppress(ProcessLookupError):
                holder.kill()
    with SlotPool(tmp_path, 1).slot() as grant:  # and a newcomer finds the pool empty
        assert grant.waited < 5


def test_a_pool_needs_a_slot(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one slot"):
        SlotPool(tmp_path, 0)
