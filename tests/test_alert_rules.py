"""The alerting rules: valid for Prometheus, unit-tested with promtool, and in step with the metrics."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from docsight.observability import metrics

PROMETHEUS_DIR = Path(__file__).resolve().parents[1] / "deploy" / "prometheus"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
ALERT_TESTS = PROMETHEUS_DIR / "alerts_test.yml"
EXAMPLE_CONFIG = PROMETHEUS_DIR / "prometheus.yml"

needs_promtool = pytest.mark.skipif(
    shutil.which("promtool") is None,
    reason="promtool is not installed (Debian: apt-get install --no-install-recommends prometheus)")


def promtool(*args: str) -> subprocess.CompletedProcess:
    # run beside the files: rule_files paths are relative to the file that names them
    return subprocess.run(["promtool", *args], cwd=PROMETHEUS_DIR, capture_output=True, text=True, timeout=120)


@needs_promtool
def test_rules_are_valid():
    result = promtool("check", "rules", ALERTS.name)
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_rules_pass_their_unit_tests():
    result = promtool("test", "rules", ALERT_TESTS.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


@needs_promtool
def test_example_scrape_config_is_valid():
    result = promtool("check", "config", EXAMPLE_CONFIG.name)
    assert result.returncode == 0, result.stdout + result.stderr


def alert_rules() -> list[dict]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_every_alert_has_severity_summary_and_description():
    for rule in alert_rules():
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"].strip(), rule["alert"]
        assert rule["annotations"]["description"].strip(), rule["alert"]


def test_every_alert_has_unit_tests_that_fire_and_that_stay_quiet():
    tests = yaml.safe_load(ALERT_TESTS.read_text())["tests"]
    fires, quiet = set(), set()
    for test in tests:
        for case in test.get("alert_rule_test", []):
            (fires if case.get("exp_alerts") else quiet).add(case["alertname"])
    names = {rule["alert"] for rule in alert_rules()}
    assert names <= fires, f"no firing test for {names - fires}"
    assert names <= quiet, f"no quiet test for {names - quiet}"


def exposed_series_names() -> set[str]:
    """Every series name the page declares, whether or not a labelled series has a sample yet."""
    names = set()
    for family in text_string_to_metric_families(metrics.render_latest()[0].decode()):
        if family.type == "counter":
            names.add(family.name + "_total")
        elif family.type == "histogram":
            names.update(family.name + suffix for suffix in ("_bucket", "_count", "_sum"))
        else:
            names.add(family.name)
    return names


def test_rules_only_use_series_docsight_exports():
    # a renamed metric must not leave an alert that can never fire
    used = set(re.findall(r"\bdocsight_[a-z0-9_]+", ALERTS.read_text()))
    missing = used - exposed_series_names()
    assert not missing, f"alerts.yml uses series docsight does not export: {missing}"


def test_rules_only_use_label_values_docsight_emits():
    text = ALERTS.read_text()
    for outcome in re.findall(r'docsight_api_calls_total\{outcome="([a-z_]+)"\}', text):
        assert outcome in metrics.API_OUTCOMES
    for outcome in re.findall(r'docsight_documents_total\{outcome="([a-z_]+)"\}', text):
        assert outcome in metrics.DOCUMENT_OUTCOMES


def test_stall_alert_matches_the_picture_requests_topic():
    from docsight.streams.topics import picture_requests

    pattern = re.search(r'docsight_consumer_lag_messages\{topic=~"([^"]+)"\}', ALERTS.read_text()).group(1)
    assert re.fullmatch(pattern, picture_requests.get_topic_name())
