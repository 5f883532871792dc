"""Read-only web views over the tables, routed to the worker that owns the key.

The ``documents`` table is partitioned across the workers: each one holds
only its partitions' keys. ``/documents`` therefore asks every worker of the
group for its share (``?scope=local``) and merges the answers (see
:mod:`docsight.peers` for how the workers are found).
"""

from __future__ import annotations

from typing import Any

from faust.web import Request, Response, View

from docsight.app import app
from docsight.peers import gather_from_workers
from docsight.streams.topics import document_updates

from .document_state import DESCRIBING, ENRICHED, FAILED, RECEIVED, DocumentState
from .documents import documents, load_state

DOCUMENT_STATUSES = (RECEIVED, DESCRIBING, ENRICHED, FAILED)
DEFAULT_LIST_LIMIT = 50
MAX_LIST_LIMIT = 1000


@app.page("/documents/{document_id}")
# Routed by the document-updates topic, whose partitions the documents table
# follows: the table's own route would hash the JSON-encoded key and pick a
# partition the state is not on.
@app.topic_route(topic=document_updates, match_info="document_id")
async def document_status(web: View, request: Request, document_id: str) -> Response:
    state = load_state(document_id)
    if state is None:
        return web.json({"error": f"unknown document {document_id!r}"}, status=404)
    return web.json(state.summary())


@app.page("/documents")
async def document_list(web: View, request: Request) -> Response:
    """Documents of the whole cluster, most recently updated first.

    ``?status=describing`` (one or a comma list of received, describing, enriched, failed),
    ``?limit=N`` (default 50), ``?scope=local`` for this worker's partitions only.
    """
    try:
        statuses, limit = parse_list_query(request.query)
    except ValueError as error:
        return web.json({"error": str(error)}, status=400)
    if request.query.get("scope") == "local":
        return web.json(local_documents(statuses, limit))
    query = {"scope": "local", "limit": str(limit)}
    if statuses:
        query["status"] = ",".join(statuses)
    answers = await gather_from_workers("/documents", query, lambda: local_documents(statuses, limit))
    return web.json(merge_document_lists(answers, limit))


def parse_list_query(query) -> tuple[tuple[str, ...], int]:
    statuses = tuple(s for s in (part.strip() for part in query.get("status", "").split(",")) if s)
    unknown = [s for s in statuses if s not in DOCUMENT_STATUSES]
    if unknown:
        raise ValueError(f"unknown status {unknown[0]!r}; use one of {', '.join(DOCUMENT_STATUSES)}")
    try:
        limit = int(query.get("limit", DEFAULT_LIST_LIMIT))
    except ValueError:
        raise ValueError(f"limit must be a whole number, not {query.get('limit')!r}") from None
    if not 1 <= limit <= MAX_LIST_LIMIT:
        raise ValueError(f"limit must be between 1 and {MAX_LIST_LIMIT}")
    return statuses, limit


def local_documents(statuses: tuple[str, ...], limit: int) -> dict[str, Any]:
    """This worker's share: the documents of its active partitions (a scan, fine for a status page)."""
    counts = dict.fromkeys(DOCUMENT_STATUSES, 0)
    matching = []
    for _, data in documents.items():
        state = DocumentState.from_dict(data)
        counts[state.status] = counts.get(state.status, 0) + 1
        if not statuses or state.status in statuses:
            matching.append({**state.summary(), "location": state.location})
    matching.sort(key=_recency, reverse=True)
    return {"documents": matching[:limit], "matching": len(matching), "counts": counts}


def merge_document_lists(answers: list[dict[str, Any]], limit: int) -> dict[str, Any]:
    merged: list[dict] = []
    counts = dict.fromkeys(DOCUMENT_STATUSES, 0)
    matching = 0
    workers = []
    for answer in answers:
        body = answer.pop("body", None) or {}
        merged += body.get("documents", [])
        matching += body.get("matching", 0)
        for status, count in body.get("counts", {}).items():
            counts[status] = counts.get(status, 0) + count
        workers.append({**answer, "matching": body.get("matching")})
    merged.sort(key=_recency, reverse=True)
    return {"documents": merged[:limit], "matching": matching, "counts": counts, "workers": workers,
            "complete": all(worker["ok"] for worker in workers)}


def _recency(summary: dict) -> float:
    return summary.get("updated_at") or summary.get("received_at") or 0.0
