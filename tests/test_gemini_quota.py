"""Pure quota, stats and fault-plan logic, with a fake clock and no server."""

import random

import pytest

from docsight.gemini_server.describer import caption_from_prompt
from docsight.gemini_server.faults import ControlError, FaultPlan, ForcedResponse
from docsight.gemini_server.quota import (
    BusiestWindow,
    ModelQuota,
    ProjectQuotas,
    SlidingWindowLog,
    quota_names,
    retry_delay_seconds,
)
from docsight.gemini_server.stats import ServerStats


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_log_counts_events_in_half_open_window():
    log = SlidingWindowLog(10)
    log.record(0.0)
    log.record(4.0, 5)
    assert log.count(9.9) == 2 and log.total(9.9) == 6
    assert log.count(10.0) == 1  # the event at 0 leaves exactly one window later
    assert log.total(14.0) == 0


def test_wait_for_room_is_time_until_enough_events_expire():
    log = SlidingWindowLog(10)
    for t in (0.0, 1.0, 2.0):
        log.record(t)
    assert log.wait_for_room(5.0, limit=3, amount=1) == pytest.approx(5.0)  # event at 0 frees at 10
    assert log.wait_for_room(5.0, limit=2, amount=1) == pytest.approx(6.0)  # needs the one at 1 too
    assert log.wait_for_room(5.0, limit=4, amount=1) == 0.0


def test_requests_per_minute_rejects_without_consuming():
    clock = FakeClock(0.0)
    quota = ModelQuota(rpm=2, window_seconds=10, clock=clock)
    assert quota.try_acquire() == []
    clock.advance(1)
    assert quota.try_acquire() == []
    clock.advance(1)
    [violation] = quota.try_acquire()
    assert violation.kind == "rpm" and violation.limit == 2
    assert violation.wait_seconds == pytest.approx(8.0)
    assert violation.retry_delay_seconds == 8
    for _ in range(5):  # rejected calls must not push the window further out
        assert quota.try_acquire()
    clock.now = 10.0
    assert quota.try_acquire() == []
    clock.now = 10.5
    [violation] = quota.try_acquire()
    assert violation.wait_seconds == pytest.approx(0.5)
    assert violation.retry_delay_seconds == 1  # never "0s"


def test_input_tokens_per_minute_and_all_or_nothing():
    clock = FakeClock(0.0)
    quota = ModelQuota(rpm=10, tpm=500, window_seconds=10, clock=clock)
    assert quota.try_acquire(300) == []
    clock.advance(1)
    [violation] = quota.try_acquire(300)
    assert violation.kind == "tpm" and violation.wait_seconds == pytest.approx(9.0)
    assert quota.usage()["requests_in_window"] == 1  # the rejected call took no request slot
    assert quota.try_acquire(200) == []
    [too_big] = quota.try_acquire(501)
    assert too_big.kind == "tpm" and too_big.wait_seconds == pytest.approx(10.0)


def test_several_quotas_exceeded_at_once_are_all_reported():
    clock = FakeClock(0.0)
    quota = ModelQuota(rpm=1, tpm=100, rpd=1, window_seconds=10, day_seconds=100, clock=clock)
    assert quota.try_acquire(100) == []
    clock.advance(2)
    violations = {v.kind: v for v in quota.try_acquire(50)}
    assert set(violations) == {"rpm", "tpm", "rpd"}
    assert violations["rpm"].wait_seconds == pytest.approx(8.0)
    assert violations["rpd"].wait_seconds == pytest.approx(98.0)


def test_quotas_are_per_model_and_reconfigurable():
    clock = FakeClock(0.0)
    quotas = ProjectQuotas(rpm=1, window_seconds=10, clock=clock)
    assert quotas.try_acquire("gemini-2.5-flash", 10) == []
    assert quotas.try_acquire("gemini-2.5-flash-lite", 10) == []
    assert quotas.try_acquire("gemini-2.5-flash", 10)
    quotas.reconfigure(rpm=2)
    assert quotas.try_acquire("gemini-2.5-flash", 10) == []
    quotas.reconfigure(rpm=None)
    assert all(quotas.try_acquire("gemini-2.5-flash", 10) == [] for _ in range(20))


def test_retry_delay_is_whole_seconds_at_least_one():
    assert retry_delay_seconds(0.0) == 1
    assert retry_delay_seconds(0.2) == 1
    assert retry_delay_seconds(25.01) == 26
    assert retry_delay_seconds(26.0) == 26


def test_quota_names_match_the_real_free_tier_body():
    assert quota_names("rpm") == (
        "generativelanguage.googleapis.com/generate_content_free_tier_requests",
        "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
    )
    assert quota_names("tpm")[1] == "GenerateContentInputTokensPerModelPerMinute-FreeTier"


def test_busiest_window_counts_the_densest_window():
    busiest = BusiestWindow(1.0)
    for t in (0.0, 0.5, 1.0, 5.0, 5.2, 5.4, 5.6, 7.0):
        busiest.record(t)
    assert busiest.busiest == 4  # (4.6, 5.6] holds 5.0, 5.2, 5.4, 5.6
    assert busiest.current(7.5) == 1


def test_busiest_window_never_exceeds_the_quota_it_shadows():
    clock = FakeClock(0.0)
    quota = ModelQuota(rpm=5, window_seconds=2, clock=clock)
    busiest = BusiestWindow(2, clock)
    rng = random.Random(7)
    admitted = 0
    for _ in range(2000):
        clock.advance(rng.choice((0.0, 0.01, 0.1, 0.5, 1.0)))
        if not quota.try_acquire():
            busiest.record()
            admitted += 1
    assert busiest.busiest == 5
    assert admitted > 100


def test_server_stats_busiest_for_minute_and_configured_window():
    clock = FakeClock(0.0)
    stats = ServerStats(window_seconds=5, clock=clock)
    for t in (0, 1, 2, 3, 13, 43, 73):
        clock.now = t
        stats.admitted()
        stats.answered_ok(258, 40, 0)
    stats.answered_error(429)
    stats.answered_error(503)
    snapshot = stats.snapshot()
    assert snapshot["busiest_window"] == 4  # t = 0, 1, 2, 3
    assert snapshot["busiest_60s"] == 6  # (-17, 43] holds all but t = 73
    assert snapshot["calls_ok"] == 7 and snapshot["calls_429"] == 1
    assert snapshot["errors_by_code"] == {"503": 1}
    assert snapshot["input_tokens"] == 7 * 258
    stats.reset()
    assert stats.snapshot()["calls_ok"] == 0 and stats.snapshot()["busiest_60s"] == 0


def test_fault_queue_parsing():
    plan = FaultPlan()
    plan.apply({"enqueue": [{"kind": "503", "count": 2}, {"kind": "429", "retry_delay_s": 7}, "close"]})
    assert [f.kind for f in plan.queue] == ["503", "503", "429", "close"]
    assert plan.next_forced() == ForcedResponse("503")
    plan.apply({"clear_queue": True, "down": True, "latency_ms": 5})
    assert not plan.queue and plan.settings.down and plan.latency_seconds() == 0.005
    for bad in ({"enqueue": [{"kind": "418"}]}, {"enqueue": [{"kind": "503", "count": 0}]},
                {"error_rate_500": 2}, {"enqueue": [{"kind": "block_prompt", "reason": "NOPE"}]}):
        with pytest.raises(ControlError):
            plan.apply(bad)


def test_random_errors_follow_rates():
    plan = FaultPlan(seed=3)
    plan.apply({"error_rate_500": 0.25, "error_rate_503": 0.25})
    draws = [plan.random_error_code() for _ in range(4000)]
    assert 800 < draws.count(500) < 1200 and 800 < draws.count(503) < 1200


def test_caption_line_is_found():
    assert caption_from_prompt("Describe this.\n  Caption: A red barn \nthanks") == "A red barn"
    assert caption_from_prompt("no caption here") is None
