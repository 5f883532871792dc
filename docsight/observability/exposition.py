"""How a Faust worker shows its metrics: the /metrics page, Faust's own sensor, consumer lag.

At app setup, once, before the worker starts::

    from docsight.observability import instrument_app
    instrument_app(app)          # Faust's sensor on docsight's registry + the /metrics page

and refresh the lag gauge from a timer::

    @app.timer(interval=15.0)
    async def refresh_lag():
        await refresh_consumer_lag(app)
"""

from __future__ import annotations

import logging
from typing import Any, Iterable

from faust.web import Request, Response, View
from prometheus_client import CollectorRegistry

from .metrics import CONSUMER_LAG, REGISTRY, render_latest

log = logging.getLogger(__name__)

METRICS_PATH = "/metrics"
# Faust's sensor names its series "<prefix>_messages_received_total", ...: this keeps them
# apart from docsight's own (docsight_pictures_total, ...) on the same page.
FAUST_METRICS_PREFIX = "docsight_faust"


def instrument_app(app: Any, registry: CollectorRegistry = REGISTRY) -> None:
    """Everything a worker needs: Faust's sensor and the /metrics page, on one registry."""
    enable_faust_sensor(app, registry)
    register_metrics_page(app)


def register_metrics_page(app: Any, path: str = METRICS_PATH) -> None:
    """Add the Prometheus page to the worker's web server (its web_port, 6066 by default); once per app."""
    if getattr(app, "_docsight_metrics_page", False):
        return
    app._docsight_metrics_page = True

    @app.page(path)
    async def metrics(web: View, request: Request) -> Response:
        body, content_type = render_latest()
        # aiohttp refuses a charset inside content_type=..., so the header carries the whole type.
        return web.bytes(body, headers={"Content-Type": content_type})


def enable_faust_sensor(app: Any, registry: CollectorRegistry = REGISTRY,
                        name_prefix: str = FAUST_METRICS_PREFIX) -> None:
    """Make Faust's Prometheus monitor the app's monitor, recording on ``registry``.

    The same as ``faust.sensors.prometheus.setup_prometheus_sensors`` minus its page:
    that page would serve the registry too, and docsight's /metrics already does.
    Call before the worker starts (the app adds its monitor as a sensor when it starts);
    calling again for the same app does nothing (the series names could not register twice).
    """
    from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor

    if getattr(app, "_docsight_faust_sensor", False):
        return
    app.monitor = PrometheusMonitor(metrics=FaustMetrics.create(registry, name_prefix))
    app._docsight_faust_sensor = True


_reported_partitions: set[tuple[str, str]] = set()


async def consumer_lag(app: Any, topics: Iterable[str] | None = None) -> dict[tuple[str, int], int]:
    """Messages behind the end of each partition this worker consumes: highwater − committed.

    Only topics whose offsets the worker commits (its agents' topics) count, unless
    ``topics`` names them: a table's changelog is written, not consumed, so its
    "lag" would grow forever. Empty while the consumer is not running or rebalancing.
    """
    consumer = getattr(app, "_consumer", None)  # app.consumer would create one on a stopped app
    if consumer is None:
        return {}
    wanted = set(topics) if topics is not None else None
    try:
        assigned = [
            tp for tp in consumer.assignment()
            if (tp.topic in wanted if wanted is not None else app.topics.acks_enabled_for(tp.topic))
        ]
        if not assigned:
            return {}
        highwaters = await consumer.highwaters(*assigned)
    except Exception as error:  # noqa: BLE001 - a rebalance or a broker hiccup: try again next time
        log.debug("consumer lag unavailable: %r", error)
        return {}
    # Faust keeps the offsets it committed (the next offset to read), per partition.
    committed_offsets = getattr(consumer, "_committed_offset", {})
    lag = {}
    for tp in assigned:
        end = highwaters.get(tp)
        committed = committed_offsets.get(tp)
        if committed is None:
            try:
                committed = await consumer.position(tp)
            except Exception:  # noqa: BLE001 - unknown position: leave this partition out
                committed = None
        if end is None or committed is None:
            continue
        lag[(tp.topic, tp.partition)] = max(0, int(end) - int(committed))
    return lag


async def refresh_consumer_lag(app: Any, topics: Iterable[str] | None = None) -> dict[tuple[str, int], int]:
    """Set ``docsight_consumer_lag_messages`` from :func:`consumer_lag`, dropping the series of
    partitions this worker no longer holds (so that two workers never report one partition)."""
    lag = await consumer_lag(app, topics)
    set_consumer_lag(lag)
    return lag


def set_consumer_lag(lag: dict[tuple[str, int], int]) -> None:
    current = {(topic, str(partition)) for topic, partition in lag}
    for labels in _reported_partitions - current:
        try:
            CONSUMER_LAG.remove(*labels)
        except KeyError:
            pass
    for (topic, partition), messages in lag.items():
        CONSUMER_LAG.labels(topic, str(partition)).set(messages)
    _reported_partitions.clear()
    _reported_partitions.update(current)
