"""An OpenAI-compatible chat-completions server behind the provider port: vLLM, Ollama, LiteLLM, ...

Plain JSON over HTTP (aiohttp, already a dependency): ``POST {base_url}/chat/completions`` with a
system message and a user message of the prompt and the picture as a base64 ``data:`` URL. Errors are
classified by HTTP status (the bodies differ from server to server); a 429's wait comes from its
``Retry-After`` header, or from a google.rpc RetryInfo when the server is Gemini's compatibility
endpoint, which also tells a per-day quota apart.
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import aiohttp

from docsight.cost.prices import PriceTable, PriceTablePricing

from .prompt import SYSTEM_INSTRUCTION, TEMPERATURE
from .provider import PreparedPicture, VisionAnswer, estimate_prompt_tokens
from .retry_policy import Action, Verdict, error_reason, is_per_day_quota, parse_retry_delay

# OpenAI's finish reasons in Gemini's words (provider.BLOCKED_FINISH_REASONS)
FINISH_REASONS = {"stop": "STOP", "length": "MAX_TOKENS", "content_filter": "SAFETY"}
MAX_ERROR_TEXT = 500


class OpenAIHTTPError(Exception):
    """A non-2xx answer: its status, its JSON body (or text) and its Retry-After, when sent."""

    def __init__(self, status: int, body: Any, retry_after: float | None = None) -> None:
        super().__init__(f"HTTP {status}: {str(body)[:MAX_ERROR_TEXT]}")
        self.status = status
        self.body = body
        self.retry_after = retry_after


class OpenAIChatProvider:
    name = "openai"

    def __init__(self, *, base_url: str, api_key: str, model: str, prices: PriceTable,
                 timeout_seconds: float = 60.0, max_output_tokens: int = 512) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.timeout_seconds = timeout_seconds
        self.max_output_tokens = max_output_tokens
        self.pricing = PriceTablePricing(prices, model, max_output_tokens, 0)
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._session: aiohttp.ClientSession | None = None

    def answer_settings(self) -> str:
        return f"max_tokens={self.max_output_tokens};temperature={TEMPERATURE}"

    def estimate_input_tokens(self, picture: PreparedPicture, prompt: str) -> int:
        # Gemini's tile rule: each server counts pictures its own way; the budget reconciles with its usage
        return estimate_prompt_tokens(picture, prompt)

    def request_body(self, picture: PreparedPicture, prompt: str) -> dict[str, Any]:
        data_url = f"data:{picture.mime_type};base64,{base64.b64encode(picture.data).decode('ascii')}"
        return {
            "model": self.model,
            "messages": [
                {"role": "system", "content": SYSTEM_INSTRUCTION},
                {"role": "user", "content": [{"type": "text", "text": prompt},
                                             {"type": "image_url", "image_url": {"url": data_url}}]},
            ],
            "max_tokens": self.max_output_tokens,  # max_completion_tokens is newer; servers all read this one
            "temperature": TEMPERATURE,
        }

    async def describe(self, picture: PreparedPicture, prompt: str) -> VisionAnswer:
        if self._session is None:
            self._session = aiohttp.ClientSession()  # here: a session belongs to the running loop
        return await asyncio.wait_for(self._post(self.request_body(picture, prompt)), timeout=self.timeout_seconds)

    async def _post(self, body: dict[str, Any]) -> VisionAnswer:
        async with self._session.post(self.url, json=body, headers=self._headers) as response:
            text = await response.text()
            try:
                payload = json.loads(text) if text else None
            except ValueError:
                payload = text
            if response.status >= 300:
                raise OpenAIHTTPError(response.status, payload, _seconds(response.headers.get("Retry-After")))
        return parse_answer(payload)

    def classify(self, error: BaseException) -> Verdict:
        return classify(error)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def parse_answer(payload: Any) -> VisionAnswer:
    if not isinstance(payload, dict) or not isinstance(payload.get("choices"), list):
        raise OpenAIHTTPError(200, payload)  # not a chat completion: the server speaks something else
    choice = payload["choices"][0] if payload["choices"] else {}
    usage = payload.get("usage") or {}
    reasoning = (usage.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0
    finish = choice.get("finish_reason")
    return VisionAnswer(
        text=(choice.get("message") or {}).get("content"),
        finish_reason=FINISH_REASONS.get(finish, "OTHER") if finish else None,
        block_reason=None,
        input_tokens=usage.get("prompt_tokens") or 0,
        # OpenAI counts reasoning inside completion_tokens; Gemini (and the price table) apart
        output_tokens=max(0, (usage.get("completion_tokens") or 0) - reasoning),
        thinking_tokens=reasoning,
        model_version=payload.get("model"))


def classify(error: BaseException) -> Verdict:
    if isinstance(error, OpenAIHTTPError):
        code = error.status
        google = _google_error(error.body)  # Gemini's compatibility endpoint sends google.rpc details
        retry_after = error.retry_after if error.retry_after is not None else parse_retry_delay(google)
        if code == 429:
            if is_per_day_quota(google):
                return Verdict(Action.RETRY, "daily_quota_exhausted", retry_after, quota_exceeded=True,
                               daily_quota=True, answered=True)
            return Verdict(Action.RETRY, "rate_limited", retry_after, quota_exceeded=True, answered=True)
        if code == 408 or code >= 500:
            return Verdict(Action.RETRY, "server_error" if code >= 500 else "timeout", retry_after, answered=True)
        if code == 401 or error_reason(google) == "API_KEY_INVALID":  # Gemini says 400 API_KEY_INVALID
            return Verdict(Action.ALARM, "invalid_api_key", answered=True)
        if code == 403:
            return Verdict(Action.ALARM, "permission_denied", answered=True)
        if code == 404:
            return Verdict(Action.ALARM, "model_not_found", answered=True)
        if code in (400, 413, 422):
            reason = "invalid_image" if "image" in _message(error.body).lower() else "invalid_request"
            return Verdict(Action.FAIL_PICTURE, reason, answered=True)
        if code == 200:
            return Verdict(Action.FAIL_PICTURE, "unexpected_answer", answered=True)
        return Verdict(Action.FAIL_PICTURE, f"http_{code}", answered=True)
    if isinstance(error, (asyncio.TimeoutError, TimeoutError)):
        return Verdict(Action.RETRY, "timeout")
    if isinstance(error, (ConnectionError, OSError, aiohttp.ClientError)):
        return Verdict(Action.RETRY, "connection_error")
    return Verdict(Action.FAIL_PICTURE, f"unexpected_error: {type(error).__name__}")


def _google_error(body: Any) -> Any:
    return body[0] if isinstance(body, list) and body else body


def _message(body: Any) -> str:
    body = _google_error(body)
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            return str(error.get("message", ""))
        return str(body.get("message") or error or "")
    return str(body or "")


def _seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None  # an HTTP date: rare here, and backoff is a fine answer to it
