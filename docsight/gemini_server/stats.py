"""What the server saw, for ``GET /_stats`` and load-test reports."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from .quota import BusiestWindow, Clock


class ServerStats:
    def __init__(self, window_seconds: float = 60.0, clock: Clock = time.monotonic) -> None:
        self.clock = clock
        self.window_seconds = window_seconds
        self.reset()

    def reset(self) -> None:
        self.started_at = self.clock()
        self.calls_received = 0
        self.calls_ok = 0
        self.calls_429 = 0
        self.errors_by_code: Counter[int] = Counter()
        self.connections_closed = 0
        self.blocked = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self.thoughts_tokens = 0
        self.by_endpoint: Counter[str] = Counter()
        self._busiest_minute = BusiestWindow(60.0, self.clock)
        self._busiest_window = BusiestWindow(self.window_seconds, self.clock)
        self._per_minute: dict[int, Counter[str]] = {}

    def set_window(self, window_seconds: float) -> None:
        # A busiest count for the old length means nothing for the new one.
        self.window_seconds = window_seconds
        self._busiest_window = BusiestWindow(window_seconds, self.clock)

    def _minute(self, outcome: str) -> None:
        minute = int((self.clock() - self.started_at) // 60)
        self._per_minute.setdefault(minute, Counter())[outcome] += 1

    def received(self, endpoint: str) -> None:
        self.calls_received += 1
        self.by_endpoint[endpoint] += 1

    def admitted(self) -> None:
        """A call passed the quotas: counted at the same instant the quota counts it."""
        now = self.clock()
        self._busiest_minute.record(now)
        self._busiest_window.record(now)

    def answered_ok(self, input_tokens: int, output_tokens: int, thoughts_tokens: int, blocked: bool = False) -> None:
        self.calls_ok += 1
        self.blocked += int(blocked)
        self.input_tokens += input_tokens
        self.output_tokens += output_tokens
        self.thoughts_tokens += thoughts_tokens
        self._minute("ok")

    def answered_error(self, code: int) -> None:
        if code == 429:
            self.calls_429 += 1
        else:
            self.errors_by_code[code] += 1
        self._minute(str(code))

    def closed_connection(self) -> None:
        self.connections_closed += 1
        self._minute("closed")

    def snapshot(self) -> dict[str, Any]:
        return {
            "calls_received": self.calls_received,
            "calls_ok": self.calls_ok,
            "calls_429": self.calls_429,
            "errors_by_code": {str(code): n for code, n in sorted(self.errors_by_code.items())},
            "connections_closed": self.connections_closed,
            "blocked": self.blocked,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "thoughts_tokens": self.thoughts_tokens,
            "busiest_60s": self._busiest_minute.busiest,
            "busiest_window": self._busiest_window.busiest,
            "window_seconds": self.window_seconds,
            "by_endpoint": dict(self.by_endpoint),
            "per_minute": [
                {"minute": minute, **dict(counts)} for minute, counts in sorted(self._per_minute.items())
            ],
            "uptime_seconds": round(self.clock() - self.started_at, 3),
        }
