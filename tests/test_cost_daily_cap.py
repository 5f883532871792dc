"""VISION_DAILY_BUDGET_USD as the web views see it: a read-only view of the ledger's USD quota."""

import asyncio

from docsight.cost.daily_cap import DailySpendCap
from docsight.vision.budget import DailyBudgetExhausted
from docsight.vision.day_ledger import USD, DayQuota, InMemoryLedgerLog


def usd_quota(records, worker, limit):
    return DayQuota(USD, limit, InMemoryLedgerLog(records), worker, day_of=lambda wall: "2026-11-28")


def test_the_cap_counts_what_the_whole_cluster_reserved_today():
    records: list[dict] = []
    other, mine = usd_quota(records, "a", 1.0), usd_quota(records, "b", 1.0)
    asyncio.run(other.ensure(0.7))
    other.take(0.7)
    cap = DailySpendCap(mine)
    assert cap.budget_usd == 1.0 and cap.reserved_usd == 0.7 and cap.spent_usd == 0.0
    assert not cap.exhausted(0.3) and cap.exhausted(0.31)
    asyncio.run(mine.ensure(0.3))
    mine.take(0.25)
    assert cap.spent_usd == 0.25 and cap.exhausted(0.1)


def test_no_cap_never_exhausts():
    cap = DailySpendCap(usd_quota([], "a", None))
    assert cap.budget_usd is None and not cap.exhausted(1e9)


def test_a_spent_cap_stops_the_next_call_at_once():
    quota = usd_quota([], "a", 0.01)
    asyncio.run(quota.ensure(0.01))
    quota.take(0.01)
    try:
        asyncio.run(quota.ensure(0.001))
    except DailyBudgetExhausted as spent:
        assert spent.reason == "daily_budget_exhausted"
    else:
        raise AssertionError("the cap did not stop the call")
