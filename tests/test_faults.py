"""Faults on real parts, each on its own cluster: a killed worker, a restart, the API down, 429s, slow and hung
answers, redelivered events. Whatever happens, every document ends once (checked with docsight.audit)."""

from __future__ import annotations

import asyncio
import time

import pytest

from docsight.audit import audit_broker
from docsight.broker import free_port
from docsight.client import Outcome, document_event, ensure_topics
from docsight.gemini_server import GeminiServerConfig, GeminiServerThread
from docsight.local_cluster import LOCAL_API_KEY, LocalCluster

from cluster_helpers import (collect_outcomes, submit, submit_document, unique_id, unique_markdown_document,
                             wait_for_status)
from conftest import TEST_WORKER_ENV

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

# One docling process per worker: two workers share two cores with the broker and the tests.
FAULT_ENV = {**TEST_WORKER_ENV, "DOCSIGHT_EXTRACTION_PROCESSES": "1"}


@pytest.fixture
def make_cluster(tmp_path):
    """Start a cluster of its own: ``make_cluster(workers=2, env={...}, gemini_config=...)``."""
    clusters: list[LocalCluster] = []

    def start(workers: int = 1, env: dict | None = None, **cluster_options) -> LocalCluster:
        cluster = LocalCluster(tmp_path / f"cluster{len(clusters)}", env={**FAULT_ENV, **(env or {})},
                               **cluster_options)
        clusters.append(cluster)
        cluster.start()
        asyncio.run(ensure_topics(cluster.broker_url, partitions=6))
        for number in range(1, workers + 1):
            cluster.start_worker(f"worker{number}")
        return cluster

    yield start
    for cluster in clusters:
        cluster.stop()


@pytest.fixture
def late_gemini():
    """A local Gemini server started later, on a port fixed now (connection refused until then)."""
    port = free_port()
    servers: list[GeminiServerThread] = []

    def start(**config) -> GeminiServerThread:
        server = GeminiServerThread(GeminiServerConfig(port=port, **config))
        server.start()
        servers.append(server)
        return server

    start.base_url = f"http://127.0.0.1:{port}"
    yield start
    for server in servers:
        server.stop()


def markdown_events(cluster, documents: int, pictures: int, prefix: str) -> list[dict]:
    return [document_event(unique_id(prefix), "tester", unique_markdown_document(cluster.document_root, pictures))
            for _ in range(documents)]


def outcomes_of(cluster, events: list[dict], timeout: float) -> dict[str, Outcome]:
    ids = {event["document_id"] for event in events}
    found = collect_outcomes(cluster, lambda o: o.document_id in ids, count=len(ids), timeout=timeout,
                             distinct_ids=True)
    return {outcome.document_id: outcome for outcome in found}


def audit_of(cluster):
    return asyncio.run(audit_broker(cluster.broker_url, grace_seconds=0))


def wait_until(predicate, timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def test_kill_9_of_one_of_two_workers_mid_flight_loses_and_doubles_nothing(make_cluster):
    cluster = make_cluster(workers=2, gemini_config=GeminiServerConfig(latency_ms=1500))
    events = markdown_events(cluster, documents=8, pictures=3, prefix="kill")
    submit(cluster, events)
    # pictures in flight on the server: the victim dies in the middle of its calls
    assert wait_until(lambda: cluster.gemini.stats()["calls_received"] >= 4, timeout=30)
    cluster.stop_worker("worker2", kill=True)
    assert len(outcomes_of(cluster, events, timeout=0.5)) < len(events), "the kill came too late"

    outcomes = outcomes_of(cluster, events, timeout=90)
    survivor = cluster.workers["worker1"]
    assert len(outcomes) == len(events), survivor.log_tail()
    for outcome in outcomes.values():
        assert outcome.enriched and [p["status"] for p in outcome.value["pictures"]] == ["described"] * 3
    report = audit_of(cluster)
    assert report.lost == 0 and report.doubled_different_content == 0, report.render()
    assert all(report.fates[event["document_id"]] == ["enriched"] for event in events)
    # the survivor now owns every document: the killed worker's table partitions came from the changelog
    for event in events:
        view = wait_for_status(survivor, event["document_id"], "enriched")
        assert view["tokens"]["input"] == outcomes[event["document_id"]].value["input_tokens"]


@pytest.mark.timeout(480)
@pytest.mark.xfail(strict=False, reason=(
    "known, open (issue 11): in 1 of 4 runs one document extracted 0.3 s before the second rebalance never got "
    "its pictures described (not the never-committed-partition loss this test was written for, which is fixed: "
    "docs/offsets.md); kept running so the log of every run shows it"))
def test_a_worker_killed_before_its_first_commit_loses_nothing_to_its_successor(make_cluster):
    """The issue-11 drill in short: the killed worker's partitions have no committed offset yet, and a worker
    that joins takes them over while a busy survivor rebalances. Before docsight.broker.faust_transport the
    successor never read the records Faust had dropped during the rebalance (documents stranded for good)."""
    cluster = make_cluster(workers=2, env={"VISION_RATE_LIMIT_PER_MINUTE": "300"},
                           gemini_config=GeminiServerConfig(rpm=300, latency_ms=400, jitter_ms=200, seed=11))
    events = markdown_events(cluster, documents=30, pictures=2, prefix="takeover")
    submit(cluster, events)
    time.sleep(3)  # the victim has fetched its share and committed nothing on most partitions
    cluster.stop_worker("worker2", kill=True)
    cluster.start_worker("worker3")

    outcomes = outcomes_of(cluster, events, timeout=240)
    assert len(outcomes) == len(events), cluster.workers["worker3"].log_tail()
    assert all(outcome.enriched for outcome in outcomes.values())
    report = audit_of(cluster)
    assert report.lost == 0 and report.doubled_different_content == 0, report.render()


def test_a_restarted_worker_keeps_its_state_and_goes_on(make_cluster):
    cluster = make_cluster(workers=1)
    earlier = submit_document(cluster, unique_markdown_document(cluster.document_root, 2), prefix="before")
    view_before = wait_for_status(cluster.workers["worker1"], earlier.document_id, "enriched")
    data_dir = cluster.workers["worker1"].data_dir
    cluster.stop_worker("worker1")  # SIGTERM: a graceful stop
    assert any((data_dir / "faust").rglob("*.sst")) or any((data_dir / "faust").rglob("CURRENT")), \
        "the RocksDB tables should be on disk"

    worker = cluster.start_worker("worker1")  # the same name: the same data dir
    assert worker.data_dir == data_dir
    assert wait_for_status(worker, earlier.document_id, "enriched") == view_before
    later = submit_document(cluster, unique_markdown_document(cluster.document_root, 2), prefix="after")
    assert later.enriched and all(p["status"] == "described" for p in later.value["pictures"])
    # recovery trusted the persisted offsets (the embedded broker's end-offset workaround holds)
    assert "ConsistencyError" not in worker.log_path.read_text(errors="replace")
    report = audit_of(cluster)
    assert report.ok and report.enriched == 2 and report.reemitted_same_content == 0, report.render()


FAST_OUTAGE_ENV = {
    "VISION_RETRY_DEADLINE_SECONDS": "3",
    "VISION_FAIL_OVER_AFTER_SECONDS": "2",
    "VISION_BREAKER_FAILURES": "2",
    "VISION_BREAKER_OPEN_SECONDS": "1",
}


def test_api_down_past_the_deadline_fails_over_with_the_reason(make_cluster, late_gemini):
    cluster = make_cluster(env={**FAST_OUTAGE_ENV, "VISION_ON_API_UNAVAILABLE": "fail_over"},
                           gemini_base_url=late_gemini.base_url, gemini_api_key=LOCAL_API_KEY)
    # connection refused: nothing listens on the API's port
    refused = submit_document(cluster, unique_markdown_document(cluster.document_root, 2), prefix="refused",
                              timeout=60)
    assert refused.enriched
    for picture in refused.value["pictures"]:
        assert picture["status"] == "failed"
        assert picture["reason"] in ("api_unavailable", "retry_deadline_exceeded: connection_error"), picture
        assert f"Description unavailable: {picture['reason']}." in refused.value["markdown"]

    # then the API answers, but with 503s
    server = late_gemini(down=True)
    overloaded = submit_document(cluster, unique_markdown_document(cluster.document_root, 2), prefix="overloaded",
                                 timeout=60)
    assert overloaded.enriched
    assert {p["status"] for p in overloaded.value["pictures"]} == {"failed"}
    assert {p["reason"] for p in overloaded.value["pictures"]} <= {
        "api_unavailable", "retry_deadline_exceeded: server_error"}
    assert server.stats()["errors_by_code"].get("503", 0) >= 1  # the breaker's probes found it overloaded

    # back: after the breaker's open period a probe succeeds and pictures are described again
    server.control({"down": False})
    time.sleep(1.5)
    back = submit_document(cluster, unique_markdown_document(cluster.document_root, 1), prefix="back", timeout=60)
    assert [p["status"] for p in back.value["pictures"]] == ["described"]
    report = audit_of(cluster)
    assert report.ok and report.enriched == 3, report.render()


def test_api_down_past_the_deadline_waits_and_describes_after_recovery(make_cluster, late_gemini):
    cluster = make_cluster(env={**FAST_OUTAGE_ENV, "VISION_ON_API_UNAVAILABLE": "wait"},
                           gemini_base_url=late_gemini.base_url, gemini_api_key=LOCAL_API_KEY)
    events = markdown_events(cluster, documents=2, pictures=2, prefix="waiting")
    submit(cluster, events)
    time.sleep(5)  # connection refused for longer than the 3 s retry deadline
    server = late_gemini(down=True)
    time.sleep(3)  # then 503s, to the breaker's probes
    assert wait_until(lambda: server.stats()["errors_by_code"].get("503", 0) >= 1, timeout=20)
    assert outcomes_of(cluster, events, timeout=0.5) == {}, "nothing may complete while the API is down"
    for event in events:
        assert wait_for_status(cluster.workers["worker1"], event["document_id"], "describing")

    server.control({"down": False})
    outcomes = outcomes_of(cluster, events, timeout=60)
    assert len(outcomes) == len(events), cluster.workers["worker1"].log_tail()
    for outcome in outcomes.values():
        assert [p["status"] for p in outcome.value["pictures"]] == ["described", "described"]
    assert server.stats()["calls_ok"] == 4
    assert audit_of(cluster).ok


def test_429_storm_slow_and_hung_answers_are_retried_until_described(make_cluster):
    cluster = make_cluster(env={"VISION_REQUEST_TIMEOUT_SECONDS": "1.5", "VISION_BREAKER_OPEN_SECONDS": "1"})
    gemini = cluster.gemini
    root = cluster.document_root

    # a 429 storm with RetryInfo: the worker waits the retryDelay each time
    gemini.control({"enqueue": [{"kind": "429", "retry_delay_s": 0.5, "quota": "rpm", "count": 12}]})
    before = gemini.stats()
    storm = submit_document(cluster, unique_markdown_document(root, 3), prefix="storm", timeout=90)
    after = gemini.stats()
    assert [p["status"] for p in storm.value["pictures"]] == ["described"] * 3
    assert after["calls_429"] - before["calls_429"] == 12
    assert after["calls_received"] - before["calls_received"] == 12 + 3

    # answers slower than the client's timeout: timed out, retried, described once the API is fast again
    gemini.control({"latency_ms": 2500})
    before = gemini.stats()
    submit(cluster, [slow := document_event(unique_id("slow"), "tester", unique_markdown_document(root, 2))])
    assert wait_until(lambda: gemini.stats()["calls_received"] - before["calls_received"] >= 3, timeout=30)
    gemini.control({"latency_ms": 0})
    slow_outcome = outcomes_of(cluster, [slow], timeout=60)[slow["document_id"]]
    assert [p["status"] for p in slow_outcome.value["pictures"]] == ["described"] * 2
    assert gemini.stats()["calls_received"] - before["calls_received"] > 2  # the retries reached the server

    # answers that never come (the server holds the connection): timed out and retried
    gemini.control({"enqueue": [{"kind": "hang", "seconds": 30, "count": 3}]})
    before = gemini.stats()
    hung = submit_document(cluster, unique_markdown_document(root, 2), prefix="hung", timeout=90)
    assert [p["status"] for p in hung.value["pictures"]] == ["described"] * 2
    assert gemini.stats()["calls_received"] - before["calls_received"] == 3 + 2

    report = audit_of(cluster)
    assert report.ok and report.enriched == 3 and report.reemitted_same_content == 0, report.render()


REPLAYED_TOPICS = ("document-received", "docsight-document-submissions", "docsight-picture-requests",
                   "docsight-document-updates")


def test_redelivered_events_count_nothing_twice_and_emit_nothing_again(make_cluster):
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
    from aiokafka.structs import OffsetAndMetadata

    cluster = make_cluster(workers=1)
    worker = cluster.workers["worker1"]
    done = submit_document(cluster, unique_markdown_document(cluster.document_root, 2), prefix="replayed")
    document_id = done.document_id
    view = wait_for_status(worker, document_id, "enriched")
    calls = cluster.gemini.stats()["calls_received"]

    async def records_of_the_document():
        consumer = AIOKafkaConsumer(*REPLAYED_TOPICS, bootstrap_servers=cluster.broker.bootstrap_servers,
                                    group_id=None, auto_offset_reset="earliest", enable_auto_commit=False)
        await consumer.start()
        found = []
        try:
            while batches := await consumer.getmany(timeout_ms=1000):
                for records in batches.values():
                    found += [r for r in records if document_id.encode() in (r.value or b"")]
        finally:
            await consumer.stop()
        return found

    replay = asyncio.run(records_of_the_document())
    assert {r.topic for r in replay} == set(REPLAYED_TOPICS)

    async def produce_again(records):
        producer = AIOKafkaProducer(bootstrap_servers=cluster.broker.bootstrap_servers)
        await producer.start()
        try:
            for record in records:
                await producer.send_and_wait(record.topic, record.value, key=record.key)
        finally:
            await producer.stop()

    # 1. the internal events sent again while the worker runs (a producer retry, a re-run agent)
    asyncio.run(produce_again([r for r in replay if r.topic != "document-received"]))
    time.sleep(4)
    assert wait_for_status(worker, document_id, "enriched") == view

    # 2. true redelivery: the consumer group's offsets go back before the document, as after a crash
    cluster.stop_worker("worker1")

    async def rewind():
        first = {}
        for record in replay:
            tp = TopicPartition(record.topic, record.partition)
            first[tp] = min(first.get(tp, record.offset), record.offset)
        # Tansu refuses commits from outside the group and keeps the stopped worker as a member until a join
        # evicts it: join with Faust's protocol name (about 18 s) and commit as the group's only member
        from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor

        class SameProtocolAsFaust(RoundRobinPartitionAssignor):
            name = "faust"

        consumer = AIOKafkaConsumer(*REPLAYED_TOPICS, bootstrap_servers=cluster.broker.bootstrap_servers,
                                    group_id="docsight", enable_auto_commit=False,
                                    partition_assignment_strategy=(SameProtocolAsFaust,),
                                    rebalance_timeout_ms=1000, session_timeout_ms=10000, heartbeat_interval_ms=1000)
        await consumer.start()
        try:
            while not set(first) <= consumer.assignment():
                await consumer.getmany(timeout_ms=200, max_records=1)
            await consumer.commit({tp: OffsetAndMetadata(offset, "") for tp, offset in first.items()})
            return {tp: await consumer.committed(tp) for tp in first}
        finally:
            await consumer.stop()

    committed = asyncio.run(rewind())
    assert all(offset is not None for offset in committed.values())
    worker = cluster.start_worker("worker1")
    # the document went through extraction again: the redelivery really happened
    assert wait_until(lambda: worker.log_path.read_text(errors="replace").count(f"document {document_id} extracted")
                      >= 2, timeout=30), worker.log_tail()
    time.sleep(4)  # its pictures and updates come round again in milliseconds

    assert wait_for_status(worker, document_id, "enriched") == view  # tokens, pictures, timestamps unchanged
    assert cluster.gemini.stats()["calls_received"] == calls  # described from the cache, not paid twice
    outputs = collect_outcomes(cluster, lambda o: o.document_id == document_id, count=2, timeout=3)
    assert len(outputs) == 1 and outputs[0].enriched
    report = audit_of(cluster)
    assert report.fates[document_id] == ["enriched"] and report.reemitted_same_content == 0, report.render()
