"""Stop calling Gemini while it is down, probe it gently, and say when to fail over.

Without a breaker every picture of every document retries on its own through
an outage: the retries keep the API busy, fill the logs and burn each
picture's retry deadline. With one, a worker notices the outage after a few
consecutive transient failures, holds its calls, and lets one probe at a time
find out when the API is back.

What counts (see ``record_verdict`` for the mapping from ``retry_policy``):
- a transient failure (5xx, timeout, connection error) is a breaker failure;
- a 429 is neither: the API is up and answering, the quota is the budget's
  and AIMD's business, not the breaker's;
- any answer (a description, a refused image, a safety block) is a success:
  the API is reachable;
- an invalid key or missing permission latches ALARM: retrying cannot fix
  configuration, so nothing is called until someone ``reset()``s it.
"""

from __future__ import annotations

import enum
import math
import time
from typing import Callable


class BreakerState(enum.Enum):
    CLOSED = "closed"          # calls flow
    OPEN = "open"              # calls held until open_seconds have passed
    HALF_OPEN = "half_open"    # one probe call at a time decides
    ALARM = "alarm"            # configuration is wrong: no calls until reset()


class CircuitBreaker:
    """Consecutive-failure breaker with a single-probe half-open state and failover timing.

    ``allow()`` both asks and, in HALF_OPEN, takes the probe: a caller that
    got True must report the outcome (``record_success``/``record_failure``/
    ``record_ignored``). A probe that never reports (its task was cancelled)
    stops blocking after ``probe_timeout_seconds``.
    """

    def __init__(self, failure_threshold: int = 5, open_seconds: float = 30.0,
                 probe_timeout_seconds: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if failure_threshold < 1:
            raise ValueError(f"failure_threshold must be at least 1, got {failure_threshold}")
        self.failure_threshold = failure_threshold
        self.open_seconds = open_seconds
        self.probe_timeout_seconds = open_seconds if probe_timeout_seconds is None else probe_timeout_seconds
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._consecutive_failures = 0
        self._opened_at: float | None = None
        self._probe_started: float | None = None
        self._unavailable_since: float | None = None
        self.alarm_reason: str | None = None
        self.times_opened = 0

    # ---- read-only figures -------------------------------------------------

    @property
    def state(self) -> BreakerState:
        """The state now: OPEN turns HALF_OPEN by itself once open_seconds have passed."""
        if self._state is BreakerState.OPEN and self._clock() - self._opened_at >= self.open_seconds:
            self._state = BreakerState.HALF_OPEN
            self._probe_started = None
        return self._state

    @property
    def consecutive_failures(self) -> int:
        return self._consecutive_failures

    @property
    def unavailable_since(self) -> float | None:
        """Clock time the breaker left CLOSED (None while closed)."""
        return self._unavailable_since

    # ---- asking ------------------------------------------------------------

    def allow(self) -> bool:
        """May a call go now? In HALF_OPEN a True hands this caller the one probe."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and not self._probe_out():
            self._probe_started = self._clock()
            return True
        return False

    def wait_time(self) -> float:
        """Seconds until a call may be allowed: 0 now, inf under ALARM."""
        state = self.state
        now = self._clock()
        if state is BreakerState.CLOSED:
            return 0.0
        if state is BreakerState.ALARM:
            return math.inf
        if state is BreakerState.OPEN:
            return max(0.0, self._opened_at + self.open_seconds - now)
        if self._probe_out():
            return max(0.0, self._probe_started + self.probe_timeout_seconds - now)
        return 0.0

    def should_fail_over(self, now: float | None, fail_over_after_seconds: float) -> bool:
        """True when the API has been unavailable (breaker not closed) for longer than that."""
        if self._unavailable_since is None:
            return False
        now = self._clock() if now is None else now
        return now - self._unavailable_since > fail_over_after_seconds

    # ---- reporting ---------------------------------------------------------

    def record_success(self) -> None:
        """The API answered."""
        if self._state is BreakerState.ALARM:
            return
        self._consecutive_failures = 0
        if self.state is not BreakerState.CLOSED:
            # a late success from a call started before the breaker opened proves it too
            self._close()

    def record_failure(self) -> None:
        """A transient failure: 5xx, timeout, connection error (never a 429)."""
        state = self.state
        if state is BreakerState.ALARM:
            return
        self._consecutive_failures += 1
        if state is BreakerState.HALF_OPEN:
            self._open()
        elif state is BreakerState.CLOSED and self._consecutive_failures >= self.failure_threshold:
            self._open()
        # OPEN: calls that started before it opened keep failing; the open period is not extended

    def record_ignored(self) -> None:
        """A call whose outcome says nothing about availability (a 429): frees the probe only."""
        if self.state is BreakerState.HALF_OPEN:
            self._probe_started = None

    def record_verdict(self, verdict) -> None:
        """Report a failed call as ``retry_policy.classify`` judged it."""
        # imported here so the breaker itself does not need the SDK
        from .retry_policy import Action

        if verdict.action is Action.ALARM:
            self.trip_alarm(verdict.reason)
        elif verdict.action is Action.RETRY:
            if verdict.quota_exceeded:
                self.record_ignored()
            else:
                self.record_failure()
        elif verdict.reason.startswith("unexpected_error"):
            self.record_ignored()  # a local bug, not news about the API
        else:
            self.record_success()  # the API answered, it refused this picture

    def trip_alarm(self, reason: str) -> None:
        """Latch ALARM (invalid key, no permission): nothing is called until reset()."""
        if self._state is not BreakerState.ALARM:
            if self._unavailable_since is None:
                self._unavailable_since = self._clock()
            self._state = BreakerState.ALARM
        self.alarm_reason = reason
        self._probe_started = None

    def reset(self) -> None:
        """Back to CLOSED, e.g. after an operator fixed the key."""
        self.alarm_reason = None
        self._close()

    # ---- internals ---------------------------------------------------------

    def _probe_out(self) -> bool:
        return (self._probe_started is not None
                and self._clock() - self._probe_started < self.probe_timeout_seconds)

    def _open(self) -> None:
        now = self._clock()
        self._state = BreakerState.OPEN
        self._opened_at = now
        self._probe_started = None
        if self._unavailable_since is None:
            self._unavailable_since = now
        self.times_opened += 1

    def _close(self) -> None:
        self._state = BreakerState.CLOSED
        self._consecutive_failures = 0
        self._opened_at = None
        self._probe_started = None
        self._unavailable_since = None
