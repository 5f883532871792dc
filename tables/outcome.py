"""A complete document's ``document-enriched`` record, and the form it takes on the broker.

Plain functions over the header, the pictures' outcomes and the blob store (no broker needed).
"""

from __future__ import annotations

import json
from typing import Any

from docsight.storage import BlobStore
from docsight.streams.records import DocumentEnriched, EnrichedPicture

from .document_state import DocumentState
from .rendering import render_markdown

# Markdown above this travels only by markdown_ref (the record stays readable by any consumer).
MAX_INLINE_MARKDOWN_BYTES = 512 * 1024
# The producer refuses requests over 1,000,000 bytes (Kafka's default message limit too): an outcome
# over this bound (the key, headers and batch framing need the rest) travels whole by outcome_ref.
MAX_OUTCOME_BYTES = 900_000


def build_outcome(state: DocumentState, pictures: list[dict[str, Any]], results: dict[str, dict[str, Any]],
                  store: BlobStore, completed_at: float) -> DocumentEnriched:
    """The whole outcome, markdown and pictures inline (``for_the_broker`` decides what is sent)."""
    segments = json.loads(store.get_text(state.markdown_ref))
    markdown = render_markdown(segments, pictures, results)
    enriched_pictures = []
    for picture in pictures:
        result = results[str(picture["index"])]
        enriched_pictures.append(EnrichedPicture(
            index=picture["index"], sha256=picture["sha256"], status=result["status"],
            description=result["description"], reason=result["reason"], location=picture.get("location"),
            caption=picture.get("caption") or "", input_tokens=result["input_tokens"],
            output_tokens=result["output_tokens"], thinking_tokens=result["thinking_tokens"],
            cost_usd=result["cost_usd"], cached=result["cached"], note=picture.get("note") or ""))
    outcomes = results.values()
    return DocumentEnriched(
        document_id=state.document_id, user_id=state.user_id, location=state.location, format=state.format,
        markdown=markdown, markdown_ref=store.put_text(markdown), pictures=enriched_pictures,
        input_tokens=sum(r.get("input_tokens", 0) for r in outcomes),
        output_tokens=sum(r.get("output_tokens", 0) for r in outcomes),
        thinking_tokens=sum(r.get("thinking_tokens", 0) for r in outcomes),
        cost_usd=round(sum(r.get("cost_usd", 0.0) for r in outcomes), 8),
        received_at=state.received_at or 0.0, completed_at=completed_at)


def for_the_broker(outcome: DocumentEnriched, store: BlobStore, limit: int = MAX_OUTCOME_BYTES) -> DocumentEnriched:
    """The record to send: inline (markdown by reference above 512 KiB) when it fits ``limit``,
    else the whole outcome in the blob store and a small record naming it (``outcome_ref``)."""
    markdown = outcome.markdown
    inline = outcome.derive(
        markdown=markdown if markdown is not None and len(markdown.encode()) <= MAX_INLINE_MARKDOWN_BYTES else None)
    if len(inline.dumps()) <= limit:
        return inline
    return outcome.derive(markdown=None, pictures=None, outcome_ref=store.put(outcome.dumps()))


def emitted_totals(outcome: DocumentEnriched) -> dict[str, Any]:
    """The figures of the emitted outcome, for the header (so the web view shows the same)."""
    return {"input_tokens": outcome.input_tokens, "output_tokens": outcome.output_tokens,
            "thinking_tokens": outcome.thinking_tokens, "cost_usd": outcome.cost_usd}
