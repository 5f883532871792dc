"""Everything that touches docling: the converter, the per-format picture sources, the assembly.

Imported lazily (docling takes seconds to import) and meant to run inside the
extraction worker processes.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before docling or huggingface_hub are imported

import contextvars
import logging
import re
import shutil
import tempfile
import threading
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from docling.backend.utils.image_resource_loader import ImageResourceLoader
from docling.datamodel.backend_options import HTMLBackendOptions, MarkdownBackendOptions
from docling.datamodel.base_models import ConversionStatus, InputFormat
from docling.datamodel.pipeline_options import NativePdfPipelineOptions
from docling.document_converter import (
    DocumentConverter,
    HTMLFormatOption,
    MarkdownFormatOption,
    NativePdfFormatOption,
)
from docling_core.transforms.serializer.common import create_ser_result
from docling_core.transforms.serializer.markdown import (
    MarkdownDocSerializer,
    MarkdownParams,
    MarkdownPictureSerializer,
)
from docling_core.types.doc import (
    BoundingBox,
    ContentLayer,
    CoordOrigin,
    DocItemLabel,
    DoclingDocument,
    PictureItem,
    ProvenanceItem,
    TextItem,
)

from . import pdf as pdf_images
from .errors import ExtractionError
from .images import MarkerCodec, StoredImage, check_pixels, inspect_image, is_invisible_spacer, storable, storable_pil
from .layout import Box, Line, interleave, match_boxes, merge_lines
from .models import ExtractedPicture, ExtractionLimits, ExtractionResult
from .text import PictureTokens, build_segments, figure_captions, picture_contexts

_log = logging.getLogger(__name__)

INPUT_FORMATS = {
    "pdf": InputFormat.PDF,
    "docx": InputFormat.DOCX,
    "pptx": InputFormat.PPTX,
    "xlsx": InputFormat.XLSX,
    "html": InputFormat.HTML,
    "md": InputFormat.MD,
}
LAYERS = {ContentLayer.BODY, ContentLayer.FURNITURE}  # furniture: logos in headers and before the first heading
EMU_PER_POINT = 12700
MAX_ARCHIVE_MEMBER_BYTES = 512 * 1024 * 1024  # one decompressed OOXML part

# ----------------------------------------------------------------------------
# The converter: one per process
# ----------------------------------------------------------------------------

_converter: DocumentConverter | None = None
_converter_lock = threading.Lock()


def build_converter() -> DocumentConverter:
    return DocumentConverter(
        allowed_formats=list(INPUT_FORMATS.values()),
        format_options={
            InputFormat.PDF: NativePdfFormatOption(
                pipeline_options=NativePdfPipelineOptions(
                    generate_page_images=False,
                    # Bitmaps come from pypdfium2 (original bytes, 100x faster).
                    generate_picture_images=False,
                    # The pool gives the parallelism; more threads per process would oversubscribe.
                    parser_threads=1,
                )
            ),
            # Local images only, confined by docling to the document's folder;
            # remote fetching stays off (enable_remote_fetch defaults to False).
            InputFormat.HTML: HTMLFormatOption(
                backend_options=HTMLBackendOptions(fetch_images=True, enable_local_fetch=True)
            ),
            InputFormat.MD: MarkdownFormatOption(
                backend_options=MarkdownBackendOptions(fetch_images=True, enable_local_fetch=True)
            ),
        },
    )


def get_converter() -> DocumentConverter:
    global _converter
    with _converter_lock:
        if _converter is None:
            _install_loader_hook()
            _converter = build_converter()
        return _converter


def warm_up() -> None:
    """Build the converter and every format's pipeline now, so the first document is not slow."""
    converter = get_converter()
    for fmt in INPUT_FORMATS.values():
        converter.initialize_pipeline(fmt)


def _convert(path: Path, fmt: str, name: str) -> DoclingDocument:
    try:
        result = get_converter().convert(path, raises_on_error=False)
    except ExtractionError:
        raise
    except Exception as exc:  # docling raises many types; the message is what matters
        raise ExtractionError("conversion_failed", f"{name}: docling could not convert the document: {exc}") from None
    if result.status not in (ConversionStatus.SUCCESS, ConversionStatus.PARTIAL_SUCCESS):
        details = "; ".join(e.error_message for e in result.errors) or result.status.value
        if not result.input.valid:
            # The backend could not even open it: a damaged file (missing parts, broken XML).
            raise ExtractionError("corrupt", f"{name} is damaged: docling cannot read it as {fmt.upper()} ({details})")
        raise ExtractionError("conversion_failed", f"{name}: docling could not convert the document: {details}")
    if result.status == ConversionStatus.PARTIAL_SUCCESS:
        _log.warning("%s converted partially: %s", name, "; ".join(e.error_message for e in result.errors))
    return result.document


# ----------------------------------------------------------------------------
# HTML and Markdown: images docling loads are swapped for markers as they load
# ----------------------------------------------------------------------------


class _LoadSession:
    def __init__(self, name: str, pixel_cap: int) -> None:
        self.name = name
        self.pixel_cap = pixel_cap
        self.codec = MarkerCodec()
        self.originals: list[tuple[bytes, str]] = []  # (bytes, resolved source)
        self.error: ExtractionError | None = None

    def substitute(self, data: bytes, source: str) -> bytes | None:
        info = inspect_image(data)
        if info is None:
            return data  # not something we can store; docling decides what to do with it
        try:
            check_pixels(info.width, info.height, self.pixel_cap, f"{self.name}, image {source[:200]}")
        except ExtractionError as exc:
            # Raised after the conversion: docling would swallow it here.
            self.error = self.error or exc
            return None
        self.originals.append((data, source))
        return self.codec.encode(len(self.originals) - 1)


_load_session: contextvars.ContextVar[_LoadSession | None] = contextvars.ContextVar("_load_session", default=None)
_hook_installed = False


def _install_loader_hook() -> None:
    """Wrap docling's image loading for HTML and Markdown (ImageResourceLoader).

    Inactive (a pass-through) unless an extraction in this thread has opened a
    session, so other docling users in the process are unaffected. docling's
    own checks (local fetch confined to the document's folder, no remote fetch)
    run before the hook sees the bytes.
    """
    global _hook_installed
    if _hook_installed:
        return
    original: Callable = ImageResourceLoader.load_image_data

    def load_image_data(self, src_loc, base_path):
        data = original(self, src_loc, base_path)
        session = _load_session.get()
        if session is None or not data:
            return data
        return session.substitute(data, src_loc)

    original_ref: Callable = ImageResourceLoader.load_image_ref

    def load_image_ref(self, src, base_path):
        try:
            return original_ref(self, src, base_path)
        except ValueError as exc:
            if _load_session.get() is None:
                raise
            # docling's Markdown backend lets a blocked path (../, absolute) fail the whole
            # document, where its HTML backend only drops the picture; drop it here too.
            _log.warning("picture %r not loaded: %s", src[:200], exc)
            return None

    ImageResourceLoader.load_image_data = load_image_data
    ImageResourceLoader.load_image_ref = load_image_ref
    _hook_installed = True


class _ImgAltParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.images: list[tuple[str, str]] = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            values = dict(attrs)
            if values.get("src"):
                self.images.append((values["src"] or "", (values.get("alt") or "").strip()))


_MD_IMAGE = re.compile(r"!\[((?:[^\]\\]|\\.)*)\]\(\s*<?([^)\s>]+)>?(?:\s+[\"'][^\"']*[\"'])?\s*\)")


def _alt_texts(path: Path, fmt: str) -> dict[str, str]:
    """Alt text of each image, keyed by the source as docling resolves it."""
    text = path.read_text(encoding="utf-8", errors="replace")
    pairs: list[tuple[str, str]] = []
    parser = _ImgAltParser()
    try:
        parser.feed(text)
    except Exception:  # alt text is a nicety; a parser hiccup must not fail the document
        pass
    pairs.extend(parser.images)
    if fmt == "md":
        pairs.extend((src, alt.strip()) for alt, src in _MD_IMAGE.findall(text))
    resolver = ImageResourceLoader(enable_local_fetch=True)
    alts: dict[str, str] = {}
    for src, alt in pairs:
        if not alt:
            continue
        try:
            alts.setdefault(resolver.resolve_relative_path(src, str(path)), alt)
        except ValueError:
            continue
    return alts


# ----------------------------------------------------------------------------
# DOCX, PPTX, XLSX: a copy of the archive with markers in place of the media
# ----------------------------------------------------------------------------


def _ooxml_with_markers(
    path: Path, workdir: Path, codec: MarkerCodec, pixel_cap: int
) -> tuple[Path, list[bytes]]:
    originals: list[bytes] = []
    target = workdir / f"document{path.suffix.lower()}"
    try:
        with zipfile.ZipFile(path) as src, zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as dst:
            for info in src.infolist():
                if info.file_size > MAX_ARCHIVE_MEMBER_BYTES:
                    raise ExtractionError(
                        "decompression_bomb",
                        f"{path.name}: archive member {info.filename} expands to {info.file_size:,} bytes",
                    )
                data = src.read(info)
                if "/media/" in info.filename:
                    data = _marker_for_media(data, info.filename, path.name, codec, originals, pixel_cap)
                dst.writestr(zipfile.ZipInfo(info.filename, date_time=info.date_time), data)
    except (zipfile.BadZipFile, EOFError, zipfile.LargeZipFile) as exc:
        raise ExtractionError("corrupt", f"{path.name} is a damaged archive: {exc}") from None
    except (OSError, RuntimeError, NotImplementedError) as exc:  # e.g. encrypted members, bad CRC
        raise ExtractionError("corrupt", f"{path.name} cannot be read as an archive: {exc}") from None
    return target, originals


def _marker_for_media(
    data: bytes, member: str, name: str, codec: MarkerCodec, originals: list[bytes], pixel_cap: int
) -> bytes:
    info = inspect_image(data)
    if info is None:
        return data  # EMF/WMF/SVG...: docling handles them (or records a picture without image)
    check_pixels(info.width, info.height, pixel_cap, f"{name}, {member}")
    if is_invisible_spacer(data, info):
        return data  # keep docling's spacer detection working
    originals.append(data)
    return codec.encode(len(originals) - 1)


# ----------------------------------------------------------------------------
# PDF: reading order and pictures from pypdfium2
# ----------------------------------------------------------------------------


def _bottom_left(prov: ProvenanceItem, page_height: float) -> Box:
    bbox = prov.bbox
    if bbox.coord_origin != CoordOrigin.BOTTOMLEFT:
        bbox = bbox.to_bottom_left_origin(page_height=page_height)
    return Box(bbox.l, bbox.b, bbox.r, bbox.t)


def _pdf_in_reading_order(doc: DoclingDocument) -> tuple[DoclingDocument, dict[int, tuple[int, Box]]]:
    """A new document: lines merged into paragraphs, pictures where they sit on their page.

    Returns it with, for each picture key, (page number, box).
    """
    lines: dict[int, list[Line]] = {}
    pictures: dict[int, list[Box]] = {}
    heights = {no: page.size.height for no, page in doc.pages.items()}
    for item, _ in doc.iterate_items(included_content_layers=LAYERS):
        if not item.prov:
            continue
        prov = item.prov[0]
        box = _bottom_left(prov, heights.get(prov.page_no, 0.0))
        if isinstance(item, PictureItem):
            pictures.setdefault(prov.page_no, []).append(box)
        elif isinstance(item, TextItem) and item.text.strip():
            lines.setdefault(prov.page_no, []).append(Line(item.text, box))

    ordered = DoclingDocument(name=doc.name, origin=doc.origin)
    for no in sorted(doc.pages):
        ordered.add_page(page_no=no, size=doc.pages[no].size)
    positions: dict[int, tuple[int, Box]] = {}
    for no in sorted(set(lines) | set(pictures)):
        paragraphs = merge_lines(lines.get(no, []))
        boxes = pictures.get(no, [])
        for kind, index in interleave(paragraphs, boxes):
            box = paragraphs[index].box if kind == "text" else boxes[index]
            prov = ProvenanceItem(
                page_no=no,
                bbox=BoundingBox(l=box.l, t=box.t, r=box.r, b=box.b, coord_origin=CoordOrigin.BOTTOMLEFT),
                charspan=(0, len(paragraphs[index].text) if kind == "text" else 0),
            )
            if kind == "text":
                ordered.add_text(label=DocItemLabel.TEXT, text=paragraphs[index].text, prov=prov)
            else:
                ordered.add_picture(prov=prov)
                positions[len(ordered.pictures) - 1] = (no, box)
    return ordered, positions


@dataclass
class _Source:
    stored: StoredImage
    page: int | None = None
    bbox: tuple[float, float, float, float] | None = None
    location: str | None = None
    alt: str = ""


def _extract_pdf(path: Path, limits: ExtractionLimits) -> tuple[DoclingDocument, dict[int, _Source], int]:
    name = path.name
    pdf = pdf_images.open_pdf(path)
    try:
        pages = pdf_images.scan_pdf(pdf, name, limits.max_picture_pixels)
        doc, positions = _pdf_in_reading_order(_convert(path, "pdf", name))
        by_page: dict[int, list[int]] = {}
        for key, (no, _) in positions.items():
            by_page.setdefault(no, []).append(key)
        sources: dict[int, _Source] = {}
        for no, keys in by_page.items():
            page = pages[no - 1]
            matches = match_boxes([positions[k][1] for k in keys], [img.box for img in page.images])
            for key, match in zip(keys, matches):
                box = positions[key][1]
                where = f"{name}, page {no}"
                if match is not None:
                    stored = pdf_images.image_bytes(pdf, no, page.images[match].index, limits.max_picture_pixels, where)
                else:
                    stored = pdf_images.render_region(pdf, no, box, limits.max_picture_pixels, where)
                sources[key] = _Source(stored, no, box.to_top_left(page.height), f"page {no}")
        return doc, sources, len(pages)
    finally:
        pdf.close()


# ----------------------------------------------------------------------------
# Assembly
# ----------------------------------------------------------------------------


def _picture_key(item: PictureItem) -> int:
    return int(item.self_ref.rsplit("/", 1)[-1])


class _TokenPictureSerializer(MarkdownPictureSerializer):
    """docling's picture serializer (captions and all) with a unique token for the image."""

    def __init__(self, tokens: PictureTokens) -> None:
        self.tokens = tokens

    def _serialize_image_part(self, item, doc, image_mode, image_placeholder, **kwargs):
        return create_ser_result(text=self.tokens.token(_picture_key(item)), span_source=item)


def _markdown_parts(doc: DoclingDocument) -> tuple[list[str], list[int]]:
    for _ in range(5):
        tokens = PictureTokens.new()
        serializer = MarkdownDocSerializer(
            doc=doc, picture_serializer=_TokenPictureSerializer(tokens), params=MarkdownParams(layers=LAYERS)
        )
        split = tokens.split(serializer.serialize().text)
        if split is not None:
            return split
    raise ExtractionError("conversion_failed", "could not place unique picture tokens in the markdown")


_BLANK_RUNS = re.compile(r"\n{3,}")


def _assemble(
    doc: DoclingDocument,
    fmt: str,
    sources: dict[int, _Source],
    page_count: int | None,
    store,
    limits: ExtractionLimits,
) -> ExtractionResult:
    in_order = [
        item
        for item, _ in doc.iterate_items(included_content_layers=LAYERS, traverse_pictures=True)
        if isinstance(item, PictureItem)
    ]
    wanted = [_picture_key(item) for item in in_order if _picture_key(item) in sources]
    wanted += [key for key in sorted(sources) if key not in wanted]  # not reached by the walk: keep, at the end
    texts, found = _markdown_parts(doc)
    segments, order = build_segments(texts, found, wanted)
    segments = [_BLANK_RUNS.sub("\n\n", s) for s in segments]
    contexts = picture_contexts(segments, limits.context_chars)
    nearby_captions = figure_captions(segments)
    items = {_picture_key(item): item for item in doc.pictures}
    pictures = []
    for index, key in enumerate(order):
        source = sources[key]
        caption = items[key].caption_text(doc).strip() or nearby_captions[index] or source.alt
        stored = source.stored
        pictures.append(
            ExtractedPicture(
                index=index,
                sha256=store.put(stored.data),
                mime_type=stored.mime_type,
                width=stored.width,
                height=stored.height,
                size_bytes=len(stored.data),
                page=source.page,
                bbox=source.bbox,
                location=source.location,
                caption=" ".join(caption.split()),
                context=contexts[index],
            )
        )
    return ExtractionResult(format=fmt, segments=segments, pictures=pictures, page_count=page_count)


def _column_letters(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def _sheet_name(item: PictureItem, doc: DoclingDocument) -> str | None:
    """The XLSX backend puts each sheet's content under a top-level group named after the sheet."""
    node = item
    name = None
    while node.parent is not None:
        parent = node.parent.resolve(doc)
        if parent.self_ref == "#/body":
            break
        name = getattr(parent, "name", None) or name
        node = parent
    return name


def _position(item: PictureItem, fmt: str, doc: DoclingDocument) -> tuple[int | None, tuple | None, str | None]:
    if not item.prov:
        return None, None, None
    prov = item.prov[0]
    bbox = prov.bbox
    if fmt == "pptx":
        if bbox.coord_origin != CoordOrigin.TOPLEFT:
            page = doc.pages.get(prov.page_no)
            bbox = bbox.to_top_left_origin(page_height=page.size.height) if page else bbox
        box = tuple(round(v / EMU_PER_POINT, 2) for v in (bbox.l, bbox.t, bbox.r, bbox.b))
        return prov.page_no, box, f"slide {prov.page_no}"
    if fmt == "xlsx":
        # The box is in cells (0-based column and row of the anchor), not points.
        cell = f"{_column_letters(int(bbox.l))}{int(min(bbox.t, bbox.b)) + 1}"
        sheet = _sheet_name(item, doc)
        location = f"sheet {sheet}, cell {cell}" if sheet else f"sheet {prov.page_no}, cell {cell}"
        return prov.page_no, None, location
    return prov.page_no, None, None


def _sources_from_markers(
    doc: DoclingDocument,
    fmt: str,
    codec: MarkerCodec,
    original: Callable[[int], tuple[bytes, str | None]],
    limits: ExtractionLimits,
    name: str,
    alts: dict[str, str] | None = None,
) -> dict[int, _Source]:
    sources: dict[int, _Source] = {}
    cache: dict[int, StoredImage] = {}
    for item in doc.pictures:
        if item.content_layer not in LAYERS:
            continue
        pil = None
        if item.image is not None:
            try:
                pil = item.image.pil_image
            except Exception:  # an undecodable data URI: no picture
                pil = None
        if pil is None:
            continue  # docling could not load it (remote, missing, EMF without LibreOffice): nothing to store
        where = f"{name}, picture {_picture_key(item) + 1}"
        marker = codec.decode(pil)
        source_name = None
        if marker is not None:
            data, source_name = original(marker)
            if marker not in cache:  # one picture shown twice: one marker
                cache[marker] = storable(data, limits.max_picture_pixels, where)
            stored = cache[marker]
        else:
            # Rendered by docling itself (e.g. EMF via LibreOffice): only its pixels exist.
            stored = storable_pil(pil, limits.max_picture_pixels, where)
        page, bbox, location = _position(item, fmt, doc)
        alt = (alts or {}).get(source_name or "", "")
        sources[_picture_key(item)] = _Source(stored, page, bbox, location, alt)
    return sources


def extract(path: Path, fmt: str, store, limits: ExtractionLimits) -> ExtractionResult:
    name = path.name
    if fmt == "pdf":
        doc, sources, page_count = _extract_pdf(path, limits)
        return _assemble(doc, fmt, sources, page_count, store, limits)

    if fmt in ("docx", "pptx", "xlsx"):
        codec = MarkerCodec()
        workdir = Path(tempfile.mkdtemp(prefix="docsight-extract-"))
        try:
            surrogate, originals = _ooxml_with_markers(path, workdir, codec, limits.max_picture_pixels)
            doc = _convert(surrogate, fmt, name)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        sources = _sources_from_markers(doc, fmt, codec, lambda i: (originals[i], None), limits, name)
        page_count = len(doc.pages) if fmt in ("pptx", "xlsx") else None
        return _assemble(doc, fmt, sources, page_count, store, limits)

    session = _LoadSession(name, limits.max_picture_pixels)
    get_converter()  # installs the loader hook
    token = _load_session.set(session)
    try:
        doc = _convert(path, fmt, name)
    finally:
        _load_session.reset(token)
    if session.error is not None:
        raise session.error
    sources = _sources_from_markers(
        doc, fmt, session.codec, lambda i: session.originals[i], limits, name, _alt_texts(path, fmt)
    )
    return _assemble(doc, fmt, sources, None, store, limits)
