"""A thread-safe, per-key rate limiter: a sliding log of request times.

Each key keeps a deque of the times of its allowed requests within the last ``per`` seconds; a
request is allowed while fewer than ``rate`` are in it. Exact (never more than ``rate`` in any
``per`` seconds) at the cost of ``rate`` timestamps of memory per key.
"""

from __future__ import annotations

import math
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable


class RateLimiter:
    """Allow at most ``rate`` requests per ``per`` seconds for each key."""

    def __init__(self, rate: int, per: float = 1.0, *, clock: Callable[[], float] = time.monotonic) -> None:
        if type(rate) is not int or rate <= 0:
            raise ValueError(f"expected rate > 0 requests (an int), got {rate!r}")
        if type(per) not in (int, float) or not 0 < per < math.inf:
            raise ValueError(f"expected 0 < per < inf seconds, got {per!r}")
        self.rate = rate
        self.per = float(per)
        self._clock = clock
        self._lock = threading.Lock()
        self._logs: defaultdict[str, deque[float]] = defaultdict(deque)

    def allow(self, key: str = "default") -> bool:
        """Record a request for ``key`` and return True if it is allowed, False if it must wait."""
        with self._lock:
            now = self._clock()
            log = self._logs[key]
            while log and log[0] <= now - self.per:  # a request exactly `per` ago no longer counts
                log.popleft()
            if len(log) >= self.rate:
                return False
            log.append(now)
            return True
