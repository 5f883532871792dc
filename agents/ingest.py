"""Ingest: document-received → validate → by document id → docling → manifest + one request per picture."""

from __future__ import annotations

import json
import logging
import time

from docsight import observability as metrics
from docsight.app import app, settings
from docsight.cost import PictureFacts, select_pictures
from docsight.extraction import ExtractionError, resolve_document_path
from docsight.streams.records import (DocumentFailed, DocumentSubmission, DocumentUpdate, PictureInfo,
                                      PictureRequest, PictureResult)
from docsight.streams.topics import (document_failed, document_received, document_submissions, document_updates,
                                     picture_requests)
from docsight.tables.submissions import is_duplicate, submissions
from docsight.streams.validation import InvalidEvent, parse_document_received

from .in_order import handle_concurrently
from .resources import blob_store, extraction_pool, filter_policy

log = logging.getLogger(__name__)


@app.agent(document_received)
async def ingest(events):
    """Validate each received event and repartition it by document id; reject what is malformed."""
    async for event in events.events():
        raw = event.value
        try:
            document = parse_document_received(raw, settings.max_event_bytes)
        except InvalidEvent as invalid:
            # An invalid event never becomes the document: a corrected event with
            # the same id is processed as its first submission.
            await reject(invalid.document_id, "validation", invalid.reason, str(invalid), raw,
                         record_on_document=False)
            continue
        message = event.message
        await document_submissions.send(key=document.document_id, value=DocumentSubmission(
            document_id=document.document_id, user_id=document.user_id, location=document.location,
            content_type=document.content_type, submitted_at=document.submitted_at,
            source=f"{message.topic}/{message.partition}/{message.offset}",
            original=raw.decode("utf-8", errors="replace")))


@app.agent(document_submissions)
async def extract_documents(documents):
    """As many documents at once as extraction processes, acked in offset order."""
    await handle_concurrently(documents, extract_event, max_in_flight=settings.extraction_processes)


async def extract_event(event) -> None:
    document = event.value
    first = submissions.get(document.document_id)
    if is_duplicate(first, document.source):
        await reject(document.document_id, "validation", "duplicate_document_id",
                     f"document {document.document_id!r} was already submitted "
                     f"(first from {first['source']}); submit it under a new id to process it again",
                     document.original.encode(), record_on_document=False)
        return
    if first is None:
        submissions[document.document_id] = {"source": document.source, "at": time.time()}
    log.info("document %s received: %s", document.document_id, document.location,
             extra={"document_id": document.document_id, "stage": "received"})
    raw = document.original.encode()
    try:
        await extract(document, raw)
    except Exception as error:  # noqa: BLE001 - a bug must fail one document, not stop the stream
        log.exception("document %s: unexpected error", document.document_id)
        await reject(document.document_id, "extraction", "internal_error", f"{type(error).__name__}: {error}",
                     raw, user_id=document.user_id, location=document.location)


async def extract(document, raw: bytes) -> None:
    document_id = document.document_id
    base = dict(document_id=document_id, user_id=document.user_id, location=document.location)
    # the received event's text goes with it: the aggregate needs it for any later document-failed
    await document_updates.send(key=document_id, value=DocumentUpdate(
        kind="received", at=time.time(), original=raw.decode("utf-8", errors="replace"), **base))
    try:
        path = resolve_document_path(document.location, settings.document_root)
        result = await extraction_pool().extract(path, document.content_type)
    except ExtractionError as error:
        await reject(document_id, "extraction", error.reason, str(error), raw, user_id=document.user_id,
                     location=document.location)
        return
    log.info("document %s extracted: format=%s pictures=%d", document_id, result.format, len(result.pictures),
             extra={"document_id": document_id, "stage": "extracted", "format": result.format,
                    "pictures": len(result.pictures)})

    markdown_ref = blob_store().put_text(json.dumps(result.segments))
    # by reference, like the markdown: thousands of pictures inline would pass the broker's message limit
    pictures_ref = blob_store().put_text(json.dumps([
        PictureInfo(index=p.index, sha256=p.sha256, width=p.width, height=p.height, location=p.location,
                    caption=p.caption, note=p.note).asdict() for p in result.pictures]))
    await document_updates.send(key=document_id, value=DocumentUpdate(
        kind="manifest", at=time.time(), format=result.format, markdown_ref=markdown_ref, pictures_ref=pictures_ref,
        **base))
    # pictures without bytes (remote, EMF without LibreOffice, a chart not rendered...) come decided
    for picture in (p for p in result.pictures if p.status):
        metrics.record_picture(picture.status, skip_reason_code=picture.reason)
        await document_updates.send(key=document_id, value=DocumentUpdate(
            kind="picture", document_id=document_id, at=time.time(), picture=PictureResult(
                index=picture.index, sha256=picture.sha256, status=picture.status, reason=picture.reason)))
    pending = [p for p in result.pictures if not p.status]
    decisions = select_pictures(
        [PictureFacts(p.index, p.width, p.height, p.size_bytes) for p in pending], result.format, filter_policy())
    for picture, decision in zip(pending, decisions):
        if not decision.describe:
            metrics.record_picture("skipped", skip_reason_code=str(decision.reason))
            await document_updates.send(key=document_id, value=DocumentUpdate(
                kind="picture", document_id=document_id, at=time.time(), picture=PictureResult(
                    index=picture.index, sha256=picture.sha256, status="skipped", reason=str(decision.reason))))
            continue
        # keyed by content: identical pictures meet on one partition (and its cache)
        await picture_requests.send(key=picture.sha256, value=PictureRequest(
            document_id=document_id, picture_index=picture.index, sha256=picture.sha256,
            mime_type=picture.mime_type, width=picture.width, height=picture.height,
            size_bytes=picture.size_bytes, caption=picture.caption, context=picture.context,
            location=picture.location, requested_at=time.time()))


async def reject(document_id: str | None, stage: str, reason: str, message: str, raw: bytes | None,
                 user_id: str = "", location: str = "", record_on_document: bool = True) -> None:
    """Fail a document.

    One that became a document (``record_on_document``) fails through its aggregate, the one place its
    outcome leaves from: it emits document-failed unless the document already ended (enriched, or failed
    before). An event that never became the document (invalid, a duplicate id) goes to document-failed here.
    """
    original = raw.decode("utf-8", errors="replace") if raw else ""
    if document_id and record_on_document:
        log.info("document %s failing at %s: %s (%s)", document_id, stage, reason, message,
                 extra={"document_id": document_id, "stage": stage, "reason": reason})
        await document_updates.send(key=document_id, value=DocumentUpdate(
            kind="failed", document_id=document_id, at=time.time(), stage=stage, reason=reason, message=message,
            user_id=user_id, location=location, original=original))
        return
    log.warning("document %s failed at %s: %s (%s)", document_id, stage, reason, message,
                extra={"document_id": document_id, "stage": stage, "reason": reason})
    metrics.record_document("failed", stage=stage, reason=reason)
    await document_failed.send(key=document_id, value=DocumentFailed(
        document_id=document_id, stage=stage, reason=reason, message=message, original=original,
        failed_at=time.time()))
