"""``VISION_DAILY_BUDGET_USD`` as the worker's web views and metrics see it.

The cap itself is the USD ``DayQuota`` of the budget ledger (``docsight.vision.day_ledger``): a call
goes only once its most expensive outcome (every output token used) fits what this worker reserved
in the ledger, and reservations of the whole cluster, restarts and dead workers included, never add
up past the cap. The day turns at midnight Pacific, like Gemini's daily quotas. This is a read-only
view of it; nothing here counts.
"""

from __future__ import annotations

from typing import Callable


class DailySpendCap:
    def __init__(self, quota, cluster_spent: Callable[[object], float] | None = None) -> None:
        self.quota = quota
        self._cluster_spent = cluster_spent

    @property
    def budget_usd(self) -> float | None:
        """The cap the cluster plans to spend at most today (the setting times the safety factor)."""
        return self.quota.limit

    @property
    def allowance_usd(self) -> float | None:
        return self.quota.limit

    @property
    def spent_usd(self) -> float:
        """This worker's spend today."""
        return self.quota.used

    @property
    def cluster_spent_usd(self) -> float:
        """Every worker's spend today, as last reported to the ledger."""
        return self._cluster_spent(self.quota) if self._cluster_spent else self.quota.used

    @property
    def reserved_usd(self) -> float:
        """Reserved by all workers today: the most the cluster can have spent."""
        return self.quota.cluster_reserved()

    def exhausted(self, next_call_usd: float = 0.0) -> bool:
        return self.quota.spent_out(next_call_usd)
