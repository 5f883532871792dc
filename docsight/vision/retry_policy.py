"""How a failed Gemini call is handled: retry (and when), fail the picture, or raise the alarm.

Pure functions: they look at the exception and the attempt number, nothing else.
"""

from __future__ import annotations

import asyncio
import enum
import random
import re
from dataclasses import dataclass, replace

from google.genai import errors as genai_errors

try:  # the SDK's transport; connection failures surface as its exceptions
    import httpx2 as _httpx
except ImportError:  # pragma: no cover - older SDKs use httpx
    import httpx as _httpx

import aiohttp


class Action(enum.Enum):
    RETRY = "retry"              # transient: wait and call again
    FAIL_PICTURE = "fail"        # this picture can never succeed: record the reason, move on
    ALARM = "alarm"              # configuration is wrong (bad key, no permission): stop calling


@dataclass(frozen=True)
class Verdict:
    action: Action
    reason: str                  # short code: rate_limited, server_error, timeout, invalid_image, ...
    retry_after: float | None = None   # the API's RetryInfo, when it gave one
    quota_exceeded: bool = False        # a 429: the shared quota is spent
    daily_quota: bool = False           # ... and it is a per-day quota: waiting minutes will not help
    answered: bool = False              # the API answered (with an error): the call was not billed


_DURATION = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)s\s*$")


def parse_retry_delay(details) -> float | None:
    """Seconds from a google.rpc.RetryInfo in an error body (``"retryDelay": "26s"``)."""
    error = details.get("error") if isinstance(details, dict) else None
    for item in (error or {}).get("details") or []:
        if isinstance(item, dict) and item.get("@type", "").endswith("google.rpc.RetryInfo"):
            match = _DURATION.match(str(item.get("retryDelay", "")))
            if match:
                return float(match.group(1))
    return None


def is_per_day_quota(details) -> bool:
    """True when a 429's google.rpc.QuotaFailure names a per-day quota (quotaId ...PerDay..., metric ..._per_day).

    The real API's per-day 429 carries a RetryInfo of seconds like a per-minute one, so only this tells them apart.
    """
    error = details.get("error") if isinstance(details, dict) else None
    for item in (error or {}).get("details") or []:
        if not (isinstance(item, dict) and item.get("@type", "").endswith("google.rpc.QuotaFailure")):
            continue
        for violation in item.get("violations") or []:
            if not isinstance(violation, dict):
                continue
            names = f"{violation.get('quotaId', '')} {violation.get('quotaMetric', '')}".lower()
            if "perday" in names or "per_day" in names:
                return True
    return False


def error_reason(details) -> str | None:
    error = details.get("error") if isinstance(details, dict) else None
    for item in (error or {}).get("details") or []:
        if isinstance(item, dict) and item.get("reason"):
            return str(item["reason"])
    return None


def classify(error: BaseException) -> Verdict:
    """Gemini's errors (google-genai); ``openai_provider.classify`` reads an OpenAI-compatible server's."""
    if isinstance(error, genai_errors.APIError):
        return replace(_classify_api_error(error), answered=bool(error.code))
    if isinstance(error, (asyncio.TimeoutError, TimeoutError)):
        return Verdict(Action.RETRY, "timeout")
    if isinstance(error, (ConnectionError, OSError, _httpx.TransportError, aiohttp.ClientError)):
        return Verdict(Action.RETRY, "connection_error")
    # Anything else is a bug or an SDK surprise: fail the picture, never the stream.
    return Verdict(Action.FAIL_PICTURE, f"unexpected_error: {type(error).__name__}")


def _classify_api_error(error: genai_errors.APIError) -> Verdict:
    code = error.code or 0
    if code == 429:
        if is_per_day_quota(error.details):
            return Verdict(Action.RETRY, "daily_quota_exhausted", parse_retry_delay(error.details),
                           quota_exceeded=True, daily_quota=True)
        return Verdict(Action.RETRY, "rate_limited", parse_retry_delay(error.details), quota_exceeded=True)
    if code in (408,) or code >= 500:
        return Verdict(Action.RETRY, "server_error" if code >= 500 else "timeout", parse_retry_delay(error.details))
    if code in (401, 403) or error_reason(error.details) == "API_KEY_INVALID":
        return Verdict(Action.ALARM, "invalid_api_key" if code != 403 else "permission_denied")
    if code == 400:
        return Verdict(Action.FAIL_PICTURE, "invalid_image" if "image" in (error.message or "").lower()
                       else "invalid_request")
    if code == 404:
        return Verdict(Action.ALARM, "model_not_found")
    return Verdict(Action.FAIL_PICTURE, f"http_{code}")


def backoff_delay(attempt: int, base: float = 1.0, cap: float = 60.0, rng: random.Random | None = None) -> float:
    """Truncated exponential backoff with full jitter (attempt 1 is the first retry)."""
    ceiling = min(cap, base * (2 ** max(0, attempt - 1)))
    return (rng or random).uniform(0, ceiling)


def retry_wait(verdict: Verdict, attempt: int, rng: random.Random | None = None, cap: float = 60.0) -> float:
    """How long to wait before the next attempt: RetryInfo when the API gave it, else backoff."""
    if verdict.retry_after is not None:
        # a little jitter so that every waiting worker does not come back in the same instant
        return verdict.retry_after + (rng or random).uniform(0, 1.0)
    return backoff_delay(attempt, cap=cap, rng=rng)
