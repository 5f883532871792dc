"""A real Prometheus scrapes docsight's /metrics output and answers queries with the expected values."""

from __future__ import annotations

from pathlib import Path

import pytest

from docsight.observability import metrics, set_consumer_lag
from docsight.observability.metrics import REGISTRY
from prometheus_helpers import PROMETHEUS, SKIP_REASON, serve_metrics, start_prometheus

pytestmark = pytest.mark.skipif(PROMETHEUS is None, reason=SKIP_REASON)

ALERTS = Path(__file__).resolve().parents[1] / "deploy" / "prometheus" / "alerts.yml"


def test_prometheus_scrapes_docsight_metrics(tmp_path):
    for _ in range(3):
        metrics.record_picture("described", 2.0)
    metrics.record_picture("skipped", skip_reason_code="too_small")
    metrics.observe_api_call("rate_limited", 0.3)
    metrics.record_tokens(input=1000, output=50)
    metrics.set_circuit_state("half_open")
    set_consumer_lag({("docsight-picture-requests", 3): 17})

    # the registry is the process's: other tests may have counted before this one
    described = REGISTRY.get_sample_value("docsight_pictures_total", {"outcome": "described"})
    input_tokens = REGISTRY.get_sample_value("docsight_tokens_total", {"kind": "input"})

    with serve_metrics(metrics.render_latest) as target, \
            start_prometheus([target], tmp_path / "prometheus", rule_files=[ALERTS]) as prometheus:
        series = prometheus.wait_for_value(
            "docsight_pictures_total", described, outcome="described", job="docsight", instance=target)
        assert series["metric"]["__name__"] == "docsight_pictures_total"

        prometheus.wait_for_value("up", 1.0, job="docsight", instance=target)
        prometheus.wait_for_value("docsight_tokens_total", input_tokens, kind="input")
        prometheus.wait_for_value("docsight_circuit_breaker_state", 1.0)
        prometheus.wait_for_value(
            "docsight_consumer_lag_messages", 17.0, topic="docsight-picture-requests", partition="3")
        prometheus.wait_for(
            "docsight_api_call_seconds_count", lambda result: result and float(result[0]["value"][1]) >= 1)

        # the same rules as production load into a real Prometheus and evaluate without error
        rules = prometheus.rules()
        assert {rule["name"] for rule in rules} >= {"DocsightGeminiRateLimited", "DocsightPicturesStalled"}
        assert all(rule.get("health") in ("ok", "unknown") for rule in rules), rules

    set_consumer_lag({})
