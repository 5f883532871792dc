"""The workers' status page and the JSON views it reads, on the real cluster; the page in a real browser."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from docsight.client import DocsightClient, document_event

from cluster_helpers import submit_document, unique_id, unique_markdown_document, wait_for_status

pytestmark = pytest.mark.cluster

CHROMIUM = shutil.which("chromium")


def get(worker, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(worker.url + path, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def submit_without_waiting(cluster, location: str, prefix: str) -> str:
    document_id = unique_id(prefix)

    async def send():
        async with DocsightClient(cluster.broker_url) as client:
            await client.submit(document_event(document_id, "page-tester", location))

    asyncio.run(send())
    return document_id


def test_documents_view_lists_the_clusters_documents_by_status(cluster, gemini):
    worker = cluster.workers["worker1"]
    enriched = submit_document(cluster, unique_markdown_document(cluster.document_root, 2), prefix="listed")
    failed = submit_document(cluster, "no-such-file.pdf", prefix="listed-failed")
    wait_for_status(worker, failed.document_id, "failed")

    status, body = worker.get_json("/documents?status=enriched&limit=5")
    assert status == 200
    assert len(body["documents"]) <= 5 and body["matching"] >= 1
    listed = next(d for d in body["documents"] if d["document_id"] == enriched.document_id)
    assert listed["status"] == "enriched" and listed["pictures"]["described"] == listed["pictures"]["expected"] == 2
    assert listed["location"].endswith("/doc.md")
    assert all(d["status"] == "enriched" for d in body["documents"])
    # most recently updated first
    updated = [d["updated_at"] for d in body["documents"]]
    assert updated == sorted(updated, reverse=True)
    # gathered from every worker of the group (one here), each with its partitions of the documents table
    assert body["complete"] and [w["self"] for w in body["workers"]] == [True]
    assert body["workers"][0]["partitions"]["documents"] == list(range(6))
    assert body["counts"]["enriched"] >= 1 and body["counts"]["failed"] >= 1

    status, body = worker.get_json("/documents?status=failed&limit=1")
    assert body["documents"][0]["document_id"] == failed.document_id
    assert body["documents"][0]["failure"]["reason"] == "not_found"

    status, body = worker.get_json("/documents?status=received,describing,enriched,failed&limit=1000&scope=local")
    assert status == 200 and "workers" not in body
    assert {enriched.document_id, failed.document_id} <= {d["document_id"] for d in body["documents"]}

    assert worker.get_json("/documents?status=done")[0] == 400
    assert "unknown status 'done'" in worker.get_json("/documents?status=done")[1]["error"]
    assert worker.get_json("/documents?limit=0")[0] == 400
    assert worker.get_json("/documents?limit=many")[0] == 400


def test_cluster_stats_add_up_the_workers_budget(cluster, gemini):
    import time

    worker = cluster.workers["worker1"]
    deadline = time.monotonic() + 15
    while True:  # the budget takes its partitions (and ends a cold start's hold-off) after /healthz sees them
        _, own = worker.get_json("/stats")
        status, body = worker.get_json("/status/stats")
        if own["budget"]["usable_requests_per_window"] or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert status == 200 and body["complete"]
    assert [w["url"] for w in body["workers"]] == [worker.url]
    totals = body["cluster"]
    assert totals["workers_reporting"] == 1
    assert totals["effective_requests_per_minute"] == pytest.approx(own["effective_requests_per_minute"])
    assert totals["planned_requests_per_minute"] == pytest.approx(6000)  # whole calls, no safety factor by default
    assert totals["circuit_breaker"] == own["circuit_breaker"] == "closed"
    assert totals["daily_spend_usd"] == pytest.approx(own["daily_spend_usd"], abs=1e-6)


def test_the_page_is_served_at_the_root_and_at_status(cluster):
    worker = cluster.workers["worker1"]
    for path in ("/", "/status"):
        status, html = get(worker, path)
        assert status == 200 and html.startswith("<!doctype html>")
        assert "<script>" in html and "<style>" in html and "src=" not in html  # self-contained


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian package: chromium)")
def test_the_page_shows_progress_failures_and_budget_in_a_browser(cluster, gemini, tmp_path):
    worker = cluster.workers["worker1"]
    enriched = submit_document(cluster, unique_markdown_document(cluster.document_root, 1), prefix="page-done")
    failed = submit_document(cluster, "page-missing.pdf", prefix="page-failed")
    # one of the two pictures hangs for 8 s: the document stays at 1 of 2 while the browser looks
    gemini.control({"enqueue": [{"kind": "hang", "seconds": 8}]})
    in_progress = submit_without_waiting(cluster, unique_markdown_document(cluster.document_root, 2), "page-busy")
    body = wait_for_status(worker, in_progress, "describing")
    for _ in range(50):
        if body["pictures"]["described"] == 1:
            break
        _, body = worker.get_json(f"/documents/{in_progress}")
        time.sleep(0.1)

    browser = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000"]
    dom = subprocess.run([*browser, "--dump-dom", worker.url + "/"], capture_output=True, text=True, timeout=60).stdout
    text = " ".join(dom.split())

    assert "docsight" in text and "1 worker" in text
    row = text[text.index(in_progress):]
    assert row.index("1 / 2 described") < row.index("</tr>"), "the busy document's progress is in its row"
    assert "describing" in row[:row.index("</tr>")]
    failure = text[text.index(failed.document_id):]
    assert "not_found" in failure[:failure.index("</tr>")]
    assert "page-missing.pdf" in failure[:failure.index("</tr>")]
    assert enriched.document_id in text[text.index("Recently enriched"):]
    for figure in ("Effective rate", "6,000", "req/min", "Calls today", "Day's cost", "Circuit breaker", "closed"):
        assert figure in text, figure
    assert '<div class="banner" id="banner"></div>' in text, "no warning: every worker answered"

    screenshot = tmp_path / "status.png"
    subprocess.run([*browser, f"--screenshot={screenshot}", "--window-size=1200,900", worker.url + "/status"],
                   capture_output=True, timeout=60)
    assert screenshot.stat().st_size > 20_000
    print(f"status page screenshot: {screenshot}")
