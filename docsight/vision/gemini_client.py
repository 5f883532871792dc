"""A thin async client for Gemini's generateContent through the google-genai SDK.

The SDK's own retries are off (``attempts=1``): it never reads RetryInfo, and
docsight owns retries so that they respect the cluster's budget.
"""

from __future__ import annotations

import asyncio

from google import genai
from google.genai import types

from .prompt import SYSTEM_INSTRUCTION, TEMPERATURE
from .provider import VisionAnswer


class GeminiClient:
    def __init__(self, api_key: str, model: str, base_url: str | None = None, timeout_seconds: float = 60.0,
                 max_output_tokens: int = 512, thinking_budget: int | None = 0,
                 media_resolution: str | None = None) -> None:
        http_options = types.HttpOptions(
            base_url=base_url, api_version="v1beta" if base_url else None,
            retry_options=types.HttpRetryOptions(attempts=1))
        self._api_key = api_key or None
        self._http_options = http_options
        self._client: genai.Client | None = None
        self.model = model
        self.timeout_seconds = timeout_seconds
        self.max_output_tokens = max_output_tokens
        self.thinking_budget = thinking_budget
        # what shapes the answer besides picture and prompt: part of the description cache key
        self.answer_settings = (f"max_output_tokens={max_output_tokens};thinking_budget={thinking_budget};"
                                f"media_resolution={media_resolution or ''};temperature={TEMPERATURE}")
        self._config = types.GenerateContentConfig(
            system_instruction=SYSTEM_INSTRUCTION,
            max_output_tokens=max_output_tokens,
            temperature=TEMPERATURE,
            thinking_config=types.ThinkingConfig(thinking_budget=thinking_budget)
            if thinking_budget is not None else None,
            media_resolution=f"MEDIA_RESOLUTION_{media_resolution}" if media_resolution else None,
        )

    @property
    def sdk(self) -> genai.Client:
        """The SDK's client, made at the first call: a worker without a key starts, and fails its calls."""
        if self._client is None:
            self._client = genai.Client(api_key=self._api_key, http_options=self._http_options)
        return self._client

    async def describe(self, image: bytes, mime_type: str, prompt: str) -> VisionAnswer:
        response = await asyncio.wait_for(
            self.sdk.aio.models.generate_content(
                model=self.model,
                contents=[types.Part.from_bytes(data=image, mime_type=mime_type), prompt],
                config=self._config),
            timeout=self.timeout_seconds)
        usage = response.usage_metadata
        candidate = response.candidates[0] if response.candidates else None
        feedback = response.prompt_feedback
        return VisionAnswer(
            text=response.text,
            finish_reason=_enum_name(candidate.finish_reason) if candidate else None,
            block_reason=_enum_name(feedback.block_reason) if feedback and feedback.block_reason else None,
            input_tokens=(usage.prompt_token_count or 0) if usage else 0,
            output_tokens=(usage.candidates_token_count or 0) if usage else 0,
            thinking_tokens=(usage.thoughts_token_count or 0) if usage else 0,
            model_version=response.model_version,
        )

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aio.aclose()


def _enum_name(value) -> str | None:
    if value is None:
        return None
    return getattr(value, "name", None) or str(value)
