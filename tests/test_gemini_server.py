"""The local Gemini-compatible server, driven through the real google-genai SDK."""

import asyncio
import base64
import io
import json
import random
import re
import urllib.error
import urllib.request

import aiohttp
import pytest
from google import genai
from google.genai import errors, types
from PIL import Image

from docsight.gemini_server import GeminiServerConfig, GeminiServerThread, build_arg_parser, running_gemini_server
from docsight.gemini_server.google_errors import INVALID_IMAGE_MESSAGE, OVERLOADED_MESSAGE
from docsight.gemini_server.server import config_from_args

MODEL = "gemini-2.5-flash"


def png(width=100, height=80, colour=(200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, "PNG")
    return buffer.getvalue()


def noise_png(seed: int, side: int = 64) -> bytes:
    pixels = random.Random(seed).randbytes(side * side * 3)
    buffer = io.BytesIO()
    Image.frombytes("RGB", (side, side), pixels).save(buffer, "PNG")
    return buffer.getvalue()


def sdk_client(base_url: str, api_key: str = "test-key") -> genai.Client:
    return genai.Client(
        api_key=api_key,
        http_options=types.HttpOptions(
            base_url=base_url, api_version="v1beta", retry_options=types.HttpRetryOptions(attempts=1)
        ),
    )


async def describe(client, image: bytes, prompt: str = "Describe this image", **config):
    return await client.aio.models.generate_content(
        model=MODEL,
        contents=[types.Part.from_bytes(data=image, mime_type="image/png"), prompt],
        config=types.GenerateContentConfig(**config) if config else None,
    )


def run(scenario, config: GeminiServerConfig | None = None):
    async def main():
        async with running_gemini_server(config) as server:
            return await scenario(server, sdk_client(server.base_url))

    return asyncio.run(main())


def server_text_tokens(text: str) -> int:
    """The server's text rule, restated: a token per started 4 letters of a word, per started 3 digits of a
    number, one per other non-space character."""
    count = 0
    for word, number, other in re.findall(r"([^\W\d_]+)|(\d+)|(\S)", text):
        count += -(-len(word) // 4) if word else -(-len(number) // 3) if number else 1
    return count


def test_png_is_described_with_usage_metadata():
    async def scenario(server, client):
        prompt = "Describe this image\nCaption: a red box"
        response = await describe(client, png(), prompt, system_instruction="Be brief.")
        usage = response.usage_metadata
        # Describe 2, this 1, image 2, Caption 2, ":" 1, a 1, red 1, box 1; Be 1, brief 2, "." 1
        text_tokens = 11 + 4
        assert response.candidates[0].finish_reason == types.FinishReason.STOP
        assert "100x80" in response.text and "red" in response.text and '"a red box"' in response.text
        assert usage.prompt_token_count == 258 + text_tokens
        details = {d.modality.value: d.token_count for d in usage.prompt_tokens_details}
        assert details == {"TEXT": text_tokens, "IMAGE": 258}
        assert usage.candidates_token_count == server_text_tokens(response.text)
        assert 0 < usage.thoughts_token_count < 300
        assert usage.total_token_count == (
            usage.prompt_token_count + usage.candidates_token_count + usage.thoughts_token_count
        )
        assert response.model_version == MODEL and response.response_id

    run(scenario)


def test_image_tokens_follow_the_tile_rule_and_media_resolution_caps():
    async def scenario(server, client):
        async def image_tokens(image, **config):
            response = await describe(client, image, "x", **config)
            return {d.modality.value: d.token_count for d in response.usage_metadata.prompt_tokens_details}["IMAGE"]

        assert await image_tokens(png(384, 384)) == 258
        assert await image_tokens(png(385, 100)) == 258  # one 768 tile
        assert await image_tokens(png(800, 600)) == 2 * 258
        assert await image_tokens(png(1600, 1600)) == 9 * 258
        assert await image_tokens(png(800, 600), media_resolution="MEDIA_RESOLUTION_MEDIUM") == 256
        assert await image_tokens(png(800, 600), media_resolution="MEDIA_RESOLUTION_LOW") == 64

    run(scenario)


def test_description_is_deterministic_per_image():
    async def scenario(server, client):
        first = (await describe(client, noise_png(1))).text
        again = (await describe(client, noise_png(1))).text
        other = (await describe(client, noise_png(2))).text
        blue = (await describe(client, png(colour=(30, 80, 200)))).text
        assert first == again
        assert len({first, other, blue}) == 3
        assert "photograph" in first and "blue" in blue and "single-colour" in blue

    run(scenario)


def test_thinking_budget_zero_means_no_thought_tokens():
    async def scenario(server, client):
        response = await describe(client, png(), thinking_config=types.ThinkingConfig(thinking_budget=0))
        assert response.usage_metadata.thoughts_token_count == 0

    run(scenario)


def test_max_tokens_truncates_the_answer():
    async def scenario(server, client):
        full = await describe(client, png())
        cut = await describe(client, png(), max_output_tokens=5)
        assert cut.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS
        count = cut.usage_metadata.candidates_token_count
        # cut at the last whole word or mark that fits: a word of up to 12 letters is at most 3 tokens
        assert 3 <= count <= 5 and count == server_text_tokens(cut.text)
        assert full.text.startswith(cut.text) and len(cut.text) < len(full.text)

    run(scenario)


def test_standard_and_url_safe_base64_both_decode():
    image = next(noise_png(seed) for seed in range(100) if set("+/") <= set(base64.b64encode(noise_png(seed)).decode()))
    standard = base64.b64encode(image).decode()
    url_safe = base64.urlsafe_b64encode(image).decode().rstrip("=")
    assert "-" in url_safe and "_" in url_safe

    async def scenario(server, client):
        texts = []
        async with aiohttp.ClientSession() as session:
            for data, style in ((standard, "camel"), (url_safe, "snake")):
                inline = {"mimeType": "image/png", "data": data} if style == "camel" else {"mime_type": "image/png", "data": data}
                key = "inlineData" if style == "camel" else "inline_data"
                body = {
                    "contents": [{"role": "user", "parts": [{key: inline}, {"text": "Describe"}]}],
                    ("generationConfig" if style == "camel" else "generation_config"): {
                        ("maxOutputTokens" if style == "camel" else "max_output_tokens"): 1000,
                        ("thinkingConfig" if style == "camel" else "thinking_config"): {"thinking_budget": 0},
                    },
                }
                url = f"{server.base_url}/v1beta/models/{MODEL}:generateContent?key=query-key"
                async with session.post(url, json=body) as response:
                    assert response.status == 200, await response.text()
                    answer = await response.json()
                    texts.append(answer["candidates"][0]["content"]["parts"][0]["text"])
                    assert answer["usageMetadata"]["thoughtsTokenCount"] == 0
        assert texts[0] == texts[1]
        sdk_text = (await describe(client, image, "Describe")).text  # the SDK sends URL-safe
        assert sdk_text == texts[0]

    run(scenario)


def test_bytes_that_are_not_an_image_get_the_real_400():
    async def scenario(server, client):
        with pytest.raises(errors.ClientError) as caught:
            await describe(client, b"definitely not a png")
        assert caught.value.code == 400 and caught.value.status == "INVALID_ARGUMENT"
        assert caught.value.message == INVALID_IMAGE_MESSAGE

    run(scenario)


def test_bad_api_key_is_api_key_invalid():
    async def scenario(server, client):
        with pytest.raises(errors.ClientError) as caught:
            await describe(sdk_client(server.base_url, "wrong-key"), png())
        error = caught.value
        assert error.code == 400 and error.status == "INVALID_ARGUMENT"
        assert error.message == "API key not valid. Please pass a valid API key."
        assert error.details["error"]["details"][0]["reason"] == "API_KEY_INVALID"
        assert (await describe(sdk_client(server.base_url, "good-key"), png())).text

    run(scenario, GeminiServerConfig(api_keys=frozenset({"good-key"})))


def test_quota_exceeded_is_429_with_retry_info():
    async def scenario(server, client):
        await describe(client, png())
        await describe(client, png())
        with pytest.raises(errors.ClientError) as caught:
            await describe(client, png())
        error = caught.value
        assert error.code == 429 and error.status == "RESOURCE_EXHAUSTED"
        details = {d["@type"].rsplit(".", 1)[1]: d for d in error.details["error"]["details"]}
        delay = int(re.fullmatch(r"(\d+)s", details["RetryInfo"]["retryDelay"]).group(1))
        assert 1 <= delay <= 60
        [violation] = details["QuotaFailure"]["violations"]
        assert violation == {
            "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
            "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
            "quotaDimensions": {"location": "global", "model": MODEL},
            "quotaValue": "2",
        }
        assert details["Help"]["links"][0]["url"].startswith("https://ai.google.dev/")
        stats = server.stats()
        assert stats["calls_ok"] == 2 and stats["calls_429"] == 1 and stats["busiest_60s"] == 2

    run(scenario, GeminiServerConfig(rpm=2))


def test_a_spent_day_is_429_naming_the_per_day_quota_with_a_short_retry_info():
    async def scenario(server, client):
        await describe(client, png())
        await describe(client, png())
        with pytest.raises(errors.ClientError) as caught:
            await describe(client, png())
        error = caught.value
        assert error.code == 429 and error.status == "RESOURCE_EXHAUSTED"
        details = {d["@type"].rsplit(".", 1)[1]: d for d in error.details["error"]["details"]}
        [violation] = details["QuotaFailure"]["violations"]
        assert violation["quotaId"] == "GenerateRequestsPerDayPerProjectPerModel-FreeTier"
        assert violation["quotaValue"] == "2"
        # like the real API: seconds, not the hours until the day's reset
        assert details["RetryInfo"]["retryDelay"] == "5s"

    run(scenario, GeminiServerConfig(rpd=2, window_seconds=5.0))


def test_short_window_frees_up_and_token_quota_applies():
    async def scenario(server, client):
        await describe(client, png(), "x")  # 259 tokens
        with pytest.raises(errors.ClientError) as caught:
            await describe(client, png(), "x")
        [violation] = caught.value.details["error"]["details"][0]["violations"]
        assert violation["quotaId"] == "GenerateContentInputTokensPerModelPerMinute-FreeTier"
        await asyncio.sleep(1.05)
        assert (await describe(client, png(), "x")).text

    run(scenario, GeminiServerConfig(tpm=300, window_seconds=1.0))


def test_fault_queue_gives_server_errors_then_recovers():
    async def scenario(server, client):
        async with aiohttp.ClientSession() as session:
            control = {"enqueue": [{"kind": "503"}, {"kind": "500"}, {"kind": "429", "retry_delay_s": 26}]}
            async with session.post(server.base_url + "/_control", json=control) as response:
                assert response.status == 200
                assert [item["kind"] for item in (await response.json())["queue"]] == ["503", "500", "429"]
        with pytest.raises(errors.ServerError) as caught:
            await describe(client, png())
        assert caught.value.code == 503 and caught.value.status == "UNAVAILABLE"
        assert caught.value.message == OVERLOADED_MESSAGE
        with pytest.raises(errors.ServerError) as caught:
            await describe(client, png())
        assert caught.value.code == 500 and caught.value.status == "INTERNAL"
        with pytest.raises(errors.ClientError) as caught:
            await describe(client, png())
        assert caught.value.details["error"]["details"][2]["retryDelay"] == "26s"
        assert (await describe(client, png())).text
        server.control({"down": True})
        with pytest.raises(errors.ServerError):
            await describe(client, png())
        server.control({"down": False, "error_rate_500": 1.0})
        with pytest.raises(errors.ServerError):
            await describe(client, png())
        stats = server.stats()
        assert stats["errors_by_code"] == {"500": 2, "503": 2} and stats["calls_429"] == 1 and stats["calls_ok"] == 1

    run(scenario)


def test_close_and_hang_faults():
    async def scenario(server, client):
        server.control({"enqueue": [{"kind": "close"}, {"kind": "hang", "seconds": 0.3}]})
        with pytest.raises(aiohttp.ClientConnectionError):
            await describe(client, png())
        started = asyncio.get_running_loop().time()
        assert (await describe(client, png())).text  # a hang ends in a normal answer
        assert asyncio.get_running_loop().time() - started >= 0.3
        assert server.stats()["connections_closed"] == 1

    run(scenario)


def test_safety_blocks():
    async def scenario(server, client):
        server.control({"enqueue": [{"kind": "block_prompt"}, {"kind": "block_answer", "count": 1}]})
        blocked_prompt = await describe(client, png())
        assert blocked_prompt.text is None and not blocked_prompt.candidates
        assert blocked_prompt.prompt_feedback.block_reason == types.BlockedReason.SAFETY
        blocked_answer = await describe(client, png())
        assert blocked_answer.text is None
        assert blocked_answer.candidates[0].finish_reason == types.FinishReason.SAFETY
        assert (await describe(client, png())).text
        assert server.stats()["blocked"] == 2

    run(scenario)


def test_latency_is_applied():
    async def scenario(server, client):
        started = asyncio.get_running_loop().time()
        await describe(client, png())
        assert asyncio.get_running_loop().time() - started >= 0.15

    run(scenario, GeminiServerConfig(latency_ms=150))


def test_openai_compatible_endpoint():
    data_url = "data:image/png;base64," + base64.b64encode(png(800, 600)).decode()
    body = {
        "model": MODEL,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Describe"},
                                         {"type": "image_url", "image_url": {"url": data_url}}]},
        ],
    }

    async def scenario(server, client):
        url = server.base_url + "/v1beta/openai/chat/completions"
        async with aiohttp.ClientSession(headers={"Authorization": "Bearer test-key"}) as session:
            async with session.post(url, json=body) as response:
                assert response.status == 200
                answer = await response.json()
            async with session.post(url, json=body) as response:
                assert response.status == 429
                [error] = await response.json()
                assert error["error"]["status"] == "RESOURCE_EXHAUSTED"
        assert "800x600" in answer["choices"][0]["message"]["content"]
        assert answer["choices"][0]["finish_reason"] == "stop"
        usage = answer["usage"]
        assert usage["prompt_tokens"] == 2 * 258 + 2 + 4  # "Describe" 2; "Be brief." 1 + 2 + 1
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]

    run(scenario, GeminiServerConfig(rpm=1))


def test_background_thread_server_with_control_and_stats_over_http():
    with GeminiServerThread(GeminiServerConfig(rpm=5)) as thread:
        assert thread.base_url.startswith("http://127.0.0.1:")
        thread.control({"enqueue": [{"kind": "503"}]})

        async def call():
            with pytest.raises(errors.ServerError):
                await describe(sdk_client(thread.base_url), png())
            return (await describe(sdk_client(thread.base_url), png())).text

        assert asyncio.run(call())
        with urllib.request.urlopen(thread.base_url + "/_stats") as response:
            stats = json.load(response)
        assert stats["calls_received"] == 2 and stats["calls_ok"] == 1 and stats["errors_by_code"] == {"503": 1}
        request = urllib.request.Request(thread.base_url + "/_stats/reset", data=b"", method="POST")
        with urllib.request.urlopen(request) as response:
            assert json.load(response)["calls_received"] == 0
        bad = urllib.request.Request(thread.base_url + "/_control", data=b'{"bogus": 1}', method="POST")
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(bad)
        assert caught.value.code == 400
    assert thread.stats()["calls_received"] == 0  # readable after stop, as the demo does


def test_command_line_builds_the_config():
    args = build_arg_parser().parse_args(
        ["--port", "0", "--rpm", "10", "--tpm", "250000", "--rpd", "250", "--window-seconds", "5",
         "--latency-ms", "20", "--api-key", "a", "--api-key", "b"]
    )
    config = config_from_args(args)
    assert config.host == "127.0.0.1" and config.port == 0
    assert (config.rpm, config.tpm, config.rpd, config.window_seconds) == (10, 250000, 250, 5.0)
    assert config.api_keys == frozenset({"a", "b"}) and config.latency_ms == 20


def test_raw_http_key_handling_and_count_tokens():
    async def scenario(server, client):
        url = f"{server.base_url}/v1beta/models/{MODEL}"
        body = {"contents": [{"parts": [{"text": "hello"}]}]}
        async with aiohttp.ClientSession() as session:
            async with session.post(url + ":generateContent", json=body) as response:
                assert response.status == 403  # the real API: no key at all is PERMISSION_DENIED
                assert (await response.json())["error"]["status"] == "PERMISSION_DENIED"
            async with session.post(url + ":generateContent?key=good-key", json=body) as response:
                assert response.status == 200
            async with session.post(url + ":generateContent?key=bad", json=body) as response:
                assert response.status == 400
        counted = await sdk_client(server.base_url, "good-key").aio.models.count_tokens(
            model=MODEL, contents=[types.Part.from_bytes(data=png(1000, 1000), mime_type="image/png"), "hi"]
        )
        assert counted.total_tokens == 4 * 258 + 1

    run(scenario, GeminiServerConfig(api_keys=frozenset({"good-key"})))
