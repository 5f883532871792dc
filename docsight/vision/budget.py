"""One Gemini budget for the whole worker cluster, enforced by each worker alone.

Gemini's limits (requests/min, input tokens/min, requests/day) belong to the
Google Cloud project, so every worker spends the same quota. There is no
coordinator: each worker takes the share of the budget that matches the share
of the picture topic's partitions it owns, ``owned / total``.

Why the shares add up to the cluster budget: Kafka gives each partition to
exactly one consumer of the group, so after every rebalance the owned counts
sum to the total and the fractions sum to 1. During a rebalance two workers
can briefly both count a partition (the old owner's calls still in flight,
the new owner already starting). The gate covers that by never forgetting
calls in flight (their requests and estimated tokens stay charged after a
share change), and the budget keeps a margin: ``safety_factor`` (default 0.95)
is applied before the split. A 429 that slips through anyway is the AIMD
multiplier's signal (``adaptive_rate``).

The daily count is local: each worker stops when its own calls today reach
its share of requests/day. A rebalance mid-day can move share from a worker
that already spent a lot to one that spent little, so the cluster can
overshoot the daily quota by that imbalance; the API's 429 then stops it.

Requests are paced with a small burst (default 1, one call per interval),
because a windowed quota answers a burst with 429s even when the average rate
is fine (see shared notes: AsyncLimiter(100, 5) gave 100 429s).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
import math
import time
from dataclasses import dataclass
from typing import Awaitable, Callable, Hashable

from .adaptive_rate import AdaptiveRate
from .image_tokens import image_tokens, text_tokens


@dataclass(frozen=True)
class ClusterBudget:
    """The project's Gemini quota as configured (None = unlimited)."""
    requests_per_minute: float
    tokens_per_minute: float | None
    requests_per_day: int | None
    max_concurrent_per_consumer: int
    safety_factor: float = 0.95

    def __post_init__(self) -> None:
        if self.requests_per_minute < 0:
            raise ValueError("requests_per_minute must not be negative")
        if self.tokens_per_minute is not None and self.tokens_per_minute < 0:
            raise ValueError("tokens_per_minute must not be negative")
        if self.requests_per_day is not None and self.requests_per_day < 0:
            raise ValueError("requests_per_day must not be negative")
        if self.max_concurrent_per_consumer < 1:
            raise ValueError("max_concurrent_per_consumer must be at least 1")
        if not 0 < self.safety_factor <= 1:
            raise ValueError("safety_factor must be in (0, 1]")


@dataclass(frozen=True)
class WorkerShare:
    """One worker's part of the cluster budget (None = unlimited)."""
    fraction: float
    requests_per_minute: float
    tokens_per_minute: float | None
    requests_per_day: int | None

    @property
    def is_zero(self) -> bool:
        return self.requests_per_minute <= 0


def worker_share(budget: ClusterBudget, owned_partitions: int, total_partitions: int) -> WorkerShare:
    """The budget (less the safety margin) times owned/total partitions."""
    if total_partitions < 1:
        raise ValueError(f"total_partitions must be at least 1, got {total_partitions}")
    if not 0 <= owned_partitions <= total_partitions:
        raise ValueError(f"owned_partitions must be in [0, {total_partitions}], got {owned_partitions}")
    fraction = owned_partitions / total_partitions
    scale = fraction * budget.safety_factor
    return WorkerShare(
        fraction=fraction,
        requests_per_minute=budget.requests_per_minute * scale,
        tokens_per_minute=None if budget.tokens_per_minute is None else budget.tokens_per_minute * scale,
        # floor: rounding up on every worker would sum to more than the quota
        requests_per_day=None if budget.requests_per_day is None else math.floor(budget.requests_per_day * scale),
    )


def estimate_input_tokens(width: int, height: int, prompt: str, media_resolution: str | None = None) -> int:
    """What a one-picture request costs before the call: the picture plus the prompt text."""
    return image_tokens(width, height, media_resolution) + text_tokens(prompt)


class DailyBudgetExhausted(Exception):
    """This worker's share of requests/day is spent: waiting minutes will not help."""

    def __init__(self, day: Hashable, calls: int, allowance: int) -> None:
        super().__init__(f"daily Gemini budget spent: {calls} of {allowance} calls on {day}")
        self.day = day
        self.calls = calls
        self.allowance = allowance


def _pacific() -> _dt.tzinfo:
    try:
        from zoneinfo import ZoneInfo
        return ZoneInfo("America/Los_Angeles")
    except Exception:  # noqa: BLE001 - no tz database: standard time is close enough
        return _dt.timezone(_dt.timedelta(hours=-8))


_PACIFIC = _pacific()


def pacific_day() -> _dt.date:
    """Gemini's daily quota resets at midnight Pacific time."""
    return _dt.datetime.now(_PACIFIC).date()


def seconds_until_daily_reset(now: _dt.datetime | None = None) -> float:
    """Seconds until the next midnight Pacific, when a spent daily budget is available again."""
    now = (now or _dt.datetime.now(_dt.timezone.utc)).astimezone(_PACIFIC)
    midnight = _dt.datetime.combine(now.date() + _dt.timedelta(days=1), _dt.time(), tzinfo=_PACIFIC)
    return max(0.0, (midnight - now).total_seconds())


# refill arithmetic in floats can leave a level a hair below what was earned; waiting for
# that hair would round to no time at all and spin, so it counts as there
_ROUNDING = 1e-6


class TokenBucket:
    """A lazily refilled bucket; the level may go negative (spent ahead, repaid by refill).

    A cost larger than the capacity is admitted once the bucket is full and
    leaves a debt, so a big picture can pass without the capacity (and with it
    the burst every later small request could take) growing.
    """

    def __init__(self, rate_per_second: float, capacity: float, now: float) -> None:
        self.rate_per_second = max(0.0, rate_per_second)
        self.capacity = max(0.0, capacity)
        self.level = self.capacity
        self._updated = now

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self._updated)
        self.level = min(self.capacity, self.level + elapsed * self.rate_per_second)
        self._updated = max(self._updated, now)

    def set_rate(self, rate_per_second: float, capacity: float, now: float) -> None:
        # settle what the old rate earned up to now, then switch: the change applies at once
        self._refill(now)
        self.rate_per_second = max(0.0, rate_per_second)
        self.capacity = max(0.0, capacity)
        self.level = min(self.level, self.capacity)

    def delay(self, cost: float, now: float) -> float:
        """Seconds until ``cost`` can be taken (inf while the rate is 0 and the level too low)."""
        self._refill(now)
        need = min(cost, self.capacity)
        if self.level >= need - max(_ROUNDING, abs(need) * 1e-9):
            return 0.0
        if self.rate_per_second <= 0:
            return math.inf
        return (need - self.level) / self.rate_per_second

    def take(self, cost: float, now: float) -> None:
        self._refill(now)
        self.level -= cost

    def give_back(self, amount: float, now: float) -> None:
        """Adjust by a reconciled difference: positive refunds, negative borrows from the future."""
        self._refill(now)
        self.level = min(self.capacity, self.level + amount)


class GateSlot:
    """One admitted call; ``reconcile`` the real input tokens from ``usage_metadata`` after it."""

    def __init__(self, gate: BudgetGate, estimated_tokens: int) -> None:
        self._gate = gate
        self.estimated_tokens = estimated_tokens
        self.charged_tokens = estimated_tokens

    def reconcile(self, actual_input_tokens: int | None) -> None:
        """Charge the real count instead of the estimate (None: the API did not say; keep it)."""
        if actual_input_tokens is None:
            return
        difference = max(0, int(actual_input_tokens)) - self.charged_tokens
        self.charged_tokens += difference
        self._gate._adjust_tokens(difference)


Sleep = Callable[[float], Awaitable[object]]


class BudgetGate:
    """The gate every Gemini call of this worker passes: ``async with gate.slot(tokens) as s``.

    In order: the daily allowance (spent: raise at once, never wait), the
    concurrency cap, then request pacing and input-token pacing at this
    worker's effective rate (share x AIMD multiplier). Admission is first come,
    first served: one caller at a time waits for the pace, so the intervals
    hold however many callers queue. ``apply_share`` switches rates at once
    and wakes that waiter; a zero share holds new calls until it is raised.
    Calls already admitted stay in ``in_flight`` and stay charged.
    """

    def __init__(self, share: WorkerShare, max_concurrent: int, *, burst_size: int = 1,
                 token_bucket_seconds: float = 5.0, adaptive: AdaptiveRate | None = None,
                 clock: Callable[[], float] = time.monotonic, sleep: Sleep = asyncio.sleep,
                 day_key: Callable[[], Hashable] = pacific_day) -> None:
        if max_concurrent < 1:
            raise ValueError(f"max_concurrent must be at least 1, got {max_concurrent}")
        if burst_size < 1:
            raise ValueError(f"burst_size must be at least 1, got {burst_size}")
        if token_bucket_seconds <= 0:
            raise ValueError(f"token_bucket_seconds must be positive, got {token_bucket_seconds}")
        self.max_concurrent = max_concurrent
        self.burst_size = burst_size
        self.token_bucket_seconds = token_bucket_seconds
        self.adaptive = adaptive or AdaptiveRate(clock=clock)
        self._clock = clock
        self._sleep = sleep
        self._day_key = day_key
        self._slots = asyncio.Semaphore(max_concurrent)
        self._admission = asyncio.Lock()  # FIFO: one caller at a time waits for the pace
        self._changed = asyncio.Event()
        now = clock()
        self._requests = TokenBucket(0.0, burst_size, now)
        self._tokens: TokenBucket | None = None
        self._share = share
        self.in_flight = 0
        self.waiting = 0
        self.waiting_seconds_total = 0.0
        self.calls_admitted = 0
        self.tokens_admitted = 0
        self._day: Hashable = day_key()
        self._day_calls = 0
        self._apply_rates()

    # ---- read-only figures -------------------------------------------------

    @property
    def share(self) -> WorkerShare:
        return self._share

    @property
    def effective_requests_per_minute(self) -> float:
        return self.adaptive.effective(self._share.requests_per_minute)

    @property
    def effective_tokens_per_minute(self) -> float | None:
        tpm = self._share.tokens_per_minute
        return None if tpm is None else self.adaptive.effective(tpm)

    @property
    def day_calls(self) -> int:
        self._roll_day()
        return self._day_calls

    @property
    def day_allowance(self) -> int | None:
        return self._share.requests_per_day

    def stats(self) -> dict:
        return {
            "share_fraction": self._share.fraction,
            "share_requests_per_minute": self._share.requests_per_minute,
            "share_tokens_per_minute": self._share.tokens_per_minute,
            "share_requests_per_day": self._share.requests_per_day,
            "rate_multiplier": self.adaptive.multiplier,
            "effective_requests_per_minute": self.effective_requests_per_minute,
            "effective_tokens_per_minute": self.effective_tokens_per_minute,
            "in_flight": self.in_flight,
            "waiting": self.waiting,
            "waiting_seconds_total": self.waiting_seconds_total,
            "calls_admitted": self.calls_admitted,
            "tokens_admitted": self.tokens_admitted,
            "day_calls": self.day_calls,
        }

    # ---- changing the pace -------------------------------------------------

    def apply_share(self, share: WorkerShare) -> None:
        """A new share after a rebalance: effective at once, waiters re-check."""
        self._share = share
        self._apply_rates()

    def on_rate_limited(self) -> bool:
        """A 429 although this gate admitted the call: someone else spends the quota. True if it cut."""
        cut = self.adaptive.on_unexpected_429()
        if cut:
            self._apply_rates()
        return cut

    def on_success(self) -> bool:
        """A call succeeded: AIMD may recover a step. True if the rate rose."""
        raised = self.adaptive.on_success()
        if raised:
            self._apply_rates()
        return raised

    def _apply_rates(self) -> None:
        now = self._clock()
        self._requests.set_rate(self.effective_requests_per_minute / 60.0, self.burst_size, now)
        tpm = self.effective_tokens_per_minute
        if tpm is None:
            self._tokens = None
        else:
            per_second = tpm / 60.0
            capacity = per_second * self.token_bucket_seconds
            if self._tokens is None:
                self._tokens = TokenBucket(per_second, capacity, now)
            else:
                self._tokens.set_rate(per_second, capacity, now)
        self._wake()

    def _adjust_tokens(self, difference: int) -> None:
        self.tokens_admitted += difference
        if self._tokens is not None and difference:
            self._tokens.give_back(-difference, self._clock())
            if difference < 0:
                self._wake()  # a refund may let the next call go sooner

    def _wake(self) -> None:
        # a fresh event per change: a waiter holds the one it saw, no clear() race
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    # ---- passing the gate --------------------------------------------------

    @contextlib.asynccontextmanager
    async def slot(self, estimated_tokens: int = 0):
        """Hold one call's place; raises DailyBudgetExhausted at once when the day's share is spent."""
        estimated_tokens = max(0, int(estimated_tokens))
        self._check_daily()
        started = self._clock()
        self.waiting += 1
        try:
            await self._slots.acquire()
            try:
                async with self._admission:
                    await self._wait_for_pace(estimated_tokens)
            except BaseException:
                self._slots.release()
                raise
        finally:
            self.waiting -= 1
            self.waiting_seconds_total += self._clock() - started
        # admitted: from here the call counts until it leaves, whatever the share does
        self.in_flight += 1
        try:
            yield GateSlot(self, estimated_tokens)
        finally:
            self.in_flight -= 1
            self._slots.release()

    async def _wait_for_pace(self, estimated_tokens: int) -> None:
        while True:
            self._check_daily()
            changed = self._changed
            now = self._clock()
            delay = self._admission_delay(estimated_tokens, now)
            if delay <= 0:
                self._admit(estimated_tokens, now)
                return
            await self._wait(delay, changed)

    def _admission_delay(self, estimated_tokens: int, now: float) -> float:
        if self._share.is_zero or self.effective_requests_per_minute <= 0:
            return math.inf
        delay = self._requests.delay(1, now)
        if self._tokens is not None:
            if self._tokens.rate_per_second <= 0:
                return math.inf  # a token budget of 0 admits nothing
            delay = max(delay, self._tokens.delay(estimated_tokens, now))
        return delay

    def _admit(self, estimated_tokens: int, now: float) -> None:
        self._requests.take(1, now)
        if self._tokens is not None:
            self._tokens.take(estimated_tokens, now)
        self.calls_admitted += 1
        self.tokens_admitted += estimated_tokens
        self._day_calls += 1

    async def _wait(self, delay: float, changed: asyncio.Event) -> None:
        if math.isinf(delay):
            await changed.wait()
            return
        woken = asyncio.ensure_future(changed.wait())
        slept = asyncio.ensure_future(self._sleep(delay))
        try:
            await asyncio.wait({woken, slept}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            woken.cancel()
            slept.cancel()

    def _roll_day(self) -> None:
        day = self._day_key()
        if day != self._day:
            self._day = day
            self._day_calls = 0

    def _check_daily(self) -> None:
        self._roll_day()
        allowance = self._share.requests_per_day
        if allowance is not None and self._day_calls >= allowance and not self._share.is_zero:
            raise DailyBudgetExhausted(self._day, self._day_calls, allowance)
