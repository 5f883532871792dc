"""PDF pictures through pypdfium2: original bytes, positions, encryption and damage checks.

docling's native pipeline is run with picture images off (decoding the
bitmaps is what made it slow: 20 photos took 25 s against 0.1 s here); its
picture items only give the reading-order anchors and boxes, matched to these
image objects by page and box.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from .errors import ExtractionError
from .images import StoredImage, check_pixels, inspect_image, storable, storable_pil
from .layout import Box

PASSWORD_ERRORS = {pdfium_c.FPDF_ERR_PASSWORD, pdfium_c.FPDF_ERR_SECURITY}
RENDER_SCALE = 2.0  # fallback crops are rendered at 144 dpi


@dataclass
class PdfImageObject:
    box: Box
    width: int
    height: int
    index: int  # position among the page's image objects


@dataclass
class PdfPage:
    number: int  # 1-based
    width: float
    height: float
    images: list[PdfImageObject] = field(default_factory=list)
    paths: list[Box] = field(default_factory=list)  # vector paths and shadings: the makings of drawn figures

    @property
    def box(self) -> Box:
        return Box(0.0, 0.0, self.width, self.height)


# A page drawing more paths than this (a map, a plot of thousands of points) is taken as one drawing:
# grouping them one by one would cost seconds.
MAX_PATHS_PER_PAGE = 1500


def open_pdf(path: Path) -> pdfium.PdfDocument:
    try:
        return pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError as exc:
        code = getattr(exc, "err_code", None)
        if code in PASSWORD_ERRORS:
            raise ExtractionError("encrypted", f"{path.name} is a password-protected PDF") from None
        raise ExtractionError("corrupt", f"{path.name} is not a readable PDF ({exc})") from None


def _image_objects(page: pdfium.PdfPage):
    # Images inside form XObjects too: docling-parse reports those as well.
    return list(page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE], max_depth=4))


def scan_pdf(pdf: pdfium.PdfDocument, name: str, pixel_cap: int) -> list[PdfPage]:
    """Every page's size and image objects; raises decompression_bomb before anything is decoded."""
    pages = []
    for number in range(1, len(pdf) + 1):
        page = pdf[number - 1]
        try:
            width, height = page.get_size()
            scanned = PdfPage(number, width, height)
            for index, obj in enumerate(_image_objects(page)):
                try:
                    px_w, px_h = obj.get_px_size()
                    left, bottom, right, top = obj.get_bounds()
                except pdfium.PdfiumError:
                    continue
                check_pixels(px_w, px_h, pixel_cap, f"{name}, page {number}")
                scanned.images.append(PdfImageObject(Box(left, bottom, right, top), px_w, px_h, index))
            scanned.paths = _path_boxes(page, scanned.box)
            pages.append(scanned)
        finally:
            page.close()
    return pages


def _path_boxes(page: pdfium.PdfPage, page_box: Box) -> list[Box]:
    boxes = []
    for obj in page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_PATH, pdfium_c.FPDF_PAGEOBJ_SHADING], max_depth=4):
        try:
            left, bottom, right, top = obj.get_bounds()
        except pdfium.PdfiumError:
            continue
        # clipped to the page: drawings bleeding off the edge still count for what is visible
        box = Box(max(left, page_box.l), max(bottom, page_box.b), min(right, page_box.r), min(top, page_box.t))
        if box.r >= box.l and box.t >= box.b:
            boxes.append(box)
    if len(boxes) > MAX_PATHS_PER_PAGE:
        union = boxes[0]
        for box in boxes[1:]:
            union = union.union(box)
        boxes = [union] * 3  # one drawing (three entries: enough paths to count as one)
    return boxes


def outline(pdf: pdfium.PdfDocument, max_entries: int = 2000) -> list[tuple[str, int, int]]:
    """The PDF's bookmarks: (title, level from 0, page number from 1), for headings."""
    entries = []
    try:
        for bookmark in pdf.get_toc(max_depth=6):
            destination = bookmark.get_dest()
            index = destination.get_index() if destination is not None else None
            title = (bookmark.get_title() or "").strip()
            if title and index is not None:
                entries.append((title, bookmark.level, index + 1))
            if len(entries) >= max_entries:
                break
    except (pdfium.PdfiumError, ValueError):  # a broken outline is no reason to lose the document
        return entries
    return entries


def image_bytes(pdf: pdfium.PdfDocument, page_number: int, index: int, pixel_cap: int, where: str) -> StoredImage:
    """The image object's bytes: the JPEG stream as it is, else a PNG of its pixels.

    Note: pdfium does not apply soft masks on this path, so a transparent
    image comes out on its background colour.
    """
    page = pdf[page_number - 1]
    try:
        obj = _image_objects(page)[index]
        buf = io.BytesIO()
        try:
            obj.extract(buf, fb_format="png")
            data = buf.getvalue()
            info = inspect_image(data)
            if info is None:
                raise ValueError("extracted data is not an image")
            return storable(data, pixel_cap, where)
        except (pdfium.PdfiumError, ValueError, OSError, KeyError):
            # Colour spaces pdfium cannot hand over raw (indexed, ICC, CMYK as PNG): let it render.
            bitmap = obj.get_bitmap(render=True)
            return storable_pil(bitmap.to_pil(), pixel_cap, where)
    finally:
        page.close()


def render_region(pdf: pdfium.PdfDocument, page_number: int, box: Box, pixel_cap: int, where: str) -> StoredImage:
    """A picture docling found but pdfium did not (e.g. an inline image): render its area."""
    page = pdf[page_number - 1]
    try:
        width, height = page.get_size()
        crop = (max(0.0, box.l), max(0.0, box.b), max(0.0, width - box.r), max(0.0, height - box.t))
        scale = RENDER_SCALE
        area_px = (box.r - box.l) * (box.t - box.b) * scale * scale
        if area_px > pixel_cap:
            scale = (pixel_cap / max(area_px / (scale * scale), 1.0)) ** 0.5
        image = page.render(scale=scale, crop=crop).to_pil()
        return storable_pil(image, pixel_cap, where)
    finally:
        page.close()
