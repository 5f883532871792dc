"""Single flight: concurrent requests for one key share one call."""

import asyncio

import pytest

from docsight.cost.single_flight import SingleFlight


class CountingCall:
    def __init__(self, result="a description", error=None, delay=0.01):
        self.calls = 0
        self.result, self.error, self.delay = result, error, delay

    async def __call__(self):
        self.calls += 1
        await asyncio.sleep(self.delay)
        if self.error:
            raise self.error
        return f"{self.result} #{self.calls}"


def test_two_concurrent_requests_for_one_picture_make_one_call():
    async def scenario():
        flight, call = SingleFlight(), CountingCall()
        key = ("ab" * 32, "gemini|gemini-2.5-flash|v2|0123456789abcdef")
        results = await asyncio.gather(flight.run(key, call), flight.run(key, call))
        return results, call.calls, flight

    results, calls, flight = asyncio.run(scenario())
    assert calls == 1
    assert results == ["a description #1", "a description #1"]
    assert (flight.calls, flight.joined, flight.in_flight) == (1, 1, 0)


def test_different_keys_run_separately():
    async def scenario():
        flight, call = SingleFlight(), CountingCall()
        await asyncio.gather(*(flight.run(key, call) for key in ["a", "b", "a", "c", "b"]))
        return call.calls, flight.joined

    assert asyncio.run(scenario()) == (3, 2)


def test_an_error_reaches_every_waiter():
    async def scenario():
        flight, call = SingleFlight(), CountingCall(error=RuntimeError("429 quota"))
        results = await asyncio.gather(*(flight.run("k", call) for _ in range(3)), return_exceptions=True)
        return results, call.calls, flight.in_flight

    results, calls, in_flight = asyncio.run(scenario())
    assert calls == 1 and in_flight == 0
    assert all(isinstance(result, RuntimeError) and "429" in str(result) for result in results)


def test_the_key_is_released_after_completion_and_after_an_error():
    async def scenario():
        flight = SingleFlight()
        failing = CountingCall(error=ValueError("bad"))
        with pytest.raises(ValueError):
            await flight.run("k", failing)
        assert flight.in_flight == 0
        call = CountingCall()
        first = await flight.run("k", call)
        second = await flight.run("k", call)  # a later request calls again: no caching here
        return first, second, call.calls

    assert asyncio.run(scenario()) == ("a description #1", "a description #2", 2)


def test_cancelling_the_first_caller_does_not_cancel_the_others():
    async def scenario():
        flight, call = SingleFlight(), CountingCall(delay=0.05)
        first = asyncio.create_task(flight.run("k", call))
        second = asyncio.create_task(flight.run("k", call))
        await asyncio.sleep(0.01)
        first.cancel()
        result = await second
        return first.cancelled(), result, call.calls

    assert asyncio.run(scenario()) == (True, "a description #1", 1)


def test_the_call_is_cancelled_when_every_waiter_is_gone():
    async def scenario():
        flight = SingleFlight()
        started, cancelled = asyncio.Event(), asyncio.Event()

        async def slow():
            started.set()
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                cancelled.set()
                raise

        waiter = asyncio.create_task(flight.run("k", slow))
        await started.wait()
        waiter.cancel()
        await asyncio.wait_for(cancelled.wait(), 1)
        await asyncio.sleep(0)
        return flight.in_flight

    assert asyncio.run(scenario()) == 0
