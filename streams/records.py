"""Event records of every topic docsight reads or writes (JSON on the wire).

External topics carry plain JSON (no Faust metadata) so that any producer or
consumer can speak them; the README documents each schema.
"""

from __future__ import annotations

from typing import List, Optional

import faust


class Event(faust.Record, serializer="json", include_metadata=False):
    """Base of every docsight event: plain JSON, unknown fields ignored."""


# --- document-received (input) ---------------------------------------------

class DocumentReceived(Event):
    document_id: str
    user_id: str
    location: str                      # path under the document root, or a file:// URI
    content_type: Optional[str] = None  # MIME type; inferred from the file when absent
    submitted_at: Optional[str] = None  # ISO 8601


# --- internal: valid submissions, keyed by document id --------------------------

class DocumentSubmission(Event):
    """A validated document-received event, repartitioned by document id.

    ``source`` (topic/partition/offset of the received event) tells a
    redelivery (same source: process again, idempotently) from a second
    submission of the same id (another source: a duplicate).
    """

    document_id: str
    user_id: str
    location: str
    content_type: Optional[str]
    submitted_at: Optional[str]
    source: str
    original: str                      # the received event as text, for document-failed


# --- internal: picture requests, keyed by the picture's SHA-256 --------------

class PictureRequest(Event):
    document_id: str
    picture_index: int
    sha256: str
    mime_type: str
    width: int
    height: int
    size_bytes: int
    caption: str = ""
    context: str = ""
    location: Optional[str] = None
    requested_at: float = 0.0


# --- internal: per-document updates for the aggregating table, keyed by document id

class PictureInfo(Event):
    index: int
    sha256: str
    width: int
    height: int
    location: Optional[str] = None
    caption: str = ""
    # what the picture is and where its description went when not exactly in its place (a URL, "EMF
    # picture", "in a table cell: ..."); sha256 is "" for a picture without bytes (listed skipped/failed)
    note: str = ""


class PictureResult(Event):
    index: int
    sha256: str
    status: str                        # described | failed | skipped
    description: str = ""
    reason: str = ""                   # why it failed or was skipped
    model: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    thinking_tokens: int = 0
    cost_usd: float = 0.0
    cached: bool = False               # described from the cache: no call, no cost
    attempts: int = 0
    latency_seconds: float = 0.0


class DocumentUpdate(Event):
    """One change to a document's aggregate; ``kind`` says which field is set.

    kinds: ``received`` (extraction started), ``manifest`` (extraction done:
    the pictures to expect), ``picture`` (one picture's outcome), ``failed``
    (the document failed before its aggregate: the aggregate emits document-failed).
    """

    kind: str
    document_id: str
    at: float
    user_id: str = ""
    location: str = ""
    format: str = ""
    markdown_ref: str = ""             # BlobStore digest of the JSON list of markdown segments
    pictures: List[PictureInfo] = []
    pictures_ref: str = ""             # BlobStore digest of the JSON list of PictureInfo (instead of pictures:
                                       # a manifest of thousands of pictures would pass the broker's limit)
    picture: Optional[PictureResult] = None
    stage: str = ""
    reason: str = ""
    message: str = ""
    original: str = ""                 # received and failed: the received event as text, for document-failed


# --- internal: runtime control ------------------------------------------------

class BudgetControl(Event):
    """A new cluster budget, set while the cluster runs (``docsight control budget``).

    A field left None keeps the value the workers were started with.
    """

    requests_per_minute: Optional[float] = None
    tokens_per_minute: Optional[float] = None
    requests_per_day: Optional[int] = None
    daily_budget_usd: Optional[float] = None
    set_at: float = 0.0


# --- outputs -----------------------------------------------------------------

class EnrichedPicture(Event):
    index: int
    sha256: str
    status: str
    description: str
    reason: str = ""
    location: Optional[str] = None
    caption: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    thinking_tokens: int = 0
    cost_usd: float = 0.0
    cached: bool = False
    note: str = ""                     # from the manifest's PictureInfo.note


class DocumentEnriched(Event):
    document_id: str
    user_id: str
    location: str
    format: str
    markdown: Optional[str]            # the markdown with each description at its picture; None when
                                       # larger than MAX_INLINE_MARKDOWN_BYTES (read it by markdown_ref)
    markdown_ref: str                  # BlobStore digest of the same markdown
    pictures: Optional[List[EnrichedPicture]]  # None when the outcome travels by outcome_ref
    input_tokens: int
    output_tokens: int
    thinking_tokens: int
    cost_usd: float
    received_at: float
    completed_at: float
    # BlobStore digest of the whole outcome (this record with markdown and pictures inline), set only when
    # that is over the broker's message limit; markdown and pictures are None then.
    outcome_ref: Optional[str] = None


class DocumentFailed(Event):
    document_id: Optional[str]         # None when the event could not be parsed at all
    stage: str                         # validation | extraction | aggregation
    reason: str                        # short code, e.g. not_found, corrupt, invalid_event
    message: str                       # a sentence for people
    original: str                      # the received event as text, untouched
    failed_at: float
