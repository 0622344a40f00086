"""A thread-safe, per-key rate limiter: fixed window counters.

Time is cut into windows of ``per`` seconds aligned on the clock; each key may make ``rate``
requests per window, and its counter starts again at zero when a new window begins. Simple and
cheap (one counter per key), but a burst at the end of one window and another at the start of the
next both pass.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable


class RateLimiter:
    """Allow at most ``rate`` requests per ``per`` seconds for each key."""

    def __init__(self, rate: int, per: float = 1.0, *, clock: Callable[[], float] = time.monotonic) -> None:
        if isinstance(rate, bool) or not isinstance(rate, int) or rate < 1:
            raise ValueError(f"rate must be a positive integer, got {rate!r}")
        if not isinstance(per, (int, float)) or not math.isfinite(per) or per <= 0:
            raise ValueError(f"per must be a positive, finite number of seconds, got {per!r}")
        self.rate = rate
        self.per = float(per)
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[int, int]] = {}  # key -> (window number, requests allowed in it)

    def allow(self, key: str = "default") -> bool:
        """Record a request for ``key`` and return True if it is allowed, False if it must wait."""
        with self._lock:
            window = math.floor(self._clock() / self.per)
            current, count = self._windows.get(key, (window, 0))
            if current != window:
                count = 0
            if count >= self.rate:
                return False
            self._windows[key] = (window, count + 1)
            return True
