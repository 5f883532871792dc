from datetime import date

from docsight.cost.daily_cap import DailySpendCap


def test_cap_is_the_workers_share_and_resets_each_day():
    today = [date(2026, 11, 28)]
    cap = DailySpendCap(10.0, day=lambda: today[0])
    cap.share_fraction = 0.5
    assert cap.allowance_usd == 5.0 and not cap.exhausted()
    cap.spend(4.99)
    assert not cap.exhausted()
    cap.spend(0.02)
    assert cap.exhausted()
    today[0] = date(2026, 11, 29)
    assert not cap.exhausted() and cap.spent_usd == 0.0


def test_no_budget_never_exhausts():
    cap = DailySpendCap(None)
    cap.share_fraction = 1.0
    cap.spend(1e9)
    assert not cap.exhausted()


def test_a_worker_without_share_may_not_spend():
    cap = DailySpendCap(10.0)
    assert cap.exhausted()
