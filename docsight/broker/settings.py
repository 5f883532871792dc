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
