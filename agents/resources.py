"""What the agents of one worker share: blob store, extraction pool, the description service, budget, sinks.

Built on first use (a worker that never ingests starts no docling processes)
and closed when the app stops. The budget (``worker_budget``) follows the
worker's partitions of the picture topic: admissions stop when a rebalance
starts and resume with the new assignment (new partitions after their
hold-off); the day's requests and dollars live in the budget ledger topic.
"""

from __future__ import annotations

import asyncio
import functools
import logging

import faust
import mode

from docsight import observability as metrics
from docsight.app import app, settings
from docsight.storage import ContentStore, open_store

log = logging.getLogger(__name__)


@functools.cache
def blob_store() -> ContentStore:
    return open_store(settings.store_location)  # DOCSIGHT_STORE_URL: a folder, S3 or GCS


@functools.cache
def extraction_pool():
    from docsight.extraction import ExtractionLimits, ExtractionPool

    limits = ExtractionLimits.from_settings(settings)  # sizes, time, memory, LibreOffice, remote pictures, PDF
    return ExtractionPool(settings.store_location, processes=settings.extraction_processes, limits=limits)


@functools.cache
def filter_policy():
    from docsight.cost import FilterPolicy

    return FilterPolicy.from_settings(settings)


@functools.cache
def price_table():
    from docsight.cost import load_price_table

    return load_price_table(settings.gemini_prices)


# ---- the budget: one object per quota, built here, handed to the describer and the control follower ----

def check_model_has_price() -> None:
    """A model without a price would be called and paid for with nothing charged to the cap: refuse to start."""
    from docsight.config import SettingsError
    from docsight.cost.prices import UnknownModelError

    model = settings.vision_model
    variable = "OPENAI_MODEL" if settings.vision_provider == "openai" else "GEMINI_MODEL"
    try:
        price_table().price(model)
    except UnknownModelError as error:
        raise SettingsError(
            f"{variable}={model!r} has no price, so its calls could not be counted against "
            f"VISION_DAILY_BUDGET_USD; known models: {', '.join(error.known)}. Choose one of them or add its "
            'price with GEMINI_PRICES, e.g. GEMINI_PRICES=\'{"' + model
            + '": {"input": 1.25, "output": 10.0}}\' (0 and 0 for a model you run yourself)') from None


def base_budget():
    """The cluster budget as configured (``docsight control budget`` changes apply on top, per worker)."""
    from docsight.vision.budget import ClusterBudget

    return ClusterBudget(
        requests_per_minute=settings.vision_rate_limit_per_minute,
        tokens_per_minute=settings.vision_tokens_per_minute,
        requests_per_day=settings.vision_requests_per_day,
        max_concurrent_per_consumer=settings.vision_max_concurrent_per_consumer,
        safety_factor=settings.vision_budget_safety_factor,
        window_seconds=settings.vision_quota_window_seconds,
        daily_budget_usd=settings.vision_daily_budget_usd)


@functools.cache
def ledger_log():
    from .budget_ledger import KafkaLedgerLog

    return KafkaLedgerLog(settings.broker_url, f"{settings.app_id}-budget-ledger",
                          on_progress=lambda: worker_budget().recheck_holds())


@functools.cache
def worker_budget():
    """This worker's requests/min, tokens/min, requests/day and USD/day, each one object (see worker_budget.py)."""
    import os
    import socket
    import uuid

    from docsight.vision.worker_budget import WorkerBudget

    # one id per incarnation: a restarted worker's reservations and leases are its predecessor's, not its own
    worker = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    return WorkerBudget.build(
        base_budget(), total_partitions=settings.picture_partitions, log=ledger_log(), worker=worker,
        group=settings.consumer_group, pricing=vision_provider().pricing, burst_size=settings.vision_burst_size,
        call_timeout_seconds=settings.vision_request_timeout_seconds)


@functools.cache
def daily_spend_cap():
    from docsight.cost.daily_cap import DailySpendCap

    return DailySpendCap(worker_budget().usd_per_day, worker_budget().cluster_spent)


# ---- the description lane: provider → describer (budget, retries, breaker) → service (cache, accounting) ----

@functools.cache
def vision_provider():
    """The model behind the port (VISION_PROVIDER): Gemini, or an OpenAI-compatible server."""
    from docsight.vision.providers import build_provider

    return build_provider(settings, price_table())


@functools.cache
def picture_describer():
    from docsight.vision.circuit_breaker import CircuitBreaker
    from docsight.vision.describer import PictureDescriber

    breaker = CircuitBreaker(failure_threshold=settings.vision_breaker_failures,
                             open_seconds=settings.vision_breaker_open_seconds)
    budget = worker_budget()
    return PictureDescriber(
        vision_provider(), budget.gate, breaker, settings.vision_retry_deadline_seconds,
        on_unavailable=settings.vision_on_api_unavailable,
        fail_over_after_seconds=settings.vision_fail_over_after_seconds,
        on_daily_quota_exhausted=budget.requests_per_day.mark_exhausted_by_api)


@functools.cache
def description_service():
    """Picture request → picture result: cache, single flight, budget, provider, price, accounting."""
    from docsight.tables.descriptions import TableDescriptionCache
    from docsight.vision.service import DescriptionService, PictureLimits

    limits = PictureLimits(max_side_px=settings.vision_max_image_side_px,
                           media_resolution=settings.vision_media_resolution or None,
                           max_pixels=settings.vision_max_image_pixels)
    return DescriptionService(vision_provider(), picture_describer(), TableDescriptionCache(), blob_store(),
                              limits)


# ---- where outcomes leave: the output topics, and the folder of DOCSIGHT_OUTPUT_DIR when set ----

@functools.cache
def outcome_sinks():
    from docsight.sinks import FolderSink, Sinks, TopicSink

    extra = [FolderSink(settings.output_dir, blob_store())] if settings.output_dir else []
    return Sinks(TopicSink(blob_store()), extra)


def apply_budget_override(override: dict | None) -> None:
    """A budget set at runtime (``docsight control budget``): every quota object follows, held pictures look again."""
    if settings.role == "ingest":
        return
    budget = worker_budget()
    if (override or {}) == budget.override:
        return
    applied = budget.apply_override(override or {})
    log.info("cluster budget now %.6g requests/min, %s tokens/min, %s requests/day, %s USD/day",
             applied.requests_per_minute, applied.tokens_per_minute, applied.requests_per_day,
             applied.daily_budget_usd)
    picture_describer().look_again()
    publish_budget_figures()


def resume_calls(set_at: float) -> None:
    """``docsight control resume``: what held the calls (key, model, the API's spent day) is fixed."""
    if settings.role == "ingest":
        return
    worker_budget().resume(set_at)
    picture_describer().resume()


def publish_budget_figures() -> None:
    budget = worker_budget()
    share = budget.gate.share
    metrics.set_pacing(share.fraction, budget.gate.effective_requests_per_minute)
    usd = budget.usd_per_day
    if usd.limit:
        # weighted by the share, so that sum() over the workers is the cluster's spend against its cap
        metrics.set_daily_budget(budget.cluster_spent(usd) * share.fraction, usd.limit * share.fraction)


def _owned_picture_partitions() -> set[int]:
    from docsight.streams.topics import picture_requests

    topic = picture_requests.get_topic_name()
    assignment = app.consumer.assignment() if app.consumer else set()
    return {tp.partition for tp in assignment if tp.topic == topic}


_main_loop: asyncio.AbstractEventLoop | None = None


class _RebalanceStartSensor(faust.Sensor):
    """Stops admissions the moment a rebalance starts: before Faust drains the streams, not after.

    Faust calls sensors from its consumer thread; the gate lives on the main loop.
    """

    def on_rebalance_start(self, app_):
        state = super().on_rebalance_start(app_)
        if settings.role != "ingest" and worker_budget.cache_info().currsize and _main_loop is not None:
            _main_loop.call_soon_threadsafe(worker_budget().gate.start_draining)
        return state


app.sensors.add(_RebalanceStartSensor())

if settings.role != "ingest":
    check_model_has_price()  # at import: ``docsight worker`` stops with one line naming the setting


@app.task
async def _start_budget_ledger() -> None:
    global _main_loop
    _main_loop = asyncio.get_running_loop()
    if settings.role != "ingest":
        await ledger_log().run()


@app.on_partitions_assigned.connect
async def _budget_follows_partitions(sender, assigned, **kwargs) -> None:
    if settings.role == "ingest":
        return
    budget = worker_budget()
    owned = _owned_picture_partitions()
    gained = budget.gate.assign(owned, app.consumer_generation_id)
    held = budget.gate.stats()["partitions_held"]
    publish_budget_figures()
    log.info("budget: picture partitions %s of %d (generation %s), %d calls per %g s window%s",
             sorted(owned), settings.picture_partitions, app.consumer_generation_id,
             budget.gate.share.requests_per_window, budget.base.window_seconds,
             f"; new {sorted(gained)} held until the previous owners' calls left the window"
             if held else "")


@app.on_partitions_revoked.connect
async def _no_calls_while_rebalancing(sender, revoked, **kwargs) -> None:
    # the sensor above normally drained already; this covers a rebalance it did not see
    if settings.role != "ingest":
        worker_budget().gate.start_draining()


@app.service
class WorkerResources(mode.Service):
    """Closes what the agents opened when the worker stops."""

    async def on_stop(self) -> None:
        if extraction_pool.cache_info().currsize:
            extraction_pool().close()
        if worker_budget.cache_info().currsize:
            await worker_budget().close()
        if vision_provider.cache_info().currsize:
            await vision_provider().close()
        if ledger_log.cache_info().currsize:
            await ledger_log().close()
