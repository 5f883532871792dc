"""Scriptable misbehaviour: latency, forced answers, random errors, down mode.

Tests script it through ``POST /_control`` (see ``FaultPlan.apply``); the
queue of forced answers is consumed one per generate call, in order.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

FORCED_KINDS = ("429", "500", "503", "error", "hang", "close", "block_prompt", "block_answer")
BLOCK_REASONS = ("SAFETY", "OTHER", "BLOCKLIST", "PROHIBITED_CONTENT", "IMAGE_SAFETY", "RECITATION", "SPII")
QUOTA_KINDS = ("rpm", "tpm", "rpd")


class ControlError(ValueError):
    """A control payload that cannot be applied; nothing of it was applied."""


@dataclass(frozen=True)
class ForcedResponse:
    kind: str
    retry_delay_s: float | None = 2.0  # 429 only; None leaves RetryInfo out
    quota: str = "rpm"  # 429 only: which quota the body names
    seconds: float = 0.0  # hang only; the call is then answered normally
    reason: str = "SAFETY"  # block_* only
    code: int = 500  # error only
    status: str = "INTERNAL"
    message: str = ""

    @property
    def is_block(self) -> bool:
        return self.kind.startswith("block_")

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v != getattr(_DEFAULT_FORCED, k) or k == "kind"}

    @classmethod
    def from_json(cls, item: Any) -> list["ForcedResponse"]:
        if isinstance(item, (str, int)):
            item = {"kind": item}
        if not isinstance(item, dict):
            raise ControlError(f"enqueue item must be an object, got {item!r}")
        item = dict(item)
        kind = str(item.pop("kind", ""))
        if kind not in FORCED_KINDS:
            raise ControlError(f"unknown kind {kind!r}; expected one of {', '.join(FORCED_KINDS)}")
        count = item.pop("count", 1)
        if not isinstance(count, int) or count < 1:
            raise ControlError("count must be a positive integer")
        allowed = {"retry_delay_s", "quota", "seconds", "reason", "code", "status", "message"}
        unknown = set(item) - allowed
        if unknown:
            raise ControlError(f"unknown enqueue fields: {sorted(unknown)}")
        try:
            forced = cls(kind=kind, **item)
        except TypeError as exc:
            raise ControlError(str(exc)) from None
        if forced.retry_delay_s is not None and (not isinstance(forced.retry_delay_s, (int, float)) or forced.retry_delay_s < 0):
            raise ControlError("retry_delay_s must be a non-negative number or null")
        if not isinstance(forced.seconds, (int, float)) or forced.seconds < 0:
            raise ControlError("seconds must be a non-negative number")
        if not isinstance(forced.code, int) or not isinstance(forced.status, str) or not isinstance(forced.message, str):
            raise ControlError("code must be an integer, status and message strings")
        if forced.quota not in QUOTA_KINDS:
            raise ControlError(f"quota must be one of {QUOTA_KINDS}")
        if forced.reason not in BLOCK_REASONS:
            raise ControlError(f"reason must be one of {BLOCK_REASONS}")
        if kind == "error" and not 400 <= forced.code <= 599:
            raise ControlError("error code must be 4xx or 5xx")
        return [forced] * count


_DEFAULT_FORCED = ForcedResponse(kind="")


@dataclass
class FaultSettings:
    latency_ms: float = 0.0
    jitter_ms: float = 0.0  # latency is uniform in latency_ms +/- jitter_ms, never below 0
    error_rate_500: float = 0.0
    error_rate_503: float = 0.0
    down: bool = False  # every generate call answers 503


@dataclass
class FaultPlan:
    settings: FaultSettings = field(default_factory=FaultSettings)
    seed: int | None = None
    queue: deque[ForcedResponse] = field(default_factory=deque)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    SETTING_KEYS = ("latency_ms", "jitter_ms", "error_rate_500", "error_rate_503", "down")
    CONTROL_KEYS = SETTING_KEYS + ("enqueue", "clear_queue", "seed")

    def validate(self, payload: dict[str, Any]) -> list[ForcedResponse]:
        """Check this plan's part of a control payload; returns the parsed queue items."""
        for key in ("latency_ms", "jitter_ms"):
            if key in payload and (not isinstance(payload[key], (int, float)) or payload[key] < 0):
                raise ControlError(f"{key} must be a non-negative number")
        for key in ("error_rate_500", "error_rate_503"):
            if key in payload and (not isinstance(payload[key], (int, float)) or not 0 <= payload[key] <= 1):
                raise ControlError(f"{key} must be between 0 and 1")
        if "down" in payload and not isinstance(payload["down"], bool):
            raise ControlError("down must be true or false")
        if "seed" in payload and payload["seed"] is not None and not isinstance(payload["seed"], int):
            raise ControlError("seed must be an integer or null")
        items = payload.get("enqueue", [])
        if not isinstance(items, list):
            items = [items]
        return [forced for item in items for forced in ForcedResponse.from_json(item)]

    def apply(self, payload: dict[str, Any]) -> None:
        forced = self.validate(payload)
        for key in self.SETTING_KEYS:
            if key in payload:
                value = payload[key]
                setattr(self.settings, key, value if key == "down" else float(value))
        if "seed" in payload:
            self.seed = payload["seed"]
            self._rng = random.Random(self.seed)
        if payload.get("clear_queue"):
            self.queue.clear()
        self.queue.extend(forced)

    def peek_forced(self) -> ForcedResponse | None:
        return self.queue[0] if self.queue else None

    def next_forced(self) -> ForcedResponse | None:
        return self.queue.popleft() if self.queue else None

    def random_error_code(self) -> int | None:
        """500 or 503 by the configured rates, else None."""
        draw = self._rng.random()
        if draw < self.settings.error_rate_500:
            return 500
        if draw < self.settings.error_rate_500 + self.settings.error_rate_503:
            return 503
        return None

    def latency_seconds(self) -> float:
        jitter = self.settings.jitter_ms
        offset = self._rng.uniform(-jitter, jitter) if jitter else 0.0
        return max(0.0, self.settings.latency_ms + offset) / 1000.0

    def snapshot(self) -> dict[str, Any]:
        return {**asdict(self.settings), "seed": self.seed, "queue": [f.to_json() for f in self.queue]}
