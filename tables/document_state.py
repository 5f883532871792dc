"""The per-document aggregate: pure state transitions, bounded per document, O(1) per update.

A document's state lives in two places:

- its **header** (:class:`DocumentState`, one entry of the ``documents`` table): status, counters,
  tokens, cost, timestamps. A few hundred bytes, whatever the number of pictures;
- its **parts** (any mutable mapping here; the ``document_parts`` table in the worker): one entry per
  picture, ``{document_id}#{index}``, with the manifest's facts about it and its outcome, and the
  received event's text under ``{document_id}#original``.

A picture's outcome rewrites the header and that picture's entry only; the manifest writes each
picture's entry once; completion reads the N entries once to render. (The earlier single entry with
every picture's result was rewritten whole on every update: its cost grew with the square of the
pictures, and a state above ~1 MB crashed the worker on every restart.)

Updates arrive in any order and may be redelivered; applying one twice changes nothing. Each update
comes with its **position** (its offset in the document-updates partition, where all of a document's
updates are, in order). Header and parts are two tables, two changelogs: a crash can keep one write of an
update and lose the other. The positions tell a redelivery which half is missing: a picture entry records
the position that set its outcome, the header the last position it reflects.

Outcomes of pictures that arrive before the manifest (the topics are not ordered with each other) wait in
their entry, keyed by sha256, and are checked when the manifest comes: an outcome counts only when its
index and sha256 are those of the manifest (a late result of an older extraction is ignored).
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

MAX_DESCRIPTION_CHARS = 4000

RECEIVED, DESCRIBING, ENRICHED, FAILED = "received", "describing", "enriched", "failed"
FINAL_STATUSES = (ENRICHED, FAILED)

# why a picture outcome was not applied to its document
SHA256_MISMATCH = "sha256_mismatch"
UNKNOWN_INDEX = "unknown_index"
IGNORED_REASONS = (SHA256_MISMATCH, UNKNOWN_INDEX)

Parts = MutableMapping[str, Any]


def picture_key(document_id: str, index: int) -> str:
    """The parts key of one picture; unique across documents because the index is the last ``#`` field."""
    return f"{document_id}#{index}"


def original_key(document_id: str) -> str:
    return f"{document_id}#original"


@dataclass
class DocumentState:
    """A document's header: everything but the per-picture entries."""

    document_id: str
    user_id: str = ""
    location: str = ""
    format: str = ""
    status: str = RECEIVED
    markdown_ref: str = ""
    pictures_expected: int | None = None   # from the manifest; None until it arrives
    outcomes: int = 0                      # pictures whose outcome counts (index and sha256 match the manifest)
    described: int = 0
    failed: int = 0
    skipped: int = 0
    from_cache: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    thinking_tokens: int = 0
    cost_usd: float = 0.0
    emitted: bool = False
    failure: dict[str, str] | None = None
    received_at: float | None = None
    described_at: float | None = None    # manifest arrived: pictures sent for description
    completed_at: float | None = None
    updated_at: float | None = None
    manifest_position: int | None = None  # position of the manifest that counts (the first)
    applied_position: int = -1            # the last update position reflected in this header
    early_max_index: int = -1             # highest index of an outcome that came before the manifest

    # --- serialisation ---------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DocumentState":
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})

    # --- derived figures -----------------------------------------------------
    @property
    def manifest_known(self) -> bool:
        return self.pictures_expected is not None

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATUSES

    def tokens(self, kind: str) -> int:
        return getattr(self, f"{kind}_tokens")

    @property
    def complete(self) -> bool:
        return self.manifest_known and self.outcomes >= self.pictures_expected

    @property
    def ready_to_emit(self) -> bool:
        return self.complete and not self.emitted and not self.final

    def summary(self) -> dict[str, Any]:
        """What the web view shows: figures and timestamps, no descriptions."""
        return {
            "document_id": self.document_id,
            "user_id": self.user_id,
            "status": self.status,
            "format": self.format or None,
            "pictures": {
                "expected": self.pictures_expected,
                "described": self.described,
                "failed": self.failed,
                "skipped": self.skipped,
                "from_cache": self.from_cache,
            },
            "tokens": {kind: self.tokens(kind) for kind in ("input", "output", "thinking")},
            "cost_usd": round(self.cost_usd, 8),
            "failure": self.failure,
            "received_at": self.received_at,
            "described_at": self.described_at,
            "completed_at": self.completed_at,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True)
class IgnoredOutcome:
    """A picture outcome that does not belong to the document's manifest."""

    index: int
    sha256: str
    reason: str                          # sha256_mismatch | unknown_index


@dataclass
class Change:
    """What one update did. ``state`` is the header after it (the same object, changed in place)."""

    state: DocumentState
    changed: bool = False                # the header must be saved
    failure: dict[str, Any] | None = None  # the document failed with this update: emit document-failed
    ignored: list[IgnoredOutcome] = field(default_factory=list)


def apply_update(state: DocumentState | None, update, parts: Parts, position: int,
                 manifest_pictures: Callable[[], list[dict[str, Any]]] | None = None) -> Change:
    """Apply ``update`` (a DocumentUpdate at ``position``) to a document's header and parts.

    Parts are written here; the header is returned (``change.changed``: save it). A document that
    ended (enriched or failed) changes no more. ``manifest_pictures`` returns the manifest's pictures
    as dicts when they travel by reference (default: the update's inline ``pictures``).
    """
    state = state or DocumentState(document_id=update.document_id)
    change = Change(state)
    if state.final:
        return change  # a redelivery, or news of a document that already ended: nothing changes
    before = state.to_dict()
    if update.kind == "received":
        _apply_received(state, update, parts)
    elif update.kind == "manifest":
        _apply_manifest(state, update, parts, position, manifest_pictures or _inline_pictures(update), change)
    elif update.kind == "picture":
        _apply_picture(state, update, parts, position, change)
    elif update.kind == "failed":
        _apply_failed(state, update, parts, change)
    else:
        raise ValueError(f"unknown document update kind {update.kind!r}")
    if state.to_dict() != before:
        change.changed = True
        state.updated_at = update.at
        state.applied_position = max(state.applied_position, position)
    return change


def read_outcomes(state: DocumentState, parts: Parts) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """The manifest's pictures in reading order and their outcomes by index (str): what rendering takes.

    The one place that reads every entry, once, when the document is complete.
    """
    pictures, results = [], {}
    for index in range(state.pictures_expected or 0):
        entry = parts.get(picture_key(state.document_id, index))
        if not entry or entry.get("picture") is None or entry.get("outcome") is None:
            raise LookupError(f"document {state.document_id}: picture {index} has no outcome in its entry")
        pictures.append(entry["picture"])
        results[str(index)] = entry["outcome"]
    return pictures, results


def mark_emitted(state: DocumentState, completed_at: float, totals: dict[str, Any] | None = None) -> DocumentState:
    """document-enriched was acknowledged. ``totals`` (tokens, cost as emitted) keep the view equal to it."""
    state.emitted = True
    state.status = ENRICHED
    state.completed_at = completed_at
    state.updated_at = completed_at
    for name, value in (totals or {}).items():
        setattr(state, name, value)
    return state


def mark_failed(state: DocumentState, stage: str, reason: str, message: str, at: float) -> DocumentState:
    """The document failed outside an update's own transition (e.g. an error while aggregating)."""
    state.status = FAILED
    state.failure = {"stage": stage, "reason": reason, "message": message}
    state.completed_at = at
    state.updated_at = at
    return state


def original_text(document_id: str, parts: Parts) -> str:
    return (parts.get(original_key(document_id)) or {}).get("original", "")


# --- transitions -------------------------------------------------------------------------------

def _apply_received(state: DocumentState, update, parts: Parts) -> None:
    if state.received_at is None:
        state.received_at = update.at
    state.user_id = state.user_id or update.user_id
    state.location = state.location or update.location
    key = original_key(state.document_id)
    if update.original and key not in parts:
        parts[key] = {"original": update.original}


def _inline_pictures(update) -> Callable[[], list[dict[str, Any]]]:
    return lambda: [_picture_facts(picture) for picture in update.pictures]


def _picture_facts(picture) -> dict[str, Any]:
    """A manifest picture (PictureInfo, or its dict from the blob store) as the plain dict its entry keeps."""
    return dict(picture) if isinstance(picture, dict) else picture.asdict()


def _apply_manifest(state: DocumentState, update, parts: Parts, position: int,
                    manifest_pictures: Callable[[], list[dict[str, Any]]], change: Change) -> None:
    if state.manifest_known:
        if state.manifest_position == position:
            # the same manifest again (a redelivery after a crash): write the entries a crash may have lost
            _write_manifest_entries(state, manifest_pictures(), parts, position, change, count=False)
        return  # another manifest (a second extraction): the first stands
    pictures = [_picture_facts(picture) for picture in manifest_pictures()]
    if [picture["index"] for picture in pictures] != list(range(len(pictures))):
        raise ValueError(f"document {state.document_id}: manifest picture indexes are not 0..{len(pictures) - 1}")
    state.pictures_expected = len(pictures)
    state.manifest_position = position
    state.user_id = state.user_id or update.user_id
    state.location = state.location or update.location
    state.format = update.format
    state.markdown_ref = update.markdown_ref
    state.received_at = state.received_at or update.at
    state.described_at = update.at
    state.status = DESCRIBING
    _write_manifest_entries(state, pictures, parts, position, change, count=True)
    # outcomes that came early for an index the manifest does not have
    for index in range(len(pictures), state.early_max_index + 1):
        key = picture_key(state.document_id, index)
        entry = parts.get(key)
        if entry:
            change.ignored += [IgnoredOutcome(index, sha256, UNKNOWN_INDEX) for sha256 in entry.get("early", {})]
            del parts[key]


def _write_manifest_entries(state: DocumentState, pictures: list[dict[str, Any]], parts: Parts, position: int,
                            change: Change, count: bool) -> None:
    """One entry per picture, with the outcome that came early for its sha256 if there is one.

    ``count``: the header does not know this manifest yet, so it counts the outcomes found here.
    """
    for picture in pictures:
        picture = _picture_facts(picture)
        key = picture_key(state.document_id, picture["index"])
        entry = parts.get(key) or {}
        if entry.get("picture") is not None:
            # written by this manifest before a crash that lost the header's write
            if count and entry.get("outcome") is not None and entry.get("position") == position:
                _count(state, entry["outcome"])
            continue
        early = dict(entry.get("early") or {})
        outcome = early.pop(picture["sha256"], None)
        change.ignored += [IgnoredOutcome(picture["index"], sha256, SHA256_MISMATCH) for sha256 in early]
        parts[key] = {"picture": picture, "outcome": outcome, "position": position if outcome else None}
        if count and outcome is not None:
            _count(state, outcome)


def _apply_picture(state: DocumentState, update, parts: Parts, position: int, change: Change) -> None:
    result = update.picture
    if result is None:
        raise ValueError(f"document {state.document_id}: a picture update without its picture")
    key = picture_key(state.document_id, result.index)
    if not state.manifest_known:
        # early: kept by sha256 until the manifest says which one belongs to this index
        entry = parts.get(key) or {}
        early = dict(entry.get("early") or {})
        if result.sha256 not in early:  # else redelivered: the first outcome stands
            early[result.sha256] = _outcome(result)
            parts[key] = {**entry, "early": early}
        state.early_max_index = max(state.early_max_index, result.index)
        return
    if not 0 <= result.index < state.pictures_expected:
        change.ignored.append(IgnoredOutcome(result.index, result.sha256, UNKNOWN_INDEX))
        return
    entry = parts.get(key)
    if not entry or entry.get("picture") is None:
        # the manifest is processed (and its entries flushed) before any later update: a bug, not a race
        raise LookupError(f"document {state.document_id}: no manifest entry for picture {result.index}")
    if entry["picture"]["sha256"] != result.sha256:
        change.ignored.append(IgnoredOutcome(result.index, result.sha256, SHA256_MISMATCH))
        return
    if entry.get("outcome") is not None:
        if entry.get("position") == position and state.applied_position < position:
            _count(state, entry["outcome"])  # this update's entry was kept, its header write lost
        return  # redelivered or raced: the first outcome of a picture stands
    outcome = _outcome(result)
    parts[key] = {**entry, "outcome": outcome, "position": position}
    _count(state, outcome)


def _apply_failed(state: DocumentState, update, parts: Parts, change: Change) -> None:
    state.status = FAILED
    state.failure = {"stage": update.stage, "reason": update.reason, "message": update.message}
    state.user_id = state.user_id or update.user_id
    state.location = state.location or update.location
    state.completed_at = update.at
    change.failure = {**state.failure, "original": update.original or original_text(state.document_id, parts),
                      "failed_at": update.at}


def _outcome(result) -> dict[str, Any]:
    return {
        "status": result.status,
        "description": result.description[:MAX_DESCRIPTION_CHARS],
        "reason": result.reason,
        "model": result.model,
        "input_tokens": result.input_tokens,
        "output_tokens": result.output_tokens,
        "thinking_tokens": result.thinking_tokens,
        "cost_usd": result.cost_usd,
        "cached": result.cached,
        "attempts": result.attempts,
    }


def _count(state: DocumentState, outcome: dict[str, Any]) -> None:
    state.outcomes += 1
    if outcome["status"] in ("described", "failed", "skipped"):
        setattr(state, outcome["status"], getattr(state, outcome["status"]) + 1)
    state.from_cache += 1 if outcome.get("cached") else 0
    for kind in ("input", "output", "thinking"):
        setattr(state, f"{kind}_tokens", state.tokens(kind) + outcome.get(f"{kind}_tokens", 0))
    state.cost_usd += outcome.get("cost_usd", 0.0)
