"""Per-worker pacing of Gemini calls: a concurrency cap and a smooth request rate.

The rate is this worker's share of the cluster budget. The limiter's burst is
kept small: a sliding-window quota answers a burst with 429s even when the
average rate is fine (measured: AsyncLimiter(100, 5) → 100 429s,
AsyncLimiter(1, 0.05) → none).
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from aiolimiter import AsyncLimiter


class Pacer:
    def __init__(self, max_concurrent: int, requests_per_minute: float, burst_size: int = 1) -> None:
        self.max_concurrent = max_concurrent
        self.burst_size = burst_size
        self._slots = asyncio.Semaphore(max_concurrent)
        self.in_flight = 0
        self.limiter_wait_seconds_total = 0.0
        self._rate_changed = asyncio.Event()
        self.set_rate(requests_per_minute)

    @property
    def requests_per_minute(self) -> float:
        return self._rate

    def set_rate(self, requests_per_minute: float) -> None:
        """Change the pace at once; a rate of 0 stops new calls until it is raised."""
        self._rate = max(0.0, requests_per_minute)
        if self._rate > 0:
            burst = min(self.burst_size, max(1, int(self._rate)))
            self._limiter = AsyncLimiter(burst, burst * 60.0 / self._rate)
        self._rate_changed.set()

    @contextlib.asynccontextmanager
    async def slot(self):
        """Hold one call's place: waits for a free slot, then for the rate."""
        async with self._slots:
            started = time.monotonic()
            while self._rate <= 0:
                self._rate_changed.clear()
                await self._rate_changed.wait()
            await self._limiter.acquire()
            self.limiter_wait_seconds_total += time.monotonic() - started
            self.in_flight += 1
            try:
                yield
            finally:
                self.in_flight -= 1
