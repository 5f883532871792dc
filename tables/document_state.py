"""The per-document aggregate: pure state transitions, completeness and rendering.

A document's updates (received, manifest, one result per picture, failed)
arrive in any order and may be redelivered; applying one twice changes
nothing. The state is a small JSON-able dict in the table: markdown and
picture bytes stay in the blob store.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

MAX_DESCRIPTION_CHARS = 4000

RECEIVED, DESCRIBING, ENRICHED, FAILED = "received", "describing", "enriched", "failed"


@dataclass
class DocumentState:
    document_id: str
    user_id: str = ""
    location: str = ""
    format: str = ""
    status: str = RECEIVED
    markdown_ref: str = ""
    pictures: list[dict[str, Any]] = field(default_factory=list)   # from the manifest, in reading order
    results: dict[str, dict[str, Any]] = field(default_factory=dict)  # picture index (str) -> outcome
    manifest_known: bool = False
    emitted: bool = False
    failure: dict[str, str] | None = None
    received_at: float | None = None
    described_at: float | None = None    # manifest arrived: pictures sent for description
    completed_at: float | None = None
    updated_at: float | None = None

    # --- serialisation ---------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DocumentState":
        return cls(**data)

    # --- derived figures -----------------------------------------------------
    @property
    def pictures_expected(self) -> int | None:
        return len(self.pictures) if self.manifest_known else None

    def count(self, status: str) -> int:
        return sum(1 for result in self.results.values() if result["status"] == status)

    def tokens(self, kind: str) -> int:
        return sum(result.get(f"{kind}_tokens", 0) for result in self.results.values())

    @property
    def cost_usd(self) -> float:
        return round(sum(result.get("cost_usd", 0.0) for result in self.results.values()), 8)

    @property
    def complete(self) -> bool:
        return self.manifest_known and all(str(p["index"]) in self.results for p in self.pictures)

    @property
    def ready_to_emit(self) -> bool:
        return self.complete and not self.emitted and self.status != FAILED

    def summary(self) -> dict[str, Any]:
        """What the web view shows: figures and timestamps, no descriptions."""
        return {
            "document_id": self.document_id,
            "user_id": self.user_id,
            "status": self.status,
            "format": self.format or None,
            "pictures": {
                "expected": self.pictures_expected,
                "described": self.count("described"),
                "failed": self.count("failed"),
                "skipped": self.count("skipped"),
                "from_cache": sum(1 for result in self.results.values() if result.get("cached")),
            },
            "tokens": {kind: self.tokens(kind) for kind in ("input", "output", "thinking")},
            "cost_usd": self.cost_usd,
            "failure": self.failure,
            "received_at": self.received_at,
            "described_at": self.described_at,
            "completed_at": self.completed_at,
            "updated_at": self.updated_at,
        }


def apply_update(state: DocumentState | None, update) -> DocumentState | None:
    """The state after ``update`` (a DocumentUpdate), or None when it changes nothing."""
    state = state or DocumentState(document_id=update.document_id)
    before = state.to_dict()
    if update.kind == "received":
        _apply_received(state, update)
    elif update.kind == "manifest":
        _apply_manifest(state, update)
    elif update.kind == "picture":
        _apply_picture(state, update)
    elif update.kind == "failed":
        _apply_failed(state, update)
    else:
        raise ValueError(f"unknown document update kind {update.kind!r}")
    if state.to_dict() == before:
        return None
    state.updated_at = update.at
    return state


def mark_emitted(state: DocumentState, at: float) -> DocumentState:
    state.emitted = True
    state.status = ENRICHED
    state.completed_at = at
    state.updated_at = at
    return state


def _apply_received(state: DocumentState, update) -> None:
    if state.received_at is None and state.status not in (FAILED, ENRICHED):
        state.received_at = update.at
        state.user_id = state.user_id or update.user_id
        state.location = state.location or update.location


def _apply_manifest(state: DocumentState, update) -> None:
    if state.manifest_known or state.status == FAILED:
        return  # redelivered: the first manifest stands
    state.manifest_known = True
    state.user_id = state.user_id or update.user_id
    state.location = state.location or update.location
    state.format = update.format
    state.markdown_ref = update.markdown_ref
    state.pictures = [
        {"index": p.index, "sha256": p.sha256, "width": p.width, "height": p.height,
         "location": p.location, "caption": p.caption}
        for p in update.pictures
    ]
    state.received_at = state.received_at or update.at
    state.described_at = update.at
    state.status = DESCRIBING


def _apply_picture(state: DocumentState, update) -> None:
    result = update.picture
    key = str(result.index)
    if key in state.results or state.status == FAILED:
        return  # redelivered or raced: the first outcome of a picture stands
    state.results[key] = {
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
    if state.status == RECEIVED and state.manifest_known:
        state.status = DESCRIBING


def _apply_failed(state: DocumentState, update) -> None:
    if state.status in (FAILED, ENRICHED):
        return
    state.status = FAILED
    state.failure = {"stage": update.stage, "reason": update.reason, "message": update.message}
    state.user_id = state.user_id or update.user_id
    state.location = state.location or update.location
    state.completed_at = update.at
