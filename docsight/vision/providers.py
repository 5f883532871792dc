"""The vision provider the settings name (``VISION_PROVIDER``). A new provider: a module with a class
that meets ``provider.VisionProvider``, one branch here, and its settings in config/settings.py."""

from __future__ import annotations

from docsight.cost.prices import PriceTable

from .provider import VisionProvider


def build_provider(settings, prices: PriceTable) -> VisionProvider:
    if settings.vision_provider == "openai":
        from .openai_provider import OpenAIChatProvider

        return OpenAIChatProvider(
            base_url=settings.openai_base_url, api_key=settings.openai_api_key, model=settings.openai_model,
            prices=prices, timeout_seconds=settings.vision_request_timeout_seconds,
            max_output_tokens=settings.vision_max_output_tokens)
    from .gemini_client import GeminiClient
    from .gemini_provider import GeminiProvider

    client = GeminiClient(
        api_key=settings.gemini_api_key, model=settings.gemini_model, base_url=settings.gemini_base_url,
        timeout_seconds=settings.vision_request_timeout_seconds,
        max_output_tokens=settings.vision_max_output_tokens, thinking_budget=settings.vision_thinking_budget,
        media_resolution=settings.vision_media_resolution or None)
    return GeminiProvider(client, prices)
