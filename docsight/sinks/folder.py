"""Outcomes as files in a folder (``DOCSIGHT_OUTPUT_DIR``), as ``docsight submit --output`` writes them.

An enriched document: ``NAME.md`` (the markdown with every description) and ``NAME.json`` (everything
else: every picture's position, caption, description, tokens and cost). A failed one:
``NAME.failed.json`` (the document-failed record). NAME is the document id, made safe for a file name.
Each file is written whole under a temporary name and renamed, so a reader never sees half a file,
and a re-emission writes the same bytes again.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import tempfile
from pathlib import Path

from docsight.storage import ContentStore
from docsight.streams.records import DocumentEnriched, DocumentFailed

MAX_NAME_CHARS = 200  # file names stop at 255 bytes; room for the suffixes and a digest
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def file_name(document_id: str | None) -> str:
    """The document id when it is a safe file name; else its safe characters and a digest of the id."""
    document_id = document_id or ""
    safe = _UNSAFE.sub("_", document_id)[:MAX_NAME_CHARS].lstrip(".")
    if safe and safe == document_id:
        return safe
    return f"{safe or 'document'}-{hashlib.sha256(document_id.encode()).hexdigest()[:12]}"


class FolderSink:
    name = "folder"

    def __init__(self, folder: Path, store: ContentStore | None = None) -> None:
        self.folder = Path(folder)
        self.store = store

    async def enriched(self, outcome: DocumentEnriched) -> None:
        await asyncio.to_thread(self._write_enriched, outcome)

    async def failed(self, failure: DocumentFailed) -> None:
        await asyncio.to_thread(self._write, f"{file_name(failure.document_id)}.failed.json",
                                _json(json.loads(failure.dumps())))

    def _write_enriched(self, outcome: DocumentEnriched) -> None:
        details = json.loads(outcome.dumps())
        markdown = details.pop("markdown")
        if markdown is None and self.store is not None and outcome.markdown_ref:
            markdown = self.store.get_text(outcome.markdown_ref)
        name = file_name(outcome.document_id)
        self._write(f"{name}.md", markdown or "")
        self._write(f"{name}.json", _json(details))

    def _write(self, name: str, text: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=self.folder, prefix=".", suffix=".part")
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as file:
                file.write(text)
            os.replace(temporary, self.folder / name)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


def _json(value) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"
