"""Describe: picture requests → the description service → each picture's outcome on the document's updates.

Topic plumbing only: what a picture's description takes (cache, single flight, budget, provider,
price, accounting) is ``docsight.vision.service.DescriptionService``.
"""

from __future__ import annotations

import time

from docsight.app import app, settings
from docsight.streams.records import DocumentUpdate, PictureRequest
from docsight.streams.topics import document_updates, picture_requests
from docsight.tables import descriptions  # noqa: F401 - registers the cache table before the app starts
from docsight.vision.service import HandBack

from .in_order import handle_concurrently
from .resources import description_service

# One actor; up to this many pictures described at once (batch mode: batches of
# VISION_BATCH_SIZE, VISION_MAX_CONCURRENT_BATCHES of them), acked in offset order.
MAX_PICTURES_IN_FLIGHT = (settings.vision_batch_size * settings.vision_max_concurrent_batches
                          if settings.vision_enable_batch_processing
                          else settings.vision_max_concurrent_per_consumer)


@app.agent(picture_requests)
async def describe(requests):
    """Picture requests → their outcomes; the cache table is written from this one actor's handler tasks."""
    await handle_concurrently(requests, handle_event, max_in_flight=MAX_PICTURES_IN_FLIGHT)


async def handle_event(event) -> None:
    await handle(event.value)


async def handle(request: PictureRequest) -> None:
    result = await description_service().describe(request)
    if isinstance(result, HandBack):
        # a rebalance started while it waited for the budget: its partition's next owner describes it
        # (sent and acknowledged before this event is, so at-least-once holds)
        await (await picture_requests.send(key=request.sha256, value=request))
        return
    await document_updates.send(key=request.document_id, value=DocumentUpdate(
        kind="picture", document_id=request.document_id, at=time.time(), picture=result))
