"""The budget holds for any quota and any number of workers, through joins, leaves, kills and evictions.

Each case runs a simulated cluster in virtual time around the real ``BudgetGate``s (see
``docsight.benchmarks.budget_simulation``). The figures come from the simulated server's own list
of arrivals, counted here in sliding windows: nothing is read from the gates.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from docsight.benchmarks.budget_simulation import (MIN_WORKERS, PATTERNS, SimEvent, SimPlan, busiest_window, crash_loop,
                                                   plan_for, refused_by_quota, rolling_restart, simulate)

QUOTAS = (1, 2, 3, 5, 7, 10, 20, 30, 60)
WORKERS = (1, 2, 3, 4, 5, 6)


def test_the_independent_counts_see_what_a_windowed_server_sees():
    times = [0.0, 10.0, 59.9, 60.0, 60.1, 130.0]
    assert busiest_window(times, 60.0) == 4  # (0.1, 60.1] holds 10, 59.9, 60, 60.1
    assert refused_by_quota(times, 60.0, 2) == 2
    assert busiest_window([0.0, 1.0], 60.0, [300.0, 500.0]) == 800


@pytest.mark.parametrize("pattern", sorted(PATTERNS))
def test_the_busiest_window_never_passes_the_quota(pattern):
    failures = []
    for quota in QUOTAS:
        for workers in (n for n in WORKERS if n >= MIN_WORKERS.get(pattern, 1)):
            result = simulate(plan_for(pattern, quota, workers, seed=quota * 10 + workers))
            if result.busiest_calls > quota or result.refused_calls:
                failures.append((quota, workers, result.busiest_calls, result.refused_calls))
            assert result.calls > 0, (quota, workers)
    assert not failures, f"{pattern}: (quota, workers, busiest, refused): {failures}"


@pytest.mark.parametrize("pattern", ["start together", "one killed and restarted", "rolling restart"])
def test_tokens_per_window_hold_too(pattern):
    # tokens bind (ten 300-token calls a window), the server counts up to 5 % more than the estimates
    for workers in (1, 3, 6):
        plan = plan_for(pattern, 60, workers, tokens_per_window=3000, server_token_factor=(0.95, 1.05))
        result = simulate(plan)
        assert result.busiest_tokens <= 3000 and result.refused_tokens == 0, (workers, result.busiest_tokens)
        assert result.busiest_calls <= 60


@pytest.mark.parametrize("quota,workers", [(10, 3), (10, 6), (30, 4), (60, 6)])
def test_a_steady_cluster_uses_at_least_nine_tenths_of_the_quota(quota, workers):
    assert simulate(plan_for("start together", quota, workers)).used_ratio >= 0.9


@pytest.mark.parametrize("pattern", ["rolling restart", "one leaves (SIGTERM)"])
def test_without_the_hold_off_a_rebalance_overshoots(pattern):
    # the negative control: the same runs with new partitions used at once go over the quota
    overshoot = []
    for quota, workers in ((10, 3), (20, 6), (60, 4)):
        result = simulate(replace(plan_for(pattern, quota, workers), hold_off=False))
        overshoot.append(result.busiest_calls > quota and result.refused_calls > 0)
    assert any(overshoot)


@pytest.mark.parametrize("events", [(), crash_loop("w1", 100, 40, 20), rolling_restart(3, 200, 150)],
                         ids=["steady", "crash loop", "rolling restart"])
def test_a_simulated_day_never_passes_the_requests_or_dollars_of_the_day(events):
    plan = SimPlan(quota=10, workers=3, requests_per_day=200, usd_per_day=0.05, day_seconds=1800,
                   duration_seconds=3600, events=events)
    result = simulate(plan)
    assert set(result.requests_per_day) == {0, 1}
    assert max(result.requests_per_day.values()) <= 200
    assert max(result.usd_per_day.values()) <= 0.05
    assert result.busiest_calls <= 10
    # dollars bind: what reservations strand (a block per worker, and per crash) stays small
    assert result.usd_per_day[1] >= 0.9 * 0.05


def test_the_requests_of_a_day_are_used_up_and_not_one_more():
    plan = SimPlan(quota=10, workers=3, requests_per_day=150, day_seconds=1800, duration_seconds=3600,
                   events=(SimEvent(600, "restart", "w2"), SimEvent(2400, "leave", "w3")))
    result = simulate(plan)
    # all of it, but what the killed worker had reserved and not used (at most a block: 3 here)
    assert 150 - 3 <= result.requests_per_day[0] <= 150 and result.requests_per_day[1] == 150
