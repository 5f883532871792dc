"""Pure geometry helpers for PDF pages (bottom-left origin, points, as docling's provenance).

docling's native PDF pipeline gives one text item per line, in the parser's
order, and appends a page's pictures after all of its text. These helpers
merge lines into paragraphs and put each picture back where it sits on the page.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Box:
    """(l, b, r, t) with t > b: bottom-left origin, as PDF and docling's provenance."""

    l: float
    b: float
    r: float
    t: float

    @property
    def height(self) -> float:
        return self.t - self.b

    @property
    def area(self) -> float:
        return max(0.0, self.r - self.l) * max(0.0, self.t - self.b)

    def union(self, other: Box) -> Box:
        return Box(min(self.l, other.l), min(self.b, other.b), max(self.r, other.r), max(self.t, other.t))

    def overlaps_horizontally(self, other: Box) -> bool:
        return min(self.r, other.r) - max(self.l, other.l) > 0

    def to_top_left(self, page_height: float) -> tuple[float, float, float, float]:
        """(left, top, right, bottom) measured from the top-left corner."""
        return tuple(round(v, 2) for v in (self.l, page_height - self.t, self.r, page_height - self.b))


@dataclass(frozen=True)
class Line:
    text: str
    box: Box


@dataclass(frozen=True)
class Paragraph:
    text: str
    box: Box
    lines: int = 1


def iou(a: Box, b: Box) -> float:
    inter = Box(max(a.l, b.l), max(a.b, b.b), min(a.r, b.r), min(a.t, b.t))
    if inter.r <= inter.l or inter.t <= inter.b:
        return 0.0
    union = a.area + b.area - inter.area
    return inter.area / union if union > 0 else 0.0


# Lines closer than this many line heights belong to one paragraph: 1.2-1.5 line
# spacing leaves 0.2-0.5 heights between lines, a paragraph break usually one or more.
MAX_LINE_GAP = 0.75
MAX_HEIGHT_RATIO = 1.15


def _continues(paragraph_box: Box, last: Line, line: Line) -> bool:
    h_last, h = last.box.height, line.box.height
    if h_last <= 0 or h <= 0:
        return False
    if max(h, h_last) / min(h, h_last) > MAX_HEIGHT_RATIO:
        return False  # a different font size: heading, caption, footnote
    gap = last.box.b - line.box.t
    if gap < -0.3 * h or gap > MAX_LINE_GAP * h:
        return False
    return paragraph_box.overlaps_horizontally(line.box)


def _join(text: str, line: str) -> str:
    if text.endswith("-") and line[:1].islower():
        return text + line  # a word hyphenated at the line end: keep the hyphen, no space
    return f"{text} {line}"


def merge_lines(lines: Sequence[Line]) -> list[Paragraph]:
    """Join consecutive lines of one page into paragraphs, keeping their order."""
    paragraphs: list[Paragraph] = []
    current_text = ""
    current_box: Box | None = None
    count = 0
    last: Line | None = None
    for line in lines:
        text = line.text.strip()
        if not text:
            continue
        if current_box is not None and last is not None and _continues(current_box, last, line):
            current_text = _join(current_text, text)
            current_box = current_box.union(line.box)
            count += 1
        else:
            if current_box is not None:
                paragraphs.append(Paragraph(current_text, current_box, count))
            current_text, current_box, count = text, line.box, 1
        last = line
    if current_box is not None:
        paragraphs.append(Paragraph(current_text, current_box, count))
    return paragraphs


HEADING_MIN_RATIO = 1.2  # a line this much taller than the body text is set in a heading size
MAX_HEADING_CHARS = 150
MAX_HEADING_LEVEL = 3


def body_line_height(lines: Sequence[Line]) -> float:
    """The height of the text most characters are set in (the median, weighted by characters)."""
    weighted = sorted((line.box.height, len(line.text.strip())) for line in lines if line.box.height > 0)
    total = sum(chars for _, chars in weighted)
    if not total:
        return 0.0
    seen = 0
    for height, chars in weighted:
        seen += chars
        if seen * 2 >= total:
            return height
    return weighted[-1][0]


def _normal(text: str) -> str:
    return " ".join(text.casefold().split())


def heading_levels(pages: dict[int, Sequence[Paragraph]], body_height: float,
                   outline: Sequence[tuple[str, int, int]] = ()) -> dict[tuple[int, int], int]:
    """Which paragraphs are headings: ``{(page, paragraph index): level}``, level 1 the top.

    The PDF's outline (bookmarks) decides where it names a paragraph of that page; otherwise a
    short one-line paragraph in a larger size than the body text is a heading, the largest
    size level 1, the next level 2, and so on.
    """
    by_page: dict[int, dict[str, int]] = {}
    for title, level, page in outline:
        by_page.setdefault(page, {}).setdefault(_normal(title), min(level + 1, MAX_HEADING_LEVEL + 3))
    levels: dict[tuple[int, int], int] = {}
    sized: dict[tuple[int, int], float] = {}
    for page, paragraphs in pages.items():
        titles = by_page.get(page, {})
        for index, paragraph in enumerate(paragraphs):
            text = paragraph.text.strip()
            if _normal(text) in titles:
                levels[(page, index)] = titles[_normal(text)]
                continue
            if (body_height > 0 and paragraph.lines == 1 and len(text) <= MAX_HEADING_CHARS
                    and not text.endswith((".", ",", ";", ":")) and any(c.isalpha() for c in text)
                    and paragraph.box.height >= HEADING_MIN_RATIO * body_height):
                sized[(page, index)] = round(paragraph.box.height * 2) / 2
    sizes = sorted(set(sized.values()), reverse=True)
    for key, size in sized.items():
        levels[key] = min(sizes.index(size) + 1, MAX_HEADING_LEVEL)
    return levels


def picture_anchors(paragraphs: Sequence[Paragraph], pictures: Sequence[Box]) -> list[int]:
    """For each picture, the index of the paragraph it goes before (len(paragraphs) = page end).

    A picture goes before the first paragraph of its column (horizontal
    overlap) whose top is below the picture's top. A picture with no
    paragraph of its column below it goes right after the last one above it;
    one that shares no column with any text goes before the first paragraph
    below it. Pictures never move across pages.
    """
    anchors = []
    for picture in pictures:
        column = [i for i, p in enumerate(paragraphs) if p.box.overlaps_horizontally(picture)]
        below = [i for i in column if paragraphs[i].box.t <= picture.t]
        if below:
            anchors.append(below[0])
        elif column:
            anchors.append(column[-1] + 1)
        else:
            anywhere_below = [i for i, p in enumerate(paragraphs) if p.box.t <= picture.t]
            anchors.append(anywhere_below[0] if anywhere_below else len(paragraphs))
    return anchors


def interleave(paragraphs: Sequence[Paragraph], pictures: Sequence[Box]) -> list[tuple[str, int]]:
    """The page in reading order: ("text", paragraph index) and ("picture", picture index)."""
    anchors = picture_anchors(paragraphs, pictures)
    # Pictures sharing an anchor: top to bottom, then left to right.
    pending = sorted(range(len(pictures)), key=lambda k: (anchors[k], -pictures[k].t, pictures[k].l))
    out: list[tuple[str, int]] = []
    cursor = 0
    for i in range(len(paragraphs) + 1):
        while cursor < len(pending) and anchors[pending[cursor]] == i:
            out.append(("picture", pending[cursor]))
            cursor += 1
        if i < len(paragraphs):
            out.append(("text", i))
    return out


def match_boxes(targets: Sequence[Box], candidates: Sequence[Box], min_iou: float = 0.5) -> list[int | None]:
    """Greedy best-IoU matching: for each target the index of its candidate, or None."""
    pairs = sorted(
        ((iou(t, c), ti, ci) for ti, t in enumerate(targets) for ci, c in enumerate(candidates)),
        reverse=True,
    )
    result: list[int | None] = [None] * len(targets)
    used: set[int] = set()
    for score, ti, ci in pairs:
        if score < min_iou:
            break
        if result[ti] is None and ci not in used:
            result[ti] = ci
            used.add(ci)
    return result
