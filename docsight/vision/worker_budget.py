"""The budget one worker holds: one object per quota, built in one place and handed around.

- requests per minute and input tokens per minute: ``gate`` (``BudgetGate``: windows, pace, hold-off);
- requests per day: ``requests_per_day``, dollars per day: ``usd_per_day`` (``DayQuota`` on the ledger);
- the lease that lets other workers know when this one may still be calling: ``lease``.

``agents/resources.py`` builds it with the Kafka ledger; the describe agent calls through ``gate``;
the control follower applies runtime changes with ``apply_override`` and ``resume``. No Kafka here:
the ledger log is handed in, so tests and the simulation build the same object on a list.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass, field, replace
from typing import Callable

from .adaptive_rate import AdaptiveRate
from .budget import BudgetGate, CallPricing, ClusterBudget, pacific_day
from .day_ledger import REQUESTS, USD, DayQuota, Lease, LedgerLog, ledger_hold_oracle

log = logging.getLogger(__name__)

# fewer reservations for a big daily quota, but a crash never strands more than this share of it
BLOCK_SHARE_OF_DAY = 1 / 50
LEASE_SECONDS = 10.0


BUDGET_FIELDS = ("requests_per_minute", "tokens_per_minute", "requests_per_day", "daily_budget_usd")


class ControlState:
    """What the budget-control messages read so far amount to: the budget override and the last resume."""

    def __init__(self) -> None:
        self.override: dict = {}
        self.resumed_at = 0.0

    def apply(self, message: dict) -> tuple[bool, bool]:
        """(budget changed, resume requested) after one message."""
        changed = False
        for name in BUDGET_FIELDS:
            if message.get(name) is not None and self.override.get(name) != message[name]:
                self.override[name] = message[name]
                changed = True
        resumed = False
        if message.get("resume"):
            at = float(message.get("set_at") or 0.0)
            if at > self.resumed_at:
                self.resumed_at = at
                resumed = True
        return changed, resumed


@dataclass
class WorkerBudget:
    base: ClusterBudget
    gate: BudgetGate
    requests_per_day: DayQuota
    usd_per_day: DayQuota
    lease: Lease
    log: LedgerLog
    worker: str
    override: dict = field(default_factory=dict)
    _background: set = field(default_factory=set, repr=False)

    @classmethod
    def build(cls, base: ClusterBudget, *, total_partitions: int, log: LedgerLog, worker: str, group: str,
              pricing: CallPricing, burst_size: int = 1, call_timeout_seconds: float = 60.0,
              lease_seconds: float = LEASE_SECONDS, clock: Callable[[], float] = time.monotonic,
              wall_clock: Callable[[], float] = time.time, day_of: Callable[[float], str] = pacific_day,
              sleep=asyncio.sleep) -> "WorkerBudget":
        holder: dict = {}

        def requests_block(amount: float) -> float:
            gate = holder.get("gate")
            per_window = gate.usable_share.requests_per_window if gate is not None else 1
            limit = holder["requests"].limit
            by_day = math.ceil(limit * BLOCK_SHARE_OF_DAY) if limit else per_window
            return float(max(1, min(math.ceil(per_window / 2), by_day)))

        def usd_block(amount: float) -> float:
            limit = holder["usd"].limit
            block = amount * requests_block(1)
            return min(block, limit * BLOCK_SHARE_OF_DAY) if limit else block

        requests = DayQuota(REQUESTS, base.planned_requests_per_day, log, worker, wall_clock=wall_clock,
                            day_of=day_of, block=requests_block)
        usd = DayQuota(USD, base.planned_usd_per_day, log, worker, wall_clock=wall_clock, day_of=day_of,
                       block=usd_block)
        holder.update(requests=requests, usd=usd)

        def spent() -> dict:
            return {"day": requests.day, REQUESTS: requests.used, USD: usd.used}

        lease = Lease(log, worker, group, lease_seconds, wall_clock=wall_clock, spent=spent)
        budget = cls(base=base, gate=None, requests_per_day=requests,  # type: ignore[arg-type] - set below
                     usd_per_day=usd, lease=lease, log=log, worker=worker)
        gate = BudgetGate(
            base, total_partitions, burst_size=burst_size, call_timeout_seconds=call_timeout_seconds,
            adaptive=AdaptiveRate(clock=clock), clock=clock, wall_clock=wall_clock, sleep=sleep,
            day_quotas=(requests, usd), lease=lease, pricing=pricing,
            hold_oracle=ledger_hold_oracle(log, worker, group, base.window_seconds, call_timeout_seconds),
            on_drained=budget._drained, on_assigned=budget._assigned)
        holder["gate"] = gate
        budget.gate = gate
        return budget

    # ---- runtime changes (the control follower) ------------------------------

    def apply_override(self, override: dict) -> ClusterBudget:
        """A budget set at runtime (``docsight control budget``) on top of the configured one."""
        self.override = dict(override)
        budget = replace(
            self.base,
            requests_per_minute=override.get("requests_per_minute", self.base.requests_per_minute),
            tokens_per_minute=override.get("tokens_per_minute", self.base.tokens_per_minute),
            requests_per_day=override.get("requests_per_day", self.base.requests_per_day),
            daily_budget_usd=override.get("daily_budget_usd", self.base.daily_budget_usd))
        self.gate.set_budget(budget)
        self.requests_per_day.limit = budget.planned_requests_per_day
        self.usd_per_day.limit = budget.planned_usd_per_day
        return budget

    def resume(self, at: float) -> None:
        """``docsight control resume`` sent at ``at``: per-day 429s recorded before it no longer hold calls."""
        for quota in (self.requests_per_day, self.usd_per_day):
            quota.resumed_at = max(quota.resumed_at, at)
        self.gate.wake()

    # ---- the ledger's side of a drain ------------------------------------------

    def _drained(self, report: dict) -> None:
        self._spawn(self.lease.drained(report), "publish the end of a drain")

    def _assigned(self, generation, owned, kept, held) -> None:
        self._spawn(self.lease.assigned(generation, owned, kept, held), "publish an assignment")

    def recheck_holds(self) -> None:
        self.gate.recheck_holds()

    def _spawn(self, coroutine, what: str) -> None:
        try:
            task = asyncio.ensure_future(coroutine)
        except RuntimeError:  # no loop (a stopped worker): nothing to tell anyone
            coroutine.close()
            return
        self._background.add(task)

        def done(finished: asyncio.Task) -> None:
            self._background.discard(finished)
            if not finished.cancelled() and finished.exception() is not None:
                log.warning("could not %s in the budget ledger: %s", what, finished.exception())

        task.add_done_callback(done)

    async def close(self, grace_seconds: float = 5.0) -> None:
        """A clean stop: no more calls, let those in flight end, give back the unspent reservations."""
        self.gate.start_draining()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_seconds
        while self.gate.in_flight and loop.time() < deadline:
            await asyncio.sleep(0.05)
        if self._background:
            await asyncio.wait(set(self._background), timeout=grace_seconds)
        if self.gate.in_flight:
            return  # calls still out: keep every reservation counted
        for quota in (self.requests_per_day, self.usd_per_day):
            await quota.release()

    # ---- figures -------------------------------------------------------------

    def cluster_spent(self, quota: DayQuota) -> float:
        """What every worker spent today (their last reports), with this worker's figure up to date."""
        day = quota.day
        others = self.log.ledger.spent(day)[quota.dimension]
        own = self.log.ledger.spent_by(self.worker, day).get(quota.dimension, 0.0)
        return others - own + quota.used

    def stats(self) -> dict:
        requests, usd = self.requests_per_day, self.usd_per_day
        return {
            **self.gate.stats(),
            "worker": self.worker,
            "day": requests.day,
            "day_calls": requests.used,
            "requests_per_day": requests.limit,
            # this worker's part of the day's quota, so that the status page's sum is the cluster's
            "share_requests_per_day": None if requests.limit is None else requests.limit * self.gate.share.fraction,
            "requests_reserved_today": requests.cluster_reserved(),
            "requests_spent_today_cluster": self.cluster_spent(requests),
            "daily_budget_usd": usd.limit,
            "usd_spent_today": round(usd.used, 6),
            "usd_reserved_today": round(usd.cluster_reserved(), 6),
            "usd_spent_today_cluster": round(self.cluster_spent(usd), 6),
            "override": self.override,
        }
