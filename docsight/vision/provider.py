"""The port a vision model sits behind: what the description lane needs from any provider.

A provider describes one prepared picture with one prompt, estimates the input tokens of that call
before it goes (the budget charges the estimate, then reconciles with the answer's usage), prices a
call (the daily USD cap charges the most a call can cost, then what it cost), and classifies its own
errors into retry / fail the picture / alarm. Everything else (cache, single flight, budget, retries,
breaker, accounting) is the provider's caller's, the same for every provider.

Providers: ``gemini_provider.GeminiProvider`` (google-genai) and ``openai_provider.OpenAIChatProvider``
(any OpenAI-compatible chat-completions server: vLLM, Ollama, LiteLLM, Gemini's own compatibility
endpoint). ``providers.build_provider`` picks one from the settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from docsight.cost.tokens import text_tokens

from .budget import CallPricing
from .prompt import SYSTEM_INSTRUCTION
from .retry_policy import Verdict

# The finish reasons of an answer, in Gemini's words (a provider maps its own onto them):
# STOP (done), MAX_TOKENS (cut at the output limit); the others mean no usable description.
BLOCKED_FINISH_REASONS = frozenset(
    {"SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "IMAGE_SAFETY", "RECITATION", "OTHER"})


@dataclass(frozen=True)
class PreparedPicture:
    """A picture as it is sent: downscaled bytes, their type, and their input tokens by Gemini's tile rule."""

    data: bytes
    mime_type: str
    estimated_image_tokens: int


@dataclass(frozen=True)
class VisionAnswer:
    text: str | None
    finish_reason: str | None         # in Gemini's words, see BLOCKED_FINISH_REASONS
    block_reason: str | None          # set when the prompt itself was blocked
    input_tokens: int
    output_tokens: int
    thinking_tokens: int
    model_version: str | None = None


class VisionProvider(Protocol):
    name: str                         # "gemini", "openai": part of the description cache key
    model: str
    pricing: CallPricing              # what the daily USD cap charges, and what a result costs

    def answer_settings(self) -> str:
        """Everything besides the picture and the prompt that shapes the answer (output limit, thinking,
        resolution...), as text: part of the description cache key, so a change describes pictures again."""
        ...

    def estimate_input_tokens(self, picture: PreparedPicture, prompt: str) -> int: ...

    async def describe(self, picture: PreparedPicture, prompt: str) -> VisionAnswer:
        """One call, no retries (the caller retries inside the budget); raises what ``classify`` reads."""
        ...

    def classify(self, error: BaseException) -> Verdict: ...

    async def close(self) -> None: ...


def estimate_prompt_tokens(picture: PreparedPicture, prompt: str) -> int:
    """The picture's tile tokens plus the prompt's and the system instruction's text (about 4 characters a token)."""
    return picture.estimated_image_tokens + text_tokens(prompt) + text_tokens(SYSTEM_INSTRUCTION)
