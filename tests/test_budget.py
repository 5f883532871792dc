"""The cluster budget, each worker's share, and the gate that enforces it (no network).

Most gate tests run on a fake clock whose sleep advances it, so the pacing
figures are exact and the tests take no real time; the few that must see a
waiter woken use the real clock with high rates.
"""

import asyncio
import time

import pytest

from docsight.vision.adaptive_rate import AdaptiveRate
from docsight.vision.budget import (BudgetGate, ClusterBudget, DailyBudgetExhausted, WorkerShare,
                                    estimate_input_tokens, seconds_until_daily_reset, worker_share)


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0)  # a wake-up that cancels the sleep here leaves the time alone
        self.now += seconds


def share(rpm, tpm=None, rpd=None, fraction=1.0):
    return WorkerShare(fraction=fraction, requests_per_minute=rpm, tokens_per_minute=tpm, requests_per_day=rpd)


ZERO = share(0, 0, 0, fraction=0.0)


def fake_gate(clock, the_share, max_concurrent=50, **kwargs):
    kwargs.setdefault("day_key", lambda: "day-1")
    return BudgetGate(the_share, max_concurrent, clock=clock, sleep=clock.sleep, **kwargs)


async def until(condition, turns=100):
    for _ in range(turns):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never came true")


async def admit_times(gate, clock, count, tokens=0):
    times = []

    async def call():
        async with gate.slot(tokens):
            times.append(clock())

    await asyncio.gather(*(call() for _ in range(count)))
    return sorted(times)


# ---- shares ---------------------------------------------------------------

BUDGET = ClusterBudget(requests_per_minute=1000, tokens_per_minute=1_000_000, requests_per_day=10_000,
                       max_concurrent_per_consumer=4, safety_factor=1.0)


def test_share_is_the_budget_times_owned_over_total():
    s = worker_share(BUDGET, 3, 12)
    assert s == WorkerShare(fraction=0.25, requests_per_minute=250, tokens_per_minute=250_000, requests_per_day=2500)


def test_safety_factor_is_applied_before_the_split():
    budget = ClusterBudget(1000, 1_000_000, 10_000, 4)  # default safety factor 0.95
    s = worker_share(budget, 1, 2)
    assert s.fraction == 0.5
    assert s.requests_per_minute == pytest.approx(475)
    assert s.tokens_per_minute == pytest.approx(475_000)
    assert s.requests_per_day == 4750


def test_a_worker_owning_no_partition_gets_nothing():
    s = worker_share(BUDGET, 0, 12)
    assert s.fraction == 0 and s.requests_per_minute == 0 and s.tokens_per_minute == 0 and s.requests_per_day == 0
    assert s.is_zero


def test_shares_sum_to_the_budget_before_and_after_a_rebalance():
    budget = ClusterBudget(1000, 1_000_000, 10_000, 4, safety_factor=0.9)
    for assignment in ([5, 4, 3], [3, 3, 3, 3], [12], [0, 12]):  # a worker joins, leaves, owns all
        shares = [worker_share(budget, owned, 12) for owned in assignment]
        assert sum(s.fraction for s in shares) == pytest.approx(1.0)
        assert sum(s.requests_per_minute for s in shares) == pytest.approx(900)
        assert sum(s.tokens_per_minute for s in shares) == pytest.approx(900_000)
        assert sum(s.requests_per_day for s in shares) <= 9000  # floored: never more than the budget


def test_unlimited_stays_unlimited_and_daily_share_rounds_down():
    budget = ClusterBudget(60, None, 10, 2, safety_factor=1.0)
    s = worker_share(budget, 1, 3)
    assert s.tokens_per_minute is None and s.requests_per_day == 3
    assert worker_share(ClusterBudget(60, None, None, 2), 1, 3).requests_per_day is None


@pytest.mark.parametrize("owned,total", [(-1, 4), (5, 4), (0, 0)])
def test_impossible_partition_counts_are_refused(owned, total):
    with pytest.raises(ValueError):
        worker_share(BUDGET, owned, total)


def test_estimate_is_picture_plus_prompt():
    assert estimate_input_tokens(300, 200, "x" * 40) == 258 + 10
    assert estimate_input_tokens(1000, 1000, "", media_resolution="LOW") == 64


def test_daily_reset_is_at_midnight_pacific():
    import datetime as dt
    one_hour_before = dt.datetime(2026, 1, 15, 7, 0, tzinfo=dt.timezone.utc)  # 23:00 PST
    assert seconds_until_daily_reset(one_hour_before) == pytest.approx(3600)


# ---- request pacing -------------------------------------------------------

def test_burst_of_one_spaces_every_admission_by_the_interval():
    async def scenario():
        clock = FakeClock()
        gate = fake_gate(clock, share(600))  # one call per 0.1 s
        return await admit_times(gate, clock, 8)

    times = asyncio.run(scenario())
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert times[0] == 1000.0  # the first call does not wait
    assert all(gap == pytest.approx(0.1) for gap in gaps)


def test_burst_of_one_is_smooth_on_the_real_clock():
    async def scenario():
        gate = BudgetGate(share(1200), max_concurrent=50)  # one call per 0.05 s
        return await admit_times(gate, time.monotonic, 6)

    times = asyncio.run(scenario())
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert min(gaps) >= 0.05 - 0.005


def test_a_larger_burst_lets_exactly_that_many_through_at_once():
    async def scenario():
        clock = FakeClock()
        gate = fake_gate(clock, share(600), burst_size=3)
        return await admit_times(gate, clock, 5)

    times = asyncio.run(scenario())
    assert times[:3] == [1000.0] * 3
    assert times[3] == pytest.approx(1000.1) and times[4] == pytest.approx(1000.2)


def test_idle_time_does_not_build_up_a_burst():
    async def scenario():
        clock = FakeClock()
        gate = fake_gate(clock, share(600))
        await admit_times(gate, clock, 1)
        clock.now += 3600  # an idle hour
        return await admit_times(gate, clock, 3)

    times = asyncio.run(scenario())
    assert [round(t - times[0], 6) for t in times] == [0, 0.1, 0.2]


def test_concurrency_never_exceeds_the_cap():
    async def scenario():
        gate = BudgetGate(share(600_000), max_concurrent=3)
        peak = 0

        async def call():
            nonlocal peak
            async with gate.slot():
                peak = max(peak, gate.in_flight)
                await asyncio.sleep(0.01)

        await asyncio.gather(*(call() for _ in range(12)))
        return peak, gate.in_flight, gate.calls_admitted

    assert asyncio.run(scenario()) == (3, 0, 12)


# ---- token pacing ---------------------------------------------------------

FAST = 6_000_000  # requests/min high enough that only tokens pace


def token_gate(clock):
    # 100 tokens a second, a bucket of 2 s = 200 tokens
    return fake_gate(clock, share(FAST, tpm=6000), token_bucket_seconds=2.0)


async def one_call(gate, clock, estimate, actual=None):
    """Admit one call, reconcile it, and return how long it waited."""
    before = clock()
    async with gate.slot(estimate) as slot:
        waited = clock() - before
        if actual is not None:
            slot.reconcile(actual)
    return waited


@pytest.mark.parametrize("actual,expected_wait", [
    (None, 1.0),   # estimate right: 200 spent, 100 more need 1 s
    (300, 2.0),    # overspend: 100 borrowed from the future
    (100, 0.0),    # underspend: 100 refunded, the next call goes at once
])
def test_token_pacing_charges_the_estimate_then_the_real_count(actual, expected_wait):
    async def scenario():
        clock = FakeClock()
        gate = token_gate(clock)
        first = await one_call(gate, clock, 200, actual)
        second = await one_call(gate, clock, 100)
        return first, second, gate.tokens_admitted

    first, second, admitted = asyncio.run(scenario())
    assert first == 0
    assert second == pytest.approx(expected_wait, abs=1e-4)  # FAST adds 10 us of request pacing
    assert admitted == (actual or 200) + 100


def test_a_picture_bigger_than_the_bucket_passes_and_leaves_a_debt():
    async def scenario():
        clock = FakeClock()
        gate = token_gate(clock)
        big = await one_call(gate, clock, 1000)
        after = await one_call(gate, clock, 100)
        return big, after

    big, after = asyncio.run(scenario())
    assert big == 0
    assert after == pytest.approx(9.0)  # 800 of debt plus 100 at 100 tokens/s


def test_a_refund_wakes_a_caller_waiting_for_tokens():
    async def scenario():
        gate = BudgetGate(share(FAST, tpm=60_000), max_concurrent=5, token_bucket_seconds=1.0)  # 1000/s
        async with gate.slot(1000) as first:
            second = asyncio.create_task(one_call(gate, time.monotonic, 1000))
            await asyncio.sleep(0.02)
            held = not second.done()
            first.reconcile(0)  # the real count was tiny: the bucket refills at once
            waited = await asyncio.wait_for(second, 0.5)
        return held, waited

    held, waited = asyncio.run(scenario())
    assert held and waited < 0.5


def test_reconcile_twice_charges_only_the_last_figure():
    async def scenario():
        clock = FakeClock()
        gate = token_gate(clock)
        async with gate.slot(200) as slot:
            slot.reconcile(300)
            slot.reconcile(250)
            slot.reconcile(None)  # the API said nothing: keep what is charged
        return gate.tokens_admitted, slot.charged_tokens

    assert asyncio.run(scenario()) == (250, 250)


# ---- daily budget ---------------------------------------------------------

def test_a_spent_day_raises_at_once_and_a_new_day_starts_afresh():
    async def scenario():
        clock = FakeClock()
        day = ["2026-01-15"]
        gate = fake_gate(clock, share(FAST, rpd=3), day_key=lambda: day[0])
        await admit_times(gate, clock, 3)
        before = clock()
        with pytest.raises(DailyBudgetExhausted) as caught:
            async with gate.slot():
                pass
        assert clock() == before and gate.waiting == 0  # raised, never waited
        assert caught.value.calls == 3 and caught.value.allowance == 3
        spent = gate.day_calls
        day[0] = "2026-01-16"
        await admit_times(gate, clock, 1)
        return spent, gate.day_calls

    assert asyncio.run(scenario()) == (3, 1)


def test_a_queued_caller_raises_when_the_day_runs_out_while_it_waits():
    async def scenario():
        clock = FakeClock()
        gate = fake_gate(clock, share(60, rpd=1))

        async def call():
            async with gate.slot():
                return "called"

        return await asyncio.gather(call(), call(), return_exceptions=True)

    results = asyncio.run(scenario())
    assert results[0] == "called" and isinstance(results[1], DailyBudgetExhausted)


# ---- share changes --------------------------------------------------------

def test_a_zero_share_holds_calls_until_the_share_is_raised():
    async def scenario():
        gate = BudgetGate(ZERO, max_concurrent=2)  # its daily share is 0 too: wait, do not raise
        task = asyncio.create_task(one_call(gate, time.monotonic, 10))
        await asyncio.sleep(0.05)
        held = not task.done() and gate.waiting == 1 and gate.calls_admitted == 0
        gate.apply_share(share(60_000, tpm=1_000_000, rpd=100))
        await asyncio.wait_for(task, 0.5)
        return held, gate.calls_admitted

    assert asyncio.run(scenario()) == (True, 1)


def test_apply_share_wakes_a_caller_waiting_for_a_slow_rate():
    async def scenario():
        gate = BudgetGate(share(1), max_concurrent=5)  # one call a minute
        await one_call(gate, time.monotonic, 0)
        second = asyncio.create_task(one_call(gate, time.monotonic, 0))
        await asyncio.sleep(0.05)
        held = not second.done()
        gate.apply_share(share(60_000))
        waited = await asyncio.wait_for(second, 0.5)
        return held, waited, gate.effective_requests_per_minute

    held, waited, rate = asyncio.run(scenario())
    assert held and waited < 0.5 and rate == 60_000


def test_a_share_cut_applies_to_the_very_next_call():
    async def scenario():
        clock = FakeClock()
        gate = fake_gate(clock, share(600))
        first = await admit_times(gate, clock, 2)
        gate.apply_share(share(60))  # one a second from now on
        second = await admit_times(gate, clock, 2)
        return first + second

    times = asyncio.run(scenario())
    gaps = [round(b - a, 6) for a, b in zip(times, times[1:])]
    assert gaps == [0.1, 1.0, 1.0]  # the very next call already waits the new interval


def test_calls_in_flight_keep_counting_across_share_changes():
    async def scenario():
        clock = FakeClock()
        gate = fake_gate(clock, share(FAST, tpm=6000), max_concurrent=2, token_bucket_seconds=2.0)
        release = asyncio.Event()
        slots = []

        async def held_call(estimate):
            async with gate.slot(estimate) as slot:
                slots.append(slot)
                await release.wait()

        holders = [asyncio.create_task(held_call(50)) for _ in range(2)]
        await until(lambda: gate.in_flight == 2)
        gate.apply_share(ZERO)  # the rebalance took every partition away
        in_flight_after_cut = gate.in_flight
        third = asyncio.create_task(one_call(gate, clock, 50))
        await asyncio.sleep(0)

        gate.apply_share(share(FAST, tpm=6000))  # and gave them back
        await asyncio.sleep(0)
        still_capped = not third.done() and gate.in_flight == 2  # the two old calls still hold their places

        slots[0].reconcile(250)  # an old call reports its real count after the change: 200 more are charged
        release.set()
        await asyncio.gather(*holders)
        waited = await third
        return in_flight_after_cut, still_capped, waited, gate.in_flight, gate.tokens_admitted

    in_flight_after_cut, still_capped, waited, in_flight, admitted = asyncio.run(scenario())
    assert in_flight_after_cut == 2 and still_capped
    # 200 - 50 - 50 = 100 left, emptied by the zero share (no credit survives a cut),
    # then the old call's 200 more -> -200; the third needs 50 -> waits 2.5 s at 100/s
    assert waited == pytest.approx(2.5)
    assert in_flight == 0 and admitted == 250 + 50 + 50


def test_a_cancelled_waiter_gives_its_place_back():
    async def scenario():
        gate = BudgetGate(ZERO, max_concurrent=1)
        waiter = asyncio.create_task(one_call(gate, time.monotonic, 0))
        await asyncio.sleep(0.01)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        gate.apply_share(share(60_000))
        await asyncio.wait_for(one_call(gate, time.monotonic, 0), 0.5)
        return gate.waiting, gate.in_flight, gate.calls_admitted

    assert asyncio.run(scenario()) == (0, 0, 1)


# ---- AIMD through the gate and the figures -------------------------------

def test_an_unexpected_429_halves_the_pace_and_successes_recover_it():
    async def scenario():
        clock = FakeClock()
        gate = fake_gate(clock, share(600, tpm=60_000), adaptive=AdaptiveRate(clock=clock))
        await admit_times(gate, clock, 1)
        assert gate.on_rate_limited() and not gate.on_rate_limited()  # one overload, one cut
        halved = (gate.effective_requests_per_minute, gate.effective_tokens_per_minute)
        times = await admit_times(gate, clock, 3)
        clock.now += 10
        raised = gate.on_success()
        return halved, times, raised, gate.effective_requests_per_minute

    halved, times, raised, recovered = asyncio.run(scenario())
    assert halved == (300, 30_000)
    assert [round(b - a, 6) for a, b in zip(times, times[1:])] == [0.2, 0.2]
    assert raised and recovered == pytest.approx(330)


def test_stats_report_the_figures_for_metrics():
    async def scenario():
        clock = FakeClock()
        gate = fake_gate(clock, share(600, tpm=60_000, rpd=100, fraction=0.5))
        await admit_times(gate, clock, 3, tokens=10)
        return gate.stats()

    stats = asyncio.run(scenario())
    assert stats["share_fraction"] == 0.5
    assert stats["effective_requests_per_minute"] == 600 and stats["rate_multiplier"] == 1.0
    assert stats["calls_admitted"] == 3 and stats["day_calls"] == 3 and stats["tokens_admitted"] == 30
    assert stats["in_flight"] == 0 and stats["waiting"] == 0
    assert stats["waiting_seconds_total"] == pytest.approx(0.1 + 0.2)
