"""The per-document aggregate: any order, redelivery, completion, bounded state, manifest checks (no broker)."""

import itertools
import json

import pytest

from docsight.streams.records import DocumentUpdate, PictureInfo, PictureResult
from docsight.tables.document_state import (DESCRIBING, ENRICHED, FAILED, SHA256_MISMATCH, UNKNOWN_INDEX,
                                            DocumentState, apply_update, mark_emitted, picture_key, read_outcomes)
from docsight.tables.rendering import render_markdown


def sha(i, run=0):
    return f"{run:08x}{i:056x}"


def manifest(n, document_id="doc-1", run=0):
    pictures = [PictureInfo(index=i, sha256=sha(i, run), width=100, height=80, location=f"page {i + 1}",
                            caption=f"Figure {i + 1}") for i in range(n)]
    return DocumentUpdate(kind="manifest", document_id=document_id, at=10.0, user_id="u", location="a.pdf",
                          format="pdf", markdown_ref="ab" * 32, pictures=pictures)


def picture(i, status="described", tokens=300, document_id="doc-1", run=0, description=None):
    result = PictureResult(index=i, sha256=sha(i, run), status=status,
                           description=f"Description {i}" if description is None else description,
                           reason="" if status == "described" else "invalid_image", model="m",
                           input_tokens=tokens, output_tokens=20, thinking_tokens=0, attempts=1)
    return DocumentUpdate(kind="picture", document_id=document_id, at=11.0 + i, picture=result)


def received(document_id="doc-1", original='{"document_id": "doc-1"}'):
    return DocumentUpdate(kind="received", document_id=document_id, at=9.0, user_id="u", location="a.pdf",
                          original=original)


def failed(document_id="doc-1", original=""):
    return DocumentUpdate(kind="failed", document_id=document_id, at=5.0, stage="extraction", reason="corrupt",
                          message="broken", original=original)


class Aggregate:
    """A document's header and parts, fed updates at increasing positions like the agent does."""

    def __init__(self):
        self.state = None
        self.parts = {}
        self.position = 0
        self.emitted = 0
        self.failures = []
        self.ignored = []

    def apply(self, update, position=None):
        if position is None:
            position = self.position
            self.position += 1
        change = apply_update(self.state, update, self.parts, position)
        self.state = change.state
        self.ignored += change.ignored
        if change.failure:
            self.failures.append(change.failure)
        elif self.state.ready_to_emit:
            self.emitted += 1
            mark_emitted(self.state, 20.0)
        return change


def run(updates):
    aggregate = Aggregate()
    for update in updates:
        aggregate.apply(update)
    return aggregate


@pytest.mark.parametrize("order", list(itertools.permutations(range(4))))
def test_any_order_of_manifest_and_pictures_completes_once(order):
    updates = [manifest(3), picture(0), picture(1), picture(2)]
    aggregate = run([updates[index] for index in order])
    assert aggregate.emitted == 1
    assert aggregate.state.status == ENRICHED
    assert aggregate.state.tokens("input") == 900
    assert aggregate.state.described == 3 and not aggregate.ignored


def test_redelivered_updates_change_nothing():
    aggregate = run([manifest(2), picture(0)])
    header_before = aggregate.state.to_dict()
    # the same records again (same positions), then copies sent again (new positions)
    assert not aggregate.apply(manifest(2), position=0).changed
    assert not aggregate.apply(picture(0), position=1).changed
    assert not aggregate.apply(picture(0)).changed
    assert aggregate.state.to_dict() == header_before
    aggregate.apply(picture(1))
    assert aggregate.emitted == 1
    for update in (manifest(2), picture(0), picture(1), received(), failed()):
        assert not aggregate.apply(update).changed
    assert aggregate.emitted == 1 and not aggregate.failures
    assert aggregate.state.tokens("input") == 600


def test_first_outcome_of_a_picture_stands():
    aggregate = run([manifest(2), picture(0, "failed", tokens=0)])
    assert not aggregate.apply(picture(0, "described")).changed
    assert aggregate.parts[picture_key("doc-1", 0)]["outcome"]["status"] == "failed"
    assert (aggregate.state.failed, aggregate.state.described) == (1, 0)


def test_waits_for_the_manifest_and_every_picture():
    aggregate = run([picture(0), picture(1)])
    assert not aggregate.state.complete and aggregate.state.pictures_expected is None
    aggregate = run([manifest(3), picture(0), picture(1)])
    assert aggregate.state.status == DESCRIBING and not aggregate.state.complete and aggregate.emitted == 0


def test_zero_picture_document_completes_on_its_manifest():
    assert run([manifest(0)]).emitted == 1


def test_a_failed_document_never_emits_and_its_failure_leaves_once():
    aggregate = run([received(original="the event"), failed(), manifest(1), picture(0), failed()])
    assert aggregate.state.status == FAILED and aggregate.emitted == 0
    assert aggregate.state.failure["reason"] == "corrupt"
    # one document-failed, with the received event's text kept from the received update
    assert len(aggregate.failures) == 1
    assert aggregate.failures[0]["original"] == "the event" and aggregate.failures[0]["stage"] == "extraction"


def test_an_enriched_document_gets_no_later_failure():
    aggregate = run([manifest(1), picture(0)])
    assert aggregate.emitted == 1
    change = aggregate.apply(failed())  # e.g. a redelivered submission whose file has moved since
    assert not change.changed and change.failure is None
    assert aggregate.state.status == ENRICHED and not aggregate.failures


def test_summary_counts_outcomes():
    aggregate = run([manifest(3), picture(0), picture(1, "failed", tokens=0)])
    summary = aggregate.state.summary()
    assert summary["pictures"] == {"expected": 3, "described": 1, "failed": 1, "skipped": 0, "from_cache": 0}
    assert summary["tokens"]["input"] == 300
    assert summary["status"] == DESCRIBING


def test_state_round_trips_through_its_dict():
    state = run([manifest(2), picture(1)]).state
    assert DocumentState.from_dict(state.to_dict()) == state
    assert DocumentState.from_dict({**state.to_dict(), "a_field_of_another_version": 1}) == state


# --- bounded state, O(1) per update -----------------------------------------------------------------------

class CountingParts(dict):
    """A dict that remembers the JSON size of every write (what the table's changelog would carry)."""

    def __init__(self):
        super().__init__()
        self.writes = []

    def __setitem__(self, key, value):
        self.writes.append(len(json.dumps(value)))
        super().__setitem__(key, value)


@pytest.mark.parametrize("pictures", [10, 2000])
def test_each_picture_update_writes_the_header_and_one_small_entry(pictures):
    parts = CountingParts()
    change = apply_update(None, manifest(pictures), parts, 0)
    assert len(parts.writes) == pictures  # the manifest writes each picture's entry once
    state = change.state
    header_sizes, entry_writes = [], []
    for i in range(pictures):
        written_before = len(parts.writes)
        change = apply_update(state, picture(i, description="d" * 500), parts, 1 + i)
        state = change.state
        assert change.changed
        entry_writes.append(parts.writes[written_before:])
        header_sizes.append(len(json.dumps(state.to_dict())))
    assert all(len(writes) == 1 for writes in entry_writes)
    # neither the header nor the entry grows with the number of pictures
    assert max(header_sizes) < 1200
    assert max(writes[0] for writes in entry_writes) < 1200
    assert state.complete and state.outcomes == pictures
    pictures_read, results = read_outcomes(state, parts)
    assert [p["index"] for p in pictures_read] == list(range(pictures)) and len(results) == pictures


def test_the_manifest_can_come_by_reference():
    listed = [{"index": i, "sha256": sha(i), "width": 10, "height": 10, "location": None, "caption": ""}
              for i in range(2)]
    by_reference = DocumentUpdate(kind="manifest", document_id="doc-1", at=10.0, format="md",
                                  markdown_ref="ab" * 32, pictures_ref="cd" * 32)
    parts = {}
    state = apply_update(None, by_reference, parts, 0, manifest_pictures=lambda: listed).state
    assert state.pictures_expected == 2
    state = apply_update(state, picture(0), parts, 1).state
    state = apply_update(state, picture(1), parts, 2).state
    assert state.ready_to_emit


# --- a picture outcome must match the manifest (index and sha256) -----------------------------------------

def test_an_outcome_with_another_sha256_is_ignored():
    aggregate = run([manifest(2), picture(0), picture(1, run=7)])  # a late result of an older extraction
    assert [(i.index, i.reason) for i in aggregate.ignored] == [(1, SHA256_MISMATCH)]
    assert aggregate.state.outcomes == 1 and aggregate.emitted == 0
    aggregate.apply(picture(1))
    assert aggregate.emitted == 1
    assert aggregate.parts[picture_key("doc-1", 1)]["picture"]["sha256"] == sha(1)


def test_an_outcome_for_an_index_the_manifest_lacks_is_ignored():
    aggregate = run([manifest(1), picture(5)])
    assert [(i.index, i.reason) for i in aggregate.ignored] == [(5, UNKNOWN_INDEX)]
    assert aggregate.state.outcomes == 0


def test_early_outcomes_are_checked_when_the_manifest_arrives():
    # outcomes before the manifest: one of this run, one of an older run, one for an index it does not have
    aggregate = run([picture(0), picture(1, run=7), picture(4), manifest(2)])
    assert sorted((i.index, i.reason) for i in aggregate.ignored) == [(1, SHA256_MISMATCH), (4, UNKNOWN_INDEX)]
    assert aggregate.state.outcomes == 1 and aggregate.emitted == 0
    assert picture_key("doc-1", 4) not in aggregate.parts
    aggregate.apply(picture(1))
    assert aggregate.emitted == 1 and aggregate.state.tokens("input") == 600


def test_an_early_outcome_and_its_redelivery_count_once():
    aggregate = run([picture(0), picture(0), manifest(2), picture(0), picture(1)])
    assert aggregate.emitted == 1 and aggregate.state.outcomes == 2 and aggregate.state.tokens("input") == 600


# --- a crash between the two tables' writes ---------------------------------------------------------------

def test_an_entry_kept_without_its_header_write_is_counted_on_redelivery():
    aggregate = run([manifest(2), picture(0)])
    header = aggregate.state.to_dict()
    aggregate.apply(picture(1), position=2)
    assert aggregate.emitted == 1
    # the crash kept picture 1's entry but lost the header write (and the emission's record)
    aggregate.state, aggregate.emitted = DocumentState.from_dict(header), 0
    aggregate.apply(picture(1), position=2)  # redelivered: same record, same position
    assert aggregate.emitted == 1 and aggregate.state.outcomes == 2


def test_a_header_kept_without_its_manifest_entries_gets_them_on_redelivery():
    aggregate = run([picture(1)])
    before_manifest = dict(aggregate.parts)
    aggregate.apply(manifest(2), position=1)
    aggregate.parts.clear()
    aggregate.parts.update(before_manifest)  # the crash lost the manifest's entry writes, not the header's
    aggregate.apply(manifest(2), position=1)  # redelivered
    aggregate.position = 2
    assert aggregate.parts[picture_key("doc-1", 0)]["picture"]["sha256"] == sha(0)
    assert aggregate.state.outcomes == 1
    aggregate.apply(picture(0))
    aggregate.apply(picture(1))  # a second copy: picture 1 already came early and is counted
    assert aggregate.emitted == 1 and aggregate.state.outcomes == 2


# --- rendering from the entries ---------------------------------------------------------------------------

def rendered(aggregate, segments):
    pictures, results = read_outcomes(aggregate.state, aggregate.parts)
    return render_markdown(segments, pictures, results)


def test_render_places_each_description_at_its_picture():
    aggregate = run([manifest(2), picture(0), picture(1, "failed", tokens=0)])
    text = rendered(aggregate, ["# Title\n\nIntro.\n", "\nMiddle.\n", "\nEnd."])
    assert text.index("Intro.") < text.index("Description 0") < text.index("Middle.")
    assert text.index("Middle.") < text.index("Description unavailable: invalid_image") < text.index("End.")
    assert "> **Picture 1 (page 1):** Description 0" in text
    assert "\n\n\n" not in text


def test_render_keeps_the_documents_own_blank_lines():
    text = rendered(run([manifest(1), picture(0)]), ["```\na\n\n\n\nb\n```\n", "tail"])
    assert "a\n\n\n\nb" in text


def test_render_refuses_segments_that_do_not_match():
    aggregate = run([manifest(2), picture(0), picture(1)])
    with pytest.raises(ValueError):
        rendered(aggregate, ["only one"])


def test_reading_outcomes_of_an_incomplete_document_fails_loudly():
    aggregate = run([manifest(2), picture(0)])
    with pytest.raises(LookupError):
        read_outcomes(aggregate.state, aggregate.parts)


def test_adjacent_pictures_are_separated_by_one_blank_line():
    text = rendered(run([manifest(2), picture(0), picture(1)]), ["Intro.", "\n\n", "End."])
    assert "Description 0\n\n> **Picture 2" in text
