"""What the agents of one worker share: the blob store, the extraction pool, the describer.

Built on first use (a worker that never ingests starts no docling processes)
and closed when the app stops.
"""

from __future__ import annotations

import functools

import mode

from docsight.app import app, settings
from docsight.storage import BlobStore


@functools.cache
def blob_store() -> BlobStore:
    return BlobStore(settings.store_dir)


@functools.cache
def extraction_pool():
    from docsight.extraction import ExtractionLimits, ExtractionPool

    limits = ExtractionLimits(max_file_bytes=int(settings.max_document_mb * 1024 * 1024))
    return ExtractionPool(settings.store_dir, processes=settings.extraction_processes, limits=limits)


@functools.cache
def picture_describer():
    from docsight.vision.describer import PictureDescriber
    from docsight.vision.gemini_client import GeminiClient
    from docsight.vision.pacing import Pacer

    client = GeminiClient(
        api_key=settings.gemini_api_key, model=settings.gemini_model, base_url=settings.gemini_base_url,
        timeout_seconds=settings.vision_request_timeout_seconds,
        max_output_tokens=settings.vision_max_output_tokens, thinking_budget=settings.vision_thinking_budget,
        media_resolution=settings.vision_media_resolution or None)
    pacer = Pacer(settings.vision_max_concurrent_per_consumer, settings.vision_rate_limit_per_minute,
                  settings.vision_burst_size)
    return PictureDescriber(client, pacer, settings.vision_retry_deadline_seconds)


@app.service
class WorkerResources(mode.Service):
    """Closes what the agents opened when the worker stops."""

    async def on_stop(self) -> None:
        if extraction_pool.cache_info().currsize:
            extraction_pool().close()
        if picture_describer.cache_info().currsize:
            await picture_describer().client.close()
