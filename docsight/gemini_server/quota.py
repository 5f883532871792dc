"""Sliding-window quotas like Gemini's per-project, per-model limits.

Pure logic with an injectable clock, so it is tested without a server. An
event recorded at time ``s`` counts while ``now < s + window``: the window is
the half-open interval ``(now - window, now]``.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable, Iterable

Clock = Callable[[], float]

REQUESTS_PER_MINUTE = "rpm"
TOKENS_PER_MINUTE = "tpm"
REQUESTS_PER_DAY = "rpd"

# (quotaMetric, quotaId) as the real 429 bodies name them, by tier.
_QUOTA_NAMES = {
    "free": {
        REQUESTS_PER_MINUTE: (
            "generativelanguage.googleapis.com/generate_content_free_tier_requests",
            "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
        ),
        TOKENS_PER_MINUTE: (
            "generativelanguage.googleapis.com/generate_content_free_tier_input_token_count",
            "GenerateContentInputTokensPerModelPerMinute-FreeTier",
        ),
        REQUESTS_PER_DAY: (
            "generativelanguage.googleapis.com/generate_content_free_tier_requests",
            "GenerateRequestsPerDayPerProjectPerModel-FreeTier",
        ),
    },
    "paid": {
        REQUESTS_PER_MINUTE: (
            "generativelanguage.googleapis.com/generate_requests_per_model",
            "GenerateRequestsPerMinutePerProjectPerModel",
        ),
        TOKENS_PER_MINUTE: (
            "generativelanguage.googleapis.com/generate_content_paid_tier_input_token_count",
            "GenerateContentPaidTierInputTokensPerModelPerMinute",
        ),
        REQUESTS_PER_DAY: (
            "generativelanguage.googleapis.com/generate_requests_per_model_per_day",
            "GenerateRequestsPerDayPerProjectPerModel",
        ),
    },
}
QUOTA_TIERS = tuple(_QUOTA_NAMES)


def quota_names(kind: str, tier: str = "free") -> tuple[str, str]:
    """(quotaMetric, quotaId) for a quota kind (rpm, tpm, rpd) and tier."""
    return _QUOTA_NAMES[tier][kind]


def retry_delay_seconds(wait: float) -> int:
    """RetryInfo carries whole seconds; never tell a client to retry at once."""
    return max(1, math.ceil(wait - 1e-9))


class SlidingWindowLog:
    """Amounts recorded in the last ``window_seconds``."""

    def __init__(self, window_seconds: float) -> None:
        if window_seconds <= 0:
            raise ValueError("window_seconds must be positive")
        self.window_seconds = float(window_seconds)
        self._events: deque[tuple[float, float]] = deque()
        self._total = 0.0

    def _prune(self, now: float) -> None:
        horizon = now - self.window_seconds
        while self._events and self._events[0][0] <= horizon:
            self._total -= self._events.popleft()[1]
        if not self._events:
            self._total = 0.0  # drop float drift

    def total(self, now: float) -> float:
        self._prune(now)
        return self._total

    def count(self, now: float) -> int:
        self._prune(now)
        return len(self._events)

    def wait_for_room(self, now: float, limit: float, amount: float) -> float:
        """Seconds until ``amount`` more fits under ``limit`` (0.0: it fits now).

        An amount larger than the limit never fits; it gets a full window.
        """
        self._prune(now)
        if self._total + amount <= limit:
            return 0.0
        if amount > limit:
            return self.window_seconds
        excess = self._total + amount - limit
        freed = 0.0
        for at, size in self._events:
            freed += size
            if freed >= excess - 1e-9:
                return max(0.0, at + self.window_seconds - now)
        return self.window_seconds  # unreachable: amount <= limit

    def record(self, now: float, amount: float = 1.0) -> None:
        self._prune(now)
        self._events.append((now, float(amount)))
        self._total += amount

    def clear(self) -> None:
        self._events.clear()
        self._total = 0.0


@dataclass(frozen=True)
class QuotaViolation:
    kind: str  # rpm, tpm or rpd
    limit: int
    wait_seconds: float

    @property
    def retry_delay_seconds(self) -> int:
        return retry_delay_seconds(self.wait_seconds)


class ModelQuota:
    """RPM, input TPM and RPD for one model; a limit of None means unlimited.

    ``try_acquire`` is all-or-nothing: a rejected request consumes nothing.
    """

    def __init__(
        self,
        rpm: int | None = None,
        tpm: int | None = None,
        rpd: int | None = None,
        window_seconds: float = 60.0,
        day_seconds: float = 86400.0,
        clock: Clock = time.monotonic,
    ) -> None:
        self.clock = clock
        self.limits = {REQUESTS_PER_MINUTE: rpm, TOKENS_PER_MINUTE: tpm, REQUESTS_PER_DAY: rpd}
        self._requests = SlidingWindowLog(window_seconds)
        self._tokens = SlidingWindowLog(window_seconds)
        self._daily = SlidingWindowLog(day_seconds)

    def set_windows(self, window_seconds: float | None = None, day_seconds: float | None = None) -> None:
        if window_seconds is not None:
            self._requests.window_seconds = self._tokens.window_seconds = float(window_seconds)
        if day_seconds is not None:
            self._daily.window_seconds = float(day_seconds)

    def _checks(self, tokens: int) -> Iterable[tuple[str, SlidingWindowLog, float]]:
        yield REQUESTS_PER_MINUTE, self._requests, 1
        yield TOKENS_PER_MINUTE, self._tokens, tokens
        yield REQUESTS_PER_DAY, self._daily, 1

    def try_acquire(self, tokens: int = 0) -> list[QuotaViolation]:
        """Record one request of ``tokens`` input tokens if every quota allows it."""
        now = self.clock()
        violations = []
        for kind, log, amount in self._checks(tokens):
            limit = self.limits[kind]
            if limit is None:
                continue
            wait = log.wait_for_room(now, limit, amount)
            if wait > 0 or log.total(now) + amount > limit:
                violations.append(QuotaViolation(kind, limit, wait))
        if not violations:
            for kind, log, amount in self._checks(tokens):
                log.record(now, amount)
        return violations

    def usage(self) -> dict[str, float]:
        now = self.clock()
        return {
            "requests_in_window": self._requests.count(now),
            "tokens_in_window": int(self._tokens.total(now)),
            "requests_in_day": self._daily.count(now),
        }

    def clear(self) -> None:
        for log in (self._requests, self._tokens, self._daily):
            log.clear()


class ProjectQuotas:
    """Quotas are per project and per model: one ModelQuota per model name."""

    def __init__(
        self,
        rpm: int | None = None,
        tpm: int | None = None,
        rpd: int | None = None,
        window_seconds: float = 60.0,
        day_seconds: float = 86400.0,
        clock: Clock = time.monotonic,
    ) -> None:
        self.clock = clock
        self.rpm, self.tpm, self.rpd = rpm, tpm, rpd
        self.window_seconds, self.day_seconds = window_seconds, day_seconds
        self._by_model: dict[str, ModelQuota] = {}

    def for_model(self, model: str) -> ModelQuota:
        quota = self._by_model.get(model)
        if quota is None:
            quota = self._by_model[model] = ModelQuota(
                self.rpm, self.tpm, self.rpd, self.window_seconds, self.day_seconds, self.clock
            )
        return quota

    def try_acquire(self, model: str, tokens: int) -> list[QuotaViolation]:
        return self.for_model(model).try_acquire(tokens)

    def reconfigure(self, **changes) -> None:
        """Change limits/windows at runtime; recorded history is kept."""
        for name, value in changes.items():
            setattr(self, name, value)
        for quota in self._by_model.values():
            quota.limits.update({REQUESTS_PER_MINUTE: self.rpm, TOKENS_PER_MINUTE: self.tpm, REQUESTS_PER_DAY: self.rpd})
            quota.set_windows(self.window_seconds, self.day_seconds)

    def limit(self, kind: str) -> int | None:
        return {REQUESTS_PER_MINUTE: self.rpm, TOKENS_PER_MINUTE: self.tpm, REQUESTS_PER_DAY: self.rpd}[kind]

    def usage(self) -> dict[str, dict[str, float]]:
        return {model: quota.usage() for model, quota in self._by_model.items()}

    def clear(self) -> None:
        self._by_model.clear()


class BusiestWindow:
    """Largest number of events seen in any window of ``window_seconds``.

    The busiest window always ends at an event, so checking at each record is
    enough. Same half-open window as the quotas, so it never exceeds a limit.
    """

    def __init__(self, window_seconds: float, clock: Clock = time.monotonic) -> None:
        self.clock = clock
        self._log = SlidingWindowLog(window_seconds)
        self.busiest = 0

    @property
    def window_seconds(self) -> float:
        return self._log.window_seconds

    def record(self, now: float | None = None) -> None:
        now = self.clock() if now is None else now
        self._log.record(now)
        self.busiest = max(self.busiest, self._log.count(now))

    def current(self, now: float | None = None) -> int:
        return self._log.count(self.clock() if now is None else now)
