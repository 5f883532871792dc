"""The arithmetic behind the figures: percentiles, rates, saturation, scaled quotas. Pure functions."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence


def percentile(values: Iterable[float], q: float) -> float | None:
    """The q-th percentile (0-100) with linear interpolation between ranks (numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        return None
    if not 0 <= q <= 100:
        raise ValueError(f"q must be in [0, 100], got {q}")
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def per_minute(count: float, seconds: float) -> float | None:
    return None if seconds <= 0 else count * 60.0 / seconds


@dataclass(frozen=True)
class Spread:
    count: int
    p50: float | None
    p95: float | None
    max: float | None

    @classmethod
    def of(cls, values: Sequence[float]) -> "Spread":
        return cls(len(values), percentile(values, 50), percentile(values, 95), max(values) if values else None)


@dataclass(frozen=True)
class QuotaPlan:
    """A quota of ``per_window`` calls per ``window_seconds``, and what a worker is told per minute.

    The default runs use real 60 s windows; ``--quick`` shrinks the window and the
    count together, so the same calls/minute is enforced over a shorter horizon.
    """
    per_window: int
    window_seconds: float = 60.0
    tokens_per_window: int | None = None

    @property
    def per_minute(self) -> float:
        return self.per_window * 60.0 / self.window_seconds

    @property
    def tokens_per_minute(self) -> float | None:
        return None if self.tokens_per_window is None else self.tokens_per_window * 60.0 / self.window_seconds

    def worker_env(self) -> dict[str, str]:
        # the workers count over the server's window: a per-minute rate over a 5 s window would burst
        env = {"VISION_RATE_LIMIT_PER_MINUTE": _number(self.per_minute),
               "VISION_QUOTA_WINDOW_SECONDS": _number(self.window_seconds)}
        if self.tokens_per_minute is not None:
            env["VISION_TOKENS_PER_MINUTE"] = _number(self.tokens_per_minute)
        return env

    def server_config(self) -> dict:
        """Fields of GeminiServerConfig."""
        return {"rpm": self.per_window, "tpm": self.tokens_per_window, "window_seconds": self.window_seconds}


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.6g}"


def saturated_rate(requested: Iterable[float], finished: Iterable[float], waiting_above: int) -> tuple[float, float]:
    """Completions per second while more than ``waiting_above`` items were waiting, and that time span.

    A consumer's ceiling shows only while it has work queued beyond what it holds
    in flight; counting the idle stretches would measure the producer instead.
    """
    events = sorted([(t, 1) for t in requested] + [(t, -1) for t in finished])
    waiting = 0
    busy_seconds = 0.0
    completions = 0
    previous = None
    for at, change in events:
        if previous is not None and waiting > waiting_above:
            busy_seconds += at - previous
        if change < 0 and waiting > waiting_above:
            completions += 1
        waiting += change
        previous = at
    return (completions / busy_seconds if busy_seconds > 0 else 0.0), busy_seconds
