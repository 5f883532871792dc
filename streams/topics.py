"""Every topic docsight uses, declared on the app.

document-received ─▶ [ingest] ─▶ document-submissions (key: document id) ─▶ [extract]
                                                                              │
    picture-requests (key: picture sha256) ◀─────────────────────────────────┤
          │                                                                    │
      [describe] ─▶ document-updates (key: document id) ◀─────────────────────┘
                                        │
                                    [aggregate] ─▶ document-enriched | document-failed
"""

from __future__ import annotations

from docsight.app import app, settings

from .records import BudgetControl, DocumentEnriched, DocumentFailed, DocumentSubmission, DocumentUpdate, PictureRequest

# Raw bytes: the ingest agent validates each event itself so that a malformed
# one becomes a document-failed event instead of a crashed stream.
document_received = app.topic(
    "document-received", partitions=settings.document_partitions,
    key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")

# Co-partitioned with document-updates (same key, same partitions), so a
# document's submissions and its aggregate live on the same worker.
document_submissions = app.topic(
    f"{settings.app_id}-document-submissions", partitions=settings.document_partitions,
    key_type=str, value_type=DocumentSubmission, internal=True)

picture_requests = app.topic(
    f"{settings.app_id}-picture-requests", partitions=settings.picture_partitions,
    key_type=str, value_type=PictureRequest, internal=True)

document_updates = app.topic(
    f"{settings.app_id}-document-updates", partitions=settings.document_partitions,
    key_type=str, value_type=DocumentUpdate, internal=True)

document_enriched = app.topic(
    "document-enriched", partitions=settings.document_partitions, key_type=str, value_type=DocumentEnriched)

document_failed = app.topic(
    "document-failed", partitions=settings.document_partitions, key_type=str, value_type=DocumentFailed)

# One partition: control messages are rare and must stay in order; every
# worker reads all of it (agents/control.py).
budget_control = app.topic(
    f"{settings.app_id}-budget-control", partitions=1, key_type=str, value_type=BudgetControl, internal=True)
