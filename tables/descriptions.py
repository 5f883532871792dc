"""The ``descriptions`` cache: one description per distinct picture, cluster-wide.

Written while handling a picture request, so each entry lands on the
partition of that request, whose key is the picture's SHA-256: the cache is
co-partitioned with the picture topic and identical pictures always meet the
same worker. The key also holds the model and the prompt version, so a change
of either describes pictures again.
"""

from __future__ import annotations

from docsight.app import app, settings

descriptions = app.Table(
    "descriptions",
    partitions=settings.picture_partitions,
    key_type=str,
    help="Description cache keyed by picture sha256, model and prompt version.",
)
