"""The per-document aggregate: any order, redelivery, completion, rendering (no broker)."""

import itertools

import pytest

from docsight.streams.records import DocumentUpdate, PictureInfo, PictureResult
from docsight.tables.document_state import DESCRIBING, ENRICHED, FAILED, apply_update, mark_emitted
from docsight.tables.rendering import render_markdown


def manifest(n, document_id="doc-1"):
    pictures = [PictureInfo(index=i, sha256=f"{i:064x}", width=100, height=80, location=f"page {i + 1}",
                            caption=f"Figure {i + 1}") for i in range(n)]
    return DocumentUpdate(kind="manifest", document_id=document_id, at=10.0, user_id="u", location="a.pdf",
                          format="pdf", markdown_ref="ab" * 32, pictures=pictures)


def picture(i, status="described", tokens=300, document_id="doc-1"):
    result = PictureResult(index=i, sha256=f"{i:064x}", status=status, description=f"Description {i}",
                           reason="" if status == "described" else "invalid_image", model="m",
                           input_tokens=tokens, output_tokens=20, thinking_tokens=0, attempts=1)
    return DocumentUpdate(kind="picture", document_id=document_id, at=11.0 + i, picture=result)


def run(updates):
    state = None
    for update in updates:
        state = apply_update(state, update) or state
    return state


@pytest.mark.parametrize("order", list(itertools.permutations(range(4))))
def test_any_order_of_manifest_and_pictures_completes_once(order):
    updates = [manifest(3), picture(0), picture(1), picture(2)]
    state = None
    completions = 0
    for index in order:
        changed = apply_update(state, updates[index])
        state = changed or state
        if changed and changed.ready_to_emit:
            completions += 1
            mark_emitted(changed, 20.0)
    assert completions == 1
    assert state.status == ENRICHED
    assert state.tokens("input") == 900


def test_redelivered_updates_change_nothing():
    state = run([manifest(2), picture(0), picture(1)])
    assert state.ready_to_emit
    mark_emitted(state, 20.0)
    for update in (manifest(2), picture(0), picture(1)):
        assert apply_update(state, update) is None
    assert not state.ready_to_emit
    assert state.tokens("input") == 600


def test_first_outcome_of_a_picture_stands():
    state = run([manifest(1), picture(0, "failed", tokens=0)])
    assert apply_update(state, picture(0, "described")) is None
    assert state.results["0"]["status"] == "failed"


def test_waits_for_the_manifest_and_every_picture():
    state = run([picture(0), picture(1)])
    assert not state.complete and state.pictures_expected is None
    state = run([manifest(3), picture(0), picture(1)])
    assert state.status == DESCRIBING and not state.complete


def test_zero_picture_document_completes_on_its_manifest():
    state = apply_update(None, manifest(0))
    assert state.ready_to_emit


def test_failed_document_never_emits():
    failed = DocumentUpdate(kind="failed", document_id="doc-1", at=5.0, stage="extraction", reason="corrupt",
                            message="broken")
    state = run([failed, manifest(1), picture(0)])
    assert state.status == FAILED and not state.ready_to_emit
    assert state.failure["reason"] == "corrupt"


def test_summary_counts_outcomes():
    state = run([manifest(3), picture(0), picture(1, "failed", tokens=0)])
    summary = state.summary()
    assert summary["pictures"] == {"expected": 3, "described": 1, "failed": 1, "skipped": 0, "from_cache": 0}
    assert summary["tokens"]["input"] == 300
    assert summary["status"] == DESCRIBING


def test_state_round_trips_through_its_dict():
    from docsight.tables.document_state import DocumentState

    state = run([manifest(2), picture(1)])
    assert DocumentState.from_dict(state.to_dict()) == state


def test_render_places_each_description_at_its_picture():
    state = run([manifest(2), picture(0), picture(1, "failed", tokens=0)])
    text = render_markdown(["# Title\n\nIntro.\n", "\nMiddle.\n", "\nEnd."], state.pictures, state.results)
    assert text.index("Intro.") < text.index("Description 0") < text.index("Middle.")
    assert text.index("Middle.") < text.index("Description unavailable: invalid_image") < text.index("End.")
    assert "> **Picture 1 (page 1):** Description 0" in text
    assert "\n\n\n" not in text


def test_render_keeps_the_documents_own_blank_lines():
    state = run([manifest(1), picture(0)])
    text = render_markdown(["```\na\n\n\n\nb\n```\n", "tail"], state.pictures, state.results)
    assert "a\n\n\n\nb" in text


def test_render_refuses_segments_that_do_not_match():
    state = run([manifest(2)])
    with pytest.raises(ValueError):
        render_markdown(["only one"], state.pictures, {})


def test_adjacent_pictures_are_separated_by_one_blank_line():
    state = run([manifest(2), picture(0), picture(1)])
    text = render_markdown(["Intro.", "\n\n", "End."], state.pictures, state.results)
    assert "Description 0\n\n> **Picture 2" in text
