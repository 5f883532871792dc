"""Describe: one picture request → cache, or a budgeted Gemini call → the picture's outcome."""

from __future__ import annotations

import asyncio
import logging
import time

from docsight import observability as metrics
from docsight.app import app, settings
from docsight.cost import ImageRejectedError, picture_key, prepare_for_api
from docsight.storage import BlobNotFound
from docsight.streams.records import DocumentUpdate, PictureRequest, PictureResult
from docsight.streams.topics import document_updates, picture_requests
from docsight.tables.descriptions import cache_description, cached_description
from docsight.vision.describer import REQUEUE, Outcome, PreparedPicture
from docsight.vision.prompt import PROMPT_VERSION

from .in_order import handle_concurrently
from .resources import blob_store, picture_describer, price_table, single_flight

log = logging.getLogger(__name__)


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
    try:
        result = await describe_picture(request)
    except Exception as error:  # noqa: BLE001 - a bug fails one picture; its document still completes
        log.exception("picture %s of %s: unexpected error", request.picture_index, request.document_id)
        result = PictureResult(index=request.picture_index, sha256=request.sha256, status="failed",
                               reason=f"internal_error: {type(error).__name__}")
    if result is None:
        return  # handed back to the picture topic: a rebalance gave its partition to another worker
    metrics.record_picture(result.status, result.latency_seconds)
    await document_updates.send(key=request.document_id, value=DocumentUpdate(
        kind="picture", document_id=request.document_id, at=time.time(), picture=result))


async def describe_picture(request: PictureRequest) -> PictureResult | None:
    key = picture_key(request.sha256, settings.gemini_model, PROMPT_VERSION)
    cached = cached_description(request.sha256, settings.gemini_model, PROMPT_VERSION)
    if cached is None:
        called = False

        async def call() -> Outcome:
            nonlocal called
            called = True
            return await _call_api(request)

        # the same picture requested again while its first call runs waits for that call
        outcome = await single_flight().run(key, call)
        if outcome.status == REQUEUE:
            # a rebalance started while it waited for the budget: its partition's next owner describes it
            # (sent and acknowledged before this event is, so at-least-once holds)
            await (await picture_requests.send(key=request.sha256, value=request))
            return None
        if called:
            if outcome.status == "described":
                cache_description(request.sha256, settings.gemini_model, PROMPT_VERSION, outcome.description)
            result = _result(request, outcome)
            _account(result)
            return result
        if outcome.status != "described":
            return PictureResult(index=request.picture_index, sha256=request.sha256, status=outcome.status,
                                 reason=outcome.reason, model=outcome.model)
        cached = {"description": outcome.description, "model": outcome.model}
    metrics.record_cache(hit=True)
    # a cache hit costs nothing: no tokens, no call
    return PictureResult(index=request.picture_index, sha256=request.sha256, status="described",
                         description=cached["description"], model=cached["model"], cached=True)


async def _call_api(request: PictureRequest) -> Outcome:
    metrics.record_cache(hit=False)
    try:
        image = blob_store().get(request.sha256)
        prepared = await asyncio.to_thread(
            prepare_for_api, image, request.mime_type, settings.vision_max_image_side_px,
            media_resolution=settings.vision_media_resolution or None, max_pixels=settings.vision_max_image_pixels)
    except BlobNotFound:
        return Outcome(status="failed", reason="picture_missing_from_store")
    except ImageRejectedError as error:
        return Outcome(status="failed", reason=f"unusable_picture: {error}")
    describer = picture_describer()
    return await describer.describe(
        PreparedPicture(prepared.data, prepared.mime_type, prepared.estimated_tokens),
        request.caption, request.context, request.location)


def _account(result: PictureResult) -> None:
    """What a call spent, on the cost and token counters (the budget gate charged the daily cap itself)."""
    if result.cost_usd:
        metrics.record_cost(result.model, result.cost_usd)
        metrics.record_tokens(result.input_tokens, result.output_tokens, result.thinking_tokens)


def _result(request: PictureRequest, outcome: Outcome) -> PictureResult:
    cost = price_table().cost(outcome.model or settings.gemini_model, outcome.input_tokens, outcome.output_tokens,
                              outcome.thinking_tokens)
    return PictureResult(
        index=request.picture_index, sha256=request.sha256, status=outcome.status,
        description=outcome.description, reason=outcome.reason, model=outcome.model,
        input_tokens=outcome.input_tokens, output_tokens=outcome.output_tokens,
        thinking_tokens=outcome.thinking_tokens, cost_usd=float(cost), attempts=outcome.attempts,
        latency_seconds=outcome.latency_seconds)
