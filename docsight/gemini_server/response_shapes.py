"""JSON bodies of successful answers: generateContent, countTokens, OpenAI chat."""

from __future__ import annotations

import secrets
import time
from typing import Any

from .generation import Generation, PromptUsage

_SAFETY_CATEGORIES = (
    "HARM_CATEGORY_SEXUALLY_EXPLICIT",
    "HARM_CATEGORY_HATE_SPEECH",
    "HARM_CATEGORY_HARASSMENT",
    "HARM_CATEGORY_DANGEROUS_CONTENT",
)
_OPENAI_FINISH = {"STOP": "stop", "MAX_TOKENS": "length", "SAFETY": "content_filter"}


def _response_id() -> str:
    return secrets.token_urlsafe(16)[:22]  # the real ids are 22 URL-safe characters


def _safety_ratings(blocked_category: str | None = None) -> list[dict[str, Any]]:
    ratings = []
    for category in _SAFETY_CATEGORIES:
        rating: dict[str, Any] = {"category": category, "probability": "NEGLIGIBLE"}
        if category == blocked_category:
            rating = {"category": category, "probability": "HIGH", "blocked": True}
        ratings.append(rating)
    return ratings


def _usage(prompt: PromptUsage, output_tokens: int = 0, thoughts_tokens: int = 0) -> dict[str, Any]:
    usage: dict[str, Any] = {"promptTokenCount": prompt.total}
    if output_tokens:
        usage["candidatesTokenCount"] = output_tokens
    usage["totalTokenCount"] = prompt.total + output_tokens + thoughts_tokens
    usage["thoughtsTokenCount"] = thoughts_tokens
    usage["promptTokensDetails"] = prompt.details()
    return usage


def generate_content_body(model: str, generation: Generation) -> dict[str, Any]:
    return {
        "candidates": [
            {
                "content": {"parts": [{"text": generation.text}], "role": "model"},
                "finishReason": generation.finish_reason,
                "index": 0,
            }
        ],
        "usageMetadata": _usage(generation.prompt, generation.output_tokens, generation.thoughts_tokens),
        "modelVersion": model,
        "responseId": _response_id(),
    }


def prompt_blocked_body(model: str, prompt: PromptUsage, reason: str) -> dict[str, Any]:
    """Prompt refused: promptFeedback, no candidates."""
    feedback: dict[str, Any] = {"blockReason": reason}
    if reason == "SAFETY":
        feedback["safetyRatings"] = _safety_ratings("HARM_CATEGORY_DANGEROUS_CONTENT")
    return {
        "promptFeedback": feedback,
        "usageMetadata": _usage(prompt),
        "modelVersion": model,
        "responseId": _response_id(),
    }


def answer_blocked_body(model: str, generation: Generation, reason: str) -> dict[str, Any]:
    """Answer withheld: the candidate has a finishReason and no content."""
    candidate: dict[str, Any] = {"finishReason": reason, "index": 0}
    if reason == "SAFETY":
        candidate["safetyRatings"] = _safety_ratings("HARM_CATEGORY_DANGEROUS_CONTENT")
    return {
        "candidates": [candidate],
        "usageMetadata": _usage(generation.prompt, 0, generation.thoughts_tokens),
        "modelVersion": model,
        "responseId": _response_id(),
    }


def count_tokens_body(prompt: PromptUsage) -> dict[str, Any]:
    return {"totalTokens": prompt.total, "promptTokensDetails": prompt.details()}


def openai_chat_body(model: str, text: str | None, finish_reason: str, prompt_tokens: int,
                     output_tokens: int, thoughts_tokens: int) -> dict[str, Any]:
    completion = output_tokens + thoughts_tokens  # OpenAI counts reasoning as completion
    return {
        "choices": [
            {
                "finish_reason": _OPENAI_FINISH.get(finish_reason, "content_filter"),
                "index": 0,
                "message": {"content": text, "role": "assistant"},
            }
        ],
        "created": int(time.time()),
        "id": _response_id(),
        "model": model,
        "object": "chat.completion",
        "usage": {
            "completion_tokens": completion,
            "prompt_tokens": prompt_tokens,
            "total_tokens": prompt_tokens + completion,
            "completion_tokens_details": {"reasoning_tokens": thoughts_tokens},
        },
    }
