"""Several workers, one API budget, on real workers: small quotas through rebalances, the day's requests
and dollars across restarts, runtime changes, and ``VISION_ON_API_UNAVAILABLE=wait`` with a resume.

Quotas are the size a real project has (ten calls a window), over short windows so a run takes seconds.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import urllib.request

import pytest

from cluster_helpers import collect_outcomes, submit, submit_and_wait, unique_id, unique_markdown_document
from conftest import TEST_WORKER_ENV
from docsight.client import document_event, ensure_topics
from docsight.gemini_server import GeminiServerConfig
from docsight.local_cluster import LOCAL_API_KEY, LocalCluster

pytestmark = pytest.mark.cluster


def start_cluster(tmp_path, gemini_config=None, **env) -> LocalCluster:
    cluster = LocalCluster(tmp_path, env={**TEST_WORKER_ENV, **env}, gemini_config=gemini_config).start()
    asyncio.run(ensure_topics(cluster.broker_url, partitions=6))
    return cluster


def documents(cluster, count: int, pictures: int, prefix: str) -> list[dict]:
    return [document_event(unique_id(prefix), "tester", unique_markdown_document(cluster.document_root, pictures))
            for _ in range(count)]


def outcomes_of(cluster, events, timeout):
    ids = {event["document_id"] for event in events}
    found = collect_outcomes(cluster, lambda o: o.document_id in ids, count=len(ids), timeout=timeout,
                             distinct_ids=True)
    return {outcome.document_id: outcome for outcome in found}


def docsight_cli(cluster, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "docsight", *args],
                          env={**os.environ, "DOCSIGHT_BROKER_URL": cluster.broker_url},
                          capture_output=True, text=True, timeout=60)


def metric(worker, name: str, **labels) -> float | None:
    with urllib.request.urlopen(worker.url + "/metrics", timeout=5) as response:
        body = response.read().decode()
    wanted = name + ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else "")
    for line in body.splitlines():
        if line.startswith(wanted + " "):
            return float(line.split()[-1])
    return None


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


def test_ten_calls_a_window_hold_through_a_join_and_a_kill(tmp_path):
    # The server allows 10 calls per 4 s window; so does the cluster budget (150/min over 4 s windows),
    # with no headroom: only the budget's arithmetic keeps it at or under 10.
    quota = GeminiServerConfig(rpm=10, window_seconds=4.0, latency_ms=300, jitter_ms=100, seed=3)
    env = {"VISION_RATE_LIMIT_PER_MINUTE": "150", "VISION_QUOTA_WINDOW_SECONDS": "4"}
    with start_cluster(tmp_path, gemini_config=quota, **env) as cluster:
        first, second = cluster.start_worker("worker1"), cluster.start_worker("worker2")
        cluster.wait_ready(first)
        events = documents(cluster, 10, 5, "small-quota")
        submit(cluster, events)
        time.sleep(8)
        cluster.start_worker("worker3")  # a join: partitions move to it
        time.sleep(6)
        cluster.stop_worker("worker2", kill=True)  # SIGKILL with calls in flight
        outcomes = outcomes_of(cluster, events, timeout=180)

        assert len(outcomes) == len(events)
        assert all(p["status"] == "described" for o in outcomes.values() for p in o.value["pictures"])
        stats = cluster.gemini.stats()
        assert stats["calls_429"] == 0 and stats["busiest_window"] <= 10, stats
        # 50 pictures; a call the SIGKILLed worker had under way may be answered and then lost with it, so
        # its successor describes that picture again (at least once): at most its calls in flight more
        assert 50 <= stats["calls_ok"] <= 50 + 5, stats


def test_the_budget_changes_at_runtime_on_every_worker(tmp_path):
    with start_cluster(tmp_path, VISION_RATE_LIMIT_PER_MINUTE="100", VISION_QUOTA_WINDOW_SECONDS="60") as cluster:
        workers = [cluster.start_worker("worker1"), cluster.start_worker("worker2")]

        def cluster_rate():
            return sum(w.get_json("/stats")[1]["budget"]["share_requests_per_minute"] for w in workers)

        deadline = time.monotonic() + 30
        while cluster_rate() != 100 and time.monotonic() < deadline:
            time.sleep(0.5)  # until the second worker's rebalance settles
        assert cluster_rate() == 100  # whole calls per partition, adding up to the budget
        result = docsight_cli(cluster, "control", "budget", "--rpm", "400")
        assert result.returncode == 0, result.stderr
        sent = time.monotonic()
        while cluster_rate() != 400 and time.monotonic() < sent + 60:
            time.sleep(0.5)
        assert cluster_rate() == 400
        print(f"new budget applied on every worker after {time.monotonic() - sent:.1f} s")


def test_the_days_requests_survive_a_crash_and_a_restart_starts_from_the_days_total(tmp_path):
    with start_cluster(tmp_path, VISION_REQUESTS_PER_DAY="4") as cluster:
        cluster.start_worker("worker1")
        before = documents(cluster, 1, 3, "day")
        assert all(p["status"] == "described" for p in submit_and_wait(cluster, before)[
            before[0]["document_id"]].value["pictures"])
        cluster.stop_worker("worker1", kill=True)  # a crash: nothing given back, nothing forgotten
        worker = cluster.start_worker("worker1")
        after = documents(cluster, 1, 3, "day")
        outcome = submit_and_wait(cluster, after)[after[0]["document_id"]]

        statuses = sorted((p["status"], p["reason"]) for p in outcome.value["pictures"])
        assert statuses == [("described", "")] + [("failed", "daily_request_budget_exhausted")] * 2
        assert cluster.gemini.stats()["calls_received"] == 4
        status, stats = worker.get_json("/stats")
        assert stats["budget"]["calls_admitted"] == 1  # the new incarnation made one call, the day four


def test_the_daily_dollar_cap_holds_across_a_restart(tmp_path):
    # a call costs ~$0.0002 and may cost up to ~$0.0014 (every output token used): it goes only if that fits
    cap = 0.004
    with start_cluster(tmp_path, VISION_DAILY_BUDGET_USD=str(cap)) as cluster:
        cluster.start_worker("worker1")
        first = documents(cluster, 1, 8, "usd")
        spent = submit_and_wait(cluster, first)[first[0]["document_id"]]
        cluster.stop_worker("worker1")  # SIGTERM: gives back what it reserved and did not spend
        cluster.start_worker("worker1")
        second = documents(cluster, 1, 8, "usd")
        more = submit_and_wait(cluster, second)[second[0]["document_id"]]

        pictures = spent.value["pictures"] + more.value["pictures"]
        described = [p for p in pictures if p["status"] == "described"]
        assert described and any(p["reason"] == "daily_budget_exhausted" for p in pictures)
        assert sum(p["cost_usd"] for p in pictures) <= cap
        assert cluster.gemini.stats()["calls_received"] == len(described)


def test_wait_holds_documents_for_an_invalid_key_until_docsight_control_resume(tmp_path):
    config = GeminiServerConfig(api_keys=frozenset({"the-new-key"}))
    with start_cluster(tmp_path, gemini_config=config, VISION_ON_API_UNAVAILABLE="wait") as cluster:
        worker = cluster.start_worker("worker1")
        events = documents(cluster, 1, 2, "held")
        submit(cluster, events)
        deadline = time.monotonic() + 30
        while metric(worker, "docsight_vision_blocked", reason="invalid_api_key") != 1.0:
            assert time.monotonic() < deadline, worker.log_tail()
            time.sleep(0.5)
        assert not outcomes_of(cluster, events, timeout=3)  # held, not failed
        assert "picture description held: invalid_api_key" in worker.log_path.read_text()

        cluster.gemini.control({"api_keys": ["the-new-key", LOCAL_API_KEY]})  # the key is enabled again
        result = docsight_cli(cluster, "control", "resume")
        assert result.returncode == 0, result.stderr
        outcome = outcomes_of(cluster, events, timeout=60)[events[0]["document_id"]]

        assert [p["status"] for p in outcome.value["pictures"]] == ["described"] * 2
        assert metric(worker, "docsight_vision_blocked", reason="invalid_api_key") == 0.0
