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

    def reference(self, key: int) -> str:
        """What stands in for a picture where its description cannot go (a table cell, a repeat)."""
        return f"DSREF{self.nonce}K{key}E"

    @property
    def reference_pattern(self) -> re.Pattern[str]:
        return re.compile(f"DSREF{self.nonce}K(\\d+)E")

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


NOTE_IN_TABLE = "in a table cell: the cell refers to it, its description follows the table"
NOTE_REPEATED = "shown more than once in the markdown: described at its first place, referred to at the others"
NOTE_NOT_FOUND = "its place in the markdown was not found: described after the previous picture"


@dataclass
class Placement:
    """The markdown split at the pictures' places: ``texts[i]`` comes before the picture ``keys[i]``."""

    texts: list[str]
    keys: list[int]
    notes: dict[int, str]  # picture key -> why its description is not exactly where the picture was


def _is_table_line(line: str) -> bool:
    return line.lstrip().startswith("|")


def _move_out_of_tables(markdown: str, tokens: PictureTokens, notes: dict[int, str]) -> str:
    """A picture inside a table row leaves a reference in its cell; its token goes right after the table.

    A description is a block of text: inserted into a row it would end the table there.
    """
    lines = markdown.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        if not _is_table_line(lines[i]):
            out.append(lines[i])
            i += 1
            continue
        end = i
        while end < len(lines) and _is_table_line(lines[end]):
            end += 1
        block = lines[i:end]
        i = end
        if not any(_TABLE_RULE.match(line) for line in block) or not any(tokens.pattern.search(x) for x in block):
            out.extend(block)
            continue
        moved: list[int] = []

        def to_reference(match: re.Match[str]) -> str:
            key = int(match.group(1))
            if key not in moved:
                moved.append(key)
            return tokens.reference(key)

        out.extend(tokens.pattern.sub(to_reference, line) for line in block)
        for key in moved:
            notes.setdefault(key, NOTE_IN_TABLE)
            out += ["", tokens.token(key)]
        out.append("")
    return "\n".join(out)


def place_tokens(markdown: str, tokens: PictureTokens) -> Placement:
    """Split an export at its picture tokens, whatever the serializer did with them. Never fails.

    Tokens inside tables move after the table (the cell keeps a reference); a token that occurs more
    than once (a picture in a cell spanning two columns is written in both) keeps its first place,
    the others become references.
    """
    notes: dict[int, str] = {}
    markdown = _move_out_of_tables(markdown, tokens, notes)
    seen: set[int] = set()

    def first_only(match: re.Match[str]) -> str:
        key = int(match.group(1))
        if key in seen:
            notes.setdefault(key, NOTE_REPEATED)
            return tokens.reference(key)
        seen.add(key)
        return match.group(0)

    markdown = tokens.pattern.sub(first_only, markdown)
    texts, keys = tokens.split(markdown)  # no repeats are left
    return Placement(texts, keys, notes)


def resolve_references(segments: Sequence[str], tokens: PictureTokens, order: Sequence[int]) -> list[str]:
    """References become "[Picture N]", N as the rendered descriptions number them (reading order, from 1)."""
    number = {key: position + 1 for position, key in enumerate(order)}

    def label(match: re.Match[str]) -> str:
        key = int(match.group(1))
        return f"[Picture {number[key]}]" if key in number else "[picture]"

    return [tokens.reference_pattern.sub(label, segment) for segment in segments]


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
