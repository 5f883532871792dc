"""The ``documents`` table: each document's aggregate, changelog-backed, in RocksDB.

Keyed by document id, co-partitioned with the document-updates topic that
feeds it (same key, same partition count), so its owner is the one worker
that consumes that document's updates.
"""

from __future__ import annotations

from docsight.app import app, settings

from .document_state import DocumentState

documents = app.Table(
    "documents",
    partitions=settings.document_partitions,
    key_type=str,
    help="Per-document aggregate: pictures expected and described, tokens, status.",
)


def load_state(document_id: str) -> DocumentState | None:
    data = documents.get(document_id)
    return DocumentState.from_dict(data) if data else None


def save_state(state: DocumentState) -> None:
    documents[state.document_id] = state.to_dict()
