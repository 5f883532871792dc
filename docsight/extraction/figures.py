"""Figures on a PDF page, from what the page draws: one figure = one picture (pure geometry, no pdfium).

A figure is often not one bitmap. PDF producers cut photos into tiles or strips, put a chart's
legend in a second bitmap, or draw charts and diagrams with vector paths and no bitmap at all.
Without a layout model, docling's native pipeline reports each bitmap as a picture and never
sees vector drawings. Here:

- bitmaps that touch or overlap, or sit a few points apart with no text between them and no
  caption of their own each, are one figure;
- vector paths close to each other form a drawing; a drawing that is big enough, has some
  filled or curved shapes (not only the thin rules of a table or an underline) and is not
  mostly text is a figure, together with the short labels around it;
- a vector drawing that touches a bitmap figure is part of it (arrows and callouts on a photo).

Boxes are (l, b, r, t) in points with a bottom-left origin, as in :mod:`.layout`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from .layout import Box, Line

TOUCH_GAP = 6.0  # points: fragments this close belong together, whatever lies around them
SHARED_CAPTION_GAP = 24.0  # farther apart, they still do when nothing is between them and one caption serves both
CAPTION_REACH = 36.0  # a caption line starts this close below (or above) its figure
PATH_GAP = 10.0  # vector paths this close are one drawing
LABEL_GAP = 12.0  # short text lines this close to a drawing are its labels
MAX_LABEL_CHARS = 24
MIN_FIGURE_SIDE = 24.0
MIN_FIGURE_AREA = 40.0 * 40.0
MIN_DRAWING_PATHS = 3
THIN = 2.0  # a path thinner than this in one direction is a rule or a stroke, not a shape
MAX_TEXT_COVERAGE = 0.5  # a "drawing" mostly covered by text lines is a table or a text box
PAGE_COVER = 0.9  # paths covering this much of the page are backgrounds and frames

FIGURE_CAPTION = re.compile(
    r"^\s*(?:fig(?:ure)?\.?|image|photo(?:graph)?|chart|diagram|illustration|exhibit|plate|graph|map)"
    r"\s*\d+[a-z]?\s*[:.\-\u2013\u2014)]",
    re.IGNORECASE,
)


@dataclass
class Figure:
    box: Box
    bitmaps: list[int] = field(default_factory=list)  # indexes of the page's image objects in it
    paths: int = 0  # vector paths in it

    @property
    def single_bitmap(self) -> bool:
        """Exactly one bitmap and nothing drawn around it: its original bytes are the figure."""
        return len(self.bitmaps) == 1 and self.paths == 0


def gap(a: Box, b: Box) -> float:
    """Distance between two boxes (0 when they touch or overlap)."""
    dx = max(0.0, max(a.l, b.l) - min(a.r, b.r))
    dy = max(0.0, max(a.b, b.b) - min(a.t, b.t))
    return max(dx, dy) if min(dx, dy) == 0 else (dx * dx + dy * dy) ** 0.5


def overlap_fraction(inner: Box, outer: Box) -> float:
    """How much of ``inner``'s area lies inside ``outer``."""
    l, b, r, t = max(inner.l, outer.l), max(inner.b, outer.b), min(inner.r, outer.r), min(inner.t, outer.t)
    if r <= l or t <= b:
        return 0.0
    area = inner.area
    return (r - l) * (t - b) / area if area > 0 else 1.0


def caption_of(box: Box, lines: Sequence[Line]) -> int | None:
    """The index of the "Figure N" line right below (or else right above) a box, sharing its column."""
    best: tuple[float, int] | None = None
    for index, line in enumerate(lines):
        if not FIGURE_CAPTION.match(line.text) or not box.overlaps_horizontally(line.box):
            continue
        below = box.b - line.box.t
        above = line.box.b - box.t
        distance = below if 0 <= below <= CAPTION_REACH else (above + CAPTION_REACH if 0 <= above <= CAPTION_REACH
                                                              else None)
        if distance is not None and (best is None or distance < best[0]):
            best = (distance, index)
    return best[1] if best else None


def _text_between(a: Box, b: Box, lines: Sequence[Line]) -> bool:
    """A text line lies in the space the two boxes span, outside both (a caption or paragraph between them)."""
    hull = a.union(b)
    return any(overlap_fraction(line.box, hull) > 0.5 and overlap_fraction(line.box, a) < 0.5
               and overlap_fraction(line.box, b) < 0.5 for line in lines)


def _union_find(count: int, joined) -> list[list[int]]:
    parent = list(range(count))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(count):
        for j in range(i + 1, count):
            if find(i) != find(j) and joined(i, j):
                parent[find(i)] = find(j)
    groups: dict[int, list[int]] = {}
    for i in range(count):
        groups.setdefault(find(i), []).append(i)
    return sorted(groups.values(), key=lambda members: members[0])


def _union(boxes: Sequence[Box]) -> Box:
    box = boxes[0]
    for other in boxes[1:]:
        box = box.union(other)
    return box


def bitmap_figures(bitmaps: Sequence[Box], lines: Sequence[Line]) -> list[Figure]:
    """Bitmaps grouped into figures: touching ones always; near ones when nothing separates them."""
    captions = [caption_of(box, lines) for box in bitmaps]

    def joined(i: int, j: int) -> bool:
        distance = gap(bitmaps[i], bitmaps[j])
        if distance <= TOUCH_GAP:
            return True
        if distance > SHARED_CAPTION_GAP or _text_between(bitmaps[i], bitmaps[j], lines):
            return False
        own = captions[i] is not None and captions[j] is not None and captions[i] != captions[j]
        return not own

    groups = _union_find(len(bitmaps), joined)
    return [Figure(_union([bitmaps[i] for i in group]), bitmaps=list(group)) for group in groups]


def drawing_figures(paths: Sequence[Box], lines: Sequence[Line], page: Box) -> list[Figure]:
    """Vector drawings big and shapely enough to be figures, with their labels."""
    page_area = page.area or 1.0
    kept = [box for box in paths if box.area < PAGE_COVER * page_area]
    groups = _union_find(len(kept), lambda i, j: gap(kept[i], kept[j]) <= PATH_GAP)
    figures = []
    for group in groups:
        boxes = [kept[i] for i in group]
        shapes = sum(1 for box in boxes if box.r - box.l > THIN and box.t - box.b > THIN)
        if len(boxes) < MIN_DRAWING_PATHS or shapes == 0:
            continue  # rules, underlines, a lone frame
        region = _union(boxes)
        # short lines next to the drawing are its labels (axis ticks, legend entries)
        for line in lines:
            short = len(line.text.strip()) <= MAX_LABEL_CHARS and not FIGURE_CAPTION.match(line.text)
            if short and gap(line.box, region) <= LABEL_GAP:
                region = region.union(line.box)
        width, height = region.r - region.l, region.t - region.b
        if width < MIN_FIGURE_SIDE or height < MIN_FIGURE_SIDE or region.area < MIN_FIGURE_AREA:
            continue
        covered = sum(line.box.area * overlap_fraction(line.box, region) for line in lines
                      if len(line.text.strip()) > MAX_LABEL_CHARS)
        if covered / region.area > MAX_TEXT_COVERAGE:
            continue  # a table or a shaded text box
        figures.append(Figure(region, paths=len(boxes)))
    return figures


def page_figures(bitmaps: Sequence[Box], paths: Sequence[Box], lines: Sequence[Line], page: Box) -> list[Figure]:
    """Every figure on a page, top to bottom then left to right."""
    figures = bitmap_figures(bitmaps, lines) + drawing_figures(paths, lines, page)
    # a drawing touching a bitmap figure (arrows, callouts, a frame) belongs to it
    groups = _union_find(len(figures), lambda i, j: gap(figures[i].box, figures[j].box) <= TOUCH_GAP)
    merged = []
    for group in groups:
        members = [figures[i] for i in group]
        merged.append(Figure(_union([f.box for f in members]),
                             bitmaps=sorted(b for f in members for b in f.bitmaps),
                             paths=sum(f.paths for f in members)))
    return sorted(merged, key=lambda f: (-f.box.t, f.box.l))


def lines_outside(lines: Sequence[Line], figures: Sequence[Figure]) -> list[Line]:
    """The text of the page without the labels drawn inside its figures (the description covers them)."""
    return [line for line in lines
            if not any(overlap_fraction(line.box, figure.box) >= 0.8 for figure in figures)]
