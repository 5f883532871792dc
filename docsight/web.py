"""Worker-level web views: health, stats and Prometheus /metrics (no secrets in any of them)."""

from __future__ import annotations

from faust.web import Request, Response, View

from docsight.app import app, settings
from docsight.observability import instrument_app, refresh_consumer_lag

instrument_app(app)  # /metrics, with Faust's own sensor on the same registry


@app.timer(interval=15.0)
async def refresh_lag() -> None:
    await refresh_consumer_lag(app)


@app.page("/healthz")
async def health(web: View, request: Request) -> Response:
    assigned = app.consumer.assignment() if app.consumer else set()
    return web.json({"status": "ok", "assigned_partitions": len(assigned)})


@app.page("/stats")
async def stats(web: View, request: Request) -> Response:
    """This worker's budget share, effective rate, breaker, calls in flight and cache size."""
    if settings.role == "ingest":
        return web.json({"role": settings.role, "model": settings.vision_model, "budget": None})
    from docsight.agents.resources import daily_spend_cap, picture_describer, worker_budget
    from docsight.tables.descriptions import descriptions

    describer = picture_describer()
    cap = daily_spend_cap()
    return web.json({
        "role": settings.role,
        "model": settings.vision_model,
        "budget": worker_budget().stats(),  # windows, hold-offs, the day's requests and dollars (ledger)
        "effective_requests_per_minute": describer.gate.effective_requests_per_minute,
        "circuit_breaker": describer.breaker.state.value,
        "in_flight": describer.gate.in_flight,
        "description_cache_entries": sum(1 for _ in descriptions.keys()),
        "daily_spend_usd": round(cap.spent_usd, 6),
        "daily_allowance_usd": cap.allowance_usd,
    })
