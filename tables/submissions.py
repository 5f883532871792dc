"""The ``submissions`` table: which document-received event first brought each document id.

Written by the extract agent while it handles the repartitioned submission,
so it is co-partitioned with ``document-submissions``. It turns a second
submission of the same id into a clear ``duplicate_document_id`` failure
instead of a second, mixed-up processing.
"""

from __future__ import annotations

from docsight.app import app, settings

submissions = app.Table(
    "submissions",
    partitions=settings.document_partitions,
    key_type=str,
    help="document id -> source (topic/partition/offset) and time of its first submission.",
)


def is_duplicate(first: dict | None, source: str) -> bool:
    """A different source than the first one is a duplicate; the same source is a redelivery."""
    return first is not None and first["source"] != source
