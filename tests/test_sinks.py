"""The outcome sinks without a broker: the folder sink's files, and what ``Sinks`` does when one fails.

The topic sink is covered on a real cluster (test_outcome_lane.py and every cluster test that reads
document-enriched / document-failed).
"""

from __future__ import annotations

import asyncio
import json

import pytest

from docsight.commands.status import write_enriched
from docsight.sinks import FolderSink, Sinks, file_name
from docsight.storage import BlobStore
from docsight.streams.records import DocumentEnriched, DocumentFailed, EnrichedPicture


def enriched(document_id="report-2024", markdown="# Report\n\n> **Picture 1:** a red square\n") -> DocumentEnriched:
    return DocumentEnriched(
        document_id=document_id, user_id="ana", location="report.docx", format="docx", markdown=markdown,
        markdown_ref="ab" * 32, input_tokens=270, output_tokens=40, thinking_tokens=0, cost_usd=0.000181,
        received_at=1764355200.1, completed_at=1764355203.4,
        pictures=[EnrichedPicture(index=0, sha256="cd" * 32, status="described", description="a red square",
                                  location="page 1", caption="Figure 1: Confidential", input_tokens=270,
                                  output_tokens=40, cost_usd=0.000181)])


def failed(document_id="broken-1") -> DocumentFailed:
    return DocumentFailed(document_id=document_id, stage="extraction", reason="corrupt",
                          message="the file is not a valid DOCX", original='{"document_id": "broken-1"}',
                          failed_at=1764355200.2)


def test_an_enriched_document_is_written_as_submit_output_writes_it(tmp_path):
    outcome = enriched()
    asyncio.run(FolderSink(tmp_path / "sink").enriched(outcome))
    write_enriched(tmp_path / "cli", outcome.document_id, json.loads(outcome.dumps()))

    for suffix in (".md", ".json"):
        written = (tmp_path / "sink" / f"report-2024{suffix}").read_bytes()
        assert written == (tmp_path / "cli" / f"report-2024{suffix}").read_bytes()
    details = json.loads((tmp_path / "sink" / "report-2024.json").read_text())
    assert "markdown" not in details and details["pictures"][0]["description"] == "a red square"
    assert sorted(p.name for p in (tmp_path / "sink").iterdir()) == ["report-2024.json", "report-2024.md"]


def test_markdown_sent_by_reference_is_read_from_the_store(tmp_path):
    store = BlobStore(tmp_path / "store")
    digest = store.put_text("# Large\n\nbody\n")
    outcome = enriched().derive(markdown=None, markdown_ref=digest)
    asyncio.run(FolderSink(tmp_path / "out", store).enriched(outcome))
    assert (tmp_path / "out" / "report-2024.md").read_text() == "# Large\n\nbody\n"


def test_a_failed_document_is_written_beside_them(tmp_path):
    asyncio.run(FolderSink(tmp_path).failed(failed()))
    record = json.loads((tmp_path / "broken-1.failed.json").read_text())
    assert (record["stage"], record["reason"]) == ("extraction", "corrupt")


@pytest.mark.parametrize("document_id", ["../../etc/passwd", "a b:c", ".hidden", "x" * 256, "", None])
def test_any_document_id_becomes_one_safe_file_name(document_id):
    name = file_name(document_id)
    assert name and "/" not in name and not name.startswith(".") and len(f"{name}.failed.json") <= 255
    assert name != file_name((document_id or "") + "-other")


def test_a_safe_document_id_is_its_own_file_name():
    assert file_name("report-2024_v2.final") == "report-2024_v2.final"


def test_an_extra_sink_that_fails_does_not_turn_the_outcome_into_another(tmp_path, caplog):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the folder should be")
    sinks = Sinks(FolderSink(tmp_path / "required"), [FolderSink(blocked), FolderSink(tmp_path / "second")])

    asyncio.run(sinks.enriched(enriched()))
    asyncio.run(sinks.failed(failed()))

    assert (tmp_path / "required" / "report-2024.md").exists()
    assert (tmp_path / "second" / "report-2024.md").exists()  # the extras after the failing one still run
    assert (tmp_path / "second" / "broken-1.failed.json").exists()
    assert "sink folder could not take the outcome of document report-2024" in caplog.text


def test_when_the_required_sink_fails_the_error_propagates_and_no_extra_runs(tmp_path):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the folder should be")
    sinks = Sinks(FolderSink(blocked), [FolderSink(tmp_path / "extra")])
    with pytest.raises(OSError):
        asyncio.run(sinks.enriched(enriched()))
    assert not (tmp_path / "extra").exists()
