"""Gemini's rule for what a picture costs in input tokens, and the text estimate.

Both sides <= 384 px: 258 tokens. Larger pictures are cut into 768x768 tiles
of 258 tokens each. ``media_resolution`` LOW caps a picture at 64 tokens,
MEDIUM at 256 (see ai.google.dev token docs, summarised in the shared notes).
The budget charges these estimates before a call and reconciles them with
the provider's usage after it, so another provider's own rule only shifts
the estimate, never the count.
"""

from __future__ import annotations

import math

TOKENS_PER_TILE = 258
SMALL_IMAGE_MAX_SIDE = 384
TILE_SIDE = 768
MEDIA_RESOLUTION_CAPS = {"LOW": 64, "MEDIUM": 256}


def image_tokens(width: int, height: int, media_resolution: str | None = None) -> int:
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    if width <= SMALL_IMAGE_MAX_SIDE and height <= SMALL_IMAGE_MAX_SIDE:
        tokens = TOKENS_PER_TILE
    else:
        tokens = math.ceil(width / TILE_SIDE) * math.ceil(height / TILE_SIDE) * TOKENS_PER_TILE
    cap = MEDIA_RESOLUTION_CAPS.get(_normalise(media_resolution))
    return min(tokens, cap) if cap else tokens


def text_tokens(text: str) -> int:
    """Gemini averages about four characters a token for English text."""
    return max(1, math.ceil(len(text) / 4)) if text else 0


def _normalise(media_resolution: str | None) -> str | None:
    if not media_resolution:
        return None
    return media_resolution.upper().removeprefix("MEDIA_RESOLUTION_")
