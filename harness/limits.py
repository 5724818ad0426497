"""Concurrency and rate limits per adapter.

`AdaptiveLimiter` is an AIMD limiter, as TCP does for congestion: on a 429 the number
of requests in flight is halved (once per round of requests, so a burst of 429s from
one round counts once), and each round of successes adds one back, up to the
configured concurrency. Optional requests-per-minute and tokens-per-minute caps pace
requests rather than sleeping a fixed time.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field


@dataclass
class LimiterStats:
    decreases: int = 0
    min_limit: int = 0
    rate_limited: int = 0
    paced_s: float = 0.0
    history: list[tuple[float, int]] = field(default_factory=list)


class AdaptiveLimiter:
    def __init__(self, max_concurrency: int, *, adaptive: bool = True, requests_per_minute: float | None = None,
                 tokens_per_minute: float | None = None) -> None:
        self.max = max_concurrency
        self.limit = max_concurrency
        self.adaptive = adaptive
        self.rpm = requests_per_minute
        self.tpm = tokens_per_minute
        self.in_flight = 0
        self._successes = 0
        self._last_decrease = 0.0
        self._next_slot = 0.0
        self._tokens: deque[tuple[float, int]] = deque()
        self._cond = asyncio.Condition()
        self.stats = LimiterStats(min_limit=max_concurrency)

    async def acquire(self) -> float:
        """Wait for a slot; returns the start time to give back to `release`."""
        async with self._cond:
            await self._cond.wait_for(lambda: self.in_flight < self.limit)
            self.in_flight += 1
        wait = 0.0
        now = time.monotonic()
        if self.rpm:
            slot = max(now, self._next_slot)
            self._next_slot = slot + 60.0 / self.rpm
            wait = slot - now
        if self.tpm:
            while self._tokens and self._tokens[0][0] < now - 60:
                self._tokens.popleft()
            used = sum(t for _, t in self._tokens)
            if used >= self.tpm and self._tokens:
                wait = max(wait, self._tokens[0][0] + 60 - now)
        if wait > 0:
            self.stats.paced_s += wait
            await asyncio.sleep(wait)
        return time.monotonic()

    async def release(self, started: float, *, rate_limited: bool = False, tokens: int | None = None) -> None:
        async with self._cond:
            self.in_flight -= 1
            if tokens and self.tpm:
                self._tokens.append((time.monotonic(), tokens))
            if rate_limited:
                self.stats.rate_limited += 1
                if self.adaptive and started >= self._last_decrease and self.limit > 1:
                    self.limit = max(1, self.limit // 2)
                    self._last_decrease = time.monotonic()
                    self._successes = 0
                    self.stats.decreases += 1
                    self.stats.min_limit = min(self.stats.min_limit, self.limit)
                    self.stats.history.append((round(self._last_decrease, 3), self.limit))
            else:
                self._successes += 1
                if self._successes >= self.limit and self.limit < self.max:
                    self.limit += 1
                    self._successes = 0
            self._cond.notify_all()
