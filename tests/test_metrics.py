"""docsight's metrics: naming conventions, bounded labels, helpers, the /metrics page and the lag gauge."""

from __future__ import annotations

import asyncio
import re
from types import SimpleNamespace

import faust
import pytest
from faust.types import TP
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.parser import text_string_to_metric_families

from docsight.observability import exposition, metrics
from docsight.observability.metrics import REGISTRY

ID_LIKE_LABEL = re.compile(r"(^|_)(id|ids|uuid|hash|sha256|sha|key|document|user|path|location|url)$")
BASE_UNIT_SUFFIXES = ("_seconds", "_bytes", "_messages", "_ratio", "_usd", "_tokens")


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# --- naming -------------------------------------------------------------------------------------
def metric_name(metric) -> str:
    return metric._name  # prometheus-client keeps the name without the _total it adds to counters


@pytest.mark.parametrize("metric", metrics.ALL_METRICS, ids=metric_name)
def test_names_follow_prometheus_conventions(metric):
    name = metric_name(metric)
    assert name.startswith("docsight_")
    assert re.fullmatch(r"[a-z][a-z0-9_]*", name)
    families = list(metric.collect())
    exposed = {sample.name for family in families for sample in family.samples}
    if isinstance(metric, Counter):
        assert all(sample.endswith("_total") for sample in exposed), exposed
        assert not name.endswith("_total_total")
    if isinstance(metric, Histogram):
        assert name.endswith(BASE_UNIT_SUFFIXES), f"{name}: a histogram is in a base unit"
        assert buckets_of(metric)[-1] == float("inf")
    if isinstance(metric, Gauge):
        assert not name.endswith("_total"), f"{name}: _total is for counters"
    for label in metric._labelnames:
        assert not ID_LIKE_LABEL.search(label), f"{name}{{{label}}}: labels must not identify one item"


def buckets_of(histogram) -> list[float]:
    return list(histogram._upper_bounds)


def test_the_issue_s_metrics_all_exist():
    expected = {
        "docsight_pictures_total", "docsight_api_calls_total", "docsight_api_rate_limited_total",
        "docsight_rate_limiter_wait_seconds_total", "docsight_picture_processing_seconds",
        "docsight_api_call_seconds", "docsight_api_errors_total", "docsight_cost_usd_total",
        "docsight_documents_total", "docsight_document_failures_total", "docsight_document_processing_seconds",
        "docsight_tokens_total", "docsight_description_cache_total", "docsight_api_calls_in_flight",
        "docsight_budget_share_ratio", "docsight_effective_rate_requests_per_minute",
        "docsight_circuit_breaker_state", "docsight_api_key_invalid", "docsight_pictures_skipped_total",
        "docsight_daily_spend_usd", "docsight_daily_budget_usd", "docsight_consumer_lag_messages",
    }
    body = metrics.render_latest()[0].decode()
    declared = {family.name + ("_total" if family.type == "counter" else "")
                for family in text_string_to_metric_families(body)}
    assert expected <= declared, expected - declared


def test_latency_buckets_cover_api_calls_and_documents():
    api = buckets_of(metrics.API_CALL_SECONDS)
    assert api[0] <= 0.05 and api[-2] >= 120
    document = buckets_of(metrics.DOCUMENT_SECONDS)
    assert document[0] <= 0.5 and document[-2] >= 1800


def test_process_and_platform_collectors_are_on_the_registry():
    names = {family.name for family in REGISTRY.collect()}
    assert "python_info" in names
    assert "process_cpu_seconds" in names or "process_cpu_seconds_total" in names


def test_known_series_exist_at_zero_before_any_event():
    # so that increase() is 0 (not absent) and the stall alert can fire on a worker that never worked
    body = metrics.render_latest()[0].decode()
    for outcome in metrics.PICTURE_OUTCOMES:
        assert f'docsight_pictures_total{{outcome="{outcome}"}}' in body
    for outcome in metrics.API_OUTCOMES:
        assert f'docsight_api_calls_total{{outcome="{outcome}"}}' in body


# --- helpers ------------------------------------------------------------------------------------
def test_observe_api_call_counts_outcome_latency_and_errors():
    limited_calls_before = value("docsight_api_calls_total", outcome="rate_limited")
    count_before = value("docsight_api_call_seconds_count")
    limited_before = value("docsight_api_rate_limited_total")
    errors_before = value("docsight_api_errors_total", reason="rate_limited")
    ok_before = value("docsight_api_calls_total", outcome="ok")

    metrics.observe_api_call("rate_limited", 0.8)
    metrics.observe_api_call("ok", 2.5)

    assert value("docsight_api_calls_total", outcome="rate_limited") == limited_calls_before + 1
    assert value("docsight_api_calls_total", outcome="ok") == ok_before + 1
    assert value("docsight_api_rate_limited_total") == limited_before + 1
    assert value("docsight_api_errors_total", reason="rate_limited") == errors_before + 1
    assert value("docsight_api_call_seconds_count") == count_before + 2
    assert value("docsight_api_call_seconds_bucket", le="1.0") >= 1


@pytest.mark.parametrize("reason, outcome", [
    (None, "ok"), ("", "ok"), ("ok", "ok"), ("rate_limited", "rate_limited"), ("timeout", "timeout"),
    ("blocked: SAFETY", "blocked"), ("no_description: OTHER", "no_description"),
    ("retry_deadline_exceeded: server_error", "server_error"), ("unexpected_error: KeyError", "other"),
    ("http_418", "other"), ("invalid_api_key", "invalid_api_key"), ("permission_denied", "permission_denied"),
])
def test_api_outcome_maps_describer_reasons_to_a_fixed_set(reason, outcome):
    assert metrics.api_outcome(reason) == outcome
    assert outcome in metrics.API_OUTCOMES


def test_record_tokens_by_kind():
    before = {kind: value("docsight_tokens_total", kind=kind) for kind in metrics.TOKEN_KINDS}
    metrics.record_tokens(input=1290, output=84, thinking=0)
    metrics.record_tokens(10, 1, 5)
    assert value("docsight_tokens_total", kind="input") == before["input"] + 1300
    assert value("docsight_tokens_total", kind="output") == before["output"] + 85
    assert value("docsight_tokens_total", kind="thinking") == before["thinking"] + 5


def test_record_picture_outcomes_and_skip_reasons():
    described = value("docsight_pictures_total", outcome="described")
    skipped = value("docsight_pictures_total", outcome="skipped")
    too_small = value("docsight_pictures_skipped_total", reason="too_small")
    seconds = value("docsight_picture_processing_seconds_count")

    metrics.record_picture("described", 3.2)
    metrics.record_picture("skipped", skip_reason_code="too_small")

    assert value("docsight_pictures_total", outcome="described") == described + 1
    assert value("docsight_pictures_total", outcome="skipped") == skipped + 1
    assert value("docsight_pictures_skipped_total", reason="too_small") == too_small + 1
    assert value("docsight_picture_processing_seconds_count") == seconds + 1


def test_record_document_counts_failures_by_stage_and_bounded_reason():
    enriched = value("docsight_documents_total", outcome="enriched")
    failed = value("docsight_documents_total", outcome="failed")
    corrupt = value("docsight_document_failures_total", stage="extraction", reason="corrupt")
    other = value("docsight_document_failures_total", stage="other", reason="other")

    metrics.record_document("enriched", seconds=42.0)
    metrics.record_document("failed", seconds=1.0, stage="extraction", reason="corrupt")
    # a free-form message or an unknown stage never becomes a label value
    metrics.record_document("failed", stage="somewhere", reason="Document 7f3a… could not be read!")

    assert value("docsight_documents_total", outcome="enriched") == enriched + 1
    assert value("docsight_documents_total", outcome="failed") == failed + 2
    assert value("docsight_document_failures_total", stage="extraction", reason="corrupt") == corrupt + 1
    assert value("docsight_document_failures_total", stage="other", reason="other") == other + 1


def test_free_form_labels_are_capped():
    capped = metrics._CappedLabel(limit=3)
    assert [capped(code) for code in ("a", "b", "c", "d", "a")] == ["a", "b", "c", "other", "a"]
    assert capped("Not A Code") == "other"
    assert metrics.failure_reason("x" * 200) == "other"
    assert metrics.model_label("models/Gemini-2.5-Flash") == "gemini-2.5-flash"


def test_cost_cache_limiter_and_gauges():
    cost = value("docsight_cost_usd_total", model="gemini-2.5-flash")
    hits = value("docsight_description_cache_total", result="hit")
    misses = value("docsight_description_cache_total", result="miss")
    waited = value("docsight_rate_limiter_wait_seconds_total")

    metrics.record_cost("gemini-2.5-flash", 0.0125)
    metrics.record_cache(hit=True)
    metrics.record_cache(hit=False)
    metrics.record_limiter_wait(1.5)
    metrics.set_pacing(budget_share=0.25, requests_per_minute=37.5)
    metrics.set_daily_budget(spend_usd=12.5, budget_usd=50.0)
    metrics.set_api_key_invalid(True)

    assert value("docsight_cost_usd_total", model="gemini-2.5-flash") == pytest.approx(cost + 0.0125)
    assert value("docsight_description_cache_total", result="hit") == hits + 1
    assert value("docsight_description_cache_total", result="miss") == misses + 1
    assert value("docsight_rate_limiter_wait_seconds_total") == pytest.approx(waited + 1.5)
    assert value("docsight_budget_share_ratio") == 0.25
    assert value("docsight_effective_rate_requests_per_minute") == 37.5
    assert value("docsight_daily_spend_usd") == 12.5
    assert value("docsight_daily_budget_usd") == 50.0
    assert value("docsight_api_key_invalid") == 1
    metrics.set_api_key_invalid(False)
    assert value("docsight_api_key_invalid") == 0


def test_circuit_state_takes_names_and_the_breaker_enum():
    from docsight.vision.circuit_breaker import BreakerState

    for state, number in (("open", 2), ("half-open", 1), (BreakerState.HALF_OPEN, 1), (BreakerState.CLOSED, 0)):
        metrics.set_circuit_state(state)
        assert value("docsight_circuit_breaker_state") == number


def test_in_flight_gauge_follows_the_call():
    before = value("docsight_api_calls_in_flight")
    with metrics.api_call_in_flight():
        assert value("docsight_api_calls_in_flight") == before + 1
    assert value("docsight_api_calls_in_flight") == before


# --- exposition ---------------------------------------------------------------------------------
def test_render_latest_is_the_prometheus_text_format():
    metrics.record_picture("failed", 1.0)
    body, content_type = metrics.render_latest()
    assert content_type.startswith("text/plain; version=0.0.4")
    families = {family.name: family for family in text_string_to_metric_families(body.decode())}
    assert families["docsight_pictures"].type == "counter"
    assert families["docsight_api_call_seconds"].type == "histogram"
    assert families["docsight_api_calls_in_flight"].type == "gauge"
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in families["docsight_pictures"].samples}
    assert samples[("docsight_pictures_total", (("outcome", "failed"),))] >= 1


def test_metrics_page_serves_the_registry():
    app = faust.App("docsight-metrics-page-test", broker="memory://", web_enabled=False)
    exposition.register_metrics_page(app)
    exposition.register_metrics_page(app)  # a second call must not add a second route
    view = app.web.views["/metrics"]
    response = asyncio.run(view.get(SimpleNamespace()))  # the handler does not read the request
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert b"docsight_pictures_total" in response.body


def test_faust_sensor_records_on_the_given_registry():
    registry = CollectorRegistry()
    app = faust.App("docsight-sensor-test", broker="memory://", web_enabled=False)
    exposition.enable_faust_sensor(app, registry)
    exposition.enable_faust_sensor(app, registry)  # a second call must not register the series twice
    from faust.sensors.prometheus import PrometheusMonitor

    assert isinstance(app.monitor, PrometheusMonitor)
    app.monitor.on_message_in(TP("document-received", 0), 5, SimpleNamespace())
    assert registry.get_sample_value("docsight_faust_messages_received_total") == 1


class FakeConsumer:
    def __init__(self, assigned, highwaters, committed, positions=None):
        self._assigned = assigned
        self._highwaters = highwaters
        self._committed_offset = committed
        self._positions = positions or {}

    def assignment(self):
        return set(self._assigned)

    async def highwaters(self, *tps):
        return {tp: self._highwaters[tp] for tp in tps}

    async def position(self, tp):
        return self._positions.get(tp)


def fake_app(consumer, acking=("docsight-picture-requests", "document-received")):
    return SimpleNamespace(_consumer=consumer, topics=SimpleNamespace(acks_enabled_for=lambda t: t in acking))


def test_consumer_lag_is_highwater_minus_committed_for_consumed_topics_only():
    pictures0, pictures1 = TP("docsight-picture-requests", 0), TP("docsight-picture-requests", 1)
    received, changelog = TP("document-received", 2), TP("docsight-documents-changelog", 0)
    consumer = FakeConsumer(
        [pictures0, pictures1, received, changelog],
        highwaters={pictures0: 120, pictures1: 7, received: 40, changelog: 9000},
        committed={pictures0: 100, pictures1: None, changelog: 0},
        positions={pictures1: 7, received: None})
    lag = asyncio.run(exposition.consumer_lag(fake_app(consumer)))
    assert lag == {("docsight-picture-requests", 0): 20, ("docsight-picture-requests", 1): 0}


def test_consumer_lag_is_empty_without_a_consumer():
    assert asyncio.run(exposition.consumer_lag(SimpleNamespace(_consumer=None))) == {}


def test_refresh_consumer_lag_sets_the_gauge_and_drops_partitions_given_away():
    pictures0, pictures1 = TP("docsight-picture-requests", 0), TP("docsight-picture-requests", 1)
    consumer = FakeConsumer([pictures0, pictures1], {pictures0: 50, pictures1: 10}, {pictures0: 20, pictures1: 10})
    asyncio.run(exposition.refresh_consumer_lag(fake_app(consumer)))
    lag = "docsight_consumer_lag_messages"
    assert value(lag, topic="docsight-picture-requests", partition="0") == 30
    assert value(lag, topic="docsight-picture-requests", partition="1") == 0

    consumer._assigned = [pictures1]  # a rebalance took partition 0 away
    asyncio.run(exposition.refresh_consumer_lag(fake_app(consumer)))
    assert REGISTRY.get_sample_value(lag, {"topic": "docsight-picture-requests", "partition": "0"}) is None
    assert value(lag, topic="docsight-picture-requests", partition="1") == 0
    exposition.set_consumer_lag({})
