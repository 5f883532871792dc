"""The per-worker pacer: concurrency cap, smooth rate, zero rate stops calls (no network)."""

import asyncio
import time

from docsight.vision.pacing import Pacer


def test_concurrency_never_exceeds_the_cap():
    async def scenario():
        pacer = Pacer(max_concurrent=3, requests_per_minute=60_000)
        peak = 0

        async def call():
            nonlocal peak
            async with pacer.slot():
                peak = max(peak, pacer.in_flight)
                await asyncio.sleep(0.02)

        await asyncio.gather(*(call() for _ in range(20)))
        return peak, pacer.in_flight

    peak, left = asyncio.run(scenario())
    assert peak == 3 and left == 0


def test_rate_is_smooth_with_a_burst_of_one():
    async def scenario():
        pacer = Pacer(max_concurrent=50, requests_per_minute=600)  # one call per 0.1 s
        starts = []

        async def call():
            async with pacer.slot():
                starts.append(time.monotonic())

        await asyncio.gather(*(call() for _ in range(6)))
        return sorted(starts)

    starts = asyncio.run(scenario())
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert min(gaps[1:]) >= 0.07  # no burst after the first call


def test_zero_rate_holds_calls_until_raised():
    async def scenario():
        pacer = Pacer(max_concurrent=2, requests_per_minute=0)
        done = []

        async def call():
            async with pacer.slot():
                done.append(True)

        task = asyncio.create_task(call())
        await asyncio.sleep(0.1)
        held = not done
        pacer.set_rate(6000)
        await asyncio.wait_for(task, 1)
        return held, done

    held, done = asyncio.run(scenario())
    assert held and done == [True]
