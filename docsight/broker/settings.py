"""Faust client settings that depend on which broker docsight talks to."""

from __future__ import annotations


def faust_broker_options(embedded: bool) -> dict:
    """Options for ``faust.App`` for a real Kafka (``embedded=False``) or the embedded Tansu.

    Tansu needs three workarounds, measured in shared/notes/embedded-broker.md;
    none of them may be applied to a real Kafka:
    - JoinGroup waits the whole rebalance timeout, so keep it short (and the
      request timeout above it, or joining loops on RequestTimedOutError);
    - ListOffsets(latest) is wrong for multi-record batches, which breaks table
      recovery: one record per batch keeps end offsets right;
    - no transactions, so at-least-once only (enforced by the caller).
    """
    if not embedded:
        return {}
    return {
        "broker_rebalance_timeout": 5.0,
        "broker_session_timeout": 10.0,
        "broker_heartbeat_interval": 1.0,
        "broker_request_timeout": 30.0,
        "producer_max_batch_size": 1,
    }


EMBEDDED_FETCH_MAX_WAIT_MS = 50


def shorten_consumer_fetch_wait(max_wait_ms: int = EMBEDDED_FETCH_MAX_WAIT_MS) -> None:
    """On the embedded broker, let each fetch return after ``max_wait_ms`` instead of Faust's fixed 1.5 s.

    Tansu answers a fetch only when its wait expires, so every topic hop of a
    document (received → submissions → pictures → updates → enriched) could
    cost up to 1.5 s: measured 3.98x the critical path, 1.29x with 50 ms
    (BENCHMARKS.md, latency). Faust hard-codes the wait in its aiokafka driver,
    so the worker consumer it builds gets the shorter wait before it starts
    (aiokafka reads ``_fetch_max_wait_ms`` when it creates its fetcher).
    Never applied to a real Kafka, which answers as soon as data arrives.
    """
    from faust.transport.drivers import aiokafka as faust_aiokafka

    thread_class = faust_aiokafka.AIOKafkaConsumerThread
    if getattr(thread_class, "_docsight_fetch_wait_ms", None) == max_wait_ms:
        return
    create = getattr(thread_class, "_docsight_original_create", thread_class._create_worker_consumer)

    def create_worker_consumer(self, transport):
        consumer = create(self, transport)
        consumer._fetch_max_wait_ms = max_wait_ms
        return consumer

    thread_class._docsight_original_create = create
    thread_class._create_worker_consumer = create_worker_consumer
    thread_class._docsight_fetch_wait_ms = max_wait_ms
