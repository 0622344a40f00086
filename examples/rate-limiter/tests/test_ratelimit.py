"""Visible tests of ratelimit.RateLimiter: they use a fake clock and never sleep."""

from __future__ import annotations

import pytest
from ratelimit import RateLimiter
from testkit import FakeClock, hammer


def take(limiter: RateLimiter, attempts: int, key: str = "default") -> int:
    """Make ``attempts`` requests at the current time and return how many were allowed."""
    return sum(limiter.allow(key) for _ in range(attempts))


def test_allows_a_burst_up_to_rate() -> None:
    limiter = RateLimiter(3, 1.0, clock=FakeClock())
    assert [limiter.allow() for _ in range(3)] == [True, True, True]


def test_rejects_requests_over_the_limit() -> None:
    limiter = RateLimiter(3, 1.0, clock=FakeClock())
    assert take(limiter, 3) == 3
    assert [limiter.allow() for _ in range(5)] == [False] * 5


def test_a_short_wait_is_not_a_full_refill() -> None:
    clock = FakeClock()
    limiter = RateLimiter(4, 1.0, clock=clock)
    assert take(limiter, 4) == 4
    clock.advance(0.5)
    assert take(limiter, 4) < 4


def test_refills_after_per_seconds() -> None:
    clock = FakeClock()
    limiter = RateLimiter(5, 2.0, clock=clock)
    assert take(limiter, 10) == 5
    clock.advance(2.0)
    assert take(limiter, 10) == 5


def test_keys_are_independent() -> None:
    limiter = RateLimiter(2, 1.0, clock=FakeClock())
    assert take(limiter, 5, "alice") == 2
    assert take(limiter, 5, "bob") == 2
    assert limiter.allow() and limiter.allow("default") and not limiter.allow()


def test_threads_on_one_key_get_exactly_rate() -> None:
    for _ in range(20):  # a race shows up only now and then: give it many chances
        limiter = RateLimiter(1000, 1.0, clock=FakeClock())
        assert sum(hammer(limiter.allow, ["default"] * 8, 250)) == 1000


def test_uses_a_monotonic_clock_by_default() -> None:
    limiter = RateLimiter(2, 3600.0)
    assert take(limiter, 3) == 2


@pytest.mark.parametrize(
    ("rate", "per"),
    [(0, 1.0), (-1, 1.0), (2.5, 1.0), (1, 0.0), (1, -1.0), (1, float("nan")), (1, float("inf"))],
)
def test_invalid_arguments_raise_value_error(rate: int, per: float) -> None:
    with pytest.raises(ValueError):
        RateLimiter(rate, per)
