"""Describe one picture: pace, call Gemini, retry what is transient, and report the outcome.

Never raises for an API problem: every picture ends as ``described`` or
``failed`` with a reason, so its document can complete.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass

from .gemini_client import GeminiClient
from .pacing import Pacer
from .prompt import build_prompt
from .retry_policy import Action, classify, retry_wait

log = logging.getLogger(__name__)

BLOCKED_FINISH_REASONS = {"SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "IMAGE_SAFETY", "RECITATION", "OTHER"}


@dataclass(frozen=True)
class Outcome:
    status: str                   # described | failed
    description: str = ""
    reason: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    thinking_tokens: int = 0
    attempts: int = 0
    latency_seconds: float = 0.0
    model: str = ""


class PictureDescriber:
    def __init__(self, client: GeminiClient, pacer: Pacer, retry_deadline_seconds: float,
                 rng: random.Random | None = None) -> None:
        self.client = client
        self.pacer = pacer
        self.retry_deadline_seconds = retry_deadline_seconds
        self._rng = rng or random.Random()

    async def describe(self, image: bytes, mime_type: str, caption: str = "", context: str = "",
                       location: str | None = None) -> Outcome:
        prompt = build_prompt(caption, context, location)
        started = time.monotonic()
        deadline = started + self.retry_deadline_seconds
        attempt = 0
        while True:
            attempt += 1
            try:
                async with self.pacer.slot():
                    answer = await self.client.describe(image, mime_type, prompt)
            except Exception as error:  # noqa: BLE001 - classify decides, unknown errors fail the picture
                verdict = classify(error)
                log.info("gemini call failed (attempt %d): %s", attempt, verdict.reason)
                if verdict.action is not Action.RETRY:
                    return self._outcome("failed", reason=verdict.reason, attempts=attempt, started=started)
                wait = retry_wait(verdict, attempt, self._rng)
                if time.monotonic() + wait > deadline:
                    return self._outcome("failed", reason=f"retry_deadline_exceeded: {verdict.reason}",
                                         attempts=attempt, started=started)
                await asyncio.sleep(wait)
                continue
            tokens = dict(input_tokens=answer.input_tokens, output_tokens=answer.output_tokens,
                          thinking_tokens=answer.thinking_tokens)
            if answer.block_reason:
                return self._outcome("failed", reason=f"blocked: {answer.block_reason}", attempts=attempt,
                                     started=started, **tokens)
            if answer.finish_reason in BLOCKED_FINISH_REASONS or not answer.text:
                return self._outcome("failed", reason=f"no_description: {answer.finish_reason or 'empty answer'}",
                                     attempts=attempt, started=started, **tokens)
            return self._outcome("described", description=answer.text.strip(), attempts=attempt,
                                 started=started, **tokens)

    def _outcome(self, status: str, *, attempts: int, started: float, **fields) -> Outcome:
        return Outcome(status=status, attempts=attempts, latency_seconds=time.monotonic() - started,
                       model=self.client.model, **fields)
