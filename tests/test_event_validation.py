"""document-received payloads: good ones parse, bad ones say exactly why."""

import json

import pytest

from docsight.streams.validation import InvalidEvent, parse_document_received

GOOD = {"document_id": "d1", "user_id": "u1", "location": "reports/q3.pdf", "content_type": "application/pdf",
        "submitted_at": "2026-11-28T10:00:00+00:00"}


def encode(data):
    return json.dumps(data).encode()


def test_good_event_parses():
    event = parse_document_received(encode(GOOD), 10_000)
    assert (event.document_id, event.user_id, event.location) == ("d1", "u1", "reports/q3.pdf")


def test_optional_fields_may_be_absent():
    event = parse_document_received(encode({k: GOOD[k] for k in ("document_id", "user_id", "location")}), 10_000)
    assert event.content_type is None


@pytest.mark.parametrize("payload, reason, document_id", [
    (b"{not json", "invalid_json", None),
    (b"\xff\xfe", "invalid_json", None),
    (b"[1, 2]", "invalid_event", None),
    (encode({"user_id": "u", "location": "x"}), "missing_field", None),
    (encode({**GOOD, "location": ""}), "missing_field", "d1"),
    (encode({**GOOD, "user_id": 42}), "wrong_type", "d1"),
    (encode({**GOOD, "content_type": ["a"]}), "wrong_type", "d1"),
    (encode({**GOOD, "submitted_at": "yesterday"}), "invalid_field", "d1"),
    (encode({**GOOD, "document_id": "a/b"}), "invalid_field", None),
    (None, "invalid_event", None),
])
def test_bad_events_are_rejected_with_a_reason(payload, reason, document_id):
    with pytest.raises(InvalidEvent) as caught:
        parse_document_received(payload, 10_000)
    assert caught.value.reason == reason
    if document_id:
        assert caught.value.document_id == document_id
    assert str(caught.value)


def test_oversize_event_is_rejected_before_parsing():
    with pytest.raises(InvalidEvent) as caught:
        parse_document_received(encode({**GOOD, "padding": "x" * 5000}), 1000)
    assert caught.value.reason == "event_too_large"


def test_a_redelivery_is_not_a_duplicate_but_another_source_is():
    from docsight.tables.submissions import is_duplicate

    first = {"source": "document-received/3/17", "at": 1.0}
    assert not is_duplicate(None, "document-received/3/17")
    assert not is_duplicate(first, "document-received/3/17")
    assert is_duplicate(first, "document-received/5/2")
