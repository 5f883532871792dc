"""The ``descriptions`` cache: one description per distinct picture, cluster-wide.

Keyed by the picture's SHA-256, the key of the picture topic, and written
while that picture's request is the current event (batch mode sets it per
task), so an entry lands on the partition its requests arrive on: the cache
is co-partitioned with the picture topic and identical pictures always meet
the worker that holds their description. Each value maps
``model|prompt version`` to a description, so a change of either describes
the picture again.
"""

from __future__ import annotations

from docsight.app import app, settings

descriptions = app.Table(
    "descriptions",
    partitions=settings.picture_partitions,
    key_type=str,
    help="Description cache: picture sha256 -> {model|prompt version: description}.",
)


def variant(model: str, prompt_version: str) -> str:
    return f"{model}|{prompt_version}"


def cached_description(sha256: str, model: str, prompt_version: str) -> dict | None:
    return (descriptions.get(sha256) or {}).get(variant(model, prompt_version))


def cache_description(sha256: str, model: str, prompt_version: str, description: str) -> None:
    entry = dict(descriptions.get(sha256) or {})
    entry[variant(model, prompt_version)] = {"description": description, "model": model}
    descriptions[sha256] = entry
