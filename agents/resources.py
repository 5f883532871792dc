"""What the agents of one worker share: blob store, extraction pool, describer, budget, caches.

Built on first use (a worker that never ingests starts no docling processes)
and closed when the app stops. The budget share follows the worker's
partitions of the picture topic: recomputed on every rebalance.
"""

from __future__ import annotations

import functools
import logging

import mode

from docsight import observability as metrics
from docsight.app import app, settings
from docsight.storage import BlobStore

log = logging.getLogger(__name__)


@functools.cache
def blob_store() -> BlobStore:
    return BlobStore(settings.store_dir)


@functools.cache
def extraction_pool():
    from docsight.extraction import ExtractionLimits, ExtractionPool

    limits = ExtractionLimits(max_file_bytes=int(settings.max_document_mb * 1024 * 1024),
                              max_picture_pixels=settings.vision_max_image_pixels)
    return ExtractionPool(settings.store_dir, processes=settings.extraction_processes, limits=limits)


@functools.cache
def filter_policy():
    from docsight.cost import FilterPolicy

    return FilterPolicy.from_settings(settings)


@functools.cache
def price_table():
    from docsight.cost import load_price_table

    return load_price_table(settings.gemini_prices)


_budget_override: dict | None = None   # set at runtime through the budget-control topic


def cluster_budget():
    """The configured cluster budget, with any runtime override applied on top."""
    from docsight.vision.budget import ClusterBudget

    override = _budget_override or {}
    return ClusterBudget(
        requests_per_minute=override.get("requests_per_minute", settings.vision_rate_limit_per_minute),
        tokens_per_minute=override.get("tokens_per_minute", settings.vision_tokens_per_minute),
        requests_per_day=override.get("requests_per_day", settings.vision_requests_per_day),
        max_concurrent_per_consumer=settings.vision_max_concurrent_per_consumer,
        safety_factor=settings.vision_budget_safety_factor)


def apply_budget_override(override: dict | None) -> None:
    """Apply a budget set at runtime (no-op when unchanged)."""
    global _budget_override
    if override == _budget_override or settings.role == "ingest":
        return
    _budget_override = override
    if override and override.get("daily_budget_usd") is not None:
        daily_spend_cap().budget_usd = override["daily_budget_usd"]
    _apply_share(picture_describer())


@functools.cache
def daily_spend_cap():
    from docsight.cost.daily_cap import DailySpendCap

    return DailySpendCap(settings.vision_daily_budget_usd)


@functools.cache
def single_flight():
    from docsight.cost import SingleFlight

    return SingleFlight()


@functools.cache
def picture_describer():
    from docsight.vision.budget import BudgetGate, worker_share
    from docsight.vision.circuit_breaker import CircuitBreaker
    from docsight.vision.describer import PictureDescriber
    from docsight.vision.gemini_client import GeminiClient

    client = GeminiClient(
        api_key=settings.gemini_api_key, model=settings.gemini_model, base_url=settings.gemini_base_url,
        timeout_seconds=settings.vision_request_timeout_seconds,
        max_output_tokens=settings.vision_max_output_tokens, thinking_budget=settings.vision_thinking_budget,
        media_resolution=settings.vision_media_resolution or None)
    # no partitions yet, no share: the first rebalance sets it
    gate = BudgetGate(worker_share(cluster_budget(), 0, settings.picture_partitions),
                      settings.vision_max_concurrent_per_consumer, burst_size=settings.vision_burst_size)
    breaker = CircuitBreaker(failure_threshold=settings.vision_breaker_failures,
                             open_seconds=settings.vision_breaker_open_seconds)
    describer = PictureDescriber(
        client, gate, breaker, settings.vision_retry_deadline_seconds,
        on_unavailable=settings.vision_on_api_unavailable,
        fail_over_after_seconds=settings.vision_fail_over_after_seconds)
    _apply_share(describer)
    return describer


def _apply_share(describer) -> None:
    from docsight.streams.topics import picture_requests
    from docsight.vision.budget import worker_share

    topic = picture_requests.get_topic_name()
    assignment = app.consumer.assignment() if app.consumer else set()
    owned = sum(1 for tp in assignment if tp.topic == topic)
    share = worker_share(cluster_budget(), owned, settings.picture_partitions)
    describer.gate.apply_share(share)
    daily_spend_cap().share_fraction = share.fraction
    metrics.set_pacing(share.fraction, describer.gate.effective_requests_per_minute)
    if settings.vision_daily_budget_usd:
        metrics.set_daily_budget(daily_spend_cap().spent_usd, daily_spend_cap().allowance_usd or 0.0)
    log.info("budget share: %d/%d picture partitions, %.1f requests/min", owned, settings.picture_partitions,
             share.requests_per_minute)


@app.on_partitions_assigned.connect
async def _share_follows_partitions(sender, assigned, **kwargs) -> None:
    if settings.role != "ingest":
        _apply_share(picture_describer())


@app.on_partitions_revoked.connect
async def _no_share_while_rebalancing(sender, revoked, **kwargs) -> None:
    # Until the new assignment is known this worker may not own anything:
    # hold new calls (calls in flight still count against the gate).
    from docsight.vision.budget import worker_share

    if settings.role == "ingest":
        return
    picture_describer().gate.apply_share(worker_share(cluster_budget(), 0, settings.picture_partitions))


@app.service
class WorkerResources(mode.Service):
    """Closes what the agents opened when the worker stops."""

    async def on_stop(self) -> None:
        if extraction_pool.cache_info().currsize:
            extraction_pool().close()
        if picture_describer.cache_info().currsize:
            await picture_describer().client.close()
        if settings.role != "ingest":
            from .control import follower

            await follower.close()
