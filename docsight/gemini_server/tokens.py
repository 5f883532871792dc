"""How the local server counts tokens: its own reading of Gemini's published rules.

Written apart from the client's estimator (``docsight.vision.image_tokens``), and never importing
it, so that reconciling the client's estimate with the server's ``usageMetadata`` is a real test.

- A picture with both sides at most 384 px is 258 tokens. A larger one is cropped into tiles of
  768 x 768 px, 258 tokens a tile. ``mediaResolution`` LOW caps a picture at 64 tokens, MEDIUM at 256.
- Text: Gemini's tokenizer is a SentencePiece model this server does not have. Its stand-in splits
  the text into words, numbers and single other characters: a word is one token per started four
  letters, a number one per started three digits, anything else one each; whitespace is free. On
  English prose that lands near "about four characters a token" without being that rule, so the
  client's estimate and this count differ by a few tokens a call.
"""

from __future__ import annotations

import re

SMALL_PICTURE_SIDE = 384
TILE_SIDE = 768
TILE_TOKENS = 258
RESOLUTION_CAPS = {"MEDIA_RESOLUTION_LOW": 64, "MEDIA_RESOLUTION_MEDIUM": 256}

_PIECES = re.compile(r"(?P<word>[^\W\d_]+)|(?P<number>\d+)|(?P<other>[^\s])")


def picture_tokens(width: int, height: int, media_resolution: str | None = None) -> int:
    if width <= 0 or height <= 0:
        raise ValueError(f"a picture has positive sides, got {width}x{height}")
    if max(width, height) <= SMALL_PICTURE_SIDE:
        tokens = TILE_TOKENS
    else:
        across = -(-width // TILE_SIDE)
        down = -(-height // TILE_SIDE)
        tokens = across * down * TILE_TOKENS
    name = (media_resolution or "").upper()
    if name and not name.startswith("MEDIA_RESOLUTION_"):
        name = "MEDIA_RESOLUTION_" + name
    cap = RESOLUTION_CAPS.get(name)
    return tokens if cap is None else min(tokens, cap)


def _piece_tokens(match: re.Match) -> int:
    if match.group("word"):
        return -(-len(match.group("word")) // 4)
    if match.group("number"):
        return -(-len(match.group("number")) // 3)
    return 1


def text_tokens(text: str) -> int:
    return sum(_piece_tokens(match) for match in _PIECES.finditer(text or ""))


def truncate_to_tokens(text: str, limit: int) -> str:
    """The longest prefix of ``text`` (ending at a piece) that counts at most ``limit`` tokens."""
    used = 0
    end = 0
    for match in _PIECES.finditer(text):
        cost = _piece_tokens(match)
        if used + cost > limit:
            break
        used += cost
        end = match.end()
    return text[:end]
