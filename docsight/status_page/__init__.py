"""The status page every worker serves at ``/`` and ``/status``, and the cluster-wide stats it reads.

The page is one self-contained HTML file (inline CSS and vanilla JS, no build
step) that polls JSON every 2 s: ``/documents`` (gathered from every worker
by :mod:`docsight.tables.views`) and ``/status/stats``, which asks every
worker of the group for its ``/stats`` and adds them up, since each worker
holds only its share of the budget. Both cover this worker's consumer group:
with ``DOCSIGHT_ROLE`` split, documents live on the ingest workers and the
budget on the vision workers, and the page says which part it cannot show.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from typing import Any

from faust.web import Request, Response, View

from docsight.app import app, settings
from docsight.peers import gather_from_workers

# the worst state wins the cluster's summary
BREAKER_SEVERITY = {"closed": 0, "half_open": 1, "open": 2, "alarm": 3}


@cache
def page_html() -> str:
    return files(__package__).joinpath("page.html").read_text(encoding="utf-8")


@app.page("/status")
async def status_page(web: View, request: Request) -> Response:
    return web.html(page_html())


@app.page("/")
async def index_page(web: View, request: Request) -> Response:
    return web.html(page_html())


@app.page("/status/stats")
async def cluster_stats(web: View, request: Request) -> Response:
    """Every worker's ``/stats`` and the cluster's totals; an unreachable worker is listed with its error."""
    answers = await gather_from_workers("/stats")
    workers = [{**{k: v for k, v in answer.items() if k != "body"}, "stats": answer["body"]} for answer in answers]
    with_budget = [w["stats"] for w in workers if w["ok"] and w["stats"].get("budget")]
    return web.json({"role": settings.role, "workers": workers, "cluster": cluster_totals(with_budget),
                     "complete": all(w["ok"] for w in workers)})


def cluster_totals(stats: list[dict[str, Any]]) -> dict[str, Any]:
    """Sums over the workers that call Gemini: each paces and spends its own share of one budget."""

    def total(values):
        values = [v for v in values if v is not None]
        return round(sum(values), 6) if values else None

    budgets = [s["budget"] for s in stats]
    breakers = [s["circuit_breaker"] for s in stats]
    return {
        "workers_reporting": len(stats),
        "model": stats[0]["model"] if stats else None,
        "planned_requests_per_minute": total(b["share_requests_per_minute"] for b in budgets),
        "effective_requests_per_minute": total(s["effective_requests_per_minute"] for s in stats),
        "planned_tokens_per_minute": total(b["share_tokens_per_minute"] for b in budgets),
        "effective_tokens_per_minute": total(b["effective_tokens_per_minute"] for b in budgets),
        "requests_per_day": total(b["share_requests_per_day"] for b in budgets),
        "day_calls": total(b["day_calls"] for b in budgets),
        "calls_admitted": total(b["calls_admitted"] for b in budgets),
        "tokens_admitted": total(b["tokens_admitted"] for b in budgets),
        "in_flight": total(s["in_flight"] for s in stats),
        "waiting": total(b["waiting"] for b in budgets),
        "circuit_breaker": max(breakers, key=lambda state: BREAKER_SEVERITY.get(state, 0)) if breakers else None,
        "daily_spend_usd": total(s["daily_spend_usd"] for s in stats),
        "daily_allowance_usd": total(s["daily_allowance_usd"] for s in stats),
        "description_cache_entries": total(s["description_cache_entries"] for s in stats),
    }
