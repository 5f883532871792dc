"""``VISION_DAILY_BUDGET_USD``: stop calling Gemini once the day's spend reaches the cap.

Each worker holds the cap times its budget share (the same split as the
request budget), so the cluster's spend stays under the cap without a
coordinator. The day turns at midnight Pacific, like Gemini's daily quotas.
"""

from __future__ import annotations

from datetime import date
from typing import Callable

from docsight.vision.budget import pacific_day


class DailySpendCap:
    def __init__(self, budget_usd: float | None, day: Callable[[], date] = pacific_day) -> None:
        self.budget_usd = budget_usd
        self.share_fraction = 0.0
        self._day_of = day
        self._day = day()
        self.spent_usd = 0.0

    @property
    def allowance_usd(self) -> float | None:
        return None if self.budget_usd is None else self.budget_usd * self.share_fraction

    def _roll(self) -> None:
        today = self._day_of()
        if today != self._day:
            self._day, self.spent_usd = today, 0.0

    def exhausted(self) -> bool:
        self._roll()
        allowance = self.allowance_usd
        return allowance is not None and self.spent_usd >= allowance

    def spend(self, usd: float) -> None:
        self._roll()
        self.spent_usd += usd
