"""AIMD: a 429 the local budget did not expect halves the rate, successes win it back slowly."""

import pytest

from docsight.vision.adaptive_rate import AdaptiveRate


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def test_starts_at_full_rate():
    rate = AdaptiveRate(clock=FakeClock())
    assert rate.multiplier == 1.0 and rate.effective(600) == 600
    assert not rate.on_success()  # nothing to recover


def test_an_unexpected_429_halves_the_rate():
    rate = AdaptiveRate(clock=FakeClock())
    assert rate.on_unexpected_429()
    assert rate.multiplier == 0.5 and rate.effective(600) == 300 and rate.cuts == 1


def test_a_burst_of_429s_within_the_cooldown_cuts_once():
    clock = FakeClock()
    rate = AdaptiveRate(cooldown_seconds=5.0, clock=clock)
    results = []
    for _ in range(10):  # every call in flight answered 429 by one overload
        results.append(rate.on_unexpected_429())
        clock.now += 0.4
    assert results == [True] + [False] * 9
    assert rate.multiplier == 0.5 and rate.rate_limited_seen == 10
    clock.now = 1005.0  # the cooldown is over: a new overload cuts again
    assert rate.on_unexpected_429() and rate.multiplier == 0.25


def test_the_rate_never_falls_below_the_floor():
    clock = FakeClock()
    rate = AdaptiveRate(floor=0.05, cooldown_seconds=5.0, clock=clock)
    for _ in range(20):
        rate.on_unexpected_429()
        clock.now += 5.0
    assert rate.multiplier == 0.05
    assert not rate.on_unexpected_429()  # already at the floor: no change to report


def test_successes_recover_one_step_per_recovery_interval():
    clock = FakeClock()
    rate = AdaptiveRate(increase_step=0.05, recovery_interval_seconds=10.0, clock=clock)
    rate.on_unexpected_429()
    clock.now += 9.9
    assert not rate.on_success()  # too soon after the cut
    clock.now += 0.1
    assert rate.on_success() and rate.multiplier == pytest.approx(0.55)
    assert not rate.on_success()  # many successes in one interval count once
    clock.now += 10
    assert rate.on_success() and rate.multiplier == pytest.approx(0.60)


def test_a_429_during_recovery_restarts_the_wait_even_without_a_cut():
    clock = FakeClock()
    rate = AdaptiveRate(cooldown_seconds=5.0, recovery_interval_seconds=10.0, clock=clock)
    rate.on_unexpected_429()
    clock.now += 3
    assert not rate.on_unexpected_429()  # inside the cooldown: no cut, still a sign of pressure
    clock.now += 8  # 11 s after the cut, 8 s after the last 429
    assert not rate.on_success()
    clock.now += 2
    assert rate.on_success()


def test_recovery_stops_at_full_rate():
    clock = FakeClock()
    rate = AdaptiveRate(increase_step=0.05, recovery_interval_seconds=1.0, clock=clock)
    rate.on_unexpected_429()
    for _ in range(30):
        clock.now += 1
        rate.on_success()
    assert rate.multiplier == 1.0


@pytest.mark.parametrize("kwargs", [dict(decrease_factor=1.0), dict(decrease_factor=0), dict(floor=0),
                                    dict(increase_step=0)])
def test_nonsense_settings_are_refused(kwargs):
    with pytest.raises(ValueError):
        AdaptiveRate(**kwargs)
