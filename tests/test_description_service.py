"""The description service in process: a picture request in, its result out, with the real providers.

Both providers run against the local Gemini-compatible server: Gemini through the real google-genai
SDK, the OpenAI-compatible provider over HTTP against the server's chat-completions endpoint. The
budget is the real ``WorkerBudget`` on an in-memory ledger; the picture bytes come from a real
``BlobStore`` folder. The cache port is a dict here (the worker's is the Faust table; the cluster
tests in test_pipeline.py cover that one).

Covers the branches of the describe agent: cache hit, single flight, the daily cap, API failures,
a missing picture, a rebalance (hand back), and that no caption reaches the provider or another
document's result.
"""

from __future__ import annotations

import asyncio
import io

import pytest
from PIL import Image

from docsight.cost.prices import DEFAULT_PRICES, PriceTablePricing, load_price_table
from docsight.gemini_server import GeminiServerConfig, running_gemini_server
from docsight.storage import BlobStore
from docsight.streams.records import PictureRequest
from docsight.vision.budget import ClusterBudget
from docsight.vision.circuit_breaker import CircuitBreaker
from docsight.vision.day_ledger import InMemoryLedgerLog
from docsight.vision.describer import PictureDescriber
from docsight.vision.gemini_client import GeminiClient
from docsight.vision.gemini_provider import GeminiProvider
from docsight.vision.openai_provider import OpenAIChatProvider
from docsight.vision.service import CachedDescription, DescriptionService, HandBack, cache_variant
from docsight.vision.worker_budget import WorkerBudget

MODEL = "gemini-2.5-flash"
KEY = "good-key"
FALCON = "Figure 1: Confidential: Project Falcon acquisition structure"
PICNIC = "Figure 1: Public: the summer picnic at the lake"


class DictCache:
    def __init__(self) -> None:
        self.entries: dict[tuple[str, str], CachedDescription] = {}

    def get(self, sha256, variant):
        return self.entries.get((sha256, variant))

    def put(self, sha256, variant, description):
        self.entries[(sha256, variant)] = description


def png(colour=(20, 120, 200), size=(320, 240)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return buffer.getvalue()


def request(store: BlobStore, data: bytes, document_id="doc-1", index=0, caption="", context="") -> PictureRequest:
    sha256 = store.put(data)
    return PictureRequest(document_id=document_id, picture_index=index, sha256=sha256, mime_type="image/png",
                          width=320, height=240, size_bytes=len(data), caption=caption, context=context,
                          location="page 1")


_open_providers: list = []


def gemini(server, key=KEY, model=MODEL, max_output_tokens=256):
    provider = GeminiProvider(GeminiClient(api_key=key, model=model, base_url=server.base_url, timeout_seconds=10,
                                           max_output_tokens=max_output_tokens), DEFAULT_PRICES)
    _open_providers.append(provider)
    return provider


def openai(server, key=KEY, model=MODEL):
    provider = OpenAIChatProvider(base_url=f"{server.base_url}/v1beta/openai", api_key=key, model=model,
                                  prices=DEFAULT_PRICES, timeout_seconds=10, max_output_tokens=256)
    _open_providers.append(provider)
    return provider


def service(provider, store, *, rpm=600.0, daily_budget_usd=None, on_unavailable="fail_over", cache=None):
    budget = WorkerBudget.build(
        ClusterBudget(requests_per_minute=rpm, tokens_per_minute=None, requests_per_day=None,
                      max_concurrent_per_consumer=5, daily_budget_usd=daily_budget_usd),
        total_partitions=6, log=InMemoryLedgerLog([]), worker="worker-a", group="test", pricing=provider.pricing)
    budget.gate.assign(range(6), 1)
    describer = PictureDescriber(provider, budget.gate, CircuitBreaker(failure_threshold=3, open_seconds=0.2),
                                 retry_deadline_seconds=20, on_unavailable=on_unavailable,
                                 fail_over_after_seconds=5)
    return DescriptionService(provider, describer, cache if cache is not None else DictCache(), store), budget


def run(scenario, config: GeminiServerConfig | None = None):
    async def main():
        async with running_gemini_server(config or GeminiServerConfig(api_keys=frozenset({KEY}))) as server:
            try:
                return await scenario(server)
            finally:
                while _open_providers:
                    await _open_providers.pop().close()

    return asyncio.run(main())


PROVIDERS = [pytest.param(gemini, id="gemini"), pytest.param(openai, id="openai")]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_picture_seen_before_comes_from_the_cache_at_no_cost(tmp_path, provider):
    async def scenario(server):
        store = BlobStore(tmp_path)
        lane, _ = service(provider(server), store)
        first = await lane.describe(request(store, png(), "doc-1"))
        second = await lane.describe(request(store, png(), "doc-2", index=3))
        return first, second, server.stats()

    first, second, stats = run(scenario)
    assert first.status == "described" and not first.cached
    assert first.input_tokens > 258 and first.output_tokens > 0 and first.cost_usd > 0
    assert first.model == MODEL and first.attempts == 1
    assert "320x240" in first.description  # the local server describes the picture it received
    assert (second.status, second.cached, second.index) == ("described", True, 3)
    assert second.description == first.description
    assert (second.input_tokens, second.output_tokens, second.cost_usd) == (0, 0, 0.0)
    assert stats["calls_ok"] == 1


@pytest.mark.parametrize("provider", PROVIDERS)
def test_no_caption_reaches_the_provider_or_another_documents_description(tmp_path, provider):
    async def scenario(server):
        store = BlobStore(tmp_path)
        lane, _ = service(provider(server), store)
        falcon = request(store, png(), "falcon", caption=FALCON, context="The board approved the acquisition.")
        picnic = request(store, png(), "picnic", caption=PICNIC, context="Bring sandwiches.")
        return await asyncio.gather(lane.describe(falcon), lane.describe(picnic)), server.stats()

    (falcon, picnic), stats = run(scenario)
    assert falcon.status == picnic.status == "described"
    for result in (falcon, picnic):
        # the local server echoes any caption it receives ('It matches the caption "..."'): none was sent
        assert "caption" not in result.description
        for text in ("Falcon", "picnic", "acquisition", "sandwiches"):
            assert text not in result.description
    assert falcon.description == picnic.description and stats["calls_ok"] == 1


def test_concurrent_requests_for_one_picture_share_one_call(tmp_path):
    async def scenario(server):
        server.control({"latency_ms": 300})
        store = BlobStore(tmp_path)
        lane, _ = service(gemini(server), store)
        results = await asyncio.gather(*(lane.describe(request(store, png(), f"doc-{n}", index=n))
                                         for n in range(3)))
        return results, server.stats(), lane.single_flight

    results, stats, flight = run(scenario)
    assert stats["calls_received"] == 1 and flight.joined == 2
    assert [r.status for r in results] == ["described"] * 3
    assert sorted(r.cached for r in results) == [False, True, True]
    assert len({r.description for r in results}) == 1
    assert sum(r.cost_usd for r in results) == next(r.cost_usd for r in results if not r.cached) > 0


def test_a_call_that_would_pass_the_daily_dollar_cap_does_not_go(tmp_path):
    async def scenario(server):
        store = BlobStore(tmp_path)
        # one call's most expensive outcome (256 output tokens at $2.50/M) is about $0.0007
        lane, budget = service(gemini(server), store, daily_budget_usd=0.0001)
        result = await lane.describe(request(store, png()))
        return result, server.stats(), budget.usd_per_day.used

    result, stats, spent = run(scenario)
    assert (result.status, result.reason) == ("failed", "daily_budget_exhausted")
    assert not result.cached and result.cost_usd == 0
    assert stats["calls_received"] == 0 and spent == 0


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_picture_the_api_rejects_fails_alone_and_is_not_cached(tmp_path, provider):
    async def scenario(server):
        server.control({"enqueue": [{"kind": "error", "code": 400, "status": "INVALID_ARGUMENT",
                                     "message": "Unable to process input image. Please retry or report."}]})
        store = BlobStore(tmp_path)
        cache = DictCache()
        lane, _ = service(provider(server), store, cache=cache)
        failed = await lane.describe(request(store, png(), "doc-1"))
        cached_after_failure = dict(cache.entries)
        again = await lane.describe(request(store, png(), "doc-2"))
        return failed, cached_after_failure, again

    failed, cached_after_failure, again = run(scenario)
    assert (failed.status, failed.reason, failed.cost_usd) == ("failed", "invalid_image", 0.0)
    assert cached_after_failure == {}
    assert again.status == "described" and not again.cached


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_429_is_retried_after_the_servers_delay(tmp_path, provider):
    async def scenario(server):
        server.control({"enqueue": [{"kind": "429", "retry_delay_s": 1, "quota": "rpm"}]})
        store = BlobStore(tmp_path)
        lane, _ = service(provider(server), store)
        started = asyncio.get_running_loop().time()
        result = await lane.describe(request(store, png()))
        return result, asyncio.get_running_loop().time() - started, server.stats()

    result, seconds, stats = run(scenario)
    assert result.status == "described" and result.attempts == 2
    assert stats["calls_429"] == 1 and seconds >= 1.0


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("key, model, reason", [("wrong-key", MODEL, "invalid_api_key"),
                                                 (KEY, "gemini-0-nonexistent", "model_not_found")])
def test_a_bad_key_or_model_fails_the_picture_with_the_reason(tmp_path, provider, key, model, reason):
    async def scenario(server):
        store = BlobStore(tmp_path)
        instance = provider(server, key=key, model=model)
        # a model the price table knows, as a worker requires; the server serves only MODEL
        instance.pricing = PriceTablePricing(
            load_price_table('{"gemini-0-nonexistent": {"input": 1, "output": 1}}'), model, 256, 0)
        lane, _ = service(instance, store)
        return await lane.describe(request(store, png()))

    result = run(scenario, GeminiServerConfig(api_keys=frozenset({KEY}), models=frozenset({MODEL})))
    assert (result.status, result.reason) == ("failed", reason)


def test_a_picture_missing_from_the_store_fails_without_a_call(tmp_path):
    async def scenario(server):
        store = BlobStore(tmp_path)
        lane, _ = service(gemini(server), store)
        missing = request(store, png()).derive(sha256="0" * 64)
        return await lane.describe(missing), server.stats()

    result, stats = run(scenario)
    assert (result.status, result.reason) == ("failed", "picture_missing_from_store")
    assert stats["calls_received"] == 0


def test_a_picture_waiting_for_the_budget_is_handed_back_when_a_rebalance_starts(tmp_path):
    async def scenario(server):
        store = BlobStore(tmp_path)
        lane, budget = service(gemini(server), store, rpm=6)  # one call per partition per minute
        await lane.describe(request(store, png()))
        budget.gate.assign({0}, 2)  # this worker now owns one partition: its one call is spent
        waiting = asyncio.ensure_future(lane.describe(request(store, png((1, 2, 3)), "doc-2")))
        await asyncio.sleep(0.3)
        assert not waiting.done()
        budget.gate.start_draining()
        return await asyncio.wait_for(waiting, 5), server.stats()

    result, stats = run(scenario)
    assert isinstance(result, HandBack) and stats["calls_ok"] == 1


def test_the_cache_variant_names_everything_that_shapes_the_answer():
    async def scenario(server):
        base = gemini(server)
        variants = {
            "base": cache_variant(base, "Describe."),
            "prompt": cache_variant(base, "Describe briefly."),
            "model": cache_variant(gemini(server, model="gemini-2.5-flash-lite"), "Describe."),
            "provider": cache_variant(openai(server), "Describe."),
            "output limit": cache_variant(gemini(server, max_output_tokens=128), "Describe."),
        }
        return variants, cache_variant(gemini(server), "Describe.")

    variants, again = run(scenario)
    assert len(set(variants.values())) == len(variants)
    assert again == variants["base"]
    assert variants["base"].startswith(f"gemini|{MODEL}|v2|")
