"""The description lane as one service: a picture request in, the picture's result out.

``DescriptionService.describe`` owns, in this order: the description cache, single flight (a picture
already being described is not described twice at once), reading and downscaling the picture, the
call through the budget and retries (``PictureDescriber``: calls per window, tokens per window,
requests and dollars per day, breaker), the call's price, and the accounting (metrics). It never
raises: every request ends in a ``PictureResult`` (described, or failed with a reason), or in
``HandBack`` when a rebalance took its partition while it waited for the budget.

Ports, so that it runs the same in a worker and in a test: the ``VisionProvider`` (any model), a
``DescriptionCache`` (the ``descriptions`` table in a worker) and the content store the picture
bytes are read from. Nothing here talks to Kafka or reads a Faust table.

The cache key (``cache_variant``) is everything that shapes the answer: the provider, the model, the
prompt version, and a digest of the exact prompt, system instruction and generation settings sent.
The prompt is context-free (``prompt.py``), so one picture has one description for every document.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Protocol

from docsight import observability as metrics
from docsight.cost.downscale import ImageRejectedError, prepare_for_api
from docsight.cost.single_flight import SingleFlight
from docsight.storage import BlobNotFound
from docsight.streams.records import PictureRequest, PictureResult

from .describer import REQUEUE, Outcome, PictureDescriber
from .prompt import PROMPT_VERSION, SYSTEM_INSTRUCTION, build_prompt
from .provider import PreparedPicture, VisionProvider

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CachedDescription:
    description: str
    model: str


class DescriptionCache(Protocol):
    """Descriptions by picture sha256 and variant (``cache_variant``); the worker's is a Faust table."""

    def get(self, sha256: str, variant: str) -> CachedDescription | None: ...
    def put(self, sha256: str, variant: str, description: CachedDescription) -> None: ...


class PictureBytes(Protocol):
    def get(self, digest: str) -> bytes: ...  # raises BlobNotFound


@dataclass(frozen=True)
class HandBack:
    """Not described here: hand the request back to the picture topic (its partition's next owner takes it)."""

    reason: str


@dataclass(frozen=True)
class PictureLimits:
    """How a picture is prepared before it is sent (VISION_MAX_IMAGE_SIDE_PX, ..._MEDIA_RESOLUTION, ..._PIXELS)."""

    max_side_px: int = 768
    media_resolution: str | None = None
    max_pixels: int = 50_000_000


def cache_variant(provider: VisionProvider, prompt: str) -> str:
    """What, besides the picture, one cached description depends on: readable names and a digest of the rest."""
    shaped_by = json.dumps([provider.name, provider.model, PROMPT_VERSION, SYSTEM_INSTRUCTION, prompt,
                            provider.answer_settings()])
    return f"{provider.name}|{provider.model}|{PROMPT_VERSION}|{hashlib.sha256(shaped_by.encode()).hexdigest()[:16]}"


class DescriptionService:
    def __init__(self, provider: VisionProvider, describer: PictureDescriber, cache: DescriptionCache,
                 pictures: PictureBytes, limits: PictureLimits = PictureLimits(),
                 single_flight: SingleFlight | None = None) -> None:
        self.provider = provider
        self.describer = describer
        self.cache = cache
        self.pictures = pictures
        self.limits = limits
        self.single_flight = single_flight or SingleFlight()
        self.prompt = build_prompt()
        self.variant = cache_variant(provider, self.prompt)

    async def describe(self, request: PictureRequest) -> PictureResult | HandBack:
        try:
            answer = await self._describe(request)
        except Exception as error:  # noqa: BLE001 - a bug fails one picture; its document still completes
            log.exception("picture %s of %s: unexpected error", request.picture_index, request.document_id)
            answer = picture_result(request, status="failed", reason=f"internal_error: {type(error).__name__}")
        if isinstance(answer, PictureResult):
            metrics.record_picture(answer.status, answer.latency_seconds)
        return answer

    async def _describe(self, request: PictureRequest) -> PictureResult | HandBack:
        cached = self.cache.get(request.sha256, self.variant)
        if cached is not None:
            return self._from_cache(request, cached)
        called = False

        async def call() -> Outcome:
            nonlocal called
            called = True
            return await self._call(request)

        # the same picture requested again while its first call runs waits for that call
        outcome = await self.single_flight.run((request.sha256, self.variant), call)
        if outcome.status == REQUEUE:
            return HandBack(outcome.reason or "rebalance")
        if not called:
            if outcome.status != "described":
                return picture_result(request, status=outcome.status, reason=outcome.reason, model=outcome.model)
            return self._from_cache(request, CachedDescription(outcome.description, outcome.model))
        if outcome.status == "described":
            # written here, in the request's own task: in a worker that is its event's partition of the table
            self.cache.put(request.sha256, self.variant, CachedDescription(outcome.description, outcome.model))
        result = picture_result(
            request, status=outcome.status, description=outcome.description, reason=outcome.reason,
            model=outcome.model, input_tokens=outcome.input_tokens, output_tokens=outcome.output_tokens,
            thinking_tokens=outcome.thinking_tokens, attempts=outcome.attempts,
            latency_seconds=outcome.latency_seconds,
            cost_usd=self.provider.pricing.cost(outcome.input_tokens, outcome.output_tokens, outcome.thinking_tokens))
        if result.cost_usd:
            # the budget gate charged the daily cap itself; these are the cost and token counters
            metrics.record_cost(result.model, result.cost_usd)
            metrics.record_tokens(result.input_tokens, result.output_tokens, result.thinking_tokens)
        return result

    def _from_cache(self, request: PictureRequest, cached: CachedDescription) -> PictureResult:
        metrics.record_cache(hit=True)
        # a cache hit (or a joined call) costs nothing: no tokens, no call
        return picture_result(request, status="described", description=cached.description, model=cached.model,
                              cached=True)

    async def _call(self, request: PictureRequest) -> Outcome:
        metrics.record_cache(hit=False)
        try:
            prepared = await asyncio.to_thread(self._prepare, request)
        except BlobNotFound:
            return Outcome(status="failed", reason="picture_missing_from_store", model=self.provider.model)
        except ImageRejectedError as error:
            return Outcome(status="failed", reason=f"unusable_picture: {error}", model=self.provider.model)
        return await self.describer.describe(prepared, self.prompt)

    def _prepare(self, request: PictureRequest) -> PreparedPicture:
        """Read and downscale (off the event loop: a store read may be a network call, decoding is CPU)."""
        image = prepare_for_api(self.pictures.get(request.sha256), request.mime_type, self.limits.max_side_px,
                                media_resolution=self.limits.media_resolution, max_pixels=self.limits.max_pixels)
        return PreparedPicture(image.data, image.mime_type, image.estimated_tokens)


def picture_result(request: PictureRequest, *, status: str, **fields) -> PictureResult:
    """The one place a described (or failed) picture's result is built."""
    return PictureResult(index=request.picture_index, sha256=request.sha256, status=status, **fields)
