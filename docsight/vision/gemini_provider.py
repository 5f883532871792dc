"""Gemini behind the provider port: the google-genai SDK (``GeminiClient``), Gemini's errors, the price table."""

from __future__ import annotations

from docsight.cost.prices import PriceTable, PriceTablePricing

from .gemini_client import GeminiClient
from .provider import PreparedPicture, VisionAnswer, estimate_prompt_tokens
from .retry_policy import Verdict, classify


class GeminiProvider:
    name = "gemini"

    def __init__(self, client: GeminiClient, prices: PriceTable) -> None:
        self.client = client
        self.model = client.model
        self.pricing = PriceTablePricing(prices, client.model, client.max_output_tokens, client.thinking_budget)

    def answer_settings(self) -> str:
        return self.client.answer_settings

    def estimate_input_tokens(self, picture: PreparedPicture, prompt: str) -> int:
        return estimate_prompt_tokens(picture, prompt)

    async def describe(self, picture: PreparedPicture, prompt: str) -> VisionAnswer:
        return await self.client.describe(picture.data, picture.mime_type, prompt)

    def classify(self, error: BaseException) -> Verdict:
        return classify(error)

    async def close(self) -> None:
        await self.client.close()
