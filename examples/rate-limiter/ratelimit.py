"""A thread-safe, per-key rate limiter.

This is the starting point of the rate-limiter example: the API is fixed, the body is not written.

Contract:

- ``RateLimiter(rate, per)`` lets each key make at most ``rate`` requests per ``per`` seconds.
- A key that has been idle can make a burst of up to ``rate`` requests at once; the next one is
  refused until capacity comes back.
- Capacity comes back as time passes (gradually, or as old requests age out), never all at once at
  a clock-aligned window boundary: a burst at the end of one ``per`` interval followed by a burst at
  the start of the next must not let about twice ``rate`` requests through.
- After ``per`` seconds without requests, a key can make a full burst of ``rate`` again.
- Refused requests do not count against the limit.
- Keys are independent, and ``allow`` is safe to call from many threads at once.
- Time comes from ``clock`` (seconds, never going backwards), so tests can inject a fake clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class RateLimiter:
    """Allow at most ``rate`` requests per ``per`` seconds for each key."""

    def __init__(self, rate: int, per: float = 1.0, *, clock: Callable[[], float] = time.monotonic) -> None:
        """Create a limiter.

        ``rate`` is a positive whole number of requests and ``per`` a positive, finite number of
        seconds; anything else raises ``ValueError``.
        """
        raise NotImplementedError("RateLimiter.__init__")

    def allow(self, key: str = "default") -> bool:
        """Record a request for ``key`` and return True if it is allowed, False if it must wait."""
        raise NotImplementedError("RateLimiter.allow")
