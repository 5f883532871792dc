"""A complete document's outcome: built from its entries, sent inline or whole by reference (no broker)."""

import json

import pytest

from docsight.client import OutcomeUnavailable, full_outcome
from docsight.storage import BlobStore
from docsight.streams.records import DocumentEnriched, DocumentUpdate, PictureInfo, PictureResult
from docsight.tables.document_state import apply_update, read_outcomes
from docsight.tables.outcome import MAX_INLINE_MARKDOWN_BYTES, MAX_OUTCOME_BYTES, build_outcome, for_the_broker

# the producer's max_request_size (and Kafka's default message limit)
BROKER_MESSAGE_LIMIT = 1_000_000


def complete_document(store: BlobStore, pictures: int, description_chars: int, text_chars: int = 10):
    """Header and parts of a complete document whose markdown segments are in ``store``."""
    segments = ["x" * text_chars for _ in range(pictures + 1)]
    infos = [PictureInfo(index=i, sha256=f"{i:064x}", width=100, height=80, location=f"page {i + 1}",
                         caption=f"Figure {i + 1}") for i in range(pictures)]
    parts: dict = {}
    state = apply_update(None, DocumentUpdate(
        kind="manifest", document_id="big", at=10.0, user_id="u", location="big.pdf", format="pdf",
        markdown_ref=store.put_text(json.dumps(segments)), pictures=infos), parts, 0).state
    for i in range(pictures):
        # distinct descriptions, so nothing compresses them into one
        description = (f"Picture {i}: " + "a chart of quarterly figures " * description_chars)[:description_chars]
        state = apply_update(state, DocumentUpdate(kind="picture", document_id="big", at=11.0, picture=PictureResult(
            index=i, sha256=f"{i:064x}", status="described", description=description, model="m",
            input_tokens=258, output_tokens=90, cost_usd=0.0001)), parts, 1 + i).state
    assert state.ready_to_emit
    return state, parts


def outcome_of(store, pictures, description_chars, text_chars=10):
    state, parts = complete_document(store, pictures, description_chars, text_chars)
    return build_outcome(state, *read_outcomes(state, parts), store, completed_at=30.0)


def test_a_small_outcome_goes_inline(tmp_path):
    store = BlobStore(tmp_path)
    outcome = outcome_of(store, pictures=3, description_chars=200)
    record = for_the_broker(outcome, store)
    assert record.outcome_ref is None and record.markdown == outcome.markdown and len(record.pictures) == 3
    assert store.get_text(record.markdown_ref) == outcome.markdown
    assert outcome.input_tokens == 3 * 258 and outcome.cost_usd == pytest.approx(0.0003)


def test_an_outcome_over_the_broker_limit_travels_whole_by_reference(tmp_path):
    # 500 pictures with 3,000-character descriptions: the pictures array repeats every description,
    # so the record is ~3 MB although the markdown alone is under 2 MB
    store = BlobStore(tmp_path)
    outcome = outcome_of(store, pictures=500, description_chars=3000)
    assert len(outcome.dumps()) > BROKER_MESSAGE_LIMIT
    record = for_the_broker(outcome, store)
    assert len(record.dumps()) < MAX_OUTCOME_BYTES < BROKER_MESSAGE_LIMIT
    assert record.markdown is None and record.pictures is None and record.outcome_ref
    assert record.markdown_ref == outcome.markdown_ref and record.input_tokens == outcome.input_tokens
    # the reader gets the whole outcome back from the blob store
    value = json.loads(record.dumps())
    full = full_outcome(value, tmp_path)
    assert full["markdown"] == outcome.markdown and len(full["pictures"]) == 500
    assert full["pictures"][499]["description"] == outcome.pictures[499].description
    assert DocumentEnriched.from_data({k: v for k, v in full.items() if k != "outcome_ref"}) == outcome


def test_the_same_outcome_is_stored_under_the_same_reference(tmp_path):
    # a re-emission after a crash must be the same record (the audit compares content)
    store = BlobStore(tmp_path)
    first = for_the_broker(outcome_of(store, pictures=400, description_chars=3000), store)
    second = for_the_broker(outcome_of(store, pictures=400, description_chars=3000), store)
    assert first.outcome_ref and first.dumps() == second.dumps()


def test_markdown_over_512_kib_goes_by_markdown_ref_when_the_rest_fits(tmp_path):
    store = BlobStore(tmp_path)
    outcome = outcome_of(store, pictures=1, description_chars=100, text_chars=300 * 1024)
    assert len(outcome.markdown.encode()) > MAX_INLINE_MARKDOWN_BYTES
    record = for_the_broker(outcome, store)
    assert record.markdown is None and record.outcome_ref is None and len(record.pictures) == 1
    assert full_outcome(json.loads(record.dumps()), tmp_path)["markdown"] == outcome.markdown


def test_a_reader_without_the_store_is_told_where_the_outcome_is(tmp_path):
    store = BlobStore(tmp_path / "store")
    record = for_the_broker(outcome_of(store, pictures=500, description_chars=3000), store)
    with pytest.raises(OutcomeUnavailable, match="DOCSIGHT_STORE_DIR"):
        full_outcome(json.loads(record.dumps()), tmp_path / "elsewhere")
    with pytest.raises(OutcomeUnavailable, match="not in the store"):
        full_outcome(json.loads(record.dumps()), BlobStore(tmp_path / "empty").root)


def test_the_manifests_facts_reach_the_outcome_through_the_blob_store(tmp_path):
    # the manifest travels by reference: every PictureInfo field (note included) must survive the entry
    store = BlobStore(tmp_path)
    listed = [PictureInfo(index=0, sha256="", width=0, height=0, location="page 2", caption="Logo",
                          note="https://example.com/logo.png").asdict()]
    parts: dict = {}
    state = apply_update(None, DocumentUpdate(
        kind="manifest", document_id="remote", at=1.0, format="html", markdown_ref=store.put_text('["a", "b"]'),
        pictures_ref=store.put_text(json.dumps(listed))), parts, 0, manifest_pictures=lambda: listed).state
    state = apply_update(state, DocumentUpdate(kind="picture", document_id="remote", at=2.0, picture=PictureResult(
        index=0, sha256="", status="skipped", reason="remote_picture")), parts, 1).state
    outcome = build_outcome(state, *read_outcomes(state, parts), store, completed_at=2.0)
    picture = outcome.pictures[0]
    assert (picture.location, picture.caption, picture.status) == ("page 2", "Logo", "skipped")
    assert picture.note == "https://example.com/logo.png"
