"""The aggregate on real parts: the one place outcomes leave, errors that end in document-failed, and a
2,000-picture document (bounded state per update, outcome by reference) with the caps off."""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
import time

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from docsight.client import document_event, ensure_topics
from docsight.local_cluster import LocalCluster
from docsight.streams.records import DocumentUpdate

from cluster_helpers import (collect_outcomes, submit_and_wait, submit_document, unique_id, unique_markdown_document,
                             wait_for_status)
from conftest import TEST_WORKER_ENV

pytestmark = pytest.mark.cluster

UPDATES_TOPIC = "docsight-document-updates"
SUBMISSIONS_TOPIC = "docsight-document-submissions"
BROKER_MESSAGE_LIMIT = 1_000_000


def produce(cluster, records: list[tuple[str, str, bytes]]) -> None:
    """(topic, key, value) records, as any producer (or a redelivery) would send them."""

    async def run():
        producer = AIOKafkaProducer(bootstrap_servers=cluster.broker.bootstrap_servers)
        await producer.start()
        try:
            for topic, key, value in records:
                await producer.send_and_wait(topic, value, key=key.encode())
        finally:
            await producer.stop()

    asyncio.run(run())


def records_of(cluster, topic: str, key: str) -> list:
    async def run():
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=cluster.broker.bootstrap_servers, group_id=None,
                                    auto_offset_reset="earliest", enable_auto_commit=False)
        await consumer.start()
        found = []
        try:
            while batches := await consumer.getmany(timeout_ms=1000):
                for records in batches.values():
                    found += [r for r in records if r.key == key.encode()]
        finally:
            await consumer.stop()
        return found

    return asyncio.run(run())


def wait_for_log(worker, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in worker.log_path.read_text(errors="replace"):
            return
        time.sleep(0.2)
    raise AssertionError(f"{text!r} not in the worker's log:\n{worker.log_tail()}")


def test_an_error_while_aggregating_ends_the_document_in_document_failed(cluster, gemini):
    # A manifest whose markdown is not in the blob store: rendering the complete document raises.
    # Faust would ack the update in silence (faust-streaming #527); the document must fail instead.
    document_id = unique_id("aggerror")
    original = json.dumps(document_event(document_id, "tester", "nowhere.md"))
    updates = [
        DocumentUpdate(kind="received", document_id=document_id, at=time.time(), user_id="tester",
                       location="nowhere.md", original=original),
        DocumentUpdate(kind="manifest", document_id=document_id, at=time.time(), user_id="tester",
                       location="nowhere.md", format="md", markdown_ref="0" * 64, pictures=[]),
    ]
    produce(cluster, [(UPDATES_TOPIC, document_id, update.dumps()) for update in updates])

    outcomes = collect_outcomes(cluster, lambda o: o.document_id == document_id, count=1, timeout=30)
    assert [o.topic for o in outcomes] == ["document-failed"]
    failure = outcomes[0].value
    assert (failure["stage"], failure["reason"]) == ("aggregation", "aggregation_error")
    assert "BlobNotFound" in failure["message"] and failure["original"] == original
    view = wait_for_status(cluster.workers["worker1"], document_id, "failed")
    assert view["failure"]["stage"] == "aggregation"
    # a redelivery of the same updates changes nothing and emits nothing more
    produce(cluster, [(UPDATES_TOPIC, document_id, update.dumps()) for update in updates])
    time.sleep(3)
    assert len(collect_outcomes(cluster, lambda o: o.document_id == document_id, count=2, timeout=3)) == 1


def test_an_extraction_failure_after_enrichment_emits_nothing(cluster, gemini):
    # the submission is redelivered after the document was enriched, and its file has gone since:
    # extraction fails, but the document already left enriched, so no document-failed follows
    location = unique_markdown_document(cluster.document_root, 1)
    outcome = submit_document(cluster, location, prefix="gone")
    assert outcome.enriched
    document_id = outcome.document_id
    worker = cluster.workers["worker1"]
    view = wait_for_status(worker, document_id, "enriched")
    (cluster.document_root / location).unlink()

    submission = records_of(cluster, SUBMISSIONS_TOPIC, document_id)
    assert len(submission) == 1
    produce(cluster, [(SUBMISSIONS_TOPIC, document_id, submission[0].value)])  # same source: a redelivery
    wait_for_log(worker, f"document {document_id} failing at extraction: not_found", timeout=30)
    time.sleep(2)  # the failed update reaches the aggregate in milliseconds

    outputs = collect_outcomes(cluster, lambda o: o.document_id == document_id, count=2, timeout=3)
    assert [o.topic for o in outputs] == ["document-enriched"]
    assert wait_for_status(worker, document_id, "enriched") == view


# --- a document of 2,000 pictures, caps off ------------------------------------------------------------------

MANY_PICTURES = 2000
MANY_PICTURES_ENV = {
    **TEST_WORKER_ENV,
    "VISION_MAX_IMAGES_PER_DOCUMENT": "0",
    "VISION_SKIP_IF_TOO_MANY_IMAGES": "0",
    # the local server answers in milliseconds: let the budget and concurrency not be what takes the time
    "VISION_RATE_LIMIT_PER_MINUTE": "120000",
    "VISION_MAX_CONCURRENT_PER_CONSUMER": "16",
    "DOCSIGHT_EXTRACTION_PROCESSES": "1",
}


def many_pictures_document(document_root, pictures: int) -> str:
    """Markdown with ``pictures`` tiny distinct pictures (64x48 noise: above the decorative thresholds)."""
    from PIL import Image

    name = unique_id("many")
    folder = document_root / name
    folder.mkdir()
    lines = [f"# {pictures} pictures", ""]
    for number in range(pictures):
        buffer = io.BytesIO()
        Image.frombytes("RGB", (64, 48), os.urandom(64 * 48 * 3)).save(buffer, "PNG")
        (folder / f"p{number}.png").write_bytes(buffer.getvalue())
        lines += [f"![Figure {number}](p{number}.png)", ""]
    (folder / "doc.md").write_text("\n".join(lines))
    return f"{name}/doc.md"


@pytest.fixture
def many_pictures_cluster(tmp_path):
    with LocalCluster(tmp_path / "cluster", env=MANY_PICTURES_ENV) as running:
        asyncio.run(ensure_topics(running.broker_url, partitions=6))
        running.start_worker("worker1")
        yield running


@pytest.mark.slow
def test_a_document_of_2000_pictures_completes_with_the_caps_off(many_pictures_cluster, tmp_path):
    cluster = many_pictures_cluster
    location = many_pictures_document(cluster.document_root, MANY_PICTURES)
    document_id = unique_id("many")
    started = time.monotonic()
    outcomes = submit_and_wait(cluster, [document_event(document_id, "tester", location)], timeout=150)
    elapsed = time.monotonic() - started
    assert document_id in outcomes, f"no outcome after {elapsed:.0f}s:\n{cluster.workers['worker1'].log_tail()}"
    enriched = outcomes[document_id]
    assert enriched.enriched, enriched.value

    # read in full through the blob store: every picture described, each description at its picture
    value = enriched.value
    assert len(value["pictures"]) == MANY_PICTURES
    assert all(p["status"] == "described" for p in value["pictures"])
    position = 0
    for picture in value["pictures"]:
        position = value["markdown"].index(picture["description"], position)

    # on the broker it travelled whole by reference: too large to go inline
    raw = collect_outcomes(cluster, lambda o: o.document_id == document_id, count=1, timeout=10)[0].value
    assert raw["outcome_ref"] and raw["markdown"] is None and raw["pictures"] is None
    assert len(json.dumps(raw)) < 10_000
    assert len(cluster.store_dir.joinpath(raw["outcome_ref"][:2], raw["outcome_ref"]).read_bytes()) \
        > BROKER_MESSAGE_LIMIT

    view = wait_for_status(cluster.workers["worker1"], document_id, "enriched")
    assert view["pictures"]["expected"] == view["pictures"]["described"] == MANY_PICTURES
    assert view["tokens"]["input"] == value["input_tokens"]

    # docsight results follows the reference too
    env = {key: val for key, val in os.environ.items() if not key.startswith(("DOCSIGHT_", "VISION_", "GEMINI_"))}
    env.update({"DOCSIGHT_BROKER_URL": cluster.broker_url, "DOCSIGHT_STORE_DIR": str(cluster.store_dir)})
    result = subprocess.run([sys.executable, "-m", "docsight", "results", document_id, "--output", str(tmp_path)],
                            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result
    assert f"{MANY_PICTURES} of {MANY_PICTURES} pictures described" in result.stdout
    assert (tmp_path / "doc.md.md").read_text() == value["markdown"]
    assert len(json.loads((tmp_path / "doc.md.json").read_text())["pictures"]) == MANY_PICTURES
