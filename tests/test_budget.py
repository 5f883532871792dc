"""The cluster budget's arithmetic and the gate that holds it (no network).

Gate tests run on a virtual-time event loop (``run_in_virtual_time``): ``asyncio.sleep(60)`` returns
at once with the clock 60 s later, so pacing figures are exact and the tests take no real time.
Admission times are recorded by the tests themselves and counted here, never read from the gate.
"""

from __future__ import annotations

import asyncio
import math

import pytest

from docsight.benchmarks.budget_simulation import busiest_window, run_in_virtual_time
from docsight.vision.budget import (BudgetGate, BudgetRevoked, CallOverBudget, CallWindow, ClusterBudget,
                                    DailyBudgetExhausted, estimate_input_tokens, pacific_day,
                                    partition_allowances, seconds_until_daily_reset, worker_share)
from docsight.vision.day_ledger import InMemoryLedgerLog
from docsight.vision.worker_budget import WorkerBudget

ALL = range(6)


def budget(rpm=60.0, tpm=None, rpd=None, usd=None, window=60.0, safety=1.0, concurrency=50):
    return ClusterBudget(requests_per_minute=rpm, tokens_per_minute=tpm, requests_per_day=rpd,
                         max_concurrent_per_consumer=concurrency, safety_factor=safety, window_seconds=window,
                         daily_budget_usd=usd)


# ---- whole calls per partition --------------------------------------------------------

@pytest.mark.parametrize("total", [0, 1, 5, 6, 7, 10, 11, 59, 60, 61, 1000])
@pytest.mark.parametrize("partitions", [1, 2, 6, 12])
def test_partition_allowances_are_whole_and_add_up_to_the_total(total, partitions):
    shares = partition_allowances(total, partitions)
    assert len(shares) == partitions and sum(shares) == total
    assert max(shares) - min(shares) <= 1


def test_the_remainder_is_spread_over_the_partitions():
    assert partition_allowances(10, 6) == (2, 2, 1, 2, 2, 1)
    assert partition_allowances(3, 6) == (1, 0, 1, 0, 1, 0)


@pytest.mark.parametrize("workers", [1, 2, 3, 4, 5, 6])
@pytest.mark.parametrize("rpm", [1, 2, 5, 10, 15, 20, 30, 60])
def test_worker_shares_never_add_up_to_more_than_the_quota(workers, rpm):
    # round-robin assignments, the way a group deals six partitions
    assignments = [[p for p in ALL if p % workers == w] for w in range(workers)]
    shares = [worker_share(budget(rpm), owned, 6) for owned in assignments]
    assert sum(s.requests_per_window for s in shares) == rpm
    assert sum(s.fraction for s in shares) == pytest.approx(1.0)


def test_ten_a_minute_over_six_workers_is_whole_calls_not_fractions():
    shares = [worker_share(budget(10), [p], 6).requests_per_window for p in ALL]
    assert shares == [2, 2, 1, 2, 2, 1]  # 10 calls: never 6 x 1.67 rounded up to 12


def test_window_and_safety_factor_round_down_to_whole_calls():
    assert budget(10, window=60).requests_per_window == 10
    assert budget(120, window=5).requests_per_window == 10
    assert budget(10, safety=0.95).requests_per_window == 9
    assert budget(60, tpm=6000, window=10).tokens_per_window == pytest.approx(1000)
    with pytest.raises(ValueError, match="less than one whole call"):
        budget(0.5)  # half a call a minute: nothing could ever go


def test_unlimited_tokens_stay_unlimited_and_bad_partitions_are_refused():
    assert worker_share(budget(60), [0], 6).tokens_per_window is None
    with pytest.raises(ValueError):
        worker_share(budget(60), [6], 6)


def test_estimate_is_picture_plus_prompt():
    assert estimate_input_tokens(300, 200, "x" * 40) == 258 + 10
    assert estimate_input_tokens(1000, 1000, "", media_resolution="LOW") == 64


def test_the_day_turns_at_midnight_pacific():
    import datetime as dt
    one_hour_before = dt.datetime(2026, 1, 15, 7, 0, tzinfo=dt.timezone.utc)  # 23:00 PST
    assert seconds_until_daily_reset(one_hour_before) == pytest.approx(3600)
    before = dt.datetime(2026, 1, 16, 7, 59, tzinfo=dt.timezone.utc).timestamp()  # 23:59 PST on the 15th
    after = before + 120
    assert (pacific_day(before), pacific_day(after)) == ("2026-01-15", "2026-01-16")


# ---- the window -----------------------------------------------------------------------

def test_a_call_counts_from_admission_until_a_window_after_it_ended():
    window = CallWindow(60)
    first = window.charge(1)
    assert window.total(0) == 1
    assert window.delay(1, 1, now=100) == math.inf  # in flight: only its end can free room
    window.end(first, now=100)
    assert window.delay(1, 1, now=130) == pytest.approx(30)
    assert window.delay(1, 2, now=130) == 0
    assert window.total(159.9) == 1 and window.total(160) == 0


def test_an_open_charge_takes_the_real_amount():
    window = CallWindow(10)
    charge = window.charge(300)
    window.adjust(charge, 250)
    window.end(charge, now=1)
    assert window.total(5) == 250


# ---- the gate, in virtual time ----------------------------------------------------------

def open_gate(the_budget, clock, partitions=ALL, generation=1, **options) -> BudgetGate:
    """A gate that owns ``partitions`` with nothing to hold off (a cold start)."""
    gate = BudgetGate(the_budget, 6, clock=clock, wall_clock=clock,
                      hold_oracle=lambda generation, assigned_at, gained: {p: -math.inf for p in gained}, **options)
    gate.assign(partitions, generation)
    return gate


async def admit(gate, clock, count, tokens=0, hold=0.0, times=None):
    """``count`` callers at once; each holds its call ``hold`` seconds. Returns sorted admission times."""
    times = [] if times is None else times

    async def call():
        async with gate.slot(tokens):
            times.append(clock())
            await asyncio.sleep(hold)

    await asyncio.gather(*(call() for _ in range(count)))
    return sorted(times)


def test_the_first_call_goes_at_once_and_the_rest_are_paced_evenly():
    async def scenario(clock):
        gate = open_gate(budget(600), clock)  # 600 a minute: one every 0.1 s
        return await admit(gate, clock, 8)

    times = run_in_virtual_time(scenario, start=1000.0)
    assert times[0] == 1000.0
    assert all(b - a == pytest.approx(0.1) for a, b in zip(times, times[1:]))


@pytest.mark.parametrize("quota,hold", [(1, 0.0), (2, 0.3), (3, 5.0), (7, 0.3), (10, 61.0)])
def test_no_window_ever_holds_more_than_the_allowance(quota, hold):
    async def scenario(clock):
        gate = open_gate(budget(quota), clock, burst_size=quota)  # even a burst as big as the allowance
        return await admit(gate, clock, 4 * quota + 3, hold=hold)

    times = run_in_virtual_time(scenario)
    assert busiest_window(times, 60.0) <= quota


def test_a_slow_call_keeps_its_place_until_a_window_after_it_ended():
    async def scenario(clock):
        gate = open_gate(budget(1), clock)
        start = clock()
        return [t - start for t in await admit(gate, clock, 2, hold=30)]

    assert run_in_virtual_time(scenario) == [0, pytest.approx(90)]  # 30 s call + 60 s window


def test_no_partition_no_call_and_a_zero_budget_admits_nothing():
    async def scenario(clock):
        gate = BudgetGate(budget(60), 6, clock=clock, wall_clock=clock)
        waiter = asyncio.ensure_future(admit(gate, clock, 1))
        await asyncio.sleep(3600)
        return waiter.done(), gate.waiting

    assert run_in_virtual_time(scenario) == (False, 1)


def test_a_rebalance_start_hands_waiters_back_and_lets_calls_in_flight_finish():
    async def scenario(clock):
        ended = []
        gate = open_gate(budget(1), clock, on_drained=lambda report: ended.append(report["ended_by"]))
        in_flight = asyncio.ensure_future(admit(gate, clock, 1, hold=5))
        await asyncio.sleep(1)
        waiter = asyncio.ensure_future(admit(gate, clock, 1))
        await asyncio.sleep(1)
        gate.start_draining()
        await asyncio.sleep(0.001)
        revoked = waiter.done() and isinstance(waiter.exception(), BudgetRevoked)
        with pytest.raises(BudgetRevoked):
            async with gate.slot():
                pass
        await in_flight
        return revoked, gate.in_flight, ended, clock(), gate.requeued

    revoked, in_flight, ended, now, requeued = run_in_virtual_time(scenario, start=0.0)
    assert revoked and in_flight == 0 and requeued == 2
    assert ended == [pytest.approx(5.0)] and now == pytest.approx(5.0)  # the drain ends with the last call


def test_kept_partitions_go_on_at_once_new_ones_wait_for_their_hold_off():
    async def scenario(clock):
        holds = {"until": -math.inf}
        gate = BudgetGate(budget(6), 6, clock=clock, wall_clock=clock,
                          hold_oracle=lambda generation, assigned_at, gained: dict.fromkeys(gained, holds["until"]))
        gate.assign([0, 1, 2], generation=1)
        before = gate.usable_share.requests_per_window
        gate.start_draining()
        holds["until"] = clock() + 42
        gate.assign([0, 1, 2, 3, 4, 5], generation=2)  # the next generation: 0-2 kept, 3-5 new
        during = gate.usable_share.requests_per_window
        await asyncio.sleep(42)
        gate.stats()
        after = gate.usable_share.requests_per_window
        gate.start_draining()
        holds["until"] = clock() + 10
        gate.assign([0, 1, 2, 3, 4, 5], generation=4)  # a generation missed: nothing counts as kept
        missed = gate.usable_share.requests_per_window
        return before, during, after, missed

    assert run_in_virtual_time(scenario, start=0.0) == (3, 3, 6, 0)


def test_without_the_ledger_read_new_partitions_wait_the_longest_hold_off():
    async def scenario(clock):
        known = {"hold": None}
        gate = BudgetGate(budget(6), 6, clock=clock, wall_clock=clock, call_timeout_seconds=10,
                          hold_oracle=lambda generation, assigned_at, gained: None if known["hold"] is None
                          else dict.fromkeys(gained, known["hold"]))
        gate.assign(ALL, generation=1)
        held = sorted(gate.entitlements.held(clock()).values())
        known["hold"] = clock() + 5  # the ledger is read: the old owners' calls leave the window in 5 s
        gate.recheck_holds()
        return held, sorted(gate.entitlements.held(clock()).values())

    held, rechecked = run_in_virtual_time(scenario, start=0.0)
    assert held == [pytest.approx(10 + 60 + 1)] * 6  # call timeout + window + clock margin
    assert rechecked == [pytest.approx(5)] * 6


# ---- tokens -----------------------------------------------------------------------------

def test_tokens_are_charged_with_headroom_then_the_real_count():
    async def scenario(clock):
        gate = open_gate(budget(600, tpm=6000), clock)  # 6000 tokens a window
        async with gate.slot(1000) as slot:
            charged_before = slot.charged_tokens
            slot.reconcile(1200)  # the server counted more than the estimate
        ratio = gate.token_estimate_ratio
        async with gate.slot(1000) as slot:
            charged_after = slot.charged_tokens
        return charged_before, ratio, charged_after, gate.stats()["tokens_in_window"]

    before, ratio, after, in_window = run_in_virtual_time(scenario)
    assert before == 1100  # no answer seen yet: estimates carry 10 % headroom
    assert ratio == pytest.approx(1.2 * 1.02)
    assert after == math.ceil(1000 * 1.2 * 1.02)
    assert in_window == 1200 + after


@pytest.mark.parametrize("factor", [0.9, 1.0, 1.05])
def test_tokens_in_any_window_stay_within_the_quota(factor):
    async def scenario(clock):
        gate = open_gate(budget(6000, tpm=3000), clock)  # tokens bind: about ten 300-token calls a window
        times, counts = [], []

        async def call():
            async with gate.slot(300) as slot:
                times.append(clock())
                counts.append(round(300 * factor))
                await asyncio.sleep(0.5)
                slot.reconcile(counts[-1])

        await asyncio.gather(*(call() for _ in range(60)))
        return times, counts

    times, counts = run_in_virtual_time(scenario)
    assert busiest_window(times, 60.0, counts) <= 3000


def test_a_call_bigger_than_the_whole_token_share_fails_at_once():
    async def scenario(clock):
        gate = open_gate(budget(60, tpm=600), clock, partitions=[0])  # 100 tokens for this worker
        with pytest.raises(CallOverBudget):
            async with gate.slot(500):
                pass
        return gate.in_flight, gate.waiting

    assert run_in_virtual_time(scenario) == (0, 0)


def test_an_unexpected_429_slows_the_pace_and_successes_recover_it():
    async def scenario(clock):
        gate = open_gate(budget(600), clock)
        await admit(gate, clock, 1)
        cut = gate.on_rate_limited()
        times = await admit(gate, clock, 3)
        await asyncio.sleep(10)
        return cut, times, gate.on_success(), gate.effective_requests_per_minute

    cut, times, raised, rate = run_in_virtual_time(scenario)
    assert cut and [round(b - a, 6) for a, b in zip(times, times[1:])] == [0.2, 0.2]
    assert raised and rate == pytest.approx(330)


# ---- the day's quotas through the gate ------------------------------------------------------

def worker_budget(records, clock, the_budget, name="w1", day="day-1"):
    log = InMemoryLedgerLog(records, wall_clock=clock)
    built = WorkerBudget.build(the_budget, total_partitions=6, log=log, worker=name, group="test",
                               pricing=FlatPricing(), clock=clock, wall_clock=clock,
                               day_of=lambda wall: day)
    built.gate.assign(ALL, 1)
    return built


class FlatPricing:
    """A cent a call at most, a tenth of a cent spent."""

    def max_cost(self, estimated_input_tokens):
        return 0.01

    def cost(self, input_tokens, output_tokens, thinking_tokens):
        return 0.001


def test_a_spent_day_raises_at_once_instead_of_waiting():
    async def scenario(clock):
        held = worker_budget([], clock, budget(6000, rpd=3))
        times = await admit(held.gate, clock, 3)
        before = clock()
        with pytest.raises(DailyBudgetExhausted) as caught:
            async with held.gate.slot():
                pass
        return len(times), clock() - before, caught.value.reason, held.gate.waiting

    assert run_in_virtual_time(scenario) == (3, 0.0, "daily_request_budget_exhausted", 0)


def test_the_usd_cap_charges_the_most_a_call_can_cost_then_what_it_cost():
    async def scenario(clock):
        held = worker_budget([], clock, budget(6000, usd=0.025))
        async with held.gate.slot(100) as slot:
            during = held.usd_per_day.used
            slot.reconcile(100, 50, 0)
        after = held.usd_per_day.used
        calls = 1
        try:
            while True:
                async with held.gate.slot(100) as slot:
                    slot.reconcile(100, 50, 0)
                calls += 1
        except DailyBudgetExhausted as spent:
            return during, after, calls, spent.reason, held.usd_per_day.cluster_reserved()

    during, after, calls, reason, reserved = run_in_virtual_time(scenario)
    assert during == pytest.approx(0.01) and after == pytest.approx(0.001)
    # 2.5 cents: the last calls go only while their worst case (a cent) still fits
    assert calls == 16 and reason == "daily_budget_exhausted" and reserved <= 0.025 + 1e-12


def test_an_error_answer_costs_nothing_and_an_unknown_outcome_keeps_the_worst_case():
    async def scenario(clock):
        held = worker_budget([], clock, budget(6000, usd=1.0))
        async with held.gate.slot(100) as slot:
            slot.refund_cost()
        refunded = held.usd_per_day.used
        try:
            async with held.gate.slot(100):
                raise TimeoutError  # no answer: it may have run and been billed
        except TimeoutError:
            pass
        return refunded, held.usd_per_day.used

    assert run_in_virtual_time(scenario) == (0.0, pytest.approx(0.01))


# ---- configuration the worker checks, and the control messages it follows -------------------------

def test_a_worker_refuses_a_model_without_a_price_and_names_the_settings():
    import os
    import subprocess
    import sys

    env = {**os.environ, "DOCSIGHT_BROKER_URL": "kafka://127.0.0.1:9", "GEMINI_MODEL": "gemini-2.5-pro"}
    env.pop("GEMINI_PRICES", None)
    result = subprocess.run([sys.executable, "-m", "docsight", "worker"], env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "GEMINI_MODEL='gemini-2.5-pro' has no price" in result.stderr and "GEMINI_PRICES" in result.stderr
    priced = {**env, "GEMINI_PRICES": '{"gemini-2.5-pro": {"input": 1.25, "output": 10.0}}',
              "DOCSIGHT_ROLE": "vision"}
    from docsight.config.settings import load_settings
    from docsight.cost.prices import load_price_table
    assert load_price_table(priced["GEMINI_PRICES"]).price("gemini-2.5-pro")  # the fix the message names works
    assert load_settings().gemini_model  # settings themselves stay valid: the check is the worker's


def test_control_messages_add_up_to_an_override_and_resumes():
    from docsight.vision.worker_budget import ControlState

    state = ControlState()
    assert state.apply({"requests_per_minute": 30, "set_at": 1.0}) == (True, False)
    assert state.apply({"requests_per_minute": 30, "tokens_per_minute": None, "set_at": 2.0}) == (False, False)
    assert state.apply({"requests_per_day": 500, "set_at": 3.0}) == (True, False)
    assert state.override == {"requests_per_minute": 30, "requests_per_day": 500}
    assert state.apply({"resume": True, "set_at": 4.0}) == (False, True)
    assert state.apply({"resume": True, "set_at": 4.0}) == (False, False)  # the same message read again
    assert state.resumed_at == 4.0
