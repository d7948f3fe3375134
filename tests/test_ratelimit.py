"""The per-subscription token bucket, on a clock the test moves."""

from __future__ import annotations

import pytest

from exporter.ratelimit import RateLimiter


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _limiter(rate: float, burst: float) -> tuple[RateLimiter, FakeTime]:
    fake = FakeTime()
    return RateLimiter(rate, burst, clock=fake.clock, sleep=fake.sleep), fake


def test_burst_then_the_steady_rate() -> None:
    limiter, fake = _limiter(rate=20, burst=100)
    assert sum(limiter.acquire("sub-a") for _ in range(100)) == 0  # the burst is free
    for _ in range(200):
        limiter.acquire("sub-a")
    assert fake.now == pytest.approx(10.0)  # 200 more at 20 per second


def test_subscriptions_have_their_own_buckets() -> None:
    limiter, fake = _limiter(rate=1, burst=1)
    limiter.acquire("sub-a")
    limiter.acquire("sub-b")
    assert fake.now == 0.0
    limiter.acquire("sub-a")
    assert fake.now == pytest.approx(1.0)


def test_a_429_pauses_the_whole_subscription() -> None:
    limiter, _ = _limiter(rate=20, burst=100)
    limiter.pause("sub-a", 7.0)
    assert limiter.acquire("sub-b") == 0
    assert limiter.acquire("sub-a") == pytest.approx(7.0)


def test_zero_rate_means_no_limit() -> None:
    limiter, fake = _limiter(rate=0, burst=0)
    for _ in range(1000):
        limiter.acquire("sub-a")
    assert fake.now == 0.0
