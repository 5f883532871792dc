"""The model's answer to a GenerateCall: text, finish reason and token usage.

Token counts follow the server's own rules (``tokens.py``), independent of the client's estimator.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from . import google_errors
from .describer import UndecodableImage, caption_from_prompt, describe_image, describe_text_only, image_facts
from .request_parsing import GenerateCall
from .tokens import picture_tokens, text_tokens, truncate_to_tokens


@dataclass(frozen=True)
class PromptUsage:
    text_tokens: int
    image_tokens: int

    @property
    def total(self) -> int:
        return self.text_tokens + self.image_tokens

    def details(self) -> list[dict]:
        details = [{"modality": "TEXT", "tokenCount": self.text_tokens}]
        if self.image_tokens:
            details.append({"modality": "IMAGE", "tokenCount": self.image_tokens})
        return details


@dataclass(frozen=True)
class Generation:
    text: str
    finish_reason: str  # STOP or MAX_TOKENS
    prompt: PromptUsage
    output_tokens: int
    thoughts_tokens: int


def count_prompt_tokens(call: GenerateCall) -> PromptUsage:
    """Tokens of the prompt; raises the real 400 for a picture that does not decode."""
    text = sum(text_tokens(t) for t in call.texts) + sum(text_tokens(t) for t in call.system_texts)
    pictures = 0
    for image in call.images:
        try:
            facts = image_facts(image.data)
        except UndecodableImage:
            raise google_errors.invalid_image() from None
        pictures += picture_tokens(facts.width, facts.height, image.media_resolution or call.media_resolution)
    return PromptUsage(text, pictures)


def _thoughts_tokens(call: GenerateCall, seed: str) -> int:
    """Small and deterministic; 0 when thinking is off."""
    budget = call.thinking_budget
    if budget == 0:
        return 0
    if budget is None and "lite" in call.model:
        return 0  # flash-lite does not think unless asked to
    dynamic = 40 + int(seed[:4], 16) % 160
    return min(dynamic, budget) if budget and budget > 0 else dynamic


def generate(call: GenerateCall, prompt_usage: PromptUsage) -> Generation:
    caption = caption_from_prompt(call.prompt)
    if call.images:
        descriptions = [describe_image(image.data, caption) for image in call.images]
        if len(descriptions) == 1:
            text = descriptions[0]
        else:
            text = " ".join(f"Image {i}: {d}" for i, d in enumerate(descriptions, 1))
    else:
        text = describe_text_only(call.prompt)
    seed = hashlib.sha256(text.encode()).hexdigest()
    finish_reason = "STOP"
    limit = call.max_output_tokens
    if limit and limit > 0 and text_tokens(text) > limit:
        text = truncate_to_tokens(text, limit)
        finish_reason = "MAX_TOKENS"
    return Generation(
        text=text,
        finish_reason=finish_reason,
        prompt=prompt_usage,
        output_tokens=text_tokens(text),
        thoughts_tokens=_thoughts_tokens(call, seed),
    )
