"""Read-only web views over the tables, routed to the worker that owns the key."""

from __future__ import annotations

from faust.web import Request, Response, View

from docsight.app import app

from .documents import documents, load_state


@app.page("/documents/{document_id}")
@app.table_route(table=documents, match_info="document_id")
async def document_status(web: View, request: Request, document_id: str) -> Response:
    state = load_state(document_id)
    if state is None:
        return web.json({"error": f"unknown document {document_id!r}"}, status=404)
    return web.json(state.summary())
