"""The budget ledger: the day's requests and dollars counted cluster-wide across restarts (no broker).

The log is a list shared by several replicas, as the Kafka topic is shared by the workers; every
replica applies the records in the same order, which is all the real topic guarantees too.
"""

from __future__ import annotations

import asyncio
import math

import pytest

from docsight.vision.budget import DailyBudgetExhausted
from docsight.vision.day_ledger import REQUESTS, USD, BudgetLedger, DayQuota, InMemoryLedgerLog, Lease


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def quota(records, worker, limit, dimension=REQUESTS, day=lambda wall: "2026-01-15", block=None, clock=None):
    log = InMemoryLedgerLog(records, wall_clock=clock or Clock())
    return DayQuota(dimension, limit, log, worker, wall_clock=clock or Clock(), day_of=day,
                    block=block or (lambda amount: amount))


async def spend(day_quota, calls, amount=1.0):
    """Make calls until ``calls`` are made or the day is spent; the number made."""
    made = 0
    for _ in range(calls):
        try:
            await day_quota.ensure(amount)
        except DailyBudgetExhausted:
            break
        day_quota.take(amount)
        made += 1
    return made


def test_reservations_are_granted_in_log_order_and_never_past_the_limit():
    ledger = BudgetLedger()
    records = [
        {"kind": "reserve", "worker": "a", "day": "d", "dimension": REQUESTS, "amount": 6, "limit": 10},
        {"kind": "reserve", "worker": "b", "day": "d", "dimension": REQUESTS, "amount": 6, "limit": 10},
        {"kind": "reserve", "worker": "b", "day": "d", "dimension": REQUESTS, "amount": 4, "limit": 10},
    ]
    for offset, record in enumerate(records):
        ledger.apply(record, offset)
    assert [ledger.granted(n) for n in range(3)] == [True, False, True]
    assert ledger.reserved("d", REQUESTS) == 10
    assert (ledger.reserved_by("a", "d", REQUESTS), ledger.reserved_by("b", "d", REQUESTS)) == (6, 4)
    ledger.apply(records[0], 0)  # applied twice (a replay): counted once
    assert ledger.reserved("d", REQUESTS) == 10


def test_two_workers_racing_for_the_last_requests_get_them_once():
    records: list[dict] = []
    first, second = quota(records, "a", 10), quota(records, "b", 10)

    async def scenario():
        return await asyncio.gather(spend(first, 8), spend(second, 8))

    made = asyncio.run(scenario())
    assert sum(made) == 10 and first.cluster_reserved() == 10 and second.cluster_reserved() == 10


def test_a_restarted_worker_starts_from_the_days_total_not_from_zero():
    records: list[dict] = []
    asyncio.run(spend(quota(records, "worker-1#1", 25), 18))
    # the process dies; its successor reads the same log from the beginning
    successor = quota(records, "worker-1#2", 25)
    assert successor.cluster_reserved() == 18
    assert asyncio.run(spend(successor, 100)) == 7


@pytest.mark.parametrize("block", [1, 3, 7])
def test_a_crash_loop_wastes_at_most_a_block_a_crash_and_never_overspends(block):
    records: list[dict] = []
    spent, incarnation = 0, 0
    while True:
        incarnation += 1
        worker = quota(records, f"w#{incarnation}", 100, block=lambda amount: block)
        made = asyncio.run(spend(worker, 2))  # two calls, then killed: no release
        spent += made
        if made == 0:
            break
    assert spent <= 100
    assert 100 - spent <= block * incarnation  # what dead incarnations reserved and never used
    assert worker.cluster_reserved() <= 100


def test_a_clean_stop_gives_back_what_it_did_not_spend():
    records: list[dict] = []
    leaving = quota(records, "a", 10, block=lambda amount: 8)
    asyncio.run(spend(leaving, 3))
    assert leaving.cluster_reserved() == 8
    asyncio.run(leaving.release())
    newcomer = quota(records, "b", 10)
    assert newcomer.cluster_reserved() == 3 and asyncio.run(spend(newcomer, 100)) == 7


def test_dollars_are_reserved_at_the_worst_case_and_settled_to_what_was_spent():
    records: list[dict] = []
    dollars = quota(records, "a", 0.05, dimension=USD)

    async def scenario():
        calls = 0
        try:
            while True:
                await dollars.ensure(0.01)  # what a call can cost at most
                dollars.take(0.01)
                dollars.settle(0.01, 0.002)  # what it did cost
                calls += 1
        except DailyBudgetExhausted as spent:
            return calls, spent.reason

    calls, reason = asyncio.run(scenario())
    assert reason == "daily_budget_exhausted"
    assert calls == 21 and dollars.used == pytest.approx(0.042)  # the 22nd could cost 0.01 > 0.008 left
    assert dollars.cluster_reserved() <= 0.05 + 1e-12


def test_a_new_day_starts_afresh_at_midnight_pacific():
    records: list[dict] = []
    today = ["2026-01-15"]
    worker = quota(records, "a", 5, day=lambda wall: today[0])
    assert asyncio.run(spend(worker, 10)) == 5
    today[0] = "2026-01-16"
    assert asyncio.run(spend(worker, 10)) == 5


def test_a_per_day_429_holds_every_worker_until_the_day_turns_or_a_resume():
    records: list[dict] = []
    today = ["2026-01-15"]
    clock = Clock()
    first = quota(records, "a", None, day=lambda wall: today[0], clock=clock)
    second = quota(records, "b", None, day=lambda wall: today[0], clock=clock)
    asyncio.run(first.mark_exhausted_by_api())
    with pytest.raises(DailyBudgetExhausted) as caught:
        asyncio.run(second.ensure(1))
    assert caught.value.reason == "daily_quota_exhausted" and caught.value.by_api
    clock.now += 10
    second.resumed_at = clock.now  # docsight control resume
    asyncio.run(second.ensure(1))
    today[0] = "2026-01-16"
    asyncio.run(first.ensure(1))


# ---- who may still be calling: leases, drains, hold-offs ----------------------------------

W, TIMEOUT, MARGIN = 60.0, 10.0, 1.0


def hold(ledger, me="b", generation=5, assigned_at=1000.0, group="g"):
    return ledger.hold_until(me, group, generation, assigned_at, W, TIMEOUT, MARGIN)


def marks(*records):
    ledger = BudgetLedger()
    for offset, record in enumerate(records):
        ledger.apply({"group": "g", **record}, offset)
    return ledger


def test_a_cold_start_has_nothing_to_wait_for():
    assert hold(BudgetLedger()) == -math.inf


def test_a_killed_worker_is_waited_for_from_its_lease_plus_a_call_and_a_window():
    ledger = marks({"kind": "lease", "worker": "a", "generation": 4, "active_until": 990.0})
    assert hold(ledger) == 990.0 + TIMEOUT + W + MARGIN
    # a lease running past the assignment: it stopped calling when the rebalance started, before that
    ledger = marks({"kind": "lease", "worker": "a", "generation": 4, "active_until": 1010.0})
    assert hold(ledger) == 1000.0 + TIMEOUT + W + MARGIN


def test_a_drained_worker_is_waited_for_only_until_its_calls_left_the_window():
    ledger = marks({"kind": "lease", "worker": "a", "generation": 4, "active_until": 1010.0},
                   {"kind": "drained", "worker": "a", "generation": 4, "ended_by": 995.0})
    assert hold(ledger) == 995.0 + W + MARGIN


def test_what_a_worker_published_in_the_new_generation_does_not_hold_anyone():
    ledger = marks({"kind": "drained", "worker": "a", "generation": 4, "ended_by": 995.0},
                   {"kind": "lease", "worker": "a", "generation": 5, "active_until": 1020.0})
    assert hold(ledger) == 995.0 + W + MARGIN


def test_an_earlier_incarnation_of_this_worker_counts_like_anyone_else():
    ledger = marks({"kind": "lease", "worker": "b#1", "generation": 4, "active_until": 990.0})
    assert hold(ledger, me="b#2") == 990.0 + TIMEOUT + W + MARGIN
    assert hold(ledger, me="b#1") == -math.inf


def test_a_lease_renews_before_it_runs_out_and_at_every_generation():
    records: list[dict] = []
    clock = Clock(0.0)
    lease = Lease(InMemoryLedgerLog(records, wall_clock=clock), "a", "g", lease_seconds=10, wall_clock=clock)
    lease.generation = 1
    asyncio.run(lease.ensure())
    clock.now = 4.0
    asyncio.run(lease.ensure())  # 6 s left: still good
    clock.now = 6.0
    asyncio.run(lease.ensure())  # 4 s left: renewed
    lease.generation = 2
    asyncio.run(lease.ensure())  # a new generation: renewed at once
    assert [(r["generation"], r["active_until"]) for r in records] == [(1, 10.0), (1, 16.0), (2, 16.0)]


# ---- finer hold-offs: each gained partition waits only for the calls charged to it ----------------

def drained(worker, generation, partitions, live, held=None, ended_by=999.0):
    return {"kind": "drained", "worker": worker, "generation": generation, "ended_by": ended_by,
            "partitions": {str(p): c for p, c in partitions.items()}, "held": {str(p): t for p, t in (held or {}).items()},
            "live": live}


def holds(ledger, gained, me="b", generation=5, assigned_at=1000.0):
    return ledger.partition_holds(me, "g", generation, assigned_at, gained, W, TIMEOUT, MARGIN)


def test_a_drained_owners_calls_fill_its_highest_partitions_first():
    # a owned 0-2, two calls a window each; five of its calls still count, leaving at 1001..1005
    ledger = marks(drained("a", 4, {0: 2, 1: 2, 2: 2}, [1001.0, 1002.0, 1003.0, 1004.0, 1005.0]))
    found = holds(ledger, [0, 1, 2])
    assert found[2] == 1005.0 + MARGIN  # filled first: free when none is left
    assert found[1] == 1003.0 + MARGIN  # free once at most 2 (the room of partition 2) are left
    assert found[0] == 1001.0 + MARGIN  # free once at most 4 are left


def test_what_the_old_owner_kept_takes_its_calls_first():
    ledger = marks(drained("a", 4, {0: 2, 1: 2, 2: 2}, [1001.0, 1002.0, 1003.0, 1004.0, 1005.0]),
                   {"kind": "assigned", "worker": "a", "generation": 5, "kept": [0], "partitions": {"0": 0}})
    found = holds(ledger, [1, 2])
    assert found[2] == 1003.0 + MARGIN  # partition 0 takes two calls: free once at most 2 are left
    assert found[1] == 1001.0 + MARGIN  # ... and 2's room: at most 4


def test_the_old_owners_own_hold_off_carries_over():
    ledger = marks(drained("a", 4, {0: 2, 1: 2}, [], held={1: 1050.0}))
    assert holds(ledger, [0, 1]) == {0: -math.inf, 1: 1050.0 + MARGIN}


def test_a_drain_from_another_generation_or_group_or_a_killed_owner_falls_back_to_the_bound():
    old = marks(drained("a", 3, {0: 2}, [1001.0], ended_by=990.0))  # it was not in generation 4
    assert holds(old, [0])[0] == 990.0 + W + MARGIN
    killed = marks({"kind": "lease", "worker": "a", "generation": 4, "active_until": 995.0})
    assert holds(killed, [0, 3]) == {0: 995.0 + TIMEOUT + W + MARGIN, 3: 995.0 + TIMEOUT + W + MARGIN}
    silent = marks(drained("a", 3, {0: 2}, [], ended_by=980.0),
                   {"kind": "assigned", "worker": "a", "generation": 4, "kept": [], "held": {"2": 1070.0}})
    assert holds(silent, [2])[2] == 1070.0  # assigned, never called: what it waited for still counts


def test_a_drain_that_does_not_list_the_partition_holds_nothing_of_it():
    ledger = marks(drained("a", 4, {0: 2}, [1009.0]), drained("c", 4, {1: 2}, []))
    assert holds(ledger, [1]) == {1: -math.inf}
