"""Turn a raw document-received payload into a DocumentReceived, or say exactly why not."""

from __future__ import annotations

import json
from datetime import datetime

from .records import DocumentReceived

REQUIRED_STRINGS = ("document_id", "user_id", "location")
OPTIONAL_STRINGS = ("content_type", "submitted_at")
MAX_ID_LENGTH = 256


class InvalidEvent(ValueError):
    def __init__(self, reason: str, message: str, document_id: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.document_id = document_id


def parse_document_received(raw: bytes | None, max_bytes: int) -> DocumentReceived:
    if raw is None:
        raise InvalidEvent("invalid_event", "the event has no value")
    if len(raw) > max_bytes:
        raise InvalidEvent("event_too_large", f"the event is {len(raw)} bytes; the limit is {max_bytes}")
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidEvent("invalid_json", f"the event is not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise InvalidEvent("invalid_event", f"the event must be a JSON object, not {type(data).__name__}")

    document_id = data.get("document_id")
    known_id = document_id if isinstance(document_id, str) and document_id else None
    for field in REQUIRED_STRINGS:
        value = data.get(field)
        if value is None:
            raise InvalidEvent("missing_field", f"required field {field!r} is missing", known_id)
        if not isinstance(value, str):
            raise InvalidEvent(
                "wrong_type", f"field {field!r} must be a string, not {type(value).__name__}", known_id)
        if not value.strip():
            raise InvalidEvent("missing_field", f"required field {field!r} is empty", known_id)
    for field in OPTIONAL_STRINGS:
        value = data.get(field)
        if value is not None and not isinstance(value, str):
            raise InvalidEvent(
                "wrong_type", f"field {field!r} must be a string, not {type(value).__name__}", known_id)
    if len(document_id) > MAX_ID_LENGTH or "/" in document_id:
        raise InvalidEvent(
            "invalid_field", f"document_id must be at most {MAX_ID_LENGTH} characters without '/'", known_id)
    if data.get("submitted_at"):
        try:
            datetime.fromisoformat(data["submitted_at"])
        except ValueError:
            raise InvalidEvent("invalid_field", "submitted_at must be an ISO 8601 timestamp", known_id) from None
    return DocumentReceived(**{key: data.get(key) for key in REQUIRED_STRINGS + OPTIONAL_STRINGS})
