"""A thread-safe, per-key rate limiter: token buckets with continuous refill.

Each key has a bucket of up to ``rate`` tokens that refills at ``rate / per`` tokens a second; a
request takes one token or, if there is none, is refused. Bursts are capped at ``rate``, and
capacity comes back smoothly rather than at window boundaries.
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
            raise ValueError(f"rate: expected a positive whole number of requests, got {rate!r}")
        if not (isinstance(per, (int, float)) and math.isfinite(per) and per > 0):
            raise ValueError(f"per: expected a positive, finite number of seconds, got {per!r}")
        self.rate = rate
        self.per = float(per)
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, time of last refill)

    def allow(self, key: str = "default") -> bool:
        """Record a request for ``key`` and return True if it is allowed, False if it must wait."""
        with self._lock:
            now = self._clock()
            tokens, last = self._buckets.get(key, (float(self.rate), now))
            tokens = min(float(self.rate), tokens + (now - last) * self.rate / self.per)
            allowed = tokens >= 1.0
            self._buckets[key] = (tokens - 1.0 if allowed else tokens, now)
            return allowed
