"""End to end on real parts: Tansu, docling in worker processes, the SDK against the local Gemini server."""

from __future__ import annotations

import json
import time

import pytest

from docsight.client import document_event
from docsight.cost import fit_within
from docsight.extraction import ExtractionLimits, extract_document
from docsight.storage import BlobStore

from cluster_helpers import (submit_and_wait, submit_document, unique_id, unique_markdown_document,
                             wait_for_status)
from conftest import SAMPLES

pytestmark = pytest.mark.cluster

SAMPLE_FILES = ["annual_report.pdf", "product_brief.docx", "quarterly_review.pptx", "field_notes.html",
                "sales_data.xlsx", "team_update.md"]


@pytest.mark.parametrize("name", SAMPLE_FILES)
def test_every_format_is_enriched_with_a_description_at_every_picture(cluster, gemini, tmp_path, name):
    expected = extract_document(SAMPLES / name, None, BlobStore(tmp_path), ExtractionLimits())
    assert expected.pictures, f"sample {name} should have pictures"

    outcome = submit_document(cluster, name, prefix=name.split(".")[0])

    assert outcome.enriched, outcome.value
    enriched = outcome.value
    assert enriched["format"] == expected.format
    assert [p["sha256"] for p in enriched["pictures"]] == [p.sha256 for p in expected.pictures]
    markdown = enriched["markdown"]
    position = 0
    for picture, extracted in zip(enriched["pictures"], expected.pictures):
        assert picture["status"] == "described", picture
        # the local server describes what it got: the picture's own size, or its downscaled size
        width, height = fit_within(extracted.width, extracted.height, 768)
        assert f"{width}x{height}" in picture["description"]
        # ... and the description sits in the markdown at its picture, in reading order
        found = markdown.find(picture["description"], position)
        assert found >= position, f"picture {picture['index']} out of place"
        position = found
    fresh = [p for p in enriched["pictures"] if not p["cached"]]
    assert enriched["input_tokens"] >= 258 * len(fresh)
    assert (enriched["cost_usd"] > 0) == bool(fresh)
    # the text of the document is still there around the descriptions
    for segment in expected.segments:
        for line in (line.strip() for line in segment.splitlines()):
            if len(line) > 30:
                assert line in markdown
                break


def test_a_document_without_pictures_completes_at_once(cluster, gemini):
    calls_before = gemini.stats()["calls_received"]
    outcome = submit_document(cluster, "memo_no_pictures.docx", prefix="memo")
    assert outcome.enriched and outcome.value["pictures"] == []
    assert outcome.value["markdown"].strip()
    assert gemini.stats()["calls_received"] == calls_before


def test_status_view_reports_the_document(cluster, gemini):
    outcome = submit_document(cluster, "product_brief.docx", prefix="status")
    body = wait_for_status(cluster.workers["worker1"], outcome.document_id, "enriched")
    assert body["pictures"]["expected"] == len(outcome.value["pictures"])
    assert body["pictures"]["described"] == body["pictures"]["expected"]
    assert body["tokens"]["input"] == outcome.value["input_tokens"]
    assert body["completed_at"] >= body["received_at"]
    status, body = cluster.workers["worker1"].get_json("/documents/no-such-document")
    assert status == 404 and "unknown document" in body["error"]


def test_malformed_events_go_to_document_failed_and_the_worker_keeps_running(cluster, gemini):
    bad_json_key = unique_id("badjson")
    missing_field_id = unique_id("missing")
    outcomes = submit_and_wait(
        cluster,
        raw=[(bad_json_key, b"{this is not json"),
             (missing_field_id, json.dumps({"document_id": missing_field_id, "location": "x.pdf"}).encode())],
        expect={None, missing_field_id}, timeout=60)
    assert outcomes[missing_field_id].value["reason"] == "missing_field"
    assert "user_id" in outcomes[missing_field_id].value["message"]
    unparsable = outcomes[None].value
    assert unparsable["stage"] == "validation" and unparsable["reason"] == "invalid_json"
    assert unparsable["original"] == "{this is not json"
    # still running: a good document goes through afterwards
    assert submit_document(cluster, "team_update.md", prefix="after-bad").enriched


@pytest.mark.parametrize("location, reason", [
    ("missing.pdf", "not_found"),
    ("../../etc/passwd", "outside_root"),
])
def test_unreadable_documents_fail_with_a_reason(cluster, gemini, location, reason):
    outcome = submit_document(cluster, location, prefix="unreadable")
    assert not outcome.enriched
    assert outcome.value["stage"] == "extraction" and outcome.value["reason"] == reason
    assert json.loads(outcome.value["original"])["location"] == location
    body = wait_for_status(cluster.workers["worker1"], outcome.document_id, "failed")
    assert body["failure"]["reason"] == reason


def test_a_picture_the_api_rejects_is_marked_failed_and_the_document_completes(cluster, gemini):
    # the first call is answered 400 "Unable to process input image", like the real API does
    gemini.control({"enqueue": [{"kind": "error", "code": 400, "status": "INVALID_ARGUMENT",
                                 "message": "Unable to process input image. Please retry or report."}]})
    outcome = submit_document(cluster, unique_markdown_document(cluster.document_root, 2), prefix="rejected")
    assert outcome.enriched
    statuses = [p["status"] for p in outcome.value["pictures"]]
    assert statuses.count("failed") == 1 and statuses.count("described") == len(statuses) - 1
    failed = next(p for p in outcome.value["pictures"] if p["status"] == "failed")
    assert failed["reason"] == "invalid_image"
    assert "Description unavailable: invalid_image" in outcome.value["markdown"]


def test_a_429_is_retried_after_the_apis_retry_delay(cluster, gemini):
    gemini.control({"enqueue": [{"kind": "429", "retry_delay_s": 2, "quota": "rpm"}]})
    before = gemini.stats()
    outcome = submit_document(cluster, unique_markdown_document(cluster.document_root, 2), prefix="ratelimited")
    after = gemini.stats()
    assert outcome.enriched
    assert all(p["status"] == "described" for p in outcome.value["pictures"])
    assert after["calls_429"] - before["calls_429"] == 1
    assert after["calls_ok"] - before["calls_ok"] == len(outcome.value["pictures"])
    # the retried picture waited at least the API's retryDelay
    assert outcome.value["completed_at"] - outcome.value["received_at"] >= 2.0


def test_redelivered_updates_do_not_emit_again(cluster, gemini):
    """Replaying every update of a finished document changes nothing and emits nothing."""
    import asyncio

    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    outcome = submit_document(cluster, "team_update.md", prefix="redelivery")
    document_id = outcome.document_id

    async def replay():
        consumer = AIOKafkaConsumer("docsight-document-updates", bootstrap_servers=cluster.broker.bootstrap_servers,
                                    group_id=None, auto_offset_reset="earliest", enable_auto_commit=False)
        await consumer.start()
        updates = []
        try:
            for _ in range(20):
                batches = await consumer.getmany(timeout_ms=500)
                if not batches and updates:
                    break
                for records in batches.values():
                    updates += [r for r in records if r.key == document_id.encode()]
        finally:
            await consumer.stop()
        producer = AIOKafkaProducer(bootstrap_servers=cluster.broker.bootstrap_servers)
        await producer.start()
        try:
            for record in updates:
                await producer.send_and_wait("docsight-document-updates", record.value, key=record.key)
        finally:
            await producer.stop()
        return len(updates)

    replayed = asyncio.run(replay())
    assert replayed >= 2 + len(outcome.value["pictures"])  # received, manifest, one per picture
    time.sleep(3)  # the aggregator handles an update in milliseconds
    outcomes = submit_and_wait(cluster, expect={document_id}, timeout=10)
    status, body = cluster.workers["worker1"].get_json(f"/documents/{document_id}")
    assert body["status"] == "enriched"
    assert body["tokens"]["input"] == outcome.value["input_tokens"]
    assert outcomes[document_id].value == outcome.value
    assert count_outputs(cluster, document_id) == 1


def count_outputs(cluster, document_id: str) -> int:
    import asyncio

    from docsight.client import DocsightClient

    async def run():
        async with DocsightClient(cluster.broker_url) as client:
            outcomes = await client.collect(None, timeout=3)
        return sum(1 for o in outcomes if o.document_id == document_id)

    return asyncio.run(run())


def test_identical_pictures_are_described_once(cluster, gemini):
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (300, 200), (200, 30, 30)).save(buffer, "PNG")
    logo = buffer.getvalue()
    calls_before = gemini.stats()["calls_ok"]
    first = submit_document(cluster, unique_markdown_document(cluster.document_root, 1, shared=logo), prefix="dd1")
    second = submit_document(cluster, unique_markdown_document(cluster.document_root, 1, shared=logo), prefix="dd2")
    # 2 unique pictures + the shared one once
    assert gemini.stats()["calls_ok"] - calls_before == 3
    shared_first, shared_second = first.value["pictures"][-1], second.value["pictures"][-1]
    assert shared_first["sha256"] == shared_second["sha256"]
    assert not shared_first["cached"] and shared_second["cached"]
    assert shared_second["description"] == shared_first["description"]
    assert shared_second["input_tokens"] == 0 and shared_second["cost_usd"] == 0
    assert second.value["cost_usd"] < first.value["cost_usd"]


def test_worker_metrics_count_the_run(cluster, gemini):
    from prometheus_client.parser import text_string_to_metric_families
    import urllib.request

    import io

    from PIL import Image

    def scrape():
        with urllib.request.urlopen(cluster.workers["worker1"].url + "/metrics", timeout=5) as response:
            return {f.name: f for f in text_string_to_metric_families(response.read().decode())}

    def total(families, family, **labels):
        return sum(s.value for s in (families[family].samples if family in families else ())
                   if s.name.endswith("_total") and all(s.labels.get(k) == v for k, v in labels.items()))

    # this test's own calls: other tests share the session's Gemini server (some with workers of their own)
    before, server_before = scrape(), gemini.stats()
    buffer = io.BytesIO()
    Image.new("RGB", (200, 120), (10, 120, 200)).save(buffer, "PNG")
    for _ in range(2):  # the shared picture is a cache hit the second time
        submit_document(cluster, unique_markdown_document(cluster.document_root, 1, shared=buffer.getvalue()),
                        prefix="metrics")
    submit_document(cluster, "no-such-file.pdf", prefix="metrics-failed")
    families = scrape()

    def value(family, **labels):
        return total(families, family, **labels)

    stats = gemini.stats()
    assert value("docsight_api_calls", outcome="ok") - total(before, "docsight_api_calls", outcome="ok") \
        == stats["calls_ok"] - server_before["calls_ok"]
    assert value("docsight_pictures", outcome="described") >= 2
    assert value("docsight_documents", outcome="enriched") >= 2
    assert value("docsight_documents", outcome="failed") >= 1
    assert value("docsight_tokens", kind="input") - total(before, "docsight_tokens", kind="input") \
        == stats["input_tokens"] - server_before["input_tokens"]
    assert value("docsight_cost_usd") > 0
    assert value("docsight_description_cache", result="hit") >= 1
    assert any(name.startswith("docsight_faust") for name in families)


def test_a_second_submission_of_the_same_id_is_rejected_as_a_duplicate(cluster, gemini):
    import asyncio

    from docsight.client import DocsightClient

    document_id = unique_id("twice")
    location = unique_markdown_document(cluster.document_root, 1)
    first = submit_and_wait(cluster, [document_event(document_id, "tester", location)])[document_id]
    assert first.enriched

    async def submit_again():
        async with DocsightClient(cluster.broker_url) as client:
            await client.submit(document_event(document_id, "tester", location))
            return await client.collect({document_id}, count=2, timeout=60)

    outcomes = asyncio.run(submit_again())
    assert [o.enriched for o in outcomes] == [True, False]
    duplicate = outcomes[1].value
    assert (duplicate["stage"], duplicate["reason"]) == ("validation", "duplicate_document_id")
    assert "already submitted" in duplicate["message"]
    # the first submission's result stands
    assert wait_for_status(cluster.workers["worker1"], document_id, "enriched")["pictures"]["described"] == 1


def test_a_real_prometheus_scrapes_the_worker(cluster, gemini, tmp_path):
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families
    from prometheus_helpers import PROMETHEUS, SKIP_REASON, start_prometheus

    if PROMETHEUS is None:
        pytest.skip(SKIP_REASON)
    worker = cluster.workers["worker1"]
    submit_document(cluster, unique_markdown_document(cluster.document_root, 1), prefix="scraped")
    with urllib.request.urlopen(worker.url + "/metrics", timeout=5) as response:
        families = {f.name: f for f in text_string_to_metric_families(response.read().decode())}
    described = next(s.value for s in families["docsight_pictures"].samples
                     if s.name == "docsight_pictures_total" and s.labels.get("outcome") == "described")
    with start_prometheus([f"127.0.0.1:{worker.web_port}"], tmp_path / "prometheus") as prometheus:
        series = prometheus.wait_for_value("docsight_pictures_total", described, outcome="described")
        assert series["metric"]["job"] == "docsight"
        up = prometheus.wait_for("up", lambda result: bool(result) and result[0]["value"][1] == "1")
        assert up[0]["metric"]["instance"] == f"127.0.0.1:{worker.web_port}"
        # a rate over the API call counter, as the alert rules use it
        assert prometheus.wait_for("sum(docsight_api_calls_total)", lambda result: bool(result))
