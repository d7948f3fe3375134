"""A client-side token bucket per subscription, below ARM's own.

ARM allows about 25 reads per second per subscription and principal (a bucket of 250).
Spending faster only buys 429s, so requests wait for a token here instead; a 429 that
does arrive pauses the whole subscription for its Retry-After, not just the one request.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class RateLimiter:
    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens: dict[str, float] = {}
        self._updated: dict[str, float] = {}
        self._paused_until: dict[str, float] = {}

    def acquire(self, key: str) -> float:
        """Take one token for `key`, waiting as long as needed; returns the seconds waited."""
        if self.rate <= 0:
            return 0.0
        waited = 0.0
        while True:
            wait = self._try_take(key)
            if wait <= 0:
                return waited
            self._sleep(wait)
            waited += wait

    def pause(self, key: str, seconds: float) -> None:
        """ARM said 429 with Retry-After: nobody spends on this subscription until then."""
        with self._lock:
            until = max(self._paused_until.get(key, 0.0), self._clock() + seconds)
            self._paused_until[key] = until
            # ARM's bucket is empty: one request may probe when the pause ends, the rest refill from there.
            self._tokens[key] = 1.0
            self._updated[key] = until

    def _try_take(self, key: str) -> float:
        with self._lock:
            now = self._clock()
            paused = self._paused_until.get(key, 0.0) - now
            if paused > 0:
                return paused
            refill = max(0.0, now - self._updated.get(key, now)) * self.rate
            tokens = min(self.burst, self._tokens.get(key, self.burst) + refill)
            self._updated[key] = now
            if tokens >= 1 - 1e-9:  # float refills land a hair short of whole tokens
                self._tokens[key] = max(0.0, tokens - 1)
                return 0.0
            self._tokens[key] = tokens
            return max((1 - tokens) / self.rate, 0.001)
