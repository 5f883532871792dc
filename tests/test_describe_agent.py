"""The describe agent under Faust's ``agent.test_context()``: each branch, as the agent sends it.

Each test runs tests/describe_agent_run.py in a fresh process (a worker reads its settings once, from its
environment) under its own app id on the test cluster's broker, against the local Gemini server: the
real agent with ``handle_concurrently``, the real description service, budget, cache table and producer.
Only the stream is fed by ``test_context().put``; the results are read back from the agent's
document-updates topic. The same branches run through the service alone in test_description_service.py.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from cluster_helpers import unique_id
from docsight.local_cluster import LOCAL_API_KEY

pytestmark = pytest.mark.cluster

RUNNER = Path(__file__).with_name("describe_agent_run.py")


def run_agent(cluster, tmp_path, scenario: str, **env) -> dict:
    red, green = random.randrange(128), random.randrange(256)
    colour = f"{red},{green},{red + 128}"  # reversed, another picture (each run has its own app id and cache)
    clean = {key: value for key, value in os.environ.items()
             if not key.startswith(("DOCSIGHT_", "VISION_", "GEMINI_", "GOOGLE_GEMINI_", "OPENAI_"))}
    worker_env = {
        "DOCSIGHT_APP_ID": unique_id("agenttest"), "DOCSIGHT_BROKER_URL": cluster.broker_url,
        "DOCSIGHT_EMBEDDED_BROKER": "true", "DOCSIGHT_DATA_DIR": str(tmp_path / "worker"),
        "DOCSIGHT_STORE_DIR": str(tmp_path / "store"), "DOCSIGHT_ROLE": "vision",
        "GEMINI_API_KEY": LOCAL_API_KEY, "GOOGLE_GEMINI_BASE_URL": cluster.gemini_base_url,
        "VISION_RATE_LIMIT_PER_MINUTE": "6000", "VISION_QUOTA_WINDOW_SECONDS": "1",
        "VISION_RETRY_DEADLINE_SECONDS": "10", **env}
    done = subprocess.run([sys.executable, str(RUNNER), scenario, colour], env=clean | worker_env,
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_picture_described_before_is_sent_from_the_cache(cluster, gemini, tmp_path):
    calls = gemini.stats()["calls_ok"]
    run = run_agent(cluster, tmp_path, "cache_hit")
    first, second = run["results"]
    assert (first["status"], first["cached"], second["status"], second["cached"]) == (
        "described", False, "described", True)
    assert second["description"] == first["description"] and second["index"] == 1
    assert first["cost_usd"] > 0 and second["cost_usd"] == 0
    assert gemini.stats()["calls_ok"] - calls == 1


def test_requests_for_one_picture_in_flight_together_share_one_call(cluster, gemini, tmp_path):
    gemini.control({"latency_ms": 400})
    calls = gemini.stats()["calls_received"]
    run = run_agent(cluster, tmp_path, "single_flight")
    assert [r["status"] for r in run["results"]] == ["described"] * 3
    assert sorted(r["cached"] for r in run["results"]) == [False, True, True]
    assert sorted(r["index"] for r in run["results"]) == [0, 1, 2]
    assert gemini.stats()["calls_received"] - calls == 1


def test_no_call_goes_past_the_daily_dollar_cap(cluster, gemini, tmp_path):
    calls = gemini.stats()["calls_received"]
    # one call's most expensive outcome (512 output tokens at $2.50/M) is about $0.0014
    run = run_agent(cluster, tmp_path, "two_pictures", VISION_DAILY_BUDGET_USD="0.0001")
    assert [(r["status"], r["reason"]) for r in run["results"]] == [("failed", "daily_budget_exhausted")] * 2
    assert gemini.stats()["calls_received"] == calls and run["spent_usd"] == 0


def test_a_picture_the_api_rejects_is_sent_failed_and_the_next_one_goes_on(cluster, gemini, tmp_path):
    gemini.control({"enqueue": [{"kind": "error", "code": 400, "status": "INVALID_ARGUMENT",
                                 "message": "Unable to process input image. Please retry or report."}]})
    run = run_agent(cluster, tmp_path, "two_pictures", VISION_MAX_CONCURRENT_PER_CONSUMER="1")
    first, second = run["results"]
    assert (first["status"], first["reason"], first["cost_usd"]) == ("failed", "invalid_image", 0.0)
    assert second["status"] == "described" and run["handed_back"] == 0
