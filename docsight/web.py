"""Worker-level web views: health (readiness probes, tests) and, later, stats."""

from __future__ import annotations

from faust.web import Request, Response, View

from docsight.app import app


@app.page("/healthz")
async def health(web: View, request: Request) -> Response:
    assigned = app.consumer.assignment() if app.consumer else set()
    return web.json({"status": "ok", "assigned_partitions": len(assigned)})
