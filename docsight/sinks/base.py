"""The ``Sink`` port, and ``Sinks``: the required sink first, then the others, best effort."""

from __future__ import annotations

import logging
from typing import Protocol, Sequence

from docsight.streams.records import DocumentEnriched, DocumentFailed

log = logging.getLogger(__name__)


class Sink(Protocol):
    name: str

    async def enriched(self, outcome: DocumentEnriched) -> None:
        """A complete document, markdown and pictures inline (a sink decides how it stores it)."""
        ...

    async def failed(self, failure: DocumentFailed) -> None: ...


class Sinks:
    """Sends an outcome to ``required`` (its error propagates: the document has not left), then to each of
    ``extra``: once the required sink has it the document has left, so an extra sink's error is logged
    and never turns the outcome into another one (a document-failed after a document-enriched)."""

    def __init__(self, required: Sink, extra: Sequence[Sink] = ()) -> None:
        self.required = required
        self.extra = tuple(extra)

    async def enriched(self, outcome: DocumentEnriched) -> None:
        await self.required.enriched(outcome)
        await self._extras("enriched", outcome)

    async def failed(self, failure: DocumentFailed) -> None:
        await self.required.failed(failure)
        await self._extras("failed", failure)

    async def _extras(self, kind: str, record) -> None:
        for sink in self.extra:
            try:
                await getattr(sink, kind)(record)
            except Exception:  # noqa: BLE001 - the outcome already left by the required sink
                what = "outcome" if kind == "enriched" else "failure"
                log.exception("sink %s could not take the %s of document %s", sink.name, what, record.document_id,
                              extra={"document_id": record.document_id, "stage": "sink"})
