"""Hold-out tests: never shown to the agent, copied into the worktree only for scoring."""

from __future__ import annotations

from ratelimit import RateLimiter
from testkit import FakeClock, hammer


def busiest_span(times: list[float], rate: int, per: float) -> tuple[int, float]:
    """The span of the allowed request ``times`` that goes furthest over what a limiter may allow.

    With bursts of ``rate`` and ``rate`` per ``per`` on average, a limiter can let through at most
    ``rate * (1 + span / per)`` requests in any span of time: a full burst, plus what comes back
    during the span. Returns ``(requests, span)`` of the worst span.
    """
    times = sorted(times)
    spans = [(j - i + 1, times[j] - times[i]) for i in range(len(times)) for j in range(i, len(times))]
    return max(spans, key=lambda s: s[0] - rate * (1 + s[1] / per), default=(0, 0.0))


def test_no_double_burst_across_a_window_boundary() -> None:
    # The classic fixed-window flaw: a burst just before a window boundary and another just after
    # it both pass, so about 2 * rate requests get through within a fraction of `per`.
    clock = FakeClock()
    limiter = RateLimiter(10, 1.0, clock=clock)
    allowed: list[float] = []
    for wait in (0.9375, 0.0625, 0.125, 0.5, 0.4375):  # binary fractions: exact arithmetic
        clock.advance(wait)
        allowed += [clock() for _ in range(20) if limiter.allow()]
    requests, span = busiest_span(allowed, 10, 1.0)
    assert requests <= 10 * (1 + span / 1.0), f"{requests} requests allowed within {span} s"


def test_refused_requests_do_not_use_up_the_limit() -> None:
    clock = FakeClock()
    limiter = RateLimiter(3, 1.0, clock=clock)
    assert sum(limiter.allow() for _ in range(3)) == 3
    knocks = []
    for _ in range(4):  # keep knocking for a quarter of a second: too soon for anything to be allowed
        clock.advance(0.0625)
        knocks.append(limiter.allow())
    assert knocks == [False] * 4
    clock.advance(0.75)  # one `per` after the burst: only the burst counted, so a full burst again
    assert sum(limiter.allow() for _ in range(5)) == 3


def test_steady_traffic_gets_the_long_run_rate() -> None:
    clock = FakeClock()
    limiter = RateLimiter(4, 1.0, clock=clock)
    allowed = 0
    for _ in range(16 * 30):  # 30 s of requests every 1/16 s
        allowed += limiter.allow()
        clock.advance(0.0625)
    assert 4 * 30 <= allowed <= 4 * 30 + 4


def test_threads_on_many_keys_each_get_exactly_rate() -> None:
    keys = [f"user-{i}" for i in range(6)] * 2  # two threads per key
    for _ in range(10):  # a race shows up only now and then: give it many chances
        limiter = RateLimiter(100, 1.0, clock=FakeClock())
        totals = dict.fromkeys(keys, 0)
        for key, allowed in zip(keys, hammer(limiter.allow, keys, 150), strict=True):
            totals[key] += allowed
        assert totals == dict.fromkeys(keys, 100)
