"""Describe: one picture request → a paced, retried Gemini call → the picture's outcome."""

from __future__ import annotations

import time

from docsight.app import app, settings
from docsight.storage import BlobNotFound
from docsight.streams.records import DocumentUpdate, PictureResult
from docsight.streams.topics import document_updates, picture_requests
from docsight.vision.describer import Outcome

from .resources import blob_store, picture_describer


@app.agent(picture_requests, concurrency=settings.vision_max_concurrent_per_consumer)
async def describe(requests):
    async for request in requests:
        try:
            image = blob_store().get(request.sha256)
        except BlobNotFound:
            outcome = Outcome(status="failed", reason="picture_missing_from_store")
        else:
            outcome = await picture_describer().describe(
                image, request.mime_type, request.caption, request.context, request.location)
        result = PictureResult(
            index=request.picture_index, sha256=request.sha256, status=outcome.status,
            description=outcome.description, reason=outcome.reason, model=outcome.model,
            input_tokens=outcome.input_tokens, output_tokens=outcome.output_tokens,
            thinking_tokens=outcome.thinking_tokens, attempts=outcome.attempts,
            latency_seconds=outcome.latency_seconds)
        await document_updates.send(key=request.document_id, value=DocumentUpdate(
            kind="picture", document_id=request.document_id, at=time.time(), picture=result))
