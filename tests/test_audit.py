"""The conservation audit: pure accounting without a broker, then once against the session cluster."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import subprocess
import sys

import pytest

from docsight.audit import (DUPLICATE_REASON, ENRICHED_TOPIC, FAILED_TOPIC, RECEIVED_TOPIC, TopicRecord, audit,
                            audit_broker)
from docsight.client import document_event

from cluster_helpers import collect_outcomes, submit, submit_and_wait, unique_id, unique_markdown_document

NOW = 1_000_000.0
_offsets = itertools.count()


def received(document_id: str | None = "doc-1", at: float = NOW - 30, payload: bytes | None = None,
             **fields) -> TopicRecord:
    if payload is None:
        payload = json.dumps({"document_id": document_id, "user_id": "u", "location": "a.pdf", **fields}).encode()
    return TopicRecord(RECEIVED_TOPIC, 0, next(_offsets), at, payload)


def enriched(document_id: str = "doc-1", at: float = NOW - 20, markdown: str = "# text", **fields) -> TopicRecord:
    value = {"document_id": document_id, "markdown": markdown, "pictures": [], "input_tokens": 258,
             "received_at": NOW - 29, "completed_at": at, **fields}
    return TopicRecord(ENRICHED_TOPIC, 0, next(_offsets), at, json.dumps(value).encode())


def failed(event: TopicRecord, reason: str = "not_found", document_id: str | None = "from-event",
           at: float = NOW - 20, message: str = "a sentence") -> TopicRecord:
    if document_id == "from-event":
        document_id = json.loads(event.value)["document_id"]
    value = {"document_id": document_id, "stage": "extraction", "reason": reason, "message": message,
             "original": event.value.decode("utf-8", errors="replace") if event.value else "", "failed_at": at}
    return TopicRecord(FAILED_TOPIC, 0, next(_offsets), at, json.dumps(value).encode())


def test_every_outcome_is_counted_once_and_the_audit_passes():
    good, missing = received("good"), received("missing")
    garbage = received(payload=b"{not json")
    report = audit([good, missing, garbage, enriched("good"), failed(missing),
                    failed(garbage, "invalid_json", document_id=None)], now=NOW)
    assert (report.submissions, report.documents, report.enriched, report.failed) == (3, 2, 1, 2)
    assert report.failure_reasons == {"not_found": 1, "invalid_json": 1}
    assert (report.lost, report.in_progress, report.doubled_different_content) == (0, 0, 0)
    assert report.ok and "OK: nothing lost" in report.render()
    assert report.fates == {"good": ["enriched"], "missing": ["failed:not_found"]}


def test_a_document_without_an_outcome_is_in_progress_then_lost():
    records = [received("young", at=NOW - 5), received("old", at=NOW - 700)]
    report = audit(records, now=NOW, grace_seconds=600)
    assert (report.in_progress, report.lost) == (1, 1)
    assert report.lost_ids == ["old"] and report.in_progress_ids == ["young"]
    assert not report.ok and "LOST: old" in report.render()


def test_the_same_content_emitted_twice_is_a_harmless_re_emission():
    # a crash between emitting and recording it: emitted again later, same content, new completed_at
    report = audit([received("doc"), enriched("doc", at=NOW - 20), enriched("doc", at=NOW - 10)], now=NOW)
    assert report.enriched == 1 and report.reemitted_same_content == 1
    assert report.reemitted_ids == ["doc"] and report.ok
    event = received("gone")
    report = audit([event, failed(event, at=NOW - 20), failed(event, at=NOW - 10)], now=NOW)
    assert report.failed == 1 and report.reemitted_same_content == 1 and report.ok


def test_different_content_twice_is_doubled_and_fails_the_audit():
    report = audit([received("doc"), enriched("doc", markdown="one"), enriched("doc", markdown="two")], now=NOW)
    assert report.doubled_different_content == 1 and report.doubled_ids == ["doc"]
    assert not report.ok and "DOUBLED: doc" in report.render()


def test_enriched_and_failed_for_one_submission_is_doubled():
    event = received("doc")
    report = audit([event, enriched("doc"), failed(event, "internal_error")], now=NOW)
    assert report.doubled_different_content == 1 and not report.ok


def test_a_duplicate_id_is_rejected_and_the_first_outcome_stands():
    first, second = received("doc", at=NOW - 40), received("doc", at=NOW - 30, location="b.pdf")
    records = [first, second, failed(second, DUPLICATE_REASON), enriched("doc")]
    report = audit(records, now=NOW)
    assert (report.submissions, report.documents, report.enriched, report.duplicates_rejected) == (2, 1, 1, 1)
    assert report.failed == 0 and report.ok
    assert sorted(report.fates["doc"]) == ["duplicate", "enriched"]
    # the rejection may come before the first submission's outcome: that one is still in progress
    report = audit([first, second, failed(second, DUPLICATE_REASON)], now=NOW)
    assert (report.duplicates_rejected, report.in_progress, report.lost) == (1, 1, 0)


def test_byte_identical_submissions_each_get_their_own_outcome():
    one, two = received(payload=b"[1, 2]"), received(payload=b"[1, 2]")
    report = audit([one, two, failed(one, "invalid_event", document_id=None),
                    failed(two, "invalid_event", document_id=None)], now=NOW)
    assert report.failed == 2 and report.reemitted_same_content == 0 and report.ok
    # the same valid event sent twice: one enrichment, one duplicate rejection
    first = received("same")
    again = TopicRecord(RECEIVED_TOPIC, 1, next(_offsets), NOW - 29, first.value)
    report = audit([first, again, enriched("same"), failed(again, DUPLICATE_REASON)], now=NOW)
    assert (report.enriched, report.duplicates_rejected, report.ok) == (1, 1, True)


def test_a_failure_is_matched_by_its_original_even_without_an_id():
    # event_too_large is refused before parsing: the failure names no document
    big = received("big", note="x" * 1000)
    report = audit([big, failed(big, "event_too_large", document_id=None)], now=NOW)
    assert report.failed == 1 and report.orphan_outcomes == 0 and report.ok
    # and by its document id when its original does not match the event's text
    event = received("doc")
    other = TopicRecord(FAILED_TOPIC, 0, next(_offsets), NOW, json.dumps(
        {"document_id": "doc", "reason": "corrupt", "original": "re-encoded", "failed_at": NOW}).encode())
    report = audit([event, other], now=NOW)
    assert report.failed == 1 and report.ok


def test_outcomes_without_an_event_and_unreadable_outputs_are_reported():
    stray = TopicRecord(ENRICHED_TOPIC, 0, next(_offsets), NOW, b"not json")
    report = audit([enriched("nobody"), stray], now=NOW)
    assert report.orphan_outcomes == 1 and report.orphan_ids == ["nobody"]
    assert report.unreadable_outputs == 1 and report.submissions == 0
    # an enrichment never answers a duplicate's rejection: it belongs to a first submission not in the topic
    second = received("seen-once")
    report = audit([second, failed(second, DUPLICATE_REASON), enriched("seen-once")], now=NOW)
    assert (report.duplicates_rejected, report.orphan_outcomes, report.doubled_different_content) == (1, 1, 0)


def test_a_valid_resubmission_after_an_invalid_event_with_the_same_id_must_get_an_outcome():
    invalid = received("doc", at=NOW - 700, user_id=5)
    valid = received("doc", at=NOW - 690)
    report = audit([invalid, valid, failed(invalid, "wrong_type")], now=NOW, grace_seconds=600)
    assert report.failed == 1 and report.lost == 1 and not report.ok


# --- against the session cluster ------------------------------------------------

@pytest.mark.cluster
def test_audit_of_the_session_cluster_accounts_for_every_document(cluster, gemini):
    good, missing, twice = unique_id("audit-good"), unique_id("audit-missing"), unique_id("audit-twice")
    location = unique_markdown_document(cluster.document_root, 1)
    submit_and_wait(cluster, [document_event(good, "auditor", location),
                              document_event(missing, "auditor", "no-such-file.pdf"),
                              document_event(twice, "auditor", location)], timeout=90)
    submit(cluster, [document_event(twice, "auditor", location)])
    assert len(collect_outcomes(cluster, lambda o: o.document_id == twice, count=2, timeout=30)) == 2

    report = asyncio.run(audit_broker(cluster.broker_url))
    assert report.fates[good] == ["enriched"]
    assert report.fates[missing] == ["failed:not_found"]
    assert report.fates[twice] in (["enriched", "duplicate"], ["duplicate", "enriched"])
    assert report.lost == 0 and report.doubled_different_content == 0, report.render()

    command = subprocess.run([sys.executable, "-m", "docsight", "audit", "--json"], capture_output=True, text=True,
                             env={**os.environ, "DOCSIGHT_BROKER_URL": cluster.broker_url}, timeout=60)
    assert command.returncode == 0, command.stdout + command.stderr
    summary = json.loads(command.stdout)
    assert summary["ok"] and summary["submissions"] >= 4 and summary["duplicates_rejected"] >= 1
