"""AIMD correction of this worker's share when the shared quota turns out smaller than assumed.

Each worker paces itself to its share of the project's budget, but the quota is
the Google Cloud project's: another app, a developer's script or a worker still
finishing calls from before a rebalance can spend it too. A 429 that arrives
although the local budget had room is the only signal of that, so the rate is
cut multiplicatively (fast relief) and recovered additively (slow probing),
the scheme TCP uses for the same no-coordinator problem.
"""

from __future__ import annotations

import time
from typing import Callable


class AdaptiveRate:
    """A multiplier in [floor, 1.0] applied to the local rate.

    Cuts happen at most once per ``cooldown_seconds``: one overload answers
    every call in flight with 429, and those all describe the same event.
    Recovery adds ``increase_step`` at most once per ``recovery_interval_seconds``
    of successes with no 429 in between, so an idle worker does not jump back
    to full rate from a single success.
    """

    def __init__(self, decrease_factor: float = 0.5, floor: float = 0.05, increase_step: float = 0.05,
                 cooldown_seconds: float = 5.0, recovery_interval_seconds: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not 0 < decrease_factor < 1:
            raise ValueError(f"decrease_factor must be in (0, 1), got {decrease_factor}")
        if not 0 < floor <= 1:
            raise ValueError(f"floor must be in (0, 1], got {floor}")
        if increase_step <= 0:
            raise ValueError(f"increase_step must be positive, got {increase_step}")
        self.decrease_factor = decrease_factor
        self.floor = floor
        self.increase_step = increase_step
        self.cooldown_seconds = cooldown_seconds
        self.recovery_interval_seconds = recovery_interval_seconds
        self._clock = clock
        self._multiplier = 1.0
        self._last_cut: float | None = None
        self._last_429: float | None = None
        self._last_change: float | None = None
        self.cuts = 0
        self.rate_limited_seen = 0

    @property
    def multiplier(self) -> float:
        return self._multiplier

    def effective(self, rate: float) -> float:
        return rate * self._multiplier

    def on_unexpected_429(self) -> bool:
        """Record a 429 the local budget did not expect; True when it cut the rate."""
        now = self._clock()
        self.rate_limited_seen += 1
        self._last_429 = now
        if self._last_cut is not None and now - self._last_cut < self.cooldown_seconds:
            return False
        self._last_cut = now
        self._last_change = now
        new = max(self.floor, self._multiplier * self.decrease_factor)
        changed = new != self._multiplier
        self._multiplier = new
        if changed:
            self.cuts += 1
        return changed

    def on_success(self) -> bool:
        """Record a successful call; True when it raised the rate."""
        if self._multiplier >= 1.0:
            return False
        now = self._clock()
        quiet_since = max(t for t in (self._last_change, self._last_429) if t is not None)
        if now - quiet_since < self.recovery_interval_seconds:
            return False
        self._multiplier = min(1.0, self._multiplier + self.increase_step)
        self._last_change = now
        return True
