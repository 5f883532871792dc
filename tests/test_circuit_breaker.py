"""The breaker: open after consecutive transient failures, one probe at a time, failover timing, alarm latch."""

import math
from types import SimpleNamespace

import pytest

from docsight.vision.circuit_breaker import BreakerState, CircuitBreaker
from docsight.vision.retry_policy import Action, Verdict


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def breaker(clock, threshold=3, open_seconds=30.0, **kwargs):
    return CircuitBreaker(failure_threshold=threshold, open_seconds=open_seconds, clock=clock, **kwargs)


def opened(clock):
    b = breaker(clock)
    for _ in range(3):
        b.record_failure()
    assert b.state is BreakerState.OPEN
    return b


def test_closed_allows_calls_and_a_success_resets_the_count():
    b = breaker(FakeClock())
    b.record_failure()
    b.record_failure()
    b.record_success()
    b.record_failure()
    b.record_failure()
    assert b.state is BreakerState.CLOSED and b.allow() and b.wait_time() == 0
    assert b.consecutive_failures == 2 and b.unavailable_since is None


def test_opens_after_n_consecutive_failures():
    clock = FakeClock()
    b = opened(clock)
    assert not b.allow()
    assert b.wait_time() == 30.0
    assert b.unavailable_since == 1000.0 and b.times_opened == 1


def test_a_429_is_not_a_breaker_failure():
    b = breaker(FakeClock())
    for _ in range(10):
        b.record_verdict(Verdict(Action.RETRY, "rate_limited", 26.0, quota_exceeded=True))
    assert b.state is BreakerState.CLOSED and b.consecutive_failures == 0


def test_open_turns_half_open_after_open_seconds_with_one_probe():
    clock = FakeClock()
    b = opened(clock)
    clock.now += 29.9
    assert b.state is BreakerState.OPEN and b.wait_time() == pytest.approx(0.1)
    clock.now += 0.1
    assert b.state is BreakerState.HALF_OPEN and b.wait_time() == 0
    assert b.allow()          # the probe
    assert not b.allow()      # only one at a time
    assert b.wait_time() > 0


def test_a_probe_success_closes():
    clock = FakeClock()
    b = opened(clock)
    clock.now += 30
    assert b.allow()
    b.record_success()
    assert b.state is BreakerState.CLOSED and b.allow() and b.allow()
    assert b.unavailable_since is None and b.consecutive_failures == 0


def test_a_probe_failure_reopens_for_another_period():
    clock = FakeClock()
    b = opened(clock)
    clock.now += 30
    assert b.allow()
    b.record_failure()
    assert b.state is BreakerState.OPEN and not b.allow()
    assert b.wait_time() == 30.0
    assert b.unavailable_since == 1000.0  # still the same outage


def test_a_probe_answered_429_frees_the_probe_without_deciding():
    clock = FakeClock()
    b = opened(clock)
    clock.now += 30
    assert b.allow()
    b.record_ignored()
    assert b.state is BreakerState.HALF_OPEN and b.allow()


def test_a_lost_probe_stops_blocking_after_the_probe_timeout():
    clock = FakeClock()
    b = breaker(clock, probe_timeout_seconds=10.0)
    for _ in range(3):
        b.record_failure()
    clock.now += 30
    assert b.allow()          # this probe's task is cancelled and never reports
    clock.now += 9
    assert not b.allow() and b.wait_time() == pytest.approx(1.0)
    clock.now += 1
    assert b.allow()


def test_late_failures_while_open_do_not_extend_the_open_period():
    clock = FakeClock()
    b = opened(clock)
    clock.now += 20
    b.record_failure()  # a call started before the breaker opened
    clock.now += 10
    assert b.state is BreakerState.HALF_OPEN


def test_fail_over_when_unavailable_longer_than_allowed():
    clock = FakeClock()
    b = breaker(clock)
    assert not b.should_fail_over(None, 60)
    for _ in range(3):
        b.record_failure()
    for _ in range(3):  # probes keep failing: one continuous outage
        clock.now += 30
        assert b.allow()
        b.record_failure()
    assert b.should_fail_over(clock.now, 60)           # 90 s unavailable
    assert not b.should_fail_over(clock.now, 90)       # "longer than", not equal
    assert b.should_fail_over(None, 89)                # None reads the breaker's clock
    clock.now += 30
    b.allow()
    b.record_success()
    assert not b.should_fail_over(None, 60)            # back: the outage is over


def test_verdicts_map_to_breaker_outcomes():
    clock = FakeClock()
    b = breaker(clock)
    b.record_verdict(Verdict(Action.RETRY, "server_error"))
    b.record_verdict(Verdict(Action.RETRY, "timeout"))
    assert b.consecutive_failures == 2
    b.record_verdict(Verdict(Action.FAIL_PICTURE, "unexpected_error: KeyError"))  # our bug, not the API's
    assert b.consecutive_failures == 2
    b.record_verdict(Verdict(Action.FAIL_PICTURE, "invalid_image"))  # the API answered
    assert b.consecutive_failures == 0
    b.record_verdict(SimpleNamespace(action=Action.ALARM, reason="invalid_api_key", quota_exceeded=False))
    assert b.state is BreakerState.ALARM


def test_alarm_latches_until_reset():
    clock = FakeClock()
    b = breaker(clock)
    b.record_verdict(Verdict(Action.ALARM, "invalid_api_key"))
    assert b.state is BreakerState.ALARM and b.alarm_reason == "invalid_api_key"
    clock.now += 3600
    b.record_success()   # nothing but reset() lifts it: no retry loop
    b.record_failure()
    assert b.state is BreakerState.ALARM and not b.allow() and b.wait_time() == math.inf
    assert b.should_fail_over(None, 60)
    b.reset()
    assert b.state is BreakerState.CLOSED and b.allow() and b.alarm_reason is None


def test_alarm_overrides_an_open_breaker():
    clock = FakeClock()
    b = opened(clock)
    b.trip_alarm("permission_denied")
    clock.now += 30
    assert b.state is BreakerState.ALARM and not b.allow()
    assert b.unavailable_since == 1000.0


def test_threshold_must_be_positive():
    with pytest.raises(ValueError):
        CircuitBreaker(failure_threshold=0)
