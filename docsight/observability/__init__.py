"""docsight's Prometheus metrics: what is measured (``metrics``) and how a worker shows it (``exposition``).

Agents call the helpers of :mod:`docsight.observability.metrics`; the app calls
:func:`instrument_app` once at setup and :func:`refresh_consumer_lag` from a timer.
"""

from .exposition import (
    consumer_lag,
    enable_faust_sensor,
    instrument_app,
    refresh_consumer_lag,
    register_metrics_page,
    set_consumer_lag,
)
from .metrics import (
    REGISTRY,
    api_call_in_flight,
    api_outcome,
    observe_api_call,
    record_cache,
    record_cost,
    record_document,
    record_limiter_wait,
    record_picture,
    record_picture_result_ignored,
    record_tokens,
    render_latest,
    set_api_key_invalid,
    set_circuit_state,
    set_daily_budget,
    set_pacing,
    set_vision_blocked,
)

__all__ = [
    "REGISTRY", "api_call_in_flight", "api_outcome", "consumer_lag", "enable_faust_sensor", "instrument_app",
    "observe_api_call", "record_cache", "record_cost", "record_document", "record_limiter_wait", "record_picture",
    "record_picture_result_ignored", "record_tokens", "refresh_consumer_lag", "register_metrics_page",
    "render_latest", "set_api_key_invalid",
    "set_circuit_state", "set_consumer_lag", "set_daily_budget", "set_pacing", "set_vision_blocked",
]
