"""Describe one picture: prepare it, pass the cluster budget, call Gemini, retry, fail over.

Never raises for an API problem: every picture ends ``described`` or
``failed`` with a reason, so its document can complete.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass

from docsight import observability as metrics

from .budget import BudgetGate, DailyBudgetExhausted
from .circuit_breaker import BreakerState, CircuitBreaker
from .gemini_client import GeminiClient
from .image_tokens import text_tokens
from .prompt import SYSTEM_INSTRUCTION, build_prompt
from .retry_policy import Action, classify, retry_wait

log = logging.getLogger(__name__)

BLOCKED_FINISH_REASONS = {"SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "IMAGE_SAFETY", "RECITATION", "OTHER"}
FAIL_OVER, WAIT = "fail_over", "wait"


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


@dataclass(frozen=True)
class PreparedPicture:
    data: bytes
    mime_type: str
    estimated_image_tokens: int


class PictureDescriber:
    def __init__(self, client: GeminiClient, gate: BudgetGate, breaker: CircuitBreaker,
                 retry_deadline_seconds: float, on_unavailable: str = FAIL_OVER,
                 fail_over_after_seconds: float = 120.0, rng: random.Random | None = None) -> None:
        self.client = client
        self.gate = gate
        self.breaker = breaker
        self.retry_deadline_seconds = retry_deadline_seconds
        self.on_unavailable = on_unavailable
        self.fail_over_after_seconds = fail_over_after_seconds
        self._rng = rng or random.Random()

    async def describe(self, picture: PreparedPicture, caption: str = "", context: str = "",
                       location: str | None = None) -> Outcome:
        prompt = build_prompt(caption, context, location)
        estimated_tokens = picture.estimated_image_tokens + text_tokens(prompt) + text_tokens(SYSTEM_INSTRUCTION)
        started = time.monotonic()
        deadline = started + self.retry_deadline_seconds
        attempt = 0
        while True:
            unavailable = await self._wait_for_breaker(deadline)
            if unavailable:
                return self._outcome("failed", reason=unavailable, attempts=attempt, started=started)
            attempt += 1
            call_started = time.monotonic()
            try:
                async with self.gate.slot(estimated_tokens) as slot:
                    metrics.record_limiter_wait(time.monotonic() - call_started)
                    call_started = time.monotonic()
                    with metrics.api_call_in_flight():
                        answer = await self.client.describe(picture.data, picture.mime_type, prompt)
                    slot.reconcile(answer.input_tokens)
            except DailyBudgetExhausted:
                return self._outcome("failed", reason="daily_request_budget_exhausted", attempts=attempt,
                                     started=started)
            except Exception as error:  # noqa: BLE001 - classify decides; unknown errors fail the picture
                verdict = classify(error)
                metrics.observe_api_call(verdict.reason, time.monotonic() - call_started)
                self.breaker.record_verdict(verdict)
                metrics.set_circuit_state(self.breaker.state)
                if verdict.action is Action.ALARM:
                    metrics.set_api_key_invalid(True)
                    log.error("Gemini refused the API key or model (%s): no more calls until restart",
                              verdict.reason)
                    return self._outcome("failed", reason=verdict.reason, attempts=attempt, started=started)
                if verdict.action is not Action.RETRY:
                    return self._outcome("failed", reason=verdict.reason, attempts=attempt, started=started)
                if verdict.quota_exceeded and self.gate.on_rate_limited():
                    log.warning("429 inside the budget: someone else shares the quota; rate now %.1f/min",
                                self.gate.effective_requests_per_minute)
                    metrics.set_pacing(self.gate.share.fraction, self.gate.effective_requests_per_minute)
                wait = retry_wait(verdict, attempt, self._rng)
                if self.on_unavailable == FAIL_OVER and time.monotonic() + wait > deadline:
                    return self._outcome("failed", reason=f"retry_deadline_exceeded: {verdict.reason}",
                                         attempts=attempt, started=started)
                await asyncio.sleep(wait)
                continue
            self.breaker.record_success()
            if self.gate.on_success():
                metrics.set_pacing(self.gate.share.fraction, self.gate.effective_requests_per_minute)
            metrics.set_circuit_state(self.breaker.state)
            tokens = dict(input_tokens=answer.input_tokens, output_tokens=answer.output_tokens,
                          thinking_tokens=answer.thinking_tokens)
            if answer.block_reason:
                metrics.observe_api_call("blocked", time.monotonic() - call_started)
                return self._outcome("failed", reason=f"blocked: {answer.block_reason}", attempts=attempt,
                                     started=started, **tokens)
            if answer.finish_reason in BLOCKED_FINISH_REASONS or not answer.text:
                metrics.observe_api_call("no_description", time.monotonic() - call_started)
                return self._outcome("failed", reason=f"no_description: {answer.finish_reason or 'empty answer'}",
                                     attempts=attempt, started=started, **tokens)
            metrics.observe_api_call("ok", time.monotonic() - call_started)
            return self._outcome("described", description=answer.text.strip(), attempts=attempt,
                                 started=started, **tokens)

    async def _wait_for_breaker(self, deadline: float) -> str | None:
        """Wait while the breaker is open; the reason to give up, or None when a call may go."""
        while not self.breaker.allow():
            if self.breaker.state is BreakerState.ALARM:
                return f"api_unavailable: {self.breaker.alarm_reason}"
            if self.on_unavailable == FAIL_OVER and (
                    self.breaker.should_fail_over(None, self.fail_over_after_seconds)
                    or time.monotonic() >= deadline):
                return "api_unavailable"
            await asyncio.sleep(max(0.05, min(self.breaker.wait_time(), 1.0)))
        return None

    def _outcome(self, status: str, *, attempts: int, started: float, **fields) -> Outcome:
        return Outcome(status=status, attempts=attempts, latency_seconds=time.monotonic() - started,
                       model=self.client.model, **fields)
