"""Several workers, one API budget: roles, batch mode and a small quota held across the cluster."""

from __future__ import annotations

import asyncio

import pytest

from cluster_helpers import submit_and_wait, unique_id, unique_markdown_document
from conftest import TEST_WORKER_ENV
from docsight.client import document_event, ensure_topics
from docsight.gemini_server import GeminiServerConfig
from docsight.local_cluster import LocalCluster

pytestmark = pytest.mark.cluster


def start_cluster(tmp_path, gemini_config=None, **env) -> LocalCluster:
    cluster = LocalCluster(tmp_path, env={**TEST_WORKER_ENV, **env}, gemini_config=gemini_config).start()
    asyncio.run(ensure_topics(cluster.broker_url, partitions=6))
    return cluster


def test_vision_workers_scale_apart_from_ingest_workers_in_batch_mode(tmp_path):
    with start_cluster(tmp_path) as cluster:
        cluster.start_worker("ingest", DOCSIGHT_ROLE="ingest")
        vision = cluster.start_worker("vision", DOCSIGHT_ROLE="vision", VISION_ENABLE_BATCH_PROCESSING="true",
                                      VISION_BATCH_SIZE="4")
        document_id = unique_id("roles")
        location = unique_markdown_document(cluster.document_root, 6)
        outcome = submit_and_wait(cluster, [document_event(document_id, "tester", location)])[document_id]

        assert outcome.enriched
        assert [p["status"] for p in outcome.value["pictures"]] == ["described"] * 6
        assert cluster.gemini.stats()["calls_ok"] == 6
        status, stats = vision.get_json("/stats")
        assert stats["role"] == "vision" and stats["budget"]["share_fraction"] == 1.0
        # the vision worker owns no document state: its group consumes only pictures
        assert vision.get_json("/documents/" + document_id)[0] == 404


def test_two_workers_stay_inside_a_small_quota_together(tmp_path):
    # The server allows 12 calls per 3 s window; the cluster budget is 200/min = 10 per 3 s,
    # split between the workers by their picture partitions (0.95 safety factor on top).
    quota = GeminiServerConfig(rpm=12, window_seconds=3.0, latency_ms=50)
    with start_cluster(tmp_path, gemini_config=quota, VISION_RATE_LIMIT_PER_MINUTE="200") as cluster:
        first = cluster.start_worker("worker1")
        second = cluster.start_worker("worker2")
        cluster.wait_ready(first)
        events = [document_event(unique_id("quota"), "tester", unique_markdown_document(cluster.document_root, 5))
                  for _ in range(8)]
        outcomes = submit_and_wait(cluster, events, timeout=120)

        assert len(outcomes) == 8 and all(o.enriched for o in outcomes.values())
        assert all(p["status"] == "described" for o in outcomes.values() for p in o.value["pictures"])
        stats = cluster.gemini.stats()
        assert stats["calls_ok"] == 40
        assert stats["calls_429"] == 0
        assert stats["busiest_window"] <= 12
        shares = [worker.get_json("/stats")[1]["budget"]["share_fraction"] for worker in (first, second)]
        assert sum(shares) == pytest.approx(1.0) and all(0 < share < 1 for share in shares)
        # either worker answers for any document: the view is routed to the owner of its partition
        for document_id in outcomes:
            for worker in (first, second):
                status, body = worker.get_json(f"/documents/{document_id}")
                assert (status, body.get("status")) == (200, "enriched"), (worker.name, document_id, body)


def test_the_budget_changes_at_runtime_on_every_worker(tmp_path):
    import os
    import subprocess
    import sys
    import time

    with start_cluster(tmp_path, VISION_RATE_LIMIT_PER_MINUTE="100") as cluster:
        workers = [cluster.start_worker("worker1"), cluster.start_worker("worker2")]

        def cluster_rate():
            return sum(w.get_json("/stats")[1]["budget"]["share_requests_per_minute"] for w in workers)

        deadline = time.monotonic() + 30
        while abs(cluster_rate() - 95) > 0.01 and time.monotonic() < deadline:
            time.sleep(0.5)  # until the second worker's rebalance settles
        assert cluster_rate() == pytest.approx(95)  # 100/min x 0.95 safety factor, split by partitions
        result = subprocess.run(
            [sys.executable, "-m", "docsight", "control", "budget", "--rpm", "400"],
            env={**os.environ, "DOCSIGHT_BROKER_URL": cluster.broker_url}, capture_output=True, text=True,
            timeout=60)
        assert result.returncode == 0, result.stderr
        sent = time.monotonic()
        while abs(cluster_rate() - 380) > 0.01 and time.monotonic() < sent + 60:
            time.sleep(0.5)
        assert cluster_rate() == pytest.approx(380)
        print(f"new budget applied on every worker after {time.monotonic() - sent:.1f} s")


def test_calls_stop_when_the_daily_spend_reaches_the_cap(tmp_path):
    # about $0.0007 a picture on gemini-2.5-flash: the first document spends the cap
    with start_cluster(tmp_path, VISION_DAILY_BUDGET_USD="0.0001") as cluster:
        cluster.start_worker("worker1")
        first, second = (document_event(unique_id("cap"), "tester", unique_markdown_document(cluster.document_root, 1))
                         for _ in range(2))
        spent = submit_and_wait(cluster, [first])[first["document_id"]]
        assert spent.value["pictures"][0]["status"] == "described" and spent.value["cost_usd"] > 0.0001
        calls = cluster.gemini.stats()["calls_received"]

        capped = submit_and_wait(cluster, [second])[second["document_id"]]

        assert capped.enriched  # the document still completes
        picture = capped.value["pictures"][0]
        assert (picture["status"], picture["reason"]) == ("failed", "daily_budget_exhausted")
        assert "Description unavailable: daily_budget_exhausted" in capped.value["markdown"]
        assert cluster.gemini.stats()["calls_received"] == calls
