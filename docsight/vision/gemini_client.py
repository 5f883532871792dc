"""A thin async client for Gemini's generateContent through the google-genai SDK.

The SDK's own retries are off (``attempts=1``): it never reads RetryInfo, and
docsight owns retries so that they respect the cluster's budget.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from google import genai
from google.genai import types

from .prompt import SYSTEM_INSTRUCTION


@dataclass(frozen=True)
class GeminiAnswer:
    text: str | None
    finish_reason: str | None
    block_reason: str | None          # set when the prompt itself was blocked
    input_tokens: int
    output_tokens: int
    thinking_tokens: int
    model_version: str | None


class GeminiClient:
    def __init__(self, api_key: str, model: str, base_url: str | None = None, timeout_seconds: float = 60.0,
                 max_output_tokens: int = 512, thinking_budget: int | None = 0,
                 media_resolution: str | None = None) -> None:
        http_options = types.HttpOptions(
            base_url=base_url, api_version="v1beta" if base_url else None,
            retry_options=types.HttpRetryOptions(attempts=1))
        self._client = genai.Client(api_key=api_key or None, http_options=http_options)
        self.model = model
        self.timeout_seconds = timeout_seconds
        self._config = types.GenerateContentConfig(
            system_instruction=SYSTEM_INSTRUCTION,
            max_output_tokens=max_output_tokens,
            temperature=0.2,
            thinking_config=types.ThinkingConfig(thinking_budget=thinking_budget)
            if thinking_budget is not None else None,
            media_resolution=f"MEDIA_RESOLUTION_{media_resolution}" if media_resolution else None,
        )

    async def describe(self, image: bytes, mime_type: str, prompt: str) -> GeminiAnswer:
        response = await asyncio.wait_for(
            self._client.aio.models.generate_content(
                model=self.model,
                contents=[types.Part.from_bytes(data=image, mime_type=mime_type), prompt],
                config=self._config),
            timeout=self.timeout_seconds)
        usage = response.usage_metadata
        candidate = response.candidates[0] if response.candidates else None
        feedback = response.prompt_feedback
        return GeminiAnswer(
            text=response.text,
            finish_reason=_enum_name(candidate.finish_reason) if candidate else None,
            block_reason=_enum_name(feedback.block_reason) if feedback and feedback.block_reason else None,
            input_tokens=(usage.prompt_token_count or 0) if usage else 0,
            output_tokens=(usage.candidates_token_count or 0) if usage else 0,
            thinking_tokens=(usage.thoughts_token_count or 0) if usage else 0,
            model_version=response.model_version,
        )

    async def close(self) -> None:
        await self._client.aio.aclose()


def _enum_name(value) -> str | None:
    if value is None:
        return None
    return getattr(value, "name", None) or str(value)
