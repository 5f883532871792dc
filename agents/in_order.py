"""Concurrent handling of a stream's events with offsets acknowledged in order.

Why: faust-streaming 0.15.3 computes the offset to commit from the acked
offsets of a partition and, when acks arrive out of order, can commit past an
event that is still being handled (``Consumer._new_offset``: the gap check is
skipped while a partition has no committed offset, and is off by one after:
with offset ``c`` committed and ``c`` still in flight, an ack of ``c + 1``
commits ``c + 2``). An agent with ``concurrency > 1`` acks out of order, so a
worker killed with work in flight left its successor starting past requests
that never got a result (docs/offsets.md has the measurements).

Here one actor reads the stream without automatic acks, runs up to
``max_in_flight`` handlers at once, and acks each partition's events strictly
in offset order, only once every earlier event of that partition is done. So
the committed offset never passes an unfinished event, whatever order the
handlers finish in. Each handler task starts while its event is the stream's
current event (the context is copied at task creation), so table writes in
the handler land in that event's partition, as Faust's tables require.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)


class InOrderAcks:
    """Which events may be acked: per partition, the done prefix in offset order (pure, no Faust).

    An event at or below an offset already started means the consumer rewound (after a rebalance Faust
    seeks back to the committed offset and delivers those events again): the events pending before the
    rewind are abandoned, never acked (acking them could let a commit pass the redelivered ones in
    flight). Their handlers still finish; the redelivered copies are handled again, idempotently.
    """

    def __init__(self) -> None:
        self._pending: dict[Any, deque[list]] = defaultdict(deque)  # tp -> [[offset, event, done, abandoned]]
        self._size = 0

    def __len__(self) -> int:
        """Events started and not yet acked (in flight, or done behind an unfinished one)."""
        return self._size

    def started(self, tp: Any, offset: int, event: Any) -> list:
        queue = self._pending[tp]
        if queue and queue[-1][0] >= offset:
            for stale in queue:
                stale[3] = True
            self._size -= len(queue)
            queue.clear()
        entry = [offset, event, False, False]
        queue.append(entry)
        self._size += 1
        return entry

    def finished(self, tp: Any, entry: list) -> list:
        """Mark ``entry`` done; return the events now safe to ack, in offset order."""
        entry[2] = True
        if entry[3]:
            return []
        queue = self._pending[tp]
        ready = []
        while queue and queue[0][2]:
            ready.append(queue.popleft()[1])
        self._size -= len(ready)
        if not queue:
            del self._pending[tp]
        return ready


async def handle_concurrently(stream, handler: Callable[[Any], Awaitable[None]], max_in_flight: int,
                              read_ahead: int | None = None) -> None:
    """Run ``handler(event)`` for up to ``max_in_flight`` events at once, acking in offset order.

    ``read_ahead`` bounds the events started and not yet acked (a slow event at
    the head of a partition holds back the acks of the ones behind it): memory
    stays flat. ``handler`` must turn every failure into an outcome of its own;
    an exception that still escapes is logged and the event acked, so one bug
    cannot stall a partition for good.
    """
    if max_in_flight < 1:
        raise ValueError("max_in_flight must be at least 1")
    read_ahead = max(read_ahead or 4 * max_in_flight, max_in_flight)
    acks = InOrderAcks()
    in_flight = 0
    room = asyncio.Condition()
    tasks: set[asyncio.Task] = set()
    # A clone without automatic acks that starts the agent's own stream when it starts, as group_by and
    # through chain theirs (``stream.noack()`` would leave the agent's own stream unstarted).
    manual = stream.clone(enable_acks=False, on_start=stream.maybe_start, prev=stream)

    async def run(event, entry) -> None:
        nonlocal in_flight
        try:
            await handler(event)
        except Exception:  # noqa: BLE001 - logged loudly; the handler owns its failure outcomes
            log.exception("unhandled error while handling %s/%s@%s", event.message.topic,
                          event.message.partition, event.message.offset)
        except BaseException:
            # Cancelled (the worker stops): never acked, so the event is delivered again.
            async with room:
                in_flight -= 1
                room.notify_all()
            raise
        for ready in acks.finished(event.message.tp, entry):
            await manual.ack(ready)
        async with room:
            in_flight -= 1
            room.notify_all()

    try:
        async for event in manual.events():
            async with room:
                await room.wait_for(lambda: in_flight < max_in_flight and len(acks) < read_ahead)
                in_flight += 1
            entry = acks.started(event.message.tp, event.message.offset, event)
            # created while ``event`` is the current event: its context carries it to table writes
            task = asyncio.create_task(run(event, entry))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
    finally:
        # Stopping: handlers in flight finish (their events are not acked otherwise and come back).
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
