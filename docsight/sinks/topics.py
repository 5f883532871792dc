"""The output topics as a sink: document-enriched (inline, or whole by reference above the broker's
message limit) and document-failed. Each send is awaited until the broker acknowledged it."""

from __future__ import annotations

import logging

from docsight.storage import ContentStore
from docsight.streams.records import DocumentEnriched, DocumentFailed
from docsight.streams.topics import document_enriched, document_failed
from docsight.tables.outcome import for_the_broker

log = logging.getLogger(__name__)


class TopicSink:
    name = "topics"

    def __init__(self, store: ContentStore) -> None:
        self.store = store  # where an outcome too large for one record goes (outcome_ref)

    async def enriched(self, outcome: DocumentEnriched) -> None:
        record = for_the_broker(outcome, self.store)
        await (await document_enriched.send(key=outcome.document_id, value=record))
        if record.outcome_ref:
            log.info("document %s: outcome sent by reference (%s)", outcome.document_id, record.outcome_ref[:12])

    async def failed(self, failure: DocumentFailed) -> None:
        await (await document_failed.send(key=failure.document_id, value=failure))
