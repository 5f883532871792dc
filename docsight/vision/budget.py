"""One Gemini budget for the whole worker cluster, held by each worker alone, at every quota size.

Gemini counts requests and input tokens per minute, and requests per day, for the Google Cloud
project: every worker spends the same quota. This module holds the per-minute quotas (the day's
requests and dollars live in ``day_ledger``); ``BudgetGate`` is the one gate every call passes.

The invariant: in any window of W seconds (60 for Gemini), the calls the server counts stay at or
below Q, the cluster's calls per window (quota x safety factor, rounded down), for any Q and any
number of workers, at start, through rebalances, restarts and kills. How:

1. Whole calls per partition. Q is split over the P partitions of the picture topic in whole calls,
   c_0 + ... + c_{P-1} = Q (``partition_allowances``); a worker's allowance is the sum of c_p over
   the partitions it may use. Fractions never appear (10/min over 6 workers is 2+2+2+2+1+1, not
   6 x 1.67, which a pacer rounds up to 2 each).
2. An honest window. Each worker counts its own calls: a call counts from its admission until W
   after it ended (answered, failed or timed out), and a call is admitted only while the calls
   counted are fewer than the allowance. The server counts a call at its arrival, which lies
   between admission and end, so every call the server counts in (t - W, t] is still counted by
   its worker at t. Latency and jitter cannot push two calls into one server window unseen.
3. No partition spent by two workers at once (rebalances). A partition's c_p is used by at most
   one worker at a time, which with 2 gives sum(live calls) <= sum(c_p) = Q:
   - a worker stops admitting the moment a rebalance starts (Faust's rebalance-start sensor, before
     Faust drains the streams); calls waiting at the gate are handed back (``BudgetRevoked``: the
     agent puts the picture back on its topic), so the drain ends within one call's timeout.
     Faust's ``on_partitions_revoked`` comes only after that drain, too late to protect anything.
   - a partition kept from one generation of the group to the next is usable at once: nobody else
     owned it in between (a worker that missed a generation treats everything as new);
   - a partition newly gained is usable only after every call another worker (or an earlier
     incarnation of this one) may have made under it has left its window: the hold-off. Before
     calling, each worker publishes a lease ("I may call until T") to the budget ledger; when a
     drain ends it publishes "my calls ended by E". The new owner waits until E + W, or, without
     such a record (a killed or evicted worker), until min(T, assigned) + call timeout + W. Until
     it has read the ledger it assumes the longest hold-off; with no recent lease at all (a cold
     start) there is nothing to wait for.
   So shares shrink at once and grow only after the window: an evicted worker's calls in flight
   still count, on its own side until they end and on the new owner's side through the hold-off.
4. Tokens per minute follow the same rules with amounts: the estimate is charged at admission,
   scaled by the largest real/estimated ratio seen lately, and the real count from
   ``usage_metadata`` replaces it when the answer comes.

On top of the window, calls are paced evenly (burst 1 by default) at allowance / W: a burst is legal
for a sliding window but not kind to it. The AIMD multiplier slows that pace after a 429 the budget
did not expect (someone else spends the project's quota). The safety factor is headroom for such
others only; the arithmetic above needs none (default 1.0).

What it does not cover: a worker frozen longer than its lease and session (SIGSTOP, a paused VM) may
admit calls it queued before it learns it was evicted; and an estimate below the server's count
(tokens) overshoots by the difference until the ratio has learnt it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
import math
import time
from collections import deque
from dataclasses import dataclass
from typing import Awaitable, Callable, Collection, Iterable, Protocol

from docsight.cost.tokens import image_tokens, text_tokens

from .adaptive_rate import AdaptiveRate

DEFAULT_WINDOW_SECONDS = 60.0
# wall clocks of two workers may differ a little; a hold-off adds this much
CLOCK_MARGIN_SECONDS = 1.0
# input tokens: the estimate is charged times 1.1 until answers tell the real ratio, then times that plus 2 %
TOKEN_ESTIMATE_HEADROOM = 1.1
TOKEN_RATIO_MARGIN = 1.02


@dataclass(frozen=True)
class ClusterBudget:
    """The project's Gemini quota as configured (None = unlimited)."""
    requests_per_minute: float
    tokens_per_minute: float | None
    requests_per_day: int | None
    max_concurrent_per_consumer: int
    safety_factor: float = 1.0
    window_seconds: float = DEFAULT_WINDOW_SECONDS
    daily_budget_usd: float | None = None

    def __post_init__(self) -> None:
        if self.requests_per_minute < 0:
            raise ValueError("requests_per_minute must not be negative")
        if self.tokens_per_minute is not None and self.tokens_per_minute < 0:
            raise ValueError("tokens_per_minute must not be negative")
        if self.requests_per_day is not None and self.requests_per_day < 0:
            raise ValueError("requests_per_day must not be negative")
        if self.daily_budget_usd is not None and self.daily_budget_usd < 0:
            raise ValueError("daily_budget_usd must not be negative")
        if self.max_concurrent_per_consumer < 1:
            raise ValueError("max_concurrent_per_consumer must be at least 1")
        if not 0 < self.safety_factor <= 1:
            raise ValueError("safety_factor must be in (0, 1]")
        if self.window_seconds <= 0:
            raise ValueError("window_seconds must be positive")
        if self.requests_per_minute > 0 and self.requests_per_window < 1:
            raise ValueError(
                f"{self.requests_per_minute:g} requests/min x {self.window_seconds:g} s window x safety factor "
                f"{self.safety_factor:g} is less than one whole call per window: nothing could ever be called")

    @property
    def requests_per_window(self) -> int:
        """Whole calls the cluster may make in any window (rounded down: never above the quota)."""
        return math.floor(self.requests_per_minute * self.window_seconds / 60.0 * self.safety_factor + 1e-9)

    @property
    def tokens_per_window(self) -> float | None:
        if self.tokens_per_minute is None:
            return None
        return self.tokens_per_minute * self.window_seconds / 60.0 * self.safety_factor

    @property
    def planned_requests_per_day(self) -> int | None:
        if self.requests_per_day is None:
            return None
        return math.floor(self.requests_per_day * self.safety_factor + 1e-9)

    @property
    def planned_usd_per_day(self) -> float | None:
        return None if self.daily_budget_usd is None else self.daily_budget_usd * self.safety_factor


def partition_allowances(total: int, partitions: int) -> tuple[int, ...]:
    """``total`` whole calls over ``partitions``: every partition gets the floor, the remainder one more each.

    The partitions with one more are spread over the numbers (not the first ones), so that
    workers owning neighbouring partitions share the remainder.
    """
    if partitions < 1:
        raise ValueError(f"partitions must be at least 1, got {partitions}")
    if total < 0:
        raise ValueError(f"total must not be negative, got {total}")
    base, extra = divmod(total, partitions)
    more = {k * partitions // extra for k in range(extra)} if extra else set()
    return tuple(base + (1 if p in more else 0) for p in range(partitions))


@dataclass(frozen=True)
class WorkerShare:
    """What one set of partitions may spend per window (None = unlimited tokens)."""
    partitions: frozenset[int]
    total_partitions: int
    requests_per_window: int
    tokens_per_window: float | None
    window_seconds: float

    @property
    def fraction(self) -> float:
        return len(self.partitions) / self.total_partitions

    @property
    def requests_per_minute(self) -> float:
        return self.requests_per_window * 60.0 / self.window_seconds

    @property
    def tokens_per_minute(self) -> float | None:
        return None if self.tokens_per_window is None else self.tokens_per_window * 60.0 / self.window_seconds

    @property
    def is_zero(self) -> bool:
        return self.requests_per_window <= 0


def worker_share(budget: ClusterBudget, partitions: Iterable[int], total_partitions: int) -> WorkerShare:
    """The whole calls and the tokens of these partitions of the picture topic."""
    if total_partitions < 1:
        raise ValueError(f"total_partitions must be at least 1, got {total_partitions}")
    owned = frozenset(partitions)
    outside = [p for p in owned if not 0 <= p < total_partitions]
    if outside:
        raise ValueError(f"partitions {sorted(outside)} are not in [0, {total_partitions})")
    calls = partition_allowances(budget.requests_per_window, total_partitions)
    tokens = budget.tokens_per_window
    return WorkerShare(
        partitions=owned, total_partitions=total_partitions,
        requests_per_window=sum(calls[p] for p in owned),
        tokens_per_window=None if tokens is None else tokens * len(owned) / total_partitions,
        window_seconds=budget.window_seconds)


def estimate_input_tokens(width: int, height: int, prompt: str, media_resolution: str | None = None) -> int:
    """What a one-picture request costs before the call: the picture plus the prompt text."""
    return image_tokens(width, height, media_resolution) + text_tokens(prompt)


# ---- why a call does not go -------------------------------------------------------

class BudgetRevoked(Exception):
    """A rebalance started while this call waited: hand the picture back to its topic, never wait it out."""


class DailyBudgetExhausted(Exception):
    """The cluster's quota for today is spent (requests or USD, by the ledger or by the API's per-day 429)."""

    def __init__(self, dimension: str, day: str, used: float, limit: float | None, by_api: bool = False) -> None:
        what = "requests" if dimension == "requests" else "USD"
        source = "the API answered a per-day 429" if by_api else f"{used:g} of {limit:g} {what} reserved"
        super().__init__(f"daily Gemini {what} budget spent on {day}: {source}")
        self.dimension = dimension
        self.day = day
        self.used = used
        self.limit = limit
        self.by_api = by_api

    @property
    def reason(self) -> str:
        if self.by_api:
            return "daily_quota_exhausted"
        return "daily_request_budget_exhausted" if self.dimension == "requests" else "daily_budget_exhausted"


class CallOverBudget(Exception):
    """One call's input tokens exceed everything this worker may spend in a window: it could never pass."""


# ---- the day (Pacific) ------------------------------------------------------------

def _pacific() -> _dt.tzinfo:
    try:
        from zoneinfo import ZoneInfo
        return ZoneInfo("America/Los_Angeles")
    except Exception:  # noqa: BLE001 - no tz database: standard time is close enough
        return _dt.timezone(_dt.timedelta(hours=-8))


_PACIFIC = _pacific()


def pacific_day(wall_time: float | None = None) -> str:
    """Gemini's daily quota resets at midnight Pacific time: the day a wall-clock time belongs to."""
    moment = _dt.datetime.now(_PACIFIC) if wall_time is None else _dt.datetime.fromtimestamp(wall_time, _PACIFIC)
    return moment.date().isoformat()


def seconds_until_daily_reset(now: _dt.datetime | None = None) -> float:
    """Seconds until the next midnight Pacific, when a spent daily budget is available again."""
    now = (now or _dt.datetime.now(_dt.timezone.utc)).astimezone(_PACIFIC)
    midnight = _dt.datetime.combine(now.date() + _dt.timedelta(days=1), _dt.time(), tzinfo=_PACIFIC)
    return max(0.0, (midnight - now).total_seconds())


# ---- the window -------------------------------------------------------------------

# float sums of tokens can leave a hair above a limit they meet exactly
_EPSILON = 1e-6


class CallWindow:
    """What this worker spends in the window: a charge counts from admission until ``window_seconds`` after it ended.

    Ended charges are kept in the order they ended (the clock is monotonic), so they expire in order.
    """

    def __init__(self, window_seconds: float) -> None:
        if window_seconds <= 0:
            raise ValueError("window_seconds must be positive")
        self.window_seconds = float(window_seconds)
        self._open: dict[int, float] = {}
        self._ended: deque[tuple[float, float]] = deque()
        self._ended_total = 0.0
        self._next_id = 0

    def _prune(self, now: float) -> None:
        while self._ended and self._ended[0][0] + self.window_seconds <= now:
            self._ended_total -= self._ended.popleft()[1]
        if not self._ended:
            self._ended_total = 0.0  # drop float drift

    def total(self, now: float) -> float:
        self._prune(now)
        return sum(self._open.values()) + self._ended_total

    @property
    def open_count(self) -> int:
        return len(self._open)

    def charge(self, amount: float) -> int:
        self._next_id += 1
        self._open[self._next_id] = float(amount)
        return self._next_id

    def adjust(self, charge_id: int, amount: float) -> None:
        """Replace an open charge's amount (the real count instead of the estimate)."""
        if charge_id in self._open:
            self._open[charge_id] = float(max(0.0, amount))

    def end(self, charge_id: int, now: float) -> None:
        amount = self._open.pop(charge_id, None)
        if amount is None:
            return
        if self._ended and now < self._ended[-1][0]:
            now = self._ended[-1][0]  # keep the order even if a caller's clock went back a hair
        self._ended.append((now, amount))
        self._ended_total += amount

    def leaving(self, now: float) -> list[tuple[float, float]]:
        """(when it leaves the window, amount) of every ended charge still counted."""
        self._prune(now)
        return [(ended_at + self.window_seconds, amount) for ended_at, amount in self._ended]

    def delay(self, amount: float, limit: float, now: float) -> float:
        """Seconds until ``amount`` more fits under ``limit`` (0: now; inf: only calls in flight can free room)."""
        self._prune(now)
        excess = sum(self._open.values()) + self._ended_total + amount - limit
        if excess <= _EPSILON:
            return 0.0
        freed = 0.0
        for ended_at, size in self._ended:
            freed += size
            if freed >= excess - _EPSILON:
                return max(0.0, ended_at + self.window_seconds - now)
        return math.inf


class TokenBucket:
    """A lazily refilled bucket for pacing; the level may go negative (spent ahead, repaid by refill)."""

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
        self._refill(now)
        self.rate_per_second = max(0.0, rate_per_second)
        self.capacity = max(0.0, capacity)
        self.level = min(self.level, self.capacity)

    def delay(self, cost: float, now: float) -> float:
        """Seconds until ``cost`` can be taken (inf while the rate is 0 and the level too low)."""
        self._refill(now)
        need = min(cost, self.capacity)
        if self.level >= need - max(_EPSILON, abs(need) * 1e-9):
            return 0.0
        if self.rate_per_second <= 0:
            return math.inf
        return (need - self.level) / self.rate_per_second

    def take(self, cost: float, now: float) -> None:
        self._refill(now)
        self.level -= cost


# ---- which partitions this worker may spend on ------------------------------------

class Entitlements:
    """The partitions this worker owns, each usable from a time on (the hold-off), and the generation."""

    def __init__(self) -> None:
        self._usable_from: dict[int, float] = {}
        self.generation: int | None = None
        self.newly_gained: frozenset[int] = frozenset()
        self.assigned_at: float | None = None

    @property
    def owned(self) -> frozenset[int]:
        return frozenset(self._usable_from)

    def assign(self, partitions: Collection[int], generation: int | None, now: float,
               hold_until: float) -> frozenset[int]:
        """A new assignment: kept partitions stay as they were, new ones wait until ``hold_until``."""
        consecutive = generation is not None and self.generation is not None and generation == self.generation + 1
        kept = set(partitions) & set(self._usable_from) if consecutive else set()
        self._usable_from = {p: self._usable_from[p] if p in kept else hold_until for p in partitions}
        self.generation = generation
        self.newly_gained = frozenset(set(partitions) - kept)
        self.assigned_at = now
        return self.newly_gained

    def shorten_hold(self, generation: int | None, holds: dict[int, float]) -> bool:
        """The ledger allows an earlier start for some of this generation's new partitions; True if any changed."""
        if generation != self.generation:
            return False
        changed = False
        for p, hold_until in holds.items():
            if p in self.newly_gained and p in self._usable_from and hold_until < self._usable_from[p]:
                self._usable_from[p] = hold_until
                changed = True
        return changed

    def usable(self, now: float) -> frozenset[int]:
        return frozenset(p for p, start in self._usable_from.items() if start <= now)

    def held(self, now: float) -> dict[int, float]:
        return {p: start for p, start in self._usable_from.items() if start > now}

    def next_change(self, now: float) -> float | None:
        later = [start for start in self._usable_from.values() if start > now]
        return min(later) if later else None


# ---- the gate ---------------------------------------------------------------------

def _abandon(task: asyncio.Future, primitive: asyncio.Semaphore | asyncio.Lock) -> None:
    """Cancel an acquire nobody waits for; if it won the race anyway, give back what it took."""
    def give_back(done: asyncio.Future) -> None:
        if not done.cancelled() and done.exception() is None:
            primitive.release()

    task.cancel()
    task.add_done_callback(give_back)


Sleep = Callable[[float], Awaitable[object]]


class DayQuotaLike(Protocol):
    """What the gate needs of a per-day quota (``day_ledger.DayQuota``)."""
    dimension: str

    async def ensure(self, amount: float) -> None: ...
    def take(self, amount: float) -> None: ...
    def settle(self, charged: float, actual: float) -> None: ...


class LeaseLike(Protocol):
    generation: int | None

    async def ensure(self) -> None: ...


class CallPricing(Protocol):
    """USD of a call: the most it can cost before, and what it cost after."""

    def max_cost(self, estimated_input_tokens: int) -> float: ...
    def cost(self, input_tokens: int, output_tokens: int, thinking_tokens: int) -> float: ...


class GateSlot:
    """One admitted call. ``reconcile`` the real usage after it; ``refund_cost`` if the API refused it unbilled."""

    def __init__(self, gate: "BudgetGate", estimated_tokens: int, charged_tokens: float, max_cost: float) -> None:
        self._gate = gate
        self.estimated_tokens = estimated_tokens
        self.charged_tokens = charged_tokens
        self.max_cost = max_cost
        self.cost: float | None = None   # None: not known, the maximum stays charged
        self._call_id: int | None = None
        self._token_id: int | None = None

    def reconcile(self, actual_input_tokens: int | None, output_tokens: int = 0, thinking_tokens: int = 0) -> None:
        """Charge the real counts instead of the estimate (None: the API did not say; keep the estimate)."""
        if actual_input_tokens is None:
            return
        self._gate._reconcile(self, max(0, int(actual_input_tokens)), max(0, int(output_tokens)),
                              max(0, int(thinking_tokens)))

    def refund_cost(self) -> None:
        """The API answered with an error: nothing was billed."""
        self.cost = 0.0


class BudgetGate:
    """The gate every Gemini call of this worker passes: ``async with gate.slot(tokens) as slot``.

    In order: a rebalance in progress (raise ``BudgetRevoked``, at once or as soon as one starts while
    waiting), the concurrency cap, then, one caller at a time (first come, first served): the day's
    quotas (spent: raise ``DailyBudgetExhausted``, never wait), the lease, the windows and the pace.
    """

    def __init__(self, budget: ClusterBudget, total_partitions: int, *, burst_size: int = 1,
                 token_bucket_seconds: float = 5.0, call_timeout_seconds: float = 60.0,
                 adaptive: AdaptiveRate | None = None, clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time, sleep: Sleep = asyncio.sleep,
                 day_quotas: Iterable[DayQuotaLike] = (), lease: LeaseLike | None = None,
                 pricing: CallPricing | None = None,
                 hold_oracle: Callable[[int | None, float, frozenset[int]], dict[int, float] | None] | None = None,
                 on_drained: Callable[[dict], None] | None = None,
                 on_assigned: Callable[[int | None, frozenset[int], frozenset[int], dict[int, float]], None]
                 | None = None) -> None:
        if total_partitions < 1:
            raise ValueError(f"total_partitions must be at least 1, got {total_partitions}")
        if burst_size < 1:
            raise ValueError(f"burst_size must be at least 1, got {burst_size}")
        if token_bucket_seconds <= 0:
            raise ValueError(f"token_bucket_seconds must be positive, got {token_bucket_seconds}")
        self.total_partitions = total_partitions
        self.burst_size = burst_size
        self.token_bucket_seconds = token_bucket_seconds
        self.call_timeout_seconds = call_timeout_seconds
        self.adaptive = adaptive or AdaptiveRate(clock=clock)
        self._clock = clock
        self._wall = wall_clock
        self._sleep = sleep
        self._day_quotas = list(day_quotas)
        self._lease = lease
        self._pricing = pricing
        self._hold_oracle = hold_oracle
        self._on_drained = on_drained
        self._on_assigned = on_assigned
        self._budget = budget
        self._slots = asyncio.Semaphore(budget.max_concurrent_per_consumer)
        self._admission = asyncio.Lock()
        self._changed = asyncio.Event()
        self._drain = asyncio.Event()
        self.draining = False
        self.entitlements = Entitlements()
        now = clock()
        self._calls = CallWindow(budget.window_seconds)
        self._tokens = CallWindow(budget.window_seconds)
        self._request_pace = TokenBucket(0.0, burst_size, now)
        self._token_pace: TokenBucket | None = None
        self._usable: frozenset[int] = frozenset()
        self._ratios: deque[float] = deque(maxlen=100)
        self._last_end_wall: float | None = None
        self._drained_reported = False
        self.in_flight = 0
        self.waiting = 0
        self.waiting_seconds_total = 0.0
        self.calls_admitted = 0
        self.tokens_admitted = 0
        self.requeued = 0
        self._apply_rates(now)

    # ---- read-only figures -------------------------------------------------

    @property
    def budget(self) -> ClusterBudget:
        return self._budget

    @property
    def share(self) -> WorkerShare:
        """What the owned partitions may spend per window (held-off ones included)."""
        return worker_share(self._budget, self.entitlements.owned, self.total_partitions)

    @property
    def usable_share(self) -> WorkerShare:
        """What may be spent now (the partitions past their hold-off)."""
        return worker_share(self._budget, self._usable, self.total_partitions)

    @property
    def effective_requests_per_minute(self) -> float:
        return self.adaptive.effective(self.usable_share.requests_per_minute)

    @property
    def effective_tokens_per_minute(self) -> float | None:
        tpm = self.usable_share.tokens_per_minute
        return None if tpm is None else self.adaptive.effective(tpm)

    @property
    def token_estimate_ratio(self) -> float:
        """Estimates are charged times this: 1.1 before any answer, then the largest real/estimated ratio of the
        last calls plus 2 %, at least 1 (the server counts at arrival what it counts, not our estimate)."""
        if not self._ratios:
            return TOKEN_ESTIMATE_HEADROOM
        return max(1.0, TOKEN_RATIO_MARGIN * max(self._ratios))

    def calls_in_window(self) -> int:
        return round(self._calls.total(self._clock()))

    def stats(self) -> dict:
        now = self._clock()
        self._refresh(now)
        share, usable = self.share, self.usable_share
        return {
            "share_fraction": share.fraction,
            "share_requests_per_window": share.requests_per_window,
            "share_requests_per_minute": share.requests_per_minute,
            "share_tokens_per_minute": share.tokens_per_minute,
            "usable_requests_per_window": usable.requests_per_window,
            "window_seconds": self._budget.window_seconds,
            "partitions": sorted(share.partitions),
            "partitions_held": {str(p): round(start - now, 3) for p, start in self.entitlements.held(now).items()},
            "generation": self.entitlements.generation,
            "draining": self.draining,
            "rate_multiplier": self.adaptive.multiplier,
            "effective_requests_per_minute": self.effective_requests_per_minute,
            "effective_tokens_per_minute": self.effective_tokens_per_minute,
            "calls_in_window": self.calls_in_window(),
            "tokens_in_window": round(self._tokens.total(now)),
            "token_estimate_ratio": self.token_estimate_ratio,
            "in_flight": self.in_flight,
            "waiting": self.waiting,
            "waiting_seconds_total": self.waiting_seconds_total,
            "calls_admitted": self.calls_admitted,
            "tokens_admitted": self.tokens_admitted,
            "requeued": self.requeued,
        }

    # ---- changes -----------------------------------------------------------

    def set_budget(self, budget: ClusterBudget) -> None:
        """A new cluster budget (runtime control): the per-partition allowances follow at once."""
        if budget.window_seconds != self._budget.window_seconds:
            raise ValueError("the window length cannot change while the gate runs")
        self._budget = budget
        self._apply_rates(self._clock())

    def longest_hold(self) -> float:
        """The hold-off when nothing is known: a call admitted just now by someone else, ending at its timeout."""
        return self.call_timeout_seconds + self._budget.window_seconds + CLOCK_MARGIN_SECONDS

    def assign(self, partitions: Collection[int], generation: int | None) -> frozenset[int]:
        """Partitions assigned by a rebalance: kept ones go on, new ones wait for their hold-off."""
        now = self._clock()
        same = (generation is not None and generation == self.entitlements.generation
                and frozenset(partitions) == self.entitlements.owned)
        if not same:  # the same assignment reported twice changes nothing
            self.entitlements.assign(partitions, generation, now, now + self.longest_hold())
        if self._lease is not None:
            self._lease.generation = generation  # the next call publishes a lease of this generation first
        self.draining = False
        self._drained_reported = False
        self._drain = asyncio.Event()
        self.recheck_holds()
        self._apply_rates(now)
        if self._on_assigned is not None and not same:
            owned = self.entitlements.owned
            self._on_assigned(generation, owned, owned - self.entitlements.newly_gained, self._held_wall(now))
        return self.entitlements.newly_gained

    def _held_wall(self, now: float) -> dict[int, float]:
        wall = self._wall()
        return {p: wall + (start - now) for p, start in self.entitlements.held(now).items()}

    def drain_report(self) -> dict:
        """What the ledger needs to know when a drain has ended (no call in flight): the partitions owned and their
        whole calls, those still held off, and when each call still counted leaves the window (wall clock)."""
        now, wall = self._clock(), self._wall()
        calls = partition_allowances(self._budget.requests_per_window, self.total_partitions)
        tokens = self._budget.tokens_per_window
        return {
            # no call ever made: nothing of ours can be in anyone's window
            "ended_by": self._last_end_wall if self._last_end_wall is not None else 0.0,
            "partitions": {str(p): calls[p] for p in sorted(self.entitlements.owned)},
            "tokens_per_partition": None if tokens is None else tokens / self.total_partitions,
            "held": {str(p): t for p, t in self._held_wall(now).items()},
            "live": [round(wall + (until - now), 3) for until, _ in self._calls.leaving(now)],
            "live_tokens": [[round(wall + (until - now), 3), amount] for until, amount in self._tokens.leaving(now)],
        }

    def recheck_holds(self) -> None:
        """Ask the ledger again how long the new partitions must wait (it may know more now)."""
        if self._hold_oracle is None or not self.entitlements.newly_gained or self.entitlements.assigned_at is None:
            return
        now, wall = self._clock(), self._wall()
        held = self.entitlements.held(now)
        if not held:
            return  # nothing waits any more
        assigned_wall = wall - (now - self.entitlements.assigned_at)
        holds = self._hold_oracle(self.entitlements.generation, assigned_wall, frozenset(held))
        if holds is None:
            return  # the ledger is not read up to the assignment yet: keep the longest hold-off
        if self.entitlements.shorten_hold(self.entitlements.generation,
                                          {p: now + (t - wall) for p, t in holds.items()}):
            self._apply_rates(now)

    def start_draining(self) -> None:
        """A rebalance started: no admission until the next assignment; waiting callers get BudgetRevoked."""
        if self.draining:
            return
        self.draining = True
        self._drain.set()
        self._apply_rates(self._clock())
        self._maybe_drained()

    def on_rate_limited(self) -> bool:
        """A 429 although this gate admitted the call: someone else spends the quota. True if it cut."""
        cut = self.adaptive.on_unexpected_429()
        if cut:
            self._apply_rates(self._clock())
        return cut

    def on_success(self) -> bool:
        """A call succeeded: AIMD may recover a step. True if the rate rose."""
        raised = self.adaptive.on_success()
        if raised:
            self._apply_rates(self._clock())
        return raised

    def wake(self) -> None:
        """Something outside changed (a day quota, a resume): waiters look again."""
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def _refresh(self, now: float) -> None:
        usable = frozenset() if self.draining else self.entitlements.usable(now)
        if usable != self._usable:
            self._apply_rates(now)

    def _apply_rates(self, now: float) -> None:
        self._usable = frozenset() if self.draining else self.entitlements.usable(now)
        self._request_pace.set_rate(self.effective_requests_per_minute / 60.0, self.burst_size, now)
        tpm = self.effective_tokens_per_minute
        if tpm is None:
            self._token_pace = None
        else:
            per_second = tpm / 60.0
            capacity = max(per_second * self.token_bucket_seconds, 0.0)
            if self._token_pace is None:
                self._token_pace = TokenBucket(per_second, capacity, now)
            else:
                self._token_pace.set_rate(per_second, capacity, now)
        self.wake()

    # ---- waiting that a rebalance interrupts -------------------------------

    async def sleep_unless_revoked(self, seconds: float, also: asyncio.Event | None = None) -> None:
        """Sleep (or until ``also`` is set); raise BudgetRevoked as soon as a rebalance starts."""
        if self.draining:
            raise BudgetRevoked()
        drain = self._drain
        waits = {asyncio.ensure_future(drain.wait())}
        if not math.isinf(seconds):
            waits.add(asyncio.ensure_future(self._sleep(max(0.0, seconds))))
        if also is not None:
            waits.add(asyncio.ensure_future(also.wait()))
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waits:
                waiter.cancel()
        if drain.is_set():
            raise BudgetRevoked()

    async def _acquire_unless_revoked(self, primitive: asyncio.Semaphore | asyncio.Lock) -> None:
        """Acquire a semaphore or lock, unless a rebalance starts first (then raise BudgetRevoked, holding nothing)."""
        drain = self._drain
        if drain.is_set():
            raise BudgetRevoked()
        task = asyncio.ensure_future(primitive.acquire())
        stop = asyncio.ensure_future(drain.wait())
        try:
            await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            _abandon(task, primitive)
            raise
        finally:
            stop.cancel()
        if task.done():
            task.result()
            return
        _abandon(task, primitive)
        raise BudgetRevoked()

    # ---- passing the gate --------------------------------------------------

    @contextlib.asynccontextmanager
    async def slot(self, estimated_tokens: int = 0):
        """Hold one call's place; see the class docstring for what it waits for and what it raises."""
        estimated_tokens = max(0, int(estimated_tokens))
        if self.draining:
            self.requeued += 1
            raise BudgetRevoked()
        started = self._clock()
        self.waiting += 1
        acquired = False
        try:
            await self._acquire_unless_revoked(self._slots)
            acquired = True
            await self._acquire_unless_revoked(self._admission)
            try:
                slot = await self._wait_for_room(estimated_tokens)
            finally:
                self._admission.release()
        except BudgetRevoked:
            self.requeued += 1
            if acquired:
                self._slots.release()
            raise
        except BaseException:
            if acquired:
                self._slots.release()
            raise
        finally:
            self.waiting -= 1
            self.waiting_seconds_total += self._clock() - started
        # admitted: from here the call counts until W after it ends, whatever happens to the share
        self.in_flight += 1
        try:
            yield slot
        finally:
            self.in_flight -= 1
            self._finish(slot)
            self._slots.release()

    async def _wait_for_room(self, estimated_tokens: int) -> GateSlot:
        while True:
            if self.draining:
                raise BudgetRevoked()
            charged_tokens = math.ceil(estimated_tokens * self.token_estimate_ratio)
            max_cost = self._pricing.max_cost(charged_tokens) if self._pricing else 0.0
            for quota in self._day_quotas:
                await quota.ensure(1 if quota.dimension == "requests" else max_cost)
            if self._lease is not None:
                await self._lease.ensure()
            if self.draining:
                raise BudgetRevoked()
            changed = self._changed
            now = self._clock()
            self._refresh(now)
            delay = self._admission_delay(charged_tokens, now)
            if delay <= 0:
                return self._admit(estimated_tokens, charged_tokens, max_cost, now)
            await self._wait(delay, changed)

    def _admission_delay(self, charged_tokens: float, now: float) -> float:
        usable = self.usable_share
        delay = math.inf
        if usable.requests_per_window > 0:
            delay = max(self._calls.delay(1, usable.requests_per_window, now), self._request_pace.delay(1, now))
            tokens_allowance = usable.tokens_per_window
            if tokens_allowance is not None:
                owned_tokens = self.share.tokens_per_window or 0.0
                if charged_tokens > owned_tokens + _EPSILON:
                    raise CallOverBudget(
                        f"a call of about {charged_tokens:.0f} input tokens exceeds this worker's "
                        f"{owned_tokens:.0f} tokens per {self._budget.window_seconds:g} s window")
                if charged_tokens > tokens_allowance + _EPSILON:
                    delay = math.inf  # part of the allowance is still held off
                else:
                    delay = max(delay, self._tokens.delay(charged_tokens, tokens_allowance, now))
                    if self._token_pace is not None:
                        delay = max(delay, self._token_pace.delay(charged_tokens, now))
        if delay > 0:
            next_change = self.entitlements.next_change(now)
            if next_change is not None:
                delay = min(delay, next_change - now)
        return delay

    def _admit(self, estimated_tokens: int, charged_tokens: float, max_cost: float, now: float) -> GateSlot:
        slot = GateSlot(self, estimated_tokens, charged_tokens, max_cost)
        slot._call_id = self._calls.charge(1)
        slot._token_id = self._tokens.charge(charged_tokens)
        self._request_pace.take(1, now)
        if self._token_pace is not None:
            self._token_pace.take(charged_tokens, now)
        for quota in self._day_quotas:
            quota.take(1 if quota.dimension == "requests" else max_cost)
        self.calls_admitted += 1
        self.tokens_admitted += estimated_tokens
        return slot

    def _reconcile(self, slot: GateSlot, input_tokens: int, output_tokens: int, thinking_tokens: int) -> None:
        if slot.estimated_tokens > 0:
            self._ratios.append(input_tokens / slot.estimated_tokens)
        difference = input_tokens - slot.charged_tokens
        self.tokens_admitted += input_tokens - slot.estimated_tokens
        slot.estimated_tokens = input_tokens
        slot.charged_tokens = input_tokens
        if slot._token_id is not None:
            self._tokens.adjust(slot._token_id, input_tokens)
        if self._token_pace is not None and difference:
            self._token_pace.level -= difference
        if self._pricing is not None:
            slot.cost = self._pricing.cost(input_tokens, output_tokens, thinking_tokens)
        if difference < 0:
            self.wake()

    def _finish(self, slot: GateSlot) -> None:
        now = self._clock()
        if slot._call_id is not None:
            self._calls.end(slot._call_id, now)
        if slot._token_id is not None:
            self._tokens.end(slot._token_id, now)
        if slot.cost is not None:
            for quota in self._day_quotas:
                if quota.dimension == "usd":
                    quota.settle(slot.max_cost, slot.cost)
        self._last_end_wall = self._wall()
        self.wake()
        self._maybe_drained()

    def _maybe_drained(self) -> None:
        if self.draining and self.in_flight == 0 and not self._drained_reported:
            self._drained_reported = True
            if self._on_drained is not None:
                self._on_drained(self.drain_report())

    async def _wait(self, delay: float, changed: asyncio.Event) -> None:
        await self.sleep_unless_revoked(delay, changed)
