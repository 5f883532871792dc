"""Every docsight metric, defined once, on docsight's own registry.

The registry is docsight's rather than prometheus_client's global one so that
tests read exact values and the /metrics page shows only what docsight (and
Faust's sensor, when enabled) registered on it.

Labels stay low-cardinality: every label value goes through a fixed set or a
capped normaliser, never a document id, a hash or a free-form message.
"""

from __future__ import annotations

import re
import threading

from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

# The *_created series (one per labelled counter and histogram) double the page and no
# rule reads them: Prometheus finds counter resets itself.
disable_created_metrics()

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

# Gemini calls take ~1-10 s; retries and slow models push the tail to the 120 s timeout.
API_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0)
# A picture includes pacing waits and retries, so it reaches the retry deadline (minutes).
PICTURE_LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0)
# A document waits for all of its pictures: seconds for a page, half an hour under a tight quota.
DOCUMENT_LATENCY_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1200.0, 1800.0)

# --- the fixed label values ---------------------------------------------------------------------
PICTURE_OUTCOMES = ("described", "failed", "skipped")
DOCUMENT_OUTCOMES = ("enriched", "failed")
API_OUTCOMES = (
    "ok", "rate_limited", "server_error", "timeout", "connection_error", "invalid_image", "invalid_request",
    "blocked", "no_description", "invalid_api_key", "permission_denied", "model_not_found", "daily_quota_exhausted",
    "other",
)
API_ERROR_REASONS = tuple(outcome for outcome in API_OUTCOMES if outcome != "ok")
TOKEN_KINDS = ("input", "output", "thinking")
CACHE_RESULTS = ("hit", "miss")
FAILURE_STAGES = ("validation", "extraction", "description", "aggregation", "other")
IGNORED_PICTURE_RESULT_REASONS = ("sha256_mismatch", "unknown_index")
# why picture description is held (VISION_ON_API_UNAVAILABLE=wait) or failing over at once (fail_over)
VISION_BLOCK_REASONS = (
    "invalid_api_key", "permission_denied", "model_not_found", "daily_quota_exhausted",
    "daily_request_budget_exhausted", "daily_budget_exhausted",
)
# an alarm (bad key) stops every call, like an open breaker; its own gauge says why
CIRCUIT_STATES = {"closed": 0, "half_open": 1, "open": 2, "alarm": 2}
OTHER = "other"

# --- pictures -----------------------------------------------------------------------------------
PICTURES = Counter(
    "docsight_pictures_total", "Pictures processed, by outcome.", ["outcome"], registry=REGISTRY)
PICTURES_SKIPPED = Counter(
    "docsight_pictures_skipped_total", "Pictures not sent to Gemini, by reason.", ["reason"], registry=REGISTRY)
PICTURE_SECONDS = Histogram(
    "docsight_picture_processing_seconds", "Time from a picture's first call slot to its outcome, retries included.",
    buckets=PICTURE_LATENCY_BUCKETS, registry=REGISTRY)
DESCRIPTION_CACHE = Counter(
    "docsight_description_cache_total", "Description cache lookups, by result (hit, miss).", ["result"],
    registry=REGISTRY)
PICTURE_RESULTS_IGNORED = Counter(
    "docsight_picture_results_ignored_total",
    "Picture outcomes not applied to their document: index or sha256 not in its manifest, by reason.",
    ["reason"], registry=REGISTRY)

# --- Gemini API ---------------------------------------------------------------------------------
API_CALLS = Counter(
    "docsight_api_calls_total", "Gemini calls (each attempt), by outcome.", ["outcome"], registry=REGISTRY)
API_ERRORS = Counter(
    "docsight_api_errors_total", "Failed Gemini calls, by reason.", ["reason"], registry=REGISTRY)
API_RATE_LIMITED = Counter(
    "docsight_api_rate_limited_total", "Gemini calls answered 429 RESOURCE_EXHAUSTED.", registry=REGISTRY)
API_CALL_SECONDS = Histogram(
    "docsight_api_call_seconds", "Latency of one Gemini call.", buckets=API_LATENCY_BUCKETS, registry=REGISTRY)
API_CALLS_IN_FLIGHT = Gauge(
    "docsight_api_calls_in_flight", "Gemini calls in progress on this worker.", registry=REGISTRY)
RATE_LIMITER_WAIT = Counter(
    "docsight_rate_limiter_wait_seconds_total", "Time calls spent waiting for the worker's pacer.", registry=REGISTRY)
TOKENS = Counter(
    "docsight_tokens_total", "Gemini tokens, by kind (input, output, thinking).", ["kind"], registry=REGISTRY)
COST = Counter(
    "docsight_cost_usd_total", "Estimated Gemini spend in US dollars, by model.", ["model"], registry=REGISTRY)

# --- budget, pacing, breaker --------------------------------------------------------------------
BUDGET_SHARE = Gauge(
    "docsight_budget_share_ratio", "This worker's share of the cluster's request budget (0-1).", registry=REGISTRY)
EFFECTIVE_RATE = Gauge(
    "docsight_effective_rate_requests_per_minute", "The request rate this worker paces itself to.",
    registry=REGISTRY)
DAILY_SPEND = Gauge(
    "docsight_daily_spend_usd", "Gemini spend so far in the budget's day, in US dollars.", registry=REGISTRY)
DAILY_BUDGET = Gauge(
    "docsight_daily_budget_usd", "The daily Gemini budget, in US dollars (0: none set).", registry=REGISTRY)
CIRCUIT_BREAKER_STATE = Gauge(
    "docsight_circuit_breaker_state", "Gemini circuit breaker: 0 closed, 1 half-open, 2 open.", registry=REGISTRY)
API_KEY_INVALID = Gauge(
    "docsight_api_key_invalid", "1 while Gemini rejects the API key (or its permissions), else 0.",
    registry=REGISTRY)
VISION_BLOCKED = Gauge(
    "docsight_vision_blocked",
    "1 while this worker makes no Gemini call for this reason (bad key or model, the day's quota or budget "
    "spent); its pictures wait (VISION_ON_API_UNAVAILABLE=wait) or fail over.", ["reason"], registry=REGISTRY)

# --- documents ----------------------------------------------------------------------------------
DOCUMENTS = Counter(
    "docsight_documents_total", "Documents finished, by outcome (enriched, failed).", ["outcome"],
    registry=REGISTRY)
DOCUMENT_FAILURES = Counter(
    "docsight_document_failures_total", "Failed documents, by stage and reason.", ["stage", "reason"],
    registry=REGISTRY)
DOCUMENT_SECONDS = Histogram(
    "docsight_document_processing_seconds", "Time from a document's receipt to its enriched or failed event.",
    buckets=DOCUMENT_LATENCY_BUCKETS, registry=REGISTRY)

# --- stream -------------------------------------------------------------------------------------
CONSUMER_LAG = Gauge(
    "docsight_consumer_lag_messages", "Messages behind the end of each assigned partition.",
    ["topic", "partition"], registry=REGISTRY)

ALL_METRICS = (
    PICTURES, PICTURES_SKIPPED, PICTURE_SECONDS, DESCRIPTION_CACHE, PICTURE_RESULTS_IGNORED, API_CALLS,
    API_ERRORS, API_RATE_LIMITED, API_CALL_SECONDS, API_CALLS_IN_FLIGHT, RATE_LIMITER_WAIT, TOKENS, COST,
    BUDGET_SHARE, EFFECTIVE_RATE, DAILY_SPEND, DAILY_BUDGET, CIRCUIT_BREAKER_STATE, API_KEY_INVALID, VISION_BLOCKED,
    DOCUMENTS,
    DOCUMENT_FAILURES, DOCUMENT_SECONDS, CONSUMER_LAG,
)


def _initialise_known_series() -> None:
    # A labelled series exists only once it is touched. Creating the known ones at 0
    # lets rate()/increase() see the first event, and lets "nothing happened" alerts
    # (no pictures while there is lag) fire on a worker that never processed one.
    for outcome in PICTURE_OUTCOMES:
        PICTURES.labels(outcome)
    for outcome in DOCUMENT_OUTCOMES:
        DOCUMENTS.labels(outcome)
    for outcome in API_OUTCOMES:
        API_CALLS.labels(outcome)
    for reason in API_ERROR_REASONS:
        API_ERRORS.labels(reason)
    for kind in TOKEN_KINDS:
        TOKENS.labels(kind)
    for result in CACHE_RESULTS:
        DESCRIPTION_CACHE.labels(result)
    for reason in IGNORED_PICTURE_RESULT_REASONS:
        PICTURE_RESULTS_IGNORED.labels(reason)
    for reason in VISION_BLOCK_REASONS:
        VISION_BLOCKED.labels(reason)


_initialise_known_series()


# --- label normalisers ----------------------------------------------------------------------------
class _CappedLabel:
    """Keeps a free-form label bounded: values matching ``pattern`` pass, up to ``limit``
    distinct ones; anything else, or anything new past the limit, becomes "other"."""

    def __init__(self, limit: int, pattern: str = r"^[a-z][a-z0-9_]{0,47}$") -> None:
        self.limit = limit
        self._pattern = re.compile(pattern)
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, value: str) -> str:
        if not self._pattern.match(value):
            return OTHER
        with self._lock:
            if value in self._seen:
                return value
            if len(self._seen) >= self.limit:
                return OTHER
            self._seen.add(value)
            return value


def _code_of(value: str | None) -> str:
    """The machine code of a reason: ``"blocked: SAFETY"`` → ``"blocked"``."""
    return (value or "").split(":", 1)[0].strip().lower()


_failure_reasons = _CappedLabel(limit=40)
_skip_reasons = _CappedLabel(limit=20)
_models = _CappedLabel(limit=10, pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")


def api_outcome(reason: str | None) -> str:
    """The ``outcome`` label of a Gemini call: "ok" for ``None``/``""``/"ok", else the code of the
    error reason as ``retry_policy.classify`` and the describer word it ("blocked: SAFETY" → "blocked")."""
    code = _code_of(reason)
    if not code:
        return "ok"
    if code == "retry_deadline_exceeded":  # "retry_deadline_exceeded: rate_limited" counts as its cause
        return api_outcome(reason.split(":", 1)[1] if ":" in reason else "other")
    return code if code in API_OUTCOMES else OTHER


def failure_stage(stage: str | None) -> str:
    return stage if stage in FAILURE_STAGES else OTHER


def failure_reason(reason: str | None) -> str:
    return _failure_reasons(_code_of(reason))


def skip_reason(reason: str | None) -> str:
    return _skip_reasons(_code_of(reason))


def model_label(model: str | None) -> str:
    """Model names come from configuration, so they are few; still capped, so a typo cannot grow series."""
    return _models((model or "").strip().lower().removeprefix("models/"))


# --- helpers that keep the callers one-liners ---------------------------------------------------
def observe_api_call(outcome: str, seconds: float) -> None:
    """One Gemini call attempt ended. ``outcome`` is "ok" or an error reason (normalised here)."""
    label = api_outcome(outcome)
    API_CALLS.labels(label).inc()
    API_CALL_SECONDS.observe(max(0.0, seconds))
    if label != "ok":
        API_ERRORS.labels(label).inc()
    if label in ("rate_limited", "daily_quota_exhausted"):
        API_RATE_LIMITED.inc()


def api_call_in_flight():
    """``with api_call_in_flight(): ...`` around one Gemini call keeps the in-flight gauge right."""
    return API_CALLS_IN_FLIGHT.track_inprogress()


def record_tokens(input: int = 0, output: int = 0, thinking: int = 0) -> None:  # noqa: A002 - the kind's name
    for kind, count in (("input", input), ("output", output), ("thinking", thinking)):
        if count > 0:
            TOKENS.labels(kind).inc(count)


def record_cost(model: str, usd: float) -> None:
    if usd > 0:
        COST.labels(model_label(model)).inc(usd)


def record_limiter_wait(seconds: float) -> None:
    if seconds > 0:
        RATE_LIMITER_WAIT.inc(seconds)


def record_picture(outcome: str, seconds: float | None = None, skip_reason_code: str | None = None) -> None:
    """A picture reached its outcome: described, failed or skipped (with why it was skipped)."""
    label = outcome if outcome in PICTURE_OUTCOMES else "failed"
    PICTURES.labels(label).inc()
    if label == "skipped":
        PICTURES_SKIPPED.labels(skip_reason(skip_reason_code)).inc()
    if seconds is not None and label != "skipped":
        PICTURE_SECONDS.observe(max(0.0, seconds))


def record_cache(hit: bool) -> None:
    DESCRIPTION_CACHE.labels("hit" if hit else "miss").inc()


def record_picture_result_ignored(reason: str) -> None:
    """A picture outcome did not match its document's manifest (a late result of an older extraction)."""
    PICTURE_RESULTS_IGNORED.labels(reason if reason in IGNORED_PICTURE_RESULT_REASONS else OTHER).inc()


def record_document(outcome: str, seconds: float | None = None, stage: str | None = None,
                    reason: str | None = None) -> None:
    """A document finished: "enriched", or "failed" with the stage and reason of its failure."""
    label = "enriched" if outcome == "enriched" else "failed"
    DOCUMENTS.labels(label).inc()
    if label == "failed":
        DOCUMENT_FAILURES.labels(failure_stage(stage), failure_reason(reason)).inc()
    if seconds is not None:
        DOCUMENT_SECONDS.observe(max(0.0, seconds))


def set_circuit_state(state) -> None:
    """A ``BreakerState`` or its value: "closed", "half_open" or "open"."""
    name = str(getattr(state, "value", state)).lower().replace("-", "_")
    CIRCUIT_BREAKER_STATE.set(CIRCUIT_STATES[name])


def set_api_key_invalid(invalid: bool) -> None:
    API_KEY_INVALID.set(1 if invalid else 0)


def set_vision_blocked(reason: str, blocked: bool) -> None:
    """Raise or clear the alarm that no call goes out for ``reason`` (one of VISION_BLOCK_REASONS)."""
    VISION_BLOCKED.labels(reason if reason in VISION_BLOCK_REASONS else OTHER).set(1 if blocked else 0)


def set_pacing(budget_share: float, requests_per_minute: float) -> None:
    BUDGET_SHARE.set(budget_share)
    EFFECTIVE_RATE.set(requests_per_minute)


def set_daily_budget(spend_usd: float, budget_usd: float) -> None:
    DAILY_SPEND.set(spend_usd)
    DAILY_BUDGET.set(budget_usd)


def render_latest() -> tuple[bytes, str]:
    """The /metrics page: the body and its content type.

    The classic 0.0.4 text format is what ``generate_latest`` writes, and every Prometheus
    version reads it; prometheus-client's CONTENT_TYPE_LATEST announces a newer version number.
    """
    return generate_latest(REGISTRY), CONTENT_TYPE_PLAIN_0_0_4
