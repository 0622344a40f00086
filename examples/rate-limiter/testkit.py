"""Test helpers shared by the visible and the hold-out tests: a fake clock and a thread hammer."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable


class FakeClock:
    """A clock that only moves when told to, so the tests need no sleeps."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def hammer(allow: Callable[[str], bool], keys: list[str], attempts: int) -> list[int]:
    """Start a thread per entry of ``keys``, all at once, each calling ``allow(key)`` ``attempts`` times.

    Returns how many calls each thread had allowed, in the order of ``keys``. Threads switch every
    microsecond meanwhile, so an unlocked read-modify-write in ``allow`` is likely caught racing.
    """
    start = threading.Barrier(len(keys))
    allowed = [0] * len(keys)

    def run(index: int) -> None:
        start.wait()
        allowed[index] = sum(allow(keys[index]) for _ in range(attempts))

    threads = [threading.Thread(target=run, args=(index,)) for index in range(len(keys))]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    return allowed
