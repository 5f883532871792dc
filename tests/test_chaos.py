"""docsight chaos: the corpus and the fault plan, the accounting and the report (no broker), then a short
chaos run on a real cluster that must lose and double nothing."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from docsight.audit import TopicRecord
from docsight.benchmarks.chaos_corpus import (FORMATS, PlannedDocument, distinct_picture, plan_corpus,
                                              shared_picture, write_document)
from docsight.chaos import (ChaosOptions, ChaosReport, FaultRecord, RunResult, diagnose_doubled, diagnose_lost,
                            exit_code, fill_outcomes, plan_faults, render, run_chaos, submission_offsets)


# --- the corpus -------------------------------------------------------------------

def test_the_corpus_has_every_format_the_picture_range_and_shared_pictures():
    plan = plan_corpus(24, seed=3, max_pictures=50)
    assert {document.format for document in plan} == set(FORMATS)
    for start in range(0, 18, 6):  # each format once in every six documents
        assert sorted(d.format for d in plan[start:start + 6]) == sorted(FORMATS)
    counts = [document.pictures for document in plan]
    assert counts[0] == 0 and counts[1] == 50 and all(0 <= count <= 50 for count in counts)
    own = [number for document in plan for number in document.distinct]
    assert len(own) == len(set(own)), "a picture of its own belongs to one document"
    assert sum(1 for document in plan if document.shared) >= 2
    assert all(0 <= number < 8 for document in plan for number in document.shared)
    assert plan_corpus(24, seed=3, max_pictures=50) == plan
    assert plan_corpus(24, seed=4, max_pictures=50) != plan


def test_pictures_are_all_different_and_the_same_for_the_same_seed():
    own = [distinct_picture(5, number)[0] for number in range(40)]
    shared = [shared_picture(5, number) for number in range(8)]
    digests = {hashlib.sha256(data).hexdigest() for data in own + shared}
    assert len(digests) == 48
    assert distinct_picture(5, 7) == distinct_picture(5, 7) and distinct_picture(6, 7) != distinct_picture(5, 7)
    assert {distinct_picture(5, n)[1] for n in range(4)} == {"png", "jpg"}
    assert all(data[:3] == b"\xff\xd8\xff" for data in shared)  # JPEG: kept byte for byte by every format


@pytest.mark.parametrize("document_format, media", [("docx", "word/media/"), ("pptx", "ppt/media/"),
                                                    ("xlsx", "xl/media/")])
def test_office_documents_embed_every_picture(tmp_path, document_format, media):
    pictures = [distinct_picture(1, number) for number in range(5)]
    location = write_document(tmp_path, PlannedDocument("d", document_format, tuple(range(5)), ()), pictures)
    with zipfile.ZipFile(tmp_path / location) as archive:
        embedded = {archive.read(name) for name in archive.namelist() if name.startswith(media)}
    assert embedded == {data for data, _ in pictures}


@pytest.mark.parametrize("document_format, marker", [("html", "<img "), ("md", "![")])
def test_text_documents_reference_pictures_beside_them(tmp_path, document_format, marker):
    pictures = [distinct_picture(1, number) for number in range(3)] + [(shared_picture(1, 0), "jpg")]
    location = write_document(tmp_path, PlannedDocument("t", document_format, (0, 1, 2), (0,)), pictures)
    text = (tmp_path / location).read_text()
    assert text.count(marker) == 4
    assert sorted(p.read_bytes() for p in (tmp_path / "t").iterdir() if p.suffix != f".{document_format}") == \
        sorted(data for data, _ in pictures)


@pytest.mark.parametrize("pictures", [0, 3])
def test_pdf_documents_have_a_page_per_two_pictures_and_at_least_one(tmp_path, pictures):
    import pypdfium2

    location = write_document(tmp_path, PlannedDocument("p", "pdf", tuple(range(pictures)), ()),
                              [distinct_picture(1, number) for number in range(pictures)])
    with pypdfium2.PdfDocument(tmp_path / location) as pdf:
        assert len(pdf) == max(1, (pictures + 1) // 2)


# --- the fault plan ---------------------------------------------------------------

def test_the_fault_plan_spreads_kills_over_the_window_and_mixes_signals():
    faults = plan_faults(rounds=3, outages=1, duration=60, seed=9, outage_seconds=(3, 10))
    kills = [fault for fault in faults if fault.kind == "kill"]
    outages = [fault for fault in faults if fault.kind == "outage"]
    assert len(kills) == 3 and len(outages) == 1
    assert [fault.at for fault in faults] == sorted(fault.at for fault in faults)
    assert all(6 <= fault.at <= 60 for fault in faults)
    slots = [int((fault.at - 6) // 18) for fault in kills]
    assert slots == [0, 1, 2], "one kill in each third of the window"
    assert sorted(fault.signal for fault in kills) == ["SIGKILL", "SIGKILL", "SIGTERM"]
    assert 3 <= outages[0].seconds <= 10
    assert plan_faults(3, 1, 60, 9, (3, 10)) == faults
    assert plan_faults(3, 1, 60, 10, (3, 10)) != faults


def test_documents_are_submitted_evenly():
    assert submission_offsets(4, 40) == [0, 10, 20, 30]


def test_options_refuse_nonsense():
    with pytest.raises(ValueError):
        ChaosOptions(workers=0)
    with pytest.raises(ValueError):
        ChaosOptions(rounds=-1)


# --- accounting and report --------------------------------------------------------

def _record(topic, partition, offset, value):
    return TopicRecord(topic, partition, offset, 0.0, json.dumps(value).encode())


def test_a_lost_document_is_traced_to_the_record_where_it_stopped():
    records = [
        _record("document-received", 5, 0, {"document_id": "never-ingested"}),
        _record("document-received", 1, 3, {"document_id": "half-described"}),
        _record("docsight-document-submissions", 1, 7, {"document_id": "half-described"}),
        _record("docsight-document-updates", 1, 20, {"document_id": "half-described", "kind": "manifest",
                                                     "pictures": [{"index": 0}, {"index": 1}, {"index": 2}]}),
        _record("docsight-picture-requests", 2, 40, {"document_id": "half-described", "picture_index": 0}),
        _record("docsight-picture-requests", 4, 41, {"document_id": "half-described", "picture_index": 1}),
        _record("docsight-picture-requests", 4, 42, {"document_id": "half-described", "picture_index": 2}),
        _record("docsight-document-updates", 1, 21, {"document_id": "half-described", "kind": "picture",
                                                     "picture": {"index": 0, "status": "described"}}),
        _record("docsight-picture-requests", 3, 9, {"document_id": "someone-else", "picture_index": 0}),
        _record("document-received", 2, 0, {"document_id": "never-emitted"}),
        _record("docsight-document-submissions", 2, 1, {"document_id": "never-emitted"}),
        _record("docsight-document-updates", 2, 5, {"document_id": "never-emitted", "kind": "manifest",
                                                    "pictures": [{"index": 0}]}),
        _record("docsight-document-updates", 2, 9, {"document_id": "never-emitted", "kind": "picture",
                                                    "picture": {"index": 0, "status": "described"}}),
    ]
    committed = {"document-received/5": 1, "docsight-picture-requests/4": 43}
    records += [  # a manifest that lists its pictures by reference, in the blob store
        _record("docsight-document-submissions", 0, 2, {"document_id": "by-reference"}),
        _record("docsight-document-updates", 0, 4, {"document_id": "by-reference", "kind": "manifest",
                                                    "pictures": [], "pictures_ref": "abc"}),
        _record("docsight-picture-requests", 1, 5, {"document_id": "by-reference", "picture_index": 0}),
    ]
    blobs = {"abc": json.dumps([{"index": 0}, {"index": 1}]).encode()}
    never, half, aggregate, referenced = diagnose_lost(
        ["never-ingested", "half-described", "never-emitted", "by-reference"], records,
        {**committed, "docsight-document-updates/2": 10}, blobs.get)
    assert never["stage"].startswith("ingest") and never["received"] == "document-received/5/0"
    assert never["stopped_at"] == [{"record": "document-received/5/0", "committed": 1}]
    assert half["stage"] == "describe: 2 of 3 pictures without an outcome"
    assert half["missing_picture_partitions"] == [4] and half["updates_partition"] == 1
    assert [item["committed"] for item in half["stopped_at"]] == [43, 43]
    assert aggregate["stage"].startswith("aggregate")
    assert aggregate["stopped_at"] == [{"record": "docsight-document-updates/2/9", "committed": 10}]
    assert referenced["stage"] == "describe: 2 of 2 pictures without an outcome (1 never requested)"
    text = render([RunResult("chaos", 2, documents=2, lost=2, lost_details=[never, half])])
    assert "last record document-received/5/0: the group's committed offset there is 1 (past it)" in text
    assert "NOT OK" in text


def test_doubled_outcomes_name_what_differs():
    outcomes = {"d": [
        {"topic": "document-enriched", "value": {"document_id": "d", "completed_at": 1.0, "pictures": [
            {"index": 0, "status": "described"}, {"index": 1, "status": "described"}]}},
        {"topic": "document-enriched", "value": {"document_id": "d", "completed_at": 2.0, "pictures": [
            {"index": 0, "status": "described"}, {"index": 1, "status": "failed"}]}},
    ]}
    [detail] = diagnose_doubled(["d"], outcomes)
    assert detail["fields_differing"] == ["pictures"] and detail["pictures_differing"] == [1]


def test_time_to_outcome_and_pictures_come_from_the_first_outcome():
    result = RunResult("chaos", 2)
    outcomes = {
        "a": [{"topic": "document-enriched", "value": {"completed_at": 110.0, "pictures": [
            {"status": "described", "cached": True}, {"status": "failed", "reason": "api_unavailable"}]}},
              {"topic": "document-enriched", "value": {"completed_at": 150.0, "pictures": []}}],
        "b": [{"topic": "document-failed", "value": {"failed_at": 130.0, "reason": "corrupt"}}],
    }
    fill_outcomes(result, {"a": 100.0, "b": 100.0, "lost": 100.0}, outcomes)
    assert result.outcome_p50_seconds == 20.0 and result.outcome_max_seconds == 30.0
    assert (result.pictures_described, result.pictures_cached, result.pictures_failed) == (1, 1, 1)
    assert result.picture_failure_reasons == {"api_unavailable": 1}


def test_the_report_compares_runs_flags_kills_without_work_and_sets_the_exit_code():
    baseline = RunResult("baseline", 2, documents=10, enriched=10)
    kill = FaultRecord("kill", 12.0, 10.0, signal="SIGKILL", victim="worker2", victim_in_flight=0,
                       landed_in_flight=False, replacement="worker3")
    chaos = RunResult("chaos", 2, documents=10, enriched=10, reemitted=1, faults=[kill])
    text = render([baseline, chaos])
    assert text.splitlines()[0].split() == ["baseline", "chaos"]
    assert "SIGKILL worker2 with 0 calls under way" in text and "[nothing in flight]" in text
    assert "WARNING: 1 kills found no picture in flight" in text
    assert exit_code([baseline, chaos]) == 0 and text.endswith("OK: nothing lost, nothing doubled")
    assert exit_code([baseline, RunResult("chaos", 2, documents=10, enriched=9, doubled=1)]) == 1


def test_the_json_report_holds_every_run_and_fault():
    kill = FaultRecord("kill", 12.0, 10.0, signal="SIGTERM", victim="worker1", victim_in_flight=2,
                       landed_in_flight=True, replacement="worker3", replacement_ready_seconds=9.0)
    report = ChaosReport(ChaosOptions(workdir=Path("var/x")), RunResult("chaos", 3, documents=4, lost=1,
                                                                        faults=[kill]))
    data = json.loads(json.dumps(report.as_dict()))
    assert data["ok"] is False and report.exit_code == 1 and data["baseline"] is None
    assert data["chaos"]["faults"][0]["victim_in_flight"] == 2 and data["options"]["workdir"] == "var/x"


def test_the_command_has_help_with_an_example():
    result = subprocess.run([sys.executable, "-m", "docsight", "chaos", "--help"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0 and "docsight chaos --workers 2" in result.stdout


# --- a short chaos run ----------------------------------------------------------------

@pytest.mark.cluster
@pytest.mark.slow
def test_kills_and_an_outage_with_pictures_in_flight_lose_and_double_nothing(tmp_path):
    # 30 calls per 6 s window: the budget's hold-off after a SIGKILL (request timeout + a window) is ~20 s
    options = ChaosOptions(workers=2, rounds=3, outages=1, documents=10, duration=40, seed=11, rpm=300,
                           window_seconds=6, max_pictures=30, min_in_flight=2, trigger_timeout=20, stall_seconds=60,
                           baseline=False, workdir=tmp_path / "chaos",
                           worker_env={"VISION_REQUEST_TIMEOUT_SECONDS": "10"})
    report = run_chaos(options)
    result = report.chaos
    text = report.render()
    kills = result.kills
    assert len(kills) == 3 and {kill.signal for kill in kills} == {"SIGKILL", "SIGTERM"}, text
    for kill in kills:
        # the tool's own measurement at the kill: the victim had distinct pictures in flight
        assert kill.landed_in_flight and kill.victim_in_flight >= 1, text
        assert kill.victim_in_flight + kill.victim_waiting >= 2, text
        assert kill.replacement_ready_seconds is not None and not kill.replacement_error, text
    assert result.documents == 10 and len(result.faults) == 4, text
    assert result.lost == 0 and result.doubled == 0, text
    assert result.enriched + result.failed == 10, text
