"""Concurrent requests for the same picture share one Gemini call.

The description cache stops repeat calls for pictures already described; this closes the
gap while the first call is still running (the same logo in 20 documents arriving at once
would otherwise be described 20 times). Per process: across workers, partitioning the
picture topic by content hash sends equal pictures to the same worker.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Awaitable, Callable, Generic, Hashable, TypeVar

T = TypeVar("T")


@dataclass
class _Flight:
    task: asyncio.Task
    waiters: int = 0


class SingleFlight(Generic[T]):
    """``await run(key, factory)``: the first caller for a key runs ``factory()``, the
    others awaiting meanwhile get its result or its exception. Once it finishes the key
    is released, so a later call runs ``factory()`` again (results are not cached here).

    The call runs in its own task: cancelling one waiter, even the first, leaves the
    others waiting; the call itself is cancelled only when every waiter has gone.
    """

    def __init__(self) -> None:
        self._flights: dict[Hashable, _Flight] = {}
        self.calls = 0  # factory() invocations
        self.joined = 0  # requests that waited for another's call instead: calls saved

    @property
    def in_flight(self) -> int:
        return len(self._flights)

    async def run(self, key: Hashable, factory: Callable[[], Awaitable[T]]) -> T:
        flight = self._flights.get(key)
        if flight is None:
            flight = _Flight(asyncio.ensure_future(factory()))
            self._flights[key] = flight
            self.calls += 1
            flight.task.add_done_callback(lambda _task: self._finished(key, flight))
        else:
            self.joined += 1
        flight.waiters += 1
        try:
            return await asyncio.shield(flight.task)
        finally:
            flight.waiters -= 1
            if flight.task.done():
                self._release(key, flight)
            elif flight.waiters == 0:  # everyone gave up: stop paying for the call
                flight.task.cancel()

    def _finished(self, key: Hashable, flight: _Flight) -> None:
        if not flight.task.cancelled():
            flight.task.exception()  # retrieved even if every waiter left: no "never retrieved" log
        self._release(key, flight)

    def _release(self, key: Hashable, flight: _Flight) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]
