"""Describe one prepared picture: pass the cluster budget, call the provider, retry, fail over or wait.

Never raises for an API problem: every picture ends ``described`` or ``failed`` with a reason, so its
document can complete, or ``requeue`` when a rebalance took its partition while it waited (the agent
hands it back to the picture topic, where its new owner picks it up).

``VISION_ON_API_UNAVAILABLE`` decides what happens when no call can go:
- ``fail_over``: an outage fails the picture after ``fail_over_after_seconds``; an invalid key, an
  unknown model or a spent day (the ledger's or the API's per-day 429) fail it at once, with the reason;
- ``wait``: the picture waits, whatever the cause. A key or model problem waits for ``resume()``
  (``docsight control resume``) or a restart; a spent day waits for midnight Pacific, a higher budget
  (``docsight control budget``) or ``resume()``. While it waits, ``docsight_vision_blocked{reason}``
  is 1 and the reason is logged once.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass
from typing import Awaitable, Callable

from docsight import observability as metrics

from .budget import BudgetGate, BudgetRevoked, CallOverBudget, DailyBudgetExhausted, seconds_until_daily_reset
from .circuit_breaker import BreakerState, CircuitBreaker
from .provider import BLOCKED_FINISH_REASONS, PreparedPicture, VisionProvider
from .retry_policy import Action, Verdict, retry_wait

log = logging.getLogger(__name__)

FAIL_OVER, WAIT = "fail_over", "wait"
REQUEUE = "requeue"
_ALARM = "alarm"
DAILY_REASONS = ("daily_quota_exhausted", "daily_request_budget_exhausted", "daily_budget_exhausted")


@dataclass(frozen=True)
class Outcome:
    status: str                   # described | failed | requeue
    description: str = ""
    reason: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    thinking_tokens: int = 0
    attempts: int = 0
    latency_seconds: float = 0.0
    model: str = ""


class _CallFailed(Exception):
    """The provider's call raised; ``verdict`` is its classification (made once, inside the budget slot)."""

    def __init__(self, verdict: Verdict) -> None:
        super().__init__(verdict.reason)
        self.verdict = verdict


class PictureDescriber:
    def __init__(self, provider: VisionProvider, gate: BudgetGate, breaker: CircuitBreaker,
                 retry_deadline_seconds: float, on_unavailable: str = FAIL_OVER,
                 fail_over_after_seconds: float = 120.0, rng: random.Random | None = None, *,
                 on_daily_quota_exhausted: Callable[[], Awaitable[None]] | None = None,
                 on_resume: Callable[[], None] | None = None,
                 seconds_to_day_reset: Callable[[], float] = seconds_until_daily_reset) -> None:
        self.provider = provider
        self.gate = gate
        self.breaker = breaker
        self.retry_deadline_seconds = retry_deadline_seconds
        self.on_unavailable = on_unavailable
        self.fail_over_after_seconds = fail_over_after_seconds
        self._rng = rng or random.Random()
        self._on_daily_quota_exhausted = on_daily_quota_exhausted
        self._on_resume = on_resume
        self._seconds_to_day_reset = seconds_to_day_reset
        self._look_again = asyncio.Event()
        self.holds: dict[str, float] = {}   # reason -> since (time.time())

    # ---- held calls ----------------------------------------------------------

    def resume(self) -> None:
        """Someone fixed what held the calls (``docsight control resume``): try again now."""
        self.breaker.reset()
        metrics.set_api_key_invalid(False)
        metrics.set_circuit_state(self.breaker.state)
        if self._on_resume is not None:
            self._on_resume()
        for reason in list(self.holds):
            self._release(reason)
        self.look_again()

    def look_again(self) -> None:
        """Something changed (a budget, a resume): held pictures check whether they may go."""
        event, self._look_again = self._look_again, asyncio.Event()
        event.set()
        self.gate.wake()

    def _hold(self, reason: str) -> None:
        if reason not in self.holds:
            self.holds[reason] = time.time()
            metrics.set_vision_blocked(reason, True)
            how = ("waits for midnight Pacific, a higher budget (docsight control budget) or docsight control resume"
                   if reason in DAILY_REASONS else "waits for docsight control resume or a restart")
            log.error("picture description held: %s; VISION_ON_API_UNAVAILABLE=wait, so every picture %s",
                      reason, how)

    def _release(self, reason: str) -> None:
        if self.holds.pop(reason, None) is not None:
            metrics.set_vision_blocked(reason, False)
            log.warning("picture description no longer held: %s", reason)

    def _release_daily(self) -> None:
        for reason in DAILY_REASONS:
            if reason in self.holds:
                self._release(reason)

    async def _wait_until_fixed(self) -> None:
        """Wait for a resume or a restart (raises BudgetRevoked when a rebalance takes the picture)."""
        await self.gate.sleep_unless_revoked(float("inf"), self._look_again)

    async def _wait_for_the_day(self) -> None:
        """Wait for midnight Pacific, a budget change or a resume."""
        await self.gate.sleep_unless_revoked(self._seconds_to_day_reset() + 1.0, self._look_again)

    # ---- one picture ---------------------------------------------------------

    async def describe(self, picture: PreparedPicture, prompt: str) -> Outcome:
        started = time.monotonic()
        try:
            return await self._describe(picture, prompt, started)
        except BudgetRevoked:
            return Outcome(status=REQUEUE, reason="rebalance", latency_seconds=time.monotonic() - started,
                           model=self.provider.model)

    async def _describe(self, picture: PreparedPicture, prompt: str, started: float) -> Outcome:
        estimated_tokens = self.provider.estimate_input_tokens(picture, prompt)
        deadline = started + self.retry_deadline_seconds
        attempt = 0
        while True:
            if self.breaker.state is BreakerState.ALARM:
                reason = self.breaker.alarm_reason or "invalid_api_key"
                if self.on_unavailable == FAIL_OVER:
                    return self._outcome("failed", reason=f"api_unavailable: {reason}", attempts=attempt,
                                         started=started)
                self._hold(reason)
                await self._wait_until_fixed()
                continue
            unavailable = await self._wait_for_breaker(deadline)
            if unavailable == _ALARM:
                continue  # the top of the loop holds or fails it
            if unavailable:
                return self._outcome("failed", reason=unavailable, attempts=attempt, started=started)
            call_started = time.monotonic()
            try:
                async with self.gate.slot(estimated_tokens) as slot:
                    attempt += 1
                    self._release_daily()
                    metrics.record_limiter_wait(time.monotonic() - call_started)
                    call_started = time.monotonic()
                    try:
                        with metrics.api_call_in_flight():
                            answer = await self.provider.describe(picture, prompt)
                    except Exception as error:  # noqa: BLE001 - handled below, once the slot is given back
                        verdict = self.provider.classify(error)
                        if verdict.answered:
                            slot.refund_cost()  # the API answered with an error: nothing billed
                        raise _CallFailed(verdict) from error
                    slot.reconcile(answer.input_tokens, answer.output_tokens, answer.thinking_tokens)
            except BudgetRevoked:
                raise
            except DailyBudgetExhausted as spent:
                if self.on_unavailable == FAIL_OVER:
                    return self._outcome("failed", reason=spent.reason, attempts=attempt, started=started)
                self._hold(spent.reason)
                await self._wait_for_the_day()
                continue
            except CallOverBudget as too_big:
                log.warning("picture over the token budget: %s", too_big)
                return self._outcome("failed", reason="over_token_budget", attempts=attempt, started=started)
            except Exception as error:  # noqa: BLE001 - the provider classifies; unknown errors fail the picture
                verdict = error.verdict if isinstance(error, _CallFailed) else self.provider.classify(error)
                metrics.observe_api_call(verdict.reason, time.monotonic() - call_started)
                self.breaker.record_verdict(verdict)
                metrics.set_circuit_state(self.breaker.state)
                if verdict.action is Action.ALARM:
                    metrics.set_api_key_invalid(verdict.reason in ("invalid_api_key", "permission_denied"))
                    log.error("the vision API refused the API key or model (%s): no more calls until it is fixed "
                              "(docsight control resume) or the worker restarts", verdict.reason)
                    if self.on_unavailable == FAIL_OVER:
                        return self._outcome("failed", reason=verdict.reason, attempts=attempt, started=started)
                    continue  # the top of the loop holds it
                if verdict.action is not Action.RETRY:
                    return self._outcome("failed", reason=verdict.reason, attempts=attempt, started=started)
                if verdict.daily_quota:
                    # the project's day is spent, whatever RetryInfo says: no call until the day turns
                    await self._daily_quota_exhausted()
                    if self.on_unavailable == FAIL_OVER:
                        return self._outcome("failed", reason="daily_quota_exhausted", attempts=attempt,
                                             started=started)
                    continue  # the gate raises DailyBudgetExhausted from now on: held above
                if verdict.quota_exceeded and self.gate.on_rate_limited():
                    log.warning("429 inside the budget: someone else shares the quota; rate now %.1f/min",
                                self.gate.effective_requests_per_minute)
                    metrics.set_pacing(self.gate.share.fraction, self.gate.effective_requests_per_minute)
                wait = retry_wait(verdict, attempt, self._rng)
                if self.on_unavailable == FAIL_OVER and time.monotonic() + wait > deadline:
                    return self._outcome("failed", reason=f"retry_deadline_exceeded: {verdict.reason}",
                                         attempts=attempt, started=started)
                await self.gate.sleep_unless_revoked(wait)
                continue
            self.breaker.record_success()
            for reason in ("invalid_api_key", "permission_denied", "model_not_found"):
                self._release(reason)
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

    async def _daily_quota_exhausted(self) -> None:
        if self._on_daily_quota_exhausted is not None:
            try:
                await self._on_daily_quota_exhausted()
            except Exception:  # noqa: BLE001 - the ledger is unreachable: this worker still knows
                log.exception("could not record the per-day 429 in the budget ledger")

    async def _wait_for_breaker(self, deadline: float) -> str | None:
        """Wait while the breaker is open; the reason to give up, or None when a call may go."""
        while not self.breaker.allow():
            if self.breaker.state is BreakerState.ALARM:
                return _ALARM
            if self.on_unavailable == FAIL_OVER and (
                    self.breaker.should_fail_over(None, self.fail_over_after_seconds)
                    or time.monotonic() >= deadline):
                return "api_unavailable"
            await self.gate.sleep_unless_revoked(max(0.05, min(self.breaker.wait_time(), 1.0)))
        return None

    def _outcome(self, status: str, *, attempts: int, started: float, **fields) -> Outcome:
        return Outcome(status=status, attempts=attempts, latency_seconds=time.monotonic() - started,
                       model=self.provider.model, **fields)
