"""The describer with its budget against the local Gemini server, through the real google-genai SDK.

Covers what the budget does with the API's answers: the server's token count reconciled with the
client's estimate, a per-day 429 read from QuotaFailure, and ``VISION_ON_API_UNAVAILABLE`` for an
invalid key, an unknown model and a spent day (wait holds, with the alarm metric; fail_over fails).
"""

from __future__ import annotations

import asyncio
import io
import time

import pytest
from PIL import Image

from docsight.cost.prices import DEFAULT_PRICES, PriceTablePricing
from docsight.cost.tokens import image_tokens, text_tokens
from docsight.gemini_server import GeminiServerConfig, running_gemini_server
from docsight.observability.metrics import REGISTRY
from docsight.vision.budget import ClusterBudget
from docsight.vision.circuit_breaker import CircuitBreaker
from docsight.vision.day_ledger import InMemoryLedgerLog
from docsight.vision.describer import PictureDescriber
from docsight.vision.gemini_client import GeminiClient
from docsight.vision.gemini_provider import GeminiProvider
from docsight.vision.prompt import SYSTEM_INSTRUCTION, build_prompt
from docsight.vision.provider import PreparedPicture
from docsight.vision.worker_budget import WorkerBudget

MODEL = "gemini-2.5-flash"
KEY = "good-key"


def picture(width=320, height=240, colour=(20, 120, 200)) -> PreparedPicture:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, "PNG")
    return PreparedPicture(buffer.getvalue(), "image/png", image_tokens(width, height))


def blocked(reason: str) -> float:
    return REGISTRY.get_sample_value("docsight_vision_blocked", {"reason": reason}) or 0.0


def build(server, *, on_unavailable="wait", key=KEY, model=MODEL, rpm=600.0, tpm=None, records=None):
    client = GeminiClient(api_key=key, model=model, base_url=server.base_url, timeout_seconds=10,
                          max_output_tokens=256)
    log = InMemoryLedgerLog([] if records is None else records)
    budget = WorkerBudget.build(
        ClusterBudget(requests_per_minute=rpm, tokens_per_minute=tpm, requests_per_day=None,
                      max_concurrent_per_consumer=5),
        total_partitions=6, log=log, worker="worker-a", group="test",
        pricing=PriceTablePricing(DEFAULT_PRICES, model, 256, 0))
    budget.gate.assign(range(6), 1)
    describer = PictureDescriber(GeminiProvider(client, DEFAULT_PRICES), budget.gate, CircuitBreaker(failure_threshold=3, open_seconds=0.2),
                                 retry_deadline_seconds=20, on_unavailable=on_unavailable,
                                 fail_over_after_seconds=5,
                                 on_daily_quota_exhausted=budget.requests_per_day.mark_exhausted_by_api)
    return describer, budget


def run(scenario, config: GeminiServerConfig | None = None):
    async def main():
        async with running_gemini_server(config or GeminiServerConfig(api_keys=frozenset({KEY}))) as server:
            return await scenario(server)

    return asyncio.run(main())


async def still_waiting(task: asyncio.Task, seconds: float = 0.6) -> bool:
    await asyncio.sleep(seconds)
    return not task.done()


def test_the_servers_count_differs_from_the_estimate_and_replaces_it():
    async def scenario(server):
        describer, budget = build(server, tpm=60_000)
        outcome = await describer.describe(picture(), build_prompt())
        estimate = 258 + text_tokens(build_prompt()) + text_tokens(SYSTEM_INSTRUCTION)
        return outcome, estimate, budget.gate.stats(), server.stats()

    outcome, estimate, stats, server_stats = run(scenario)
    assert outcome.status == "described"
    assert outcome.input_tokens == server_stats["input_tokens"]  # what the server counted, by its own rule
    assert outcome.input_tokens != estimate                        # ... which is not the client's estimate
    assert stats["tokens_in_window"] == outcome.input_tokens        # the gate now holds the server's figure
    assert stats["tokens_admitted"] == outcome.input_tokens
    assert stats["token_estimate_ratio"] == pytest.approx(max(1.0, 1.02 * outcome.input_tokens / estimate))


def test_wait_holds_pictures_for_an_invalid_key_until_resumed():
    async def scenario(server):
        describer, budget = build(server, key="rotated-key")
        task = asyncio.ensure_future(describer.describe(picture(), build_prompt()))
        held = await still_waiting(task)
        calls = server.stats()["calls_received"]
        alarm = blocked("invalid_api_key")
        later = asyncio.ensure_future(describer.describe(picture(colour=(1, 2, 3)), build_prompt()))
        also_held = await still_waiting(later)
        no_more_calls = server.stats()["calls_received"] == calls
        server.control({"api_keys": [KEY, "rotated-key"]})  # the key is valid again
        describer.resume()
        first, second = await asyncio.wait_for(asyncio.gather(task, later), 10)
        return held, alarm, also_held, no_more_calls, first, second, blocked("invalid_api_key")

    held, alarm, also_held, no_more_calls, first, second, alarm_after = run(scenario)
    assert held and also_held and no_more_calls and alarm == 1.0
    assert first.status == second.status == "described" and alarm_after == 0.0


def test_fail_over_fails_an_invalid_key_at_once_and_calls_no_more():
    async def scenario(server):
        describer, _ = build(server, key="rotated-key", on_unavailable="fail_over")
        first = await describer.describe(picture(), build_prompt())
        second = await describer.describe(picture(colour=(5, 5, 5)), build_prompt())
        return first, second, server.stats()["calls_received"]

    first, second, calls = run(scenario)
    assert (first.status, first.reason) == ("failed", "invalid_api_key")
    assert (second.status, second.reason) == ("failed", "api_unavailable: invalid_api_key")
    assert calls == 1


def test_wait_holds_pictures_for_an_unknown_model():
    async def scenario(server):
        describer, _ = build(server, model="gemini-2.5-flash-lite")
        task = asyncio.ensure_future(describer.describe(picture(), build_prompt()))
        held = await still_waiting(task)
        alarm = blocked("model_not_found")
        task.cancel()
        return held, alarm

    config = GeminiServerConfig(api_keys=frozenset({KEY}), models=frozenset({MODEL}))
    assert run(scenario, config) == (True, 1.0)


def test_a_per_day_429_holds_calls_instead_of_following_its_retry_info():
    async def scenario(server):
        records: list[dict] = []
        describer, budget = build(server, records=records)
        first = await describer.describe(picture(), build_prompt())
        task = asyncio.ensure_future(describer.describe(picture(colour=(9, 9, 9)), build_prompt()))
        held = await still_waiting(task, 2.5)  # RetryInfo says 1 s: a per-minute 429 would be retried by now
        calls_while_held = server.stats()["calls_received"]
        marked = [r["kind"] for r in records if r["kind"] == "exhausted"]
        reason = blocked("daily_quota_exhausted")
        server.control({"rpd": None})  # the project's quota raised
        budget.resume(time.time())
        describer.resume()
        second = await asyncio.wait_for(task, 10)
        return first, held, calls_while_held, marked, reason, second

    first, held, calls, marked, reason, second = run(
        scenario, GeminiServerConfig(api_keys=frozenset({KEY}), rpd=1, window_seconds=1.0))
    assert first.status == "described" and held and calls == 2 and marked == ["exhausted"] and reason == 1.0
    assert second.status == "described"


def test_a_per_day_429_fails_over_at_once_with_its_reason():
    async def scenario(server):
        describer, _ = build(server, on_unavailable="fail_over")
        started = time.monotonic()
        outcome = await describer.describe(picture(), build_prompt())
        return outcome, time.monotonic() - started, server.stats()["calls_received"]

    config = GeminiServerConfig(api_keys=frozenset({KEY}))
    outcome, seconds, calls = run(lambda server: _force_day_429(server, scenario), config)
    assert (outcome.status, outcome.reason) == ("failed", "daily_quota_exhausted")
    assert calls == 1 and seconds < 5  # not retried until the 20 s deadline


async def _force_day_429(server, scenario):
    server.control({"enqueue": [{"kind": "429", "quota": "rpd", "retry_delay_s": 1}]})
    return await scenario(server)


def test_a_per_minute_429_still_follows_retry_info():
    async def scenario(server):
        describer, _ = build(server)
        server.control({"enqueue": [{"kind": "429", "quota": "rpm", "retry_delay_s": 1}]})
        started = time.monotonic()
        outcome = await describer.describe(picture(), build_prompt())
        return outcome, time.monotonic() - started

    outcome, seconds = run(scenario)
    assert outcome.status == "described" and outcome.attempts == 2 and seconds >= 1.0


def test_a_picture_waiting_for_the_budget_is_handed_back_when_a_rebalance_starts():
    async def scenario(server):
        describer, budget = build(server, rpm=1)  # one call a minute for the whole cluster
        first = await describer.describe(picture(), build_prompt())
        waiting = asyncio.ensure_future(describer.describe(picture(colour=(3, 3, 3)), build_prompt()))
        await asyncio.sleep(0.3)
        budget.gate.start_draining()
        return first, await asyncio.wait_for(waiting, 5), server.stats()["calls_received"]

    first, second, calls = run(scenario)
    assert first.status == "described" and second.status == "requeue" and calls == 1
