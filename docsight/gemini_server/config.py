"""Start-up configuration of the local Gemini-compatible server."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class GeminiServerConfig:
    host: str = "127.0.0.1"
    port: int = 0  # 0: a free port, read it back from base_url
    api_keys: frozenset[str] | None = None  # None: any non-empty key is accepted
    models: frozenset[str] | None = None  # None: any model name is served
    # Quotas per model, like Google's per-project limits; None = unlimited.
    rpm: int | None = None
    tpm: int | None = None  # input tokens per window
    rpd: int | None = None
    window_seconds: float = 60.0  # the "minute" of rpm/tpm; short in tests
    day_seconds: float = 86400.0  # the "day" of rpd
    quota_tier: str = "free"  # names in 429 bodies: "free" or "paid"
    # Faults at start; all changeable at runtime through POST /_control.
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    error_rate_500: float = 0.0
    error_rate_503: float = 0.0
    down: bool = False
    seed: int | None = None  # for the random errors and jitter
