"""Pure text helpers: splitting markdown at picture tokens, context windows, captions.

No docling here, so everything is unit-testable on plain strings.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

PICTURE_MARK = "[picture]"


@dataclass(frozen=True)
class PictureTokens:
    """Unique per-picture placeholders for the markdown export.

    A random nonce per export means document text cannot contain a token by
    accident; ``split`` still verifies that each token occurs at most once, so a
    collision is detected rather than silently mis-split. Letters and digits
    only, so no markdown escaping touches them.
    """

    nonce: str

    @classmethod
    def new(cls) -> PictureTokens:
        return cls(secrets.token_hex(8).upper())

    def token(self, key: int) -> str:
        return f"DSPIC{self.nonce}K{key}E"

    @property
    def pattern(self) -> re.Pattern[str]:
        return re.compile(f"DSPIC{self.nonce}K(\\d+)E")

    def split(self, markdown: str) -> tuple[list[str], list[int]] | None:
        """(texts, keys) with len(texts) == len(keys) + 1, or None if a token repeats."""
        texts: list[str] = []
        keys: list[int] = []
        pos = 0
        for match in self.pattern.finditer(markdown):
            texts.append(markdown[pos : match.start()])
            keys.append(int(match.group(1)))
            pos = match.end()
        texts.append(markdown[pos:])
        if len(set(keys)) != len(keys):
            return None
        return texts, keys


def build_segments(
    texts: Sequence[str], found_keys: Sequence[int], wanted_keys: Sequence[int]
) -> tuple[list[str], list[int]]:
    """Segments and picture order, given the markdown split at tokens.

    ``wanted_keys`` are the pictures to keep, in document order. Tokens of
    pictures not wanted (no bytes) are dropped and the text around them joined.
    Wanted pictures whose token is missing from the markdown (the serializer
    skipped them) are put right after the previous wanted picture in document
    order, with an empty segment between, so that none is lost and
    ``len(segments) == len(order) + 1`` always holds.
    """
    wanted = set(wanted_keys)
    segments = [texts[0]]
    order: list[int] = []
    for key, text in zip(found_keys, texts[1:]):
        if key in wanted and key not in order:
            order.append(key)
            segments.append(text)
        else:
            segments[-1] += text
    for key in [k for k in wanted_keys if k not in order]:
        previous = [k for k in wanted_keys[: wanted_keys.index(key)] if k in order]
        if previous:
            insert_at = order.index(previous[-1]) + 1
            order.insert(insert_at, key)
            segments.insert(insert_at, "")  # the previous picture's following text moves after this one
        else:
            order.insert(0, key)
            segments.insert(1, "")  # before the first picture, after the opening text
    return segments, order


_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$", re.MULTILINE)
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+", re.MULTILINE)
_WHITESPACE = re.compile(r"\s+")


def normalise(text: str) -> str:
    """Markdown to one line of readable text: no heading marks, table rules or runs of spaces."""
    text = _TABLE_RULE.sub(" ", text)
    text = _HEADING.sub("", text)
    text = text.replace("**", "")
    return _WHITESPACE.sub(" ", text).strip()


def _tail(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[len(text) - limit :]
    space = cut.find(" ")
    return cut[space + 1 :] if 0 <= space < limit // 3 else cut


def _head(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    return cut[:space] if space > limit * 2 // 3 else cut


def picture_contexts(segments: Sequence[str], limit: int) -> list[str]:
    """For each picture, the text just before and after it: "before [picture] after".

    At most ``limit`` characters; half before and half after, a short side
    leaving its share to the other. Text beyond neighbouring pictures counts
    too (two adjacent pictures share their surroundings).
    """
    count = len(segments) - 1
    if count <= 0:
        return []
    budget = max(0, limit - len(PICTURE_MARK) - 2)
    window = 3 * budget + 64  # raw characters to look at on each side before normalising
    results = []
    for i in range(count):
        before_parts: list[str] = []
        size = 0
        for seg in reversed(segments[: i + 1]):
            before_parts.append(seg)
            size += len(seg)
            if size >= window:
                break
        before = normalise(" ".join(reversed(before_parts))[-window:])
        after_parts: list[str] = []
        size = 0
        for seg in segments[i + 1 :]:
            after_parts.append(seg)
            size += len(seg)
            if size >= window:
                break
        after = normalise(" ".join(after_parts)[:window])
        # Half each; a short side leaves its share to the other.
        before_room = max(budget // 2, budget - len(after))
        after_room = budget - min(len(before), before_room)
        before = _tail(before, before_room)
        after = _head(after, after_room)
        results.append(" ".join(part for part in (before, PICTURE_MARK, after) if part))
    return results


FIGURE_LINE = re.compile(
    r"^(?:fig(?:ure)?\.?|image|photo(?:graph)?|chart|diagram|illustration|exhibit|plate|graph)"
    r"\s*\d+[a-z]?\s*[:.\-\u2013\u2014)]",
    re.IGNORECASE,
)
MAX_CAPTION_CHARS = 500


def _paragraphs(text: str) -> list[str]:
    return [p for p in (normalise(block) for block in re.split(r"\n\s*\n", text)) if p]


def _strip_emphasis(text: str) -> str:
    return text.strip().strip("*_").strip()


def figure_captions(segments: Sequence[str]) -> list[str]:
    """A "Figure N: ..." paragraph near each picture, "" where there is none.

    Looks first at the two paragraphs after the picture (Markdown puts the alt
    text between), then at the paragraph before it unless the previous picture
    already took that one.
    """
    count = len(segments) - 1
    captions: list[str] = []
    claimed: set[tuple[int, int]] = set()  # (segment, paragraph) already used as a caption
    for i in range(count):
        found = ""
        for p, paragraph in enumerate(_paragraphs(segments[i + 1])[:2]):
            candidate = _strip_emphasis(paragraph)
            if FIGURE_LINE.match(candidate):
                found = candidate
                claimed.add((i + 1, p))
                break
        if not found:
            before = _paragraphs(segments[i])
            if before and (i, len(before) - 1) not in claimed:
                candidate = _strip_emphasis(before[-1])
                if FIGURE_LINE.match(candidate):
                    found = candidate
        captions.append(found[:MAX_CAPTION_CHARS])
    return captions
