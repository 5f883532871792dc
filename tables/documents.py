"""The ``documents`` and ``document_parts`` tables: each document's aggregate, changelog-backed, in RocksDB.

``documents`` holds each document's small header (status, counters, timestamps), keyed by document id;
``document_parts`` one entry per picture (``{document_id}#{index}``) and the received event's text
(``{document_id}#original``); see :mod:`docsight.tables.document_state`.

Both are written only by the aggregate agent while it handles the document's update, and Faust writes
a table's changelog to the partition of the current event: both are co-partitioned with the
document-updates topic that feeds them (same partition count), so their owner is the one worker that
consumes that document's updates, whatever the parts' keys hash to.
"""

from __future__ import annotations

from docsight.app import app, settings

from .document_state import DocumentState

documents = app.Table(
    "documents",
    partitions=settings.document_partitions,
    key_type=str,
    help="Per-document header: status, pictures expected and counted, tokens, cost, timestamps.",
)

document_parts = app.Table(
    "document_parts",
    partitions=settings.document_partitions,
    key_type=str,
    help="Per-picture entries of each document (manifest facts and outcome), and its received event.",
)


def load_state(document_id: str) -> DocumentState | None:
    data = documents.get(document_id)
    return DocumentState.from_dict(data) if data else None


def save_state(state: DocumentState) -> None:
    documents[state.document_id] = state.to_dict()
