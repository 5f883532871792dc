"""Aggregate: a document's updates → its header and parts → document-enriched or document-failed, once.

The one place a document that reached its aggregate leaves from: enriched when every picture has its
outcome, failed when extraction failed (a ``failed`` update) or when aggregating one of its updates
raised. Once it has left, later updates change nothing (a redelivery, a late failure, a second manifest).
It leaves through the outcome sinks (``docsight.sinks``): the output topics, and the folder of
``DOCSIGHT_OUTPUT_DIR`` when set.
"""

from __future__ import annotations

import json
import logging
import time

from docsight import observability as metrics
from docsight.app import app
from docsight.streams.records import DocumentFailed, DocumentUpdate
from docsight.streams.topics import document_updates
from docsight.tables.document_state import (DocumentState, apply_update, mark_emitted, mark_failed,
                                            original_text, read_outcomes)
from docsight.tables.documents import document_parts, load_state, save_state
from docsight.tables.outcome import build_outcome, emitted_totals

from .resources import blob_store, outcome_sinks

log = logging.getLogger(__name__)

AGGREGATION_ERROR = "aggregation_error"
MAX_ERROR_MESSAGE_CHARS = 1000


@app.agent(document_updates)
async def aggregate(updates):
    async for event in updates.events():
        if event.value is None:
            log.warning("document update without a value at offset %d: skipped", event.message.offset)
            continue
        # the offset orders the document's updates (all on this partition): see tables.document_state
        await handle_update(event.value, event.message.offset)


async def handle_update(update: DocumentUpdate, position: int) -> None:
    # Faust acks an event even when the agent raises (faust-streaming #527): an error here must end
    # the document in document-failed, never in silence.
    outcome_sent = False
    try:
        change = apply_update(load_state(update.document_id), update, document_parts, position,
                              manifest_pictures=_manifest_loader(update))
        for ignored in change.ignored:
            metrics.record_picture_result_ignored(ignored.reason)
            log.warning("document %s: picture %d outcome ignored (%s, sha256 %s)", update.document_id,
                        ignored.index, ignored.reason, ignored.sha256[:12],
                        extra={"document_id": update.document_id, "stage": "aggregation",
                               "reason": ignored.reason})
        state = change.state
        if change.failure is not None:
            # Emit first, then record it: a crash in between re-emits instead of losing it.
            await emit_failed(state, **change.failure)
            outcome_sent = True
            save_state(state)
        elif state.ready_to_emit:
            await emit_enriched(state)
            outcome_sent = True
            save_state(state)
        elif change.changed:
            save_state(state)
    except Exception as error:  # noqa: BLE001 - one document fails, the stream goes on
        log.exception("document %s: error while aggregating a %s update", update.document_id, update.kind,
                      extra={"document_id": update.document_id, "stage": "aggregation"})
        await fail_in_aggregation(update.document_id, error, outcome_sent)


async def emit_enriched(state: DocumentState) -> None:
    store = blob_store()
    # the time of the update that completed it: a re-emission after a crash is the same record, byte for byte
    completed_at = max(state.updated_at or 0.0, state.received_at or 0.0)
    pictures, results = read_outcomes(state, document_parts)
    outcome = build_outcome(state, pictures, results, store, completed_at)
    await outcome_sinks().enriched(outcome)
    mark_emitted(state, completed_at, emitted_totals(outcome))
    metrics.record_document("enriched", completed_at - outcome.received_at)
    log.info("document %s enriched: %d pictures", state.document_id, len(pictures),
             extra={"document_id": state.document_id, "stage": "enriched", "pictures": len(pictures)})


async def emit_failed(state: DocumentState, stage: str, reason: str, message: str, original: str,
                      failed_at: float) -> None:
    await outcome_sinks().failed(DocumentFailed(
        document_id=state.document_id, stage=stage, reason=reason, message=message, original=original,
        failed_at=failed_at))
    metrics.record_document("failed", failed_at - state.received_at if state.received_at else None,
                            stage=stage, reason=reason)
    log.warning("document %s failed at %s: %s (%s)", state.document_id, stage, reason, message,
                extra={"document_id": state.document_id, "stage": stage, "reason": reason})


async def fail_in_aggregation(document_id: str, error: Exception, outcome_sent: bool) -> None:
    """End the document in document-failed (stage aggregation), unless it already left."""
    if outcome_sent:
        # its outcome was acknowledged: the document must not get a second one. Its header may not say
        # so yet; a redelivery then re-emits the same record, harmless to idempotent readers.
        return
    try:
        try:
            state = load_state(document_id) or DocumentState(document_id=document_id)
        except Exception:  # noqa: BLE001 - an unreadable header must not stop the failure
            log.exception("document %s: header unreadable; failing it from a fresh one", document_id)
            state = DocumentState(document_id=document_id)
        if state.final:
            return  # it already left (enriched or failed): nothing more is emitted
        message = f"the aggregate could not process an update: {type(error).__name__}: {error}"
        message = message[:MAX_ERROR_MESSAGE_CHARS]
        failed_at = time.time()
        mark_failed(state, "aggregation", AGGREGATION_ERROR, message, failed_at)
        try:
            original = original_text(document_id, document_parts)
        except Exception:  # noqa: BLE001 - the failure goes out without the event's text rather than not at all
            log.exception("document %s: received event unreadable", document_id)
            original = ""
        await emit_failed(state, "aggregation", AGGREGATION_ERROR, message, original, failed_at)
        save_state(state)
    except Exception:  # noqa: BLE001 - nothing more can be done here; say so loudly
        log.critical("document %s: could not emit its document-failed after an aggregation error", document_id,
                     exc_info=True, extra={"document_id": document_id, "stage": "aggregation"})


def _manifest_loader(update: DocumentUpdate):
    if update.kind != "manifest" or not update.pictures_ref:
        return None
    return lambda: json.loads(blob_store().get_text(update.pictures_ref))
