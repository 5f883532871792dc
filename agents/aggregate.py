"""Aggregate: a document's updates → its table state → document-enriched, once."""

from __future__ import annotations

import json
import logging
import time

from docsight import observability as metrics
from docsight.app import app
from docsight.streams.records import DocumentEnriched, EnrichedPicture
from docsight.streams.topics import document_enriched, document_updates
from docsight.tables.document_state import DocumentState, apply_update, mark_emitted
from docsight.tables.documents import load_state, save_state
from docsight.tables.rendering import render_markdown

from .resources import blob_store

log = logging.getLogger(__name__)

# Kafka's default message limit is 1 MB: larger markdown travels by reference only.
MAX_INLINE_MARKDOWN_BYTES = 512 * 1024


@app.agent(document_updates)
async def aggregate(updates):
    async for update in updates:
        state = apply_update(load_state(update.document_id), update)
        if state is None:
            continue  # a redelivery: nothing changes, nothing is emitted again
        if state.ready_to_emit:
            # Emit first, then record it: a crash in between re-emits the same
            # content (harmless to idempotent readers) instead of losing it.
            enriched = build_enriched(state)
            await (await document_enriched.send(key=state.document_id, value=enriched))
            mark_emitted(state, enriched.completed_at)
            metrics.record_document("enriched", enriched.completed_at - enriched.received_at)
            log.info("document %s enriched: %d pictures", state.document_id, len(state.pictures),
                     extra={"document_id": state.document_id, "stage": "enriched", "pictures": len(state.pictures)})
        save_state(state)


def build_enriched(state: DocumentState) -> DocumentEnriched:
    store = blob_store()
    segments = json.loads(store.get_text(state.markdown_ref))
    markdown = render_markdown(segments, state.pictures, state.results)
    pictures = []
    for picture in state.pictures:
        result = state.results[str(picture["index"])]
        pictures.append(EnrichedPicture(
            index=picture["index"], sha256=picture["sha256"], status=result["status"],
            description=result["description"], reason=result["reason"], location=picture["location"],
            caption=picture["caption"], input_tokens=result["input_tokens"],
            output_tokens=result["output_tokens"], thinking_tokens=result["thinking_tokens"],
            cost_usd=result["cost_usd"], cached=result["cached"]))
    return DocumentEnriched(
        document_id=state.document_id, user_id=state.user_id, location=state.location, format=state.format,
        markdown=markdown if len(markdown.encode()) <= MAX_INLINE_MARKDOWN_BYTES else None,
        markdown_ref=store.put_text(markdown), pictures=pictures,
        input_tokens=state.tokens("input"), output_tokens=state.tokens("output"),
        thinking_tokens=state.tokens("thinking"), cost_usd=state.cost_usd, received_at=state.received_at or 0.0,
        completed_at=time.time())
