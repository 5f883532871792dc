"""Which Gemini failures are retried, how long to wait, and RetryInfo parsing (no network)."""

import asyncio
import random

import httpx2
import pytest
from google.genai import errors

from docsight.vision.retry_policy import Action, backoff_delay, classify, parse_retry_delay, retry_wait


def api_error(code, status, message="", details=()):
    body = {"error": {"code": code, "status": status, "message": message, "details": list(details)}}
    return errors.ClientError(code, body) if code < 500 else errors.ServerError(code, body)


RETRY_INFO = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "26s"}
QUOTA_FAILURE = {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{"quotaMetric": "m"}]}


def test_retry_delay_is_read_from_retry_info():
    body = {"error": {"details": [QUOTA_FAILURE, RETRY_INFO]}}
    assert parse_retry_delay(body) == 26.0
    assert parse_retry_delay({"error": {"details": [{**RETRY_INFO, "retryDelay": "0.5s"}]}}) == 0.5


@pytest.mark.parametrize("body", [None, {}, {"error": {}}, {"error": {"details": [QUOTA_FAILURE]}},
                                  {"error": {"details": [{**RETRY_INFO, "retryDelay": "soon"}]}}])
def test_retry_delay_absent_or_unreadable(body):
    assert parse_retry_delay(body) is None


def test_429_is_retried_after_the_apis_delay():
    verdict = classify(api_error(429, "RESOURCE_EXHAUSTED", "quota", [QUOTA_FAILURE, RETRY_INFO]))
    assert verdict.action is Action.RETRY and verdict.quota_exceeded and verdict.retry_after == 26.0
    assert 26.0 <= retry_wait(verdict, attempt=1, rng=random.Random(1)) <= 27.0


@pytest.mark.parametrize("code, status", [(500, "INTERNAL"), (503, "UNAVAILABLE"), (504, "DEADLINE_EXCEEDED")])
def test_server_errors_are_retried(code, status):
    verdict = classify(api_error(code, status))
    assert verdict.action is Action.RETRY and not verdict.quota_exceeded


def test_unusable_image_fails_the_picture_without_retry():
    verdict = classify(api_error(400, "INVALID_ARGUMENT", "Unable to process input image. Please retry"))
    assert (verdict.action, verdict.reason) == (Action.FAIL_PICTURE, "invalid_image")


def test_invalid_api_key_raises_the_alarm():
    key_error = {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}
    verdict = classify(api_error(400, "INVALID_ARGUMENT", "API key not valid.", [key_error]))
    assert (verdict.action, verdict.reason) == (Action.ALARM, "invalid_api_key")
    assert classify(api_error(403, "PERMISSION_DENIED")).action is Action.ALARM


@pytest.mark.parametrize("error", [asyncio.TimeoutError(), ConnectionRefusedError(),
                                   httpx2.ConnectError("refused")])
def test_timeouts_and_connection_errors_are_retried(error):
    assert classify(error).action is Action.RETRY


def test_unexpected_errors_fail_the_picture_not_the_stream():
    assert classify(KeyError("x")).action is Action.FAIL_PICTURE


def test_backoff_is_truncated_exponential_with_full_jitter():
    rng = random.Random(7)
    for attempt in range(1, 12):
        ceiling = min(60.0, 2 ** (attempt - 1))
        samples = [backoff_delay(attempt, cap=60.0, rng=rng) for _ in range(200)]
        assert all(0 <= s <= ceiling for s in samples)
        assert max(samples) > ceiling * 0.8  # full jitter spreads over the whole range


def quota_failure(quota_id: str, metric: str = "generativelanguage.googleapis.com/generate_content_free_tier_requests"):
    return {"@type": "type.googleapis.com/google.rpc.QuotaFailure",
            "violations": [{"quotaMetric": metric, "quotaId": quota_id, "quotaValue": "250"}]}


@pytest.mark.parametrize("quota_id", ["GenerateRequestsPerDayPerProjectPerModel-FreeTier",
                                      "GenerateRequestsPerDayPerProjectPerModel"])
def test_a_per_day_429_is_told_apart_from_a_per_minute_one(quota_id):
    # the real per-day 429 carries a RetryInfo of seconds too: only QuotaFailure says the day is spent
    verdict = classify(api_error(429, "RESOURCE_EXHAUSTED", "quota", [quota_failure(quota_id), RETRY_INFO]))
    assert verdict.daily_quota and verdict.quota_exceeded and verdict.reason == "daily_quota_exhausted"
    minute = classify(api_error(429, "RESOURCE_EXHAUSTED", "quota",
                                [quota_failure("GenerateRequestsPerMinutePerProjectPerModel-FreeTier"), RETRY_INFO]))
    assert not minute.daily_quota and minute.reason == "rate_limited" and minute.retry_after == 26.0


def test_a_per_day_metric_name_alone_is_enough():
    verdict = classify(api_error(429, "RESOURCE_EXHAUSTED", "quota", [
        quota_failure("", "generativelanguage.googleapis.com/generate_requests_per_model_per_day")]))
    assert verdict.daily_quota
