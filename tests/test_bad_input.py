"""Bad input end to end: every bad file or event ends in document-failed with its reason; the worker runs on.

All cases go in at once (one round trip through the session cluster); each case is then its own test.
tests/test_extraction.py covers the same reasons at function level and builds the bad files.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest

from docsight.client import document_event

from cluster_helpers import (collect_outcomes, submit, submit_document, unique_id, unique_markdown_document,
                             wait_for_status)
from conftest import SAMPLES
from test_extraction import encrypted_pdf, pdf_with_image, png_declaring

pytestmark = pytest.mark.cluster

MAX_EVENT_BYTES = 64 * 1024  # DOCSIGHT_MAX_EVENT_BYTES's default
MAX_DOCUMENT_BYTES = 50 * 1024 * 1024  # DOCSIGHT_MAX_DOCUMENT_MB's default

# case -> (stage, reason)
FILE_CASES = {
    "missing file": ("extraction", "not_found"),
    "a folder": ("extraction", "not_a_file"),
    "empty file": ("extraction", "empty"),
    "truncated pdf": ("extraction", "corrupt"),
    "garbage pdf": ("extraction", "corrupt"),
    "password-protected pdf": ("extraction", "encrypted"),
    "unsupported type": ("extraction", "unsupported_type"),
    "content type that is not a document": ("extraction", "unsupported_type"),
    "wrong extension": ("extraction", "wrong_extension"),
    "relative path out of the root": ("extraction", "outside_root"),
    "absolute path out of the root": ("extraction", "outside_root"),
    "file uri out of the root": ("extraction", "outside_root"),
    "http url": ("extraction", "outside_root"),
    "symlink escaping the root": ("extraction", "outside_root"),
    "file above the size cap": ("extraction", "too_large"),
    "picture bomb in markdown": ("extraction", "decompression_bomb"),
    "picture bomb in pdf": ("extraction", "decompression_bomb"),
}
EVENT_CASES = {
    "malformed json": ("validation", "invalid_json"),
    "json that is not an object": ("validation", "invalid_event"),
    "event without a value": ("validation", "invalid_event"),
    "missing user_id": ("validation", "missing_field"),
    "missing document_id": ("validation", "missing_field"),
    "empty location": ("validation", "missing_field"),
    "mistyped user_id": ("validation", "wrong_type"),
    "mistyped document_id": ("validation", "wrong_type"),
    "document_id with a slash": ("validation", "invalid_field"),
    "submitted_at not ISO 8601": ("validation", "invalid_field"),
    "event above the size cap": ("validation", "event_too_large"),
}


def build_bad_files(root, outside) -> dict[str, dict]:
    """case -> the document-received event that points at the bad file."""
    folder_name = unique_id("bad")
    folder = root / folder_name
    folder.mkdir()
    pdf = (SAMPLES / "annual_report.pdf").read_bytes()
    (folder / "dir.pdf").mkdir()
    (folder / "empty.pdf").write_bytes(b"")
    (folder / "truncated.pdf").write_bytes(pdf[: len(pdf) // 2])
    (folder / "garbage.pdf").write_bytes(b"%PDF-1.7\n" + os.urandom(4096))
    encrypted_pdf(folder / "locked.pdf")
    (folder / "notes.txt").write_text("plain text is not a supported document")
    shutil.copy(SAMPLES / "annual_report.pdf", folder / "report.pdf")
    (folder / "scan.pdf").write_bytes((SAMPLES / "images" / "revenue_chart.png").read_bytes())
    shutil.copy(SAMPLES / "annual_report.pdf", outside / "secret.pdf")
    (folder / "link.pdf").symlink_to(outside / "secret.pdf")
    with open(folder / "huge.pdf", "wb") as sparse:  # sparse: no disk, no writing time
        sparse.truncate(MAX_DOCUMENT_BYTES + 1024 * 1024)
    (folder / "huge.png").write_bytes(png_declaring(100_000, 100_000))
    (folder / "bomb.md").write_text("# Bomb\n\nA picture that declares ten billion pixels.\n\n![huge](huge.png)\n")
    (folder / "bomb.pdf").write_bytes(pdf_with_image(200_000, 200_000))

    def event(location: str, content_type: str | None = None) -> dict:
        return document_event(unique_id("bad"), "tester", location, content_type)

    return {
        "missing file": event(f"{folder_name}/missing.pdf"),
        "a folder": event(f"{folder_name}/dir.pdf"),
        "empty file": event(f"{folder_name}/empty.pdf"),
        "truncated pdf": event(f"{folder_name}/truncated.pdf"),
        "garbage pdf": event(f"{folder_name}/garbage.pdf"),
        "password-protected pdf": event(f"{folder_name}/locked.pdf"),
        "unsupported type": event(f"{folder_name}/notes.txt"),
        "content type that is not a document": event(f"{folder_name}/report.pdf", "image/png"),
        "wrong extension": event(f"{folder_name}/scan.pdf"),
        "relative path out of the root": event(f"{folder_name}/../../{outside.name}/secret.pdf"),
        "absolute path out of the root": event(str(outside / "secret.pdf")),
        "file uri out of the root": event((outside / "secret.pdf").as_uri()),
        "http url": event("http://127.0.0.1:9/report.pdf"),
        "symlink escaping the root": event(f"{folder_name}/link.pdf"),
        "file above the size cap": event(f"{folder_name}/huge.pdf"),
        "picture bomb in markdown": event(f"{folder_name}/bomb.md"),
        "picture bomb in pdf": event(f"{folder_name}/bomb.pdf"),
    }


def build_bad_events() -> dict[str, tuple[str | None, bytes | None]]:
    """case -> (key, payload) of a malformed document-received event."""

    def fields(**changes) -> tuple[str | None, bytes]:
        document_id = unique_id("badevent")
        data = {"document_id": document_id, "user_id": "tester", "location": "team_update.md", **changes}
        data = {key: value for key, value in data.items() if value is not ...}
        return document_id, json.dumps(data).encode()

    tag = unique_id("raw")
    return {
        "malformed json": (tag, f'{{"document_id": "{tag}", "user_id": '.encode()),
        "json that is not an object": (None, json.dumps([tag, "not an object"]).encode()),
        "event without a value": (unique_id("tombstone"), None),
        "missing user_id": fields(user_id=...),
        "missing document_id": (None, json.dumps({"user_id": tag, "location": "team_update.md"}).encode()),
        "empty location": fields(location="  "),
        "mistyped user_id": fields(user_id=42),
        "mistyped document_id": (None, json.dumps({"document_id": 7, "user_id": tag, "location": "x.md"}).encode()),
        "document_id with a slash": fields(document_id=f"{tag}/../etc"),
        "submitted_at not ISO 8601": fields(submitted_at="yesterday at noon"),
        "event above the size cap": fields(note="x" * (MAX_EVENT_BYTES + 1)),
    }


@pytest.fixture(scope="module")
def bad_outcomes(cluster, tmp_path_factory):
    """Submit every bad input at once; case -> (what was submitted as text, its document-failed value)."""
    outside = tmp_path_factory.mktemp("outside-the-root")
    file_events = build_bad_files(cluster.document_root, outside)
    raw_events = build_bad_events()
    submitted = {case: json.dumps(event) for case, event in file_events.items()}
    submitted.update({case: payload.decode() if payload else "" for case, (_, payload) in raw_events.items()})
    submit(cluster, events=file_events.values(), raw=raw_events.values())

    texts = set(submitted.values())
    failures = collect_outcomes(cluster, lambda o: not o.enriched and o.value["original"] in texts,
                                count=len(submitted), timeout=120)
    by_text = {failure.value["original"]: failure.value for failure in failures}
    return {case: (text, by_text.get(text)) for case, text in submitted.items()}


@pytest.mark.parametrize("case", list(FILE_CASES) + list(EVENT_CASES))
def test_bad_input_fails_with_its_reason(cluster, bad_outcomes, case):
    stage, reason = {**FILE_CASES, **EVENT_CASES}[case]
    text, failure = bad_outcomes[case]
    assert failure is not None, f"no document-failed for {case}"
    assert (failure["stage"], failure["reason"]) == (stage, reason), failure
    assert failure["message"].strip(), "a failure needs a sentence for people"
    assert failure["original"] == text
    if stage == "extraction":  # the failure is also the document's state, in its web view
        view = wait_for_status(cluster.workers["worker1"], failure["document_id"], "failed")
        assert view["failure"]["reason"] == reason


def test_the_error_messages_say_what_is_wrong(bad_outcomes):
    def message(case: str) -> str:
        return bad_outcomes[case][1]["message"]

    assert "user_id" in message("missing user_id")
    assert "document_id" in message("missing document_id")
    assert "user_id" in message("mistyped user_id") and "int" in message("mistyped user_id")
    assert "limit" in message("event above the size cap")
    assert "outside the document root" in message("symlink escaping the root")
    # a failure never leaks what lies outside the root: no content of the file it refused
    assert "Aurora Instruments" not in json.dumps(bad_outcomes["symlink escaping the root"][1])


def test_the_same_document_id_submitted_twice_at_once_completes_once(cluster, gemini):
    document_id = unique_id("twice-at-once")
    location = unique_markdown_document(cluster.document_root, 2)
    first, second = document_event(document_id, "tester", location), document_event(document_id, "tester", location)
    second["submitted_at"] = "2030-01-01T00:00:00+00:00"  # another event, not a redelivery of the first
    submit(cluster, events=[first, second])
    outcomes = collect_outcomes(cluster, lambda o: o.document_id == document_id, count=2, timeout=90)
    assert sorted(o.topic for o in outcomes) == ["document-enriched", "document-failed"]
    rejection = next(o.value for o in outcomes if not o.enriched)
    assert rejection["reason"] == "duplicate_document_id" and json.loads(rejection["original"]) == second
    assert wait_for_status(cluster.workers["worker1"], document_id, "enriched")["pictures"]["described"] == 2


def test_a_corrected_resubmission_of_an_invalid_event_gets_an_outcome(cluster, gemini):
    document_id = unique_id("corrected")
    location = unique_markdown_document(cluster.document_root, 1)
    invalid = {"document_id": document_id, "user_id": 42, "location": location}
    submit(cluster, raw=[(document_id, json.dumps(invalid).encode())])
    assert collect_outcomes(cluster, lambda o: o.document_id == document_id, count=1, timeout=30)
    submit(cluster, events=[document_event(document_id, "tester", location)])
    # a one-picture document completes in about two seconds
    outcomes = collect_outcomes(cluster, lambda o: o.document_id == document_id, count=2, timeout=12)
    assert len(outcomes) == 2, "the corrected submission got neither document-enriched nor document-failed"


def test_the_worker_keeps_running_after_bad_input(cluster, gemini, bad_outcomes):
    assert cluster.workers["worker1"].alive()
    assert submit_document(cluster, unique_markdown_document(cluster.document_root, 1), prefix="after-bad").enriched
