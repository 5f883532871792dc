"""Faust's aiokafka transport with one fix: a partition without a committed offset rewinds to its start.

Why: Faust drops records it has fetched but not handed to a stream whenever the
flow stops (a rebalance clears the stream buffers, a fetch that lands while
the flow is paused is discarded) and relies on seeking every partition back
to its committed offset to read them again (``Consumer.perform_seek``). A
partition with no committed offset yet (or offset 0) is not sought at all
(aiokafka's ``seek_to_committed`` skips it), so the fetch position stays past
the dropped records and they are never read: measured on the embedded broker,
a worker that took over the partitions of a worker killed before its first
commit never processed their requests (docs/offsets.md). Seeking those
partitions to their earliest offset gives them what a committed partition
gets: the records after its last commit are delivered again (at least once;
every docsight consumer is idempotent). Nothing else of Faust's transport
changes; it applies to any broker.
"""

from __future__ import annotations

from collections.abc import Mapping

from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP


class Consumer(faust_aiokafka.Consumer):
    async def seek_to_committed(self) -> Mapping[TP, int]:
        committed = await super().seek_to_committed()
        never_committed = [tp for tp, offset in committed.items() if not offset]
        if never_committed:
            earliest = await self.earliest_offsets(*never_committed)
            for tp in never_committed:
                await self.seek(tp, earliest.get(tp) or 0)
        return committed


class Transport(faust_aiokafka.Transport):
    Consumer = Consumer


def install(app) -> None:
    """Give ``app`` this transport (through Faust's public ``App.transport`` setter), before it starts."""
    app.transport = Transport(app.conf.broker_consumer, app)
