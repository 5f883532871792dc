"""The ``descriptions`` cache: one description per distinct picture and variant, cluster-wide.

Keyed by the picture's SHA-256, the key of the picture topic, and written from the describe
agent's handler task of that picture's request (its context carries the event), so an entry lands
on the partition its requests arrive on: the cache is co-partitioned with the picture topic and
identical pictures always meet the worker that holds their description. Each value maps a variant
(``docsight.vision.service.cache_variant``: provider, model, prompt version and a digest of
everything sent besides the picture) to a description, so a change of any of them describes the
picture again.
"""

from __future__ import annotations

from docsight.app import app, settings
from docsight.vision.service import CachedDescription

descriptions = app.Table(
    "descriptions",
    partitions=settings.picture_partitions,
    key_type=str,
    help="Description cache: picture sha256 -> {variant: {description, model}}.",
)


class TableDescriptionCache:
    """The ``DescriptionCache`` port over the table (read from any task, written from the request's)."""

    def get(self, sha256: str, variant: str) -> CachedDescription | None:
        entry = (descriptions.get(sha256) or {}).get(variant)
        return None if entry is None else CachedDescription(entry["description"], entry["model"])

    def put(self, sha256: str, variant: str, description: CachedDescription) -> None:
        # variants of other prompt versions go: prompt v1's descriptions may hold another document's text
        entry = {known: value for known, value in (descriptions.get(sha256) or {}).items()
                 if _prompt_version(known) == _prompt_version(variant)}
        entry[variant] = {"description": description.description, "model": description.model}
        descriptions[sha256] = entry


def _prompt_version(variant: str) -> str | None:
    parts = variant.split("|")
    return parts[2] if len(parts) == 4 else None  # prompt v1 wrote "model|v1"
