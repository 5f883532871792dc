"""Everything that touches docling: the converter, the per-format picture sources, the assembly.

Imported lazily (docling takes seconds to import) and meant to run inside the
extraction worker processes.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before docling or huggingface_hub are imported

import contextvars
import dataclasses
import html
import io
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
from docling.datamodel.backend_options import (
    HTMLBackendOptions,
    MarkdownBackendOptions,
    MsExcelBackendOptions,
    MsPowerpointBackendOptions,
    MsWordBackendOptions,
)
from docling.datamodel.base_models import ConversionStatus, InputFormat
from docling.datamodel.pipeline_options import NativePdfPipelineOptions
from docling.document_converter import (
    DocumentConverter,
    ExcelFormatOption,
    HTMLFormatOption,
    MarkdownFormatOption,
    NativePdfFormatOption,
    PowerpointFormatOption,
    WordFormatOption,
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
    ImageRef,
    PictureItem,
    ProvenanceItem,
    TextItem,
)
from PIL import Image

from . import pdf as pdf_images
from . import pipelines
from . import remote as remote_pictures
from .errors import ExtractionError
from .formats import check_archive_size
from .images import MarkerCodec, StoredImage, check_pixels, inspect_image, is_invisible_spacer, storable, storable_pil
from .figures import Figure, lines_outside, overlap_fraction, page_figures
from .layout import Box, Line, body_line_height, heading_levels, interleave, match_boxes, merge_lines
from .models import ExtractedPicture, ExtractionLimits, ExtractionResult
from .render import RenderError, libreoffice_command, render_pngs, svg_is_self_contained, vector_kind
from .text import (
    NOTE_NOT_FOUND,
    Placement,
    PictureTokens,
    build_segments,
    figure_captions,
    picture_contexts,
    place_tokens,
    resolve_references,
)

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

_converters: dict[ConverterOptions, DocumentConverter] = {}
_converter_lock = threading.Lock()


@dataclass(frozen=True)
class ConverterOptions:
    """What the docling converter depends on: LibreOffice for charts, the PDF pipeline."""

    render_charts: bool = False  # docling renders each native chart with LibreOffice
    pdf_pipeline: str = "native"  # native | standard | unavailable (standard asked for, its models missing)
    pdf_artifacts_path: str | None = None
    pdf_problem: str = ""  # why the standard pipeline cannot run, when it was asked for

    @classmethod
    def for_limits(cls, limits: ExtractionLimits) -> ConverterOptions:
        choice = pipelines.choose_pdf_pipeline(limits.pdf_pipeline, limits.pdf_artifacts_path)
        return cls(
            render_charts=libreoffice_command(limits.libreoffice) is not None,
            pdf_pipeline=choice.pipeline,
            pdf_artifacts_path=limits.pdf_artifacts_path if choice.pipeline == "standard" else None,
            pdf_problem=choice.problem,
        )


def build_converter(options: ConverterOptions = ConverterOptions()) -> DocumentConverter:
    charts = options.render_charts
    if options.pdf_pipeline == "standard":
        pdf_option = pipelines.standard_pdf_format_option(options.pdf_artifacts_path)
    else:
        pdf_option = NativePdfFormatOption(
            pipeline_options=NativePdfPipelineOptions(
                generate_page_images=False,
                # Bitmaps come from pypdfium2 (original bytes, 100x faster).
                generate_picture_images=False,
                # The pool gives the parallelism; more threads per process would oversubscribe.
                parser_threads=1,
            )
        )
    return DocumentConverter(
        allowed_formats=list(INPUT_FORMATS.values()),
        format_options={
            InputFormat.PDF: pdf_option,
            # Charts keep their data (a table in the markdown) either way; rendered, they can be described.
            InputFormat.DOCX: WordFormatOption(backend_options=MsWordBackendOptions(render_chart_images=charts)),
            InputFormat.PPTX: PowerpointFormatOption(
                backend_options=MsPowerpointBackendOptions(render_chart_images=charts)
            ),
            InputFormat.XLSX: ExcelFormatOption(backend_options=MsExcelBackendOptions(render_chart_images=charts)),
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


def get_converter(options: ConverterOptions = ConverterOptions()) -> DocumentConverter:
    with _converter_lock:
        _install_loader_hook()
        if options not in _converters:
            _converters[options] = build_converter(options)
        return _converters[options]


def warm_up(limits: ExtractionLimits | None = None) -> None:
    """Build the converter and every format's pipeline now, so the first document is not slow."""
    options = ConverterOptions.for_limits(limits or ExtractionLimits())
    if options.pdf_problem:
        _log.error("PDF documents will fail: %s", options.pdf_problem)
    converter = get_converter(options)
    for fmt in INPUT_FORMATS.values():
        try:
            converter.initialize_pipeline(fmt)
        except Exception as exc:  # noqa: BLE001 - the documents of that format fail with the reason; the rest work
            _log.error("docling's %s pipeline cannot start: %s", fmt.value, exc)


def _use_libreoffice(limits: ExtractionLimits) -> str | None:
    """The LibreOffice executable, or None; docling is pointed at the same one (DOCLING_LIBREOFFICE_CMD).

    When it cannot be found docling still gets the setting, so that its attempts fail and the shapes
    it would have rendered are listed without a bitmap instead of vanishing.
    """
    command = libreoffice_command(limits.libreoffice)
    os.environ["DOCLING_LIBREOFFICE_CMD"] = command or limits.libreoffice or "soffice"
    return command


def _convert(path: Path, fmt: str, name: str, options: ConverterOptions = ConverterOptions()) -> DoclingDocument:
    try:
        result = get_converter(options).convert(path, raises_on_error=False)
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
# Markers: what docling sees in place of each picture, and what each stands for
# ----------------------------------------------------------------------------


@dataclass
class _Entry:
    """What a marker stands for: picture bytes, something to fetch or render first, or why there is nothing."""

    data: bytes | None = None
    source: str = ""  # archive member, URL or path: for notes and alt text
    url: str = ""  # a remote picture, fetched (or not) after the conversion
    vector: str | None = None  # "emf" | "wmf" | "svg": rendered with LibreOffice after the conversion
    status: str = ""  # "" while it may still get bytes; "skipped" | "failed" once decided
    reason: str = ""
    note: str = ""

    def decide(self, status: str, reason: str, note: str) -> None:
        self.data, self.vector, self.url = None, None, ""
        self.status, self.reason, self.note = status, reason, note


class _Markers:
    def __init__(self) -> None:
        self.codec = MarkerCodec()
        self.entries: list[_Entry] = []

    def add(self, entry: _Entry) -> bytes:
        self.entries.append(entry)
        return self.codec.encode(len(self.entries) - 1)

    def image_ref(self, entry: _Entry) -> ImageRef:
        with Image.open(io.BytesIO(self.add(entry))) as marker:
            marker.load()
            return ImageRef.from_pil(marker, dpi=72)


def _entry_for_bytes(data: bytes, source: str, name: str, pixel_cap: int) -> _Entry:
    """The entry for picture bytes found in a document: raster (checked for bombs), vector, or unknown."""
    kind = vector_kind(data)
    if kind is not None:
        return _Entry(data=data, source=source, vector=kind, note=f"{kind.upper()} picture")
    info = inspect_image(data)
    if info is None:
        entry = _Entry(source=source)
        entry.decide("skipped", "unsupported_picture_format",
                     f"{_short(source)}: not a picture format docsight can read")
        return entry
    check_pixels(info.width, info.height, pixel_cap, f"{name}, picture {_short(source)}")
    return _Entry(data=data, source=source)


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ----------------------------------------------------------------------------
# HTML and Markdown: every image docling asks for becomes a marker
# ----------------------------------------------------------------------------

_BLOCKED = "docsight-blocked:"


class _LoadSession:
    """One HTML/Markdown conversion: docling's image requests answered with markers."""

    def __init__(self, name: str, pixel_cap: int) -> None:
        self.name = name
        self.pixel_cap = pixel_cap
        self.markers = _Markers()
        self.blocked: list[tuple[str, str]] = []  # (source, why) for paths docling refused to resolve
        self.error: ExtractionError | None = None

    def block(self, source: str, why: str) -> str:
        self.blocked.append((source, why))
        return f"{_BLOCKED}{len(self.blocked) - 1}"

    def image_ref(self, loader: ImageResourceLoader, src: str, base_path, load_data: Callable) -> ImageRef | None:
        entry = _Entry(source=src)
        if src.startswith(_BLOCKED):
            source, why = self.blocked[int(src[len(_BLOCKED):])]
            entry = _Entry(source=source)
            entry.decide("skipped", "outside_document_folder", f"{_short(source)}: {why}")
        elif ImageResourceLoader.is_remote_url(src):
            entry = _Entry(source=src, url=src)
        else:
            shown = _relative_to_document(src, base_path)
            try:
                data = _read_local_svg(src) if src.lower().endswith(".svg") else load_data(loader, src, base_path)
            except Exception as exc:  # noqa: BLE001 - docling's loader raises several types; all mean "not there"
                reason = "undecodable_picture" if src.startswith("data:") else "missing_picture"
                entry.decide("skipped", reason, f"{_short(shown)}: {str(exc).rstrip('.')}")
            else:
                if not data:
                    entry.decide("skipped", "missing_picture", f"{_short(shown)}: empty")
                else:
                    try:
                        entry = _entry_for_bytes(data, src, self.name, self.pixel_cap)
                    except ExtractionError as exc:
                        # Raised after the conversion: docling would swallow it here.
                        self.error = self.error or exc
                        return None
        return self.markers.image_ref(entry)


def _relative_to_document(src: str, base_path) -> str:
    """A local picture's path as the document names it (not the worker's absolute path)."""
    if src.startswith("data:"):
        return "inline data: picture"
    try:
        return str(Path(src).relative_to(Path(str(base_path)).parent.resolve()))
    except (ValueError, TypeError):
        return src


def _read_local_svg(src: str) -> bytes:
    """docling skips SVG files; docsight renders them (the path is already confined to the document's folder)."""
    path = Path(src[len("file://"):] if src.startswith("file://") else src)
    if not path.is_file():
        raise ValueError("file does not exist or is not readable")
    return path.read_bytes()


_load_session: contextvars.ContextVar[_LoadSession | None] = contextvars.ContextVar("_load_session", default=None)
_hook_installed = False


def _install_loader_hook() -> None:
    """Wrap docling's image loading for HTML and Markdown (ImageResourceLoader).

    Inactive (a pass-through) unless an extraction in this thread has opened a
    session, so other docling users in the process are unaffected. With a session,
    every image docling asks for (local, remote, inline, blocked) becomes a marker
    whose entry says what it is; docling's confinement of local paths to the
    document's folder still decides which paths are blocked.
    """
    global _hook_installed
    if _hook_installed:
        return
    original_load_data: Callable = ImageResourceLoader.load_image_data
    original_resolve: Callable = ImageResourceLoader.resolve_relative_path
    original_create: Callable = ImageResourceLoader.create_image_ref

    def resolve_relative_path(self, loc, base_path):
        try:
            return original_resolve(self, loc, base_path)
        except ValueError as exc:
            session = _load_session.get()
            if session is None:
                raise
            return session.block(loc, str(exc))

    def create_image_ref(self, src_url, base_path):
        session = _load_session.get()
        if session is None:
            return original_create(self, src_url, base_path)
        return session.image_ref(self, src_url, base_path, original_load_data)

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

    ImageResourceLoader.resolve_relative_path = resolve_relative_path
    ImageResourceLoader.create_image_ref = create_image_ref
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


VECTOR_EXTENSIONS = (".emf", ".wmf", ".svg")
_RELATIONSHIP = re.compile(rb"<Relationship\b[^>]*>")
_BLIP_TAG = re.compile(rb"<(?:\w+:)?blip\b[^>]*>")


def _ooxml_with_markers(
    path: Path, workdir: Path, markers: _Markers, pixel_cap: int
) -> Path:
    """A copy of the archive where every picture is a marker, vector pictures renamed .png, web links embedded."""
    target = workdir / f"document{path.suffix.lower()}"
    try:
        with zipfile.ZipFile(path) as src, zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as dst:
            # EMF/WMF/SVG parts become markers named .png: docling and openpyxl then treat them as the
            # pictures they are (openpyxl drops a WMF, docling would run LibreOffice once per picture).
            renamed = {name: name + ".png" for name in src.namelist()
                       if "/media/" in name and name.lower().endswith(VECTOR_EXTENSIONS)}
            linked: dict[str, bytes] = {}
            for info in src.infolist():
                if info.file_size > MAX_ARCHIVE_MEMBER_BYTES:
                    raise ExtractionError(
                        "decompression_bomb",
                        f"{path.name}: archive member {info.filename} expands to {info.file_size:,} bytes",
                    )
                data = src.read(info)
                member = info.filename
                if "/media/" in member:
                    data = _marker_for_media(data, member, path.name, markers, pixel_cap)
                    member = renamed.get(member, member)
                elif member.endswith(".rels"):
                    data = _rewrite_relationships(data, member, renamed, linked, markers)
                elif member == "[Content_Types].xml":
                    data = _with_png_type(data)
                elif member.endswith(".xml") and b":link=" in data:
                    data = _BLIP_TAG.sub(_embed_linked_blip, data)
                dst.writestr(zipfile.ZipInfo(member, date_time=info.date_time), data)
            for member, data in linked.items():
                dst.writestr(zipfile.ZipInfo(member, date_time=(1980, 1, 1, 0, 0, 0)), data)
    except (zipfile.BadZipFile, EOFError, zipfile.LargeZipFile) as exc:
        raise ExtractionError("corrupt", f"{path.name} is a damaged archive: {exc}") from None
    except (OSError, RuntimeError, NotImplementedError) as exc:  # e.g. encrypted members, bad CRC
        raise ExtractionError("corrupt", f"{path.name} cannot be read as an archive: {exc}") from None
    return target


def _marker_for_media(data: bytes, member: str, name: str, markers: _Markers, pixel_cap: int) -> bytes:
    kind = vector_kind(data)
    if kind is not None:
        return markers.add(_Entry(data=data, source=member, vector=kind, note=f"{kind.upper()} picture"))
    info = inspect_image(data)
    if info is None:
        return data  # not a picture (video, OLE object...): left to docling
    check_pixels(info.width, info.height, pixel_cap, f"{name}, {member}")
    if is_invisible_spacer(data, info):
        return data  # keep docling's spacer detection working
    return markers.add(_Entry(data=data, source=member))


def _attribute(tag: bytes, name: bytes) -> str | None:
    match = re.search(rb"\b" + name + rb'="([^"]*)"', tag)
    return html.unescape(match.group(1).decode("utf-8", "replace")) if match else None


def _rewrite_relationships(data: bytes, member: str, renamed: dict[str, str], linked: dict[str, bytes],
                           markers: _Markers) -> bytes:
    """Targets of renamed media follow them; a picture linked from outside becomes a marker part of its own."""
    folder = member.split("_rels/", 1)[0]  # the folder of the part these relationships belong to

    def rewrite(match: re.Match[bytes]) -> bytes:
        tag = match.group(0)
        target = _attribute(tag, b"Target") or ""
        if (_attribute(tag, b"TargetMode") or "").lower() == "external":
            if not (_attribute(tag, b"Type") or "").endswith("/image"):
                return tag
            part = f"docsight-linked-{len(linked)}.png"
            entry = _Entry(source=target)
            if ImageResourceLoader.is_remote_url(target):
                entry.url = target
            else:
                entry.decide("skipped", "missing_picture", f"linked file {_short(target)}: not inside the document")
            linked[folder + part] = markers.add(entry)
            tag = re.sub(rb'\s*TargetMode="[^"]*"', b"", tag)
            return re.sub(rb'Target="[^"]*"', b'Target="' + part.encode() + b'"', tag)
        for old, new in renamed.items():
            leaf = old.rsplit("/", 1)[1]
            if target.endswith("/" + leaf) or target == leaf:
                return tag.replace(f'"{target}"'.encode(), f'"{target}.png"'.encode())
        return tag

    return _RELATIONSHIP.sub(rewrite, data)


def _with_png_type(data: bytes) -> bytes:
    if re.search(rb'Extension="png"', data, re.IGNORECASE):
        return data
    return data.replace(b"<Default ", b'<Default Extension="png" ContentType="image/png"/><Default ', 1)


def _embed_linked_blip(match: re.Match[bytes]) -> bytes:
    """``<a:blip r:link=..>`` (a picture kept only as an address) read as embedded: docling then reports it."""
    tag = match.group(0)
    if re.search(rb"\b\w+:embed=", tag):
        return tag
    return re.sub(rb"\b(\w+):link=", rb"\1:embed=", tag, count=1)


# ----------------------------------------------------------------------------
# PDF: reading order and pictures from pypdfium2
# ----------------------------------------------------------------------------


def _bottom_left(prov: ProvenanceItem, page_height: float) -> Box:
    bbox = prov.bbox
    if bbox.coord_origin != CoordOrigin.BOTTOMLEFT:
        bbox = bbox.to_bottom_left_origin(page_height=page_height)
    return Box(bbox.l, bbox.b, bbox.r, bbox.t)


def _pdf_in_reading_order(
    doc: DoclingDocument, pages: list[pdf_images.PdfPage], outline: list[tuple[str, int, int]]
) -> tuple[DoclingDocument, dict[int, tuple[int, Figure]]]:
    """A new document: figures found on each page, lines merged into paragraphs, headings, all in reading order.

    docling's native pipeline reports each bitmap as a picture and never sees vector drawings;
    figures come from the page's image and path objects instead (see :mod:`.figures`), so that a
    figure cut into fragments is one picture. Returns, for each picture key, (page number, figure).
    """
    lines: dict[int, list[Line]] = {}
    docling_pictures: dict[int, list[Box]] = {}
    heights = {no: page.size.height for no, page in doc.pages.items()}
    for item, _ in doc.iterate_items(included_content_layers=LAYERS):
        if not item.prov:
            continue
        prov = item.prov[0]
        box = _bottom_left(prov, heights.get(prov.page_no, 0.0))
        if isinstance(item, PictureItem):
            docling_pictures.setdefault(prov.page_no, []).append(box)
        elif isinstance(item, TextItem) and item.text.strip():
            lines.setdefault(prov.page_no, []).append(Line(item.text, box))

    figures_by_page: dict[int, list[Figure]] = {}
    paragraphs_by_page: dict[int, list] = {}
    for page in pages:
        no = page.number
        bitmaps = [image.box for image in page.images]
        # a picture docling found that pdfium did not list (an inline image): rendered from the page
        matched = match_boxes(docling_pictures.get(no, []), bitmaps)
        bitmaps += [box for box, match in zip(docling_pictures.get(no, []), matched) if match is None]
        page_lines = lines.get(no, [])
        figures_by_page[no] = page_figures(bitmaps, page.paths, page_lines, page.box)
        paragraphs_by_page[no] = merge_lines(lines_outside(page_lines, figures_by_page[no]))
    body = body_line_height([line for page_lines in lines.values() for line in page_lines])
    headings = heading_levels(paragraphs_by_page, body, outline)

    ordered = DoclingDocument(name=doc.name, origin=doc.origin)
    for no in sorted(doc.pages):
        ordered.add_page(page_no=no, size=doc.pages[no].size)
    positions: dict[int, tuple[int, Figure]] = {}
    for no in sorted(set(paragraphs_by_page) | set(figures_by_page)):
        paragraphs = paragraphs_by_page.get(no, [])
        figures = figures_by_page.get(no, [])
        for kind, index in interleave(paragraphs, [figure.box for figure in figures]):
            box = paragraphs[index].box if kind == "text" else figures[index].box
            prov = ProvenanceItem(
                page_no=no,
                bbox=BoundingBox(l=box.l, t=box.t, r=box.r, b=box.b, coord_origin=CoordOrigin.BOTTOMLEFT),
                charspan=(0, len(paragraphs[index].text) if kind == "text" else 0),
            )
            if kind == "text" and (no, index) in headings:
                ordered.add_heading(text=paragraphs[index].text, level=headings[(no, index)], prov=prov)
            elif kind == "text":
                ordered.add_text(label=DocItemLabel.TEXT, text=paragraphs[index].text, prov=prov)
            else:
                ordered.add_picture(prov=prov)
                positions[len(ordered.pictures) - 1] = (no, figures[index])
    return ordered, positions


def _pdf_standard_figures(doc: DoclingDocument, pages: list[pdf_images.PdfPage]) -> dict[int, tuple[int, Figure]]:
    """docling's layout model already found the figures: one picture each (a lone bitmap keeps its bytes)."""
    positions: dict[int, tuple[int, Figure]] = {}
    heights = {no: page.size.height for no, page in doc.pages.items()}
    for item in doc.pictures:
        if item.content_layer not in LAYERS or not item.prov:
            continue
        no = item.prov[0].page_no
        box = _bottom_left(item.prov[0], heights.get(no, 0.0))
        images = pages[no - 1].images
        inside = [i for i, image in enumerate(images) if overlap_fraction(image.box, box) >= 0.8]
        single = len(inside) == 1 and match_boxes([box], [images[inside[0]].box], min_iou=0.9)[0] is not None
        positions[_picture_key(item)] = (no, Figure(box, bitmaps=inside if single else [], paths=0 if single else 1))
    return positions


@dataclass
class _Source:
    """One picture docling reports: its bytes, or (status, reason) saying why there are none."""

    stored: StoredImage | None
    page: int | None = None
    bbox: tuple[float, float, float, float] | None = None
    location: str | None = None
    alt: str = ""
    status: str = ""
    reason: str = ""
    note: str = ""
    kind: str = "picture"


def _extract_pdf(
    path: Path, limits: ExtractionLimits, options: ConverterOptions
) -> tuple[DoclingDocument, dict[int, _Source], int]:
    name = path.name
    pdf = pdf_images.open_pdf(path)
    try:
        pages = pdf_images.scan_pdf(pdf, name, limits.max_picture_pixels)
        converted = _convert(path, "pdf", name, options)
        if options.pdf_pipeline == "standard":
            doc, positions = converted, _pdf_standard_figures(converted, pages)
        else:
            doc, positions = _pdf_in_reading_order(converted, pages, pdf_images.outline(pdf))
        sources: dict[int, _Source] = {}
        for key, (no, figure) in positions.items():
            page = pages[no - 1]
            where = f"{name}, page {no}"
            if figure.single_bitmap and figure.bitmaps[0] < len(page.images):
                image = page.images[figure.bitmaps[0]]
                stored = pdf_images.image_bytes(pdf, no, image.index, limits.max_picture_pixels, where)
                note = ""
            else:
                # several fragments, or drawn with paths: one picture, cropped from the rendered page
                stored = pdf_images.render_region(pdf, no, figure.box, limits.max_picture_pixels, where)
                parts = [f"{len(figure.bitmaps)} bitmaps" if len(figure.bitmaps) > 1 else
                         ("a bitmap" if figure.bitmaps else ""), "vector drawing" if figure.paths else ""]
                note = "figure rendered from the page: " + " and ".join(p for p in parts if p)
            sources[key] = _Source(stored, no, figure.box.to_top_left(page.height), f"page {no}", note=note)
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


def _markdown_parts(doc: DoclingDocument) -> tuple[PictureTokens, Placement]:
    tokens = PictureTokens.new()
    serializer = MarkdownDocSerializer(
        doc=doc, picture_serializer=_TokenPictureSerializer(tokens), params=MarkdownParams(layers=LAYERS)
    )
    return tokens, place_tokens(serializer.serialize().text, tokens)


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
    tokens, placement = _markdown_parts(doc)
    segments, order = build_segments(placement.texts, placement.keys, wanted)
    segments = [_BLANK_RUNS.sub("\n\n", s) for s in resolve_references(segments, tokens, order)]
    contexts = picture_contexts(segments, limits.context_chars)
    nearby_captions = figure_captions(segments)
    items = {_picture_key(item): item for item in doc.pictures}
    found = set(placement.keys)
    pictures = []
    for index, key in enumerate(order):
        source = sources[key]
        caption = items[key].caption_text(doc).strip() or nearby_captions[index] or source.alt
        placed = NOTE_NOT_FOUND if key not in found else placement.notes.get(key, "")
        note = "; ".join(part for part in (source.note, placed) if part)
        stored = source.stored
        pictures.append(
            ExtractedPicture(
                index=index,
                sha256=store.put(stored.data) if stored else "",
                mime_type=stored.mime_type if stored else "",
                width=stored.width if stored else 0,
                height=stored.height if stored else 0,
                size_bytes=len(stored.data) if stored else 0,
                page=source.page,
                bbox=source.bbox,
                location=source.location,
                caption=" ".join(caption.split()),
                context=contexts[index],
                status="" if stored else (source.status or "skipped"),
                reason="" if stored else (source.reason or "no_bitmap"),
                note=note,
                kind=source.kind,
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


def _is_chart(item: PictureItem) -> bool:
    meta = item.meta
    if meta is not None and getattr(meta, "tabular_chart", None) is not None:
        return True
    classification = getattr(meta, "classification", None) if meta is not None else None
    predictions = getattr(classification, "predictions", None) or []
    return bool(predictions) and "chart" in str(getattr(predictions[0], "class_name", "")).lower()


def _fetch_remote(entries: list[_Entry], limits: ExtractionLimits, name: str) -> None:
    """Remote pictures: fetched under the policy (opt-in, allowlist, caps), else listed as remote_picture."""
    policy = limits.remote
    attempts = 0
    for entry in entries:
        if not entry.url or entry.status:
            continue
        url = entry.url
        try:
            if attempts >= policy.max_pictures and policy.enabled:
                raise remote_pictures.RemoteNotAllowed(
                    f"more than {policy.max_pictures} remote pictures in the document: the rest are not fetched")
            remote_pictures.check_url(url, policy)
            attempts += 1
            data = remote_pictures.fetch(url, policy)
        except remote_pictures.RemoteNotAllowed as refusal:
            entry.decide("skipped", "remote_picture", f"{_short(url)} ({refusal})")
            continue
        except remote_pictures.RemoteRefused as refusal:
            entry.decide("failed", "remote_fetch_failed", f"{_short(url)}: {refusal}")
            continue
        try:
            fetched = _entry_for_bytes(data, url, name, limits.max_picture_pixels)
        except ExtractionError as error:  # a remote bomb fails the picture, not the document
            entry.decide("failed", "remote_fetch_failed", f"{_short(url)}: {error}")
            continue
        entry.url = ""
        entry.data, entry.vector = fetched.data, fetched.vector
        entry.status, entry.reason = fetched.status, fetched.reason
        entry.note = "; ".join(part for part in (f"fetched from {_short(url)}", fetched.note) if part)


def _render_vectors(entries: list[_Entry], limits: ExtractionLimits) -> None:
    """EMF/WMF/SVG pictures to PNG in one LibreOffice run, or listed with the reason they were not."""
    pending = [entry for entry in entries if entry.vector and not entry.status]
    if not pending:
        return
    command = libreoffice_command(limits.libreoffice)
    todo: dict[str, tuple[bytes, str]] = {}
    for number, entry in enumerate(pending):
        kind = entry.vector.upper()
        if command is None:
            entry.decide("skipped", "unsupported_picture_format",
                         f"{kind} picture: LibreOffice ({limits.libreoffice}) is not available to render it")
        elif entry.vector == "svg" and not svg_is_self_contained(entry.data or b""):
            entry.decide("skipped", "unsupported_picture_format", "SVG picture that loads other files: not rendered")
        else:
            todo[str(number)] = (entry.data or b"", entry.vector)
    if not todo:
        return
    try:
        rendered = render_pngs(todo, command, limits.libreoffice_timeout_seconds)
    except RenderError as error:
        for key in todo:
            pending[int(key)].decide("failed", "render_failed", f"{pending[int(key)].vector.upper()} picture: {error}")
        return
    for key in todo:
        entry = pending[int(key)]
        kind = entry.vector.upper()
        if key in rendered:
            entry.data, entry.vector = rendered[key], None
            entry.note = f"{kind} picture, rendered by LibreOffice"
        else:
            entry.decide("failed", "render_failed", f"{kind} picture: LibreOffice could not render it")


def _stored_entry(entry: _Entry, limits: ExtractionLimits, where: str) -> StoredImage | None:
    if entry.status or entry.data is None:
        return None
    try:
        return storable(entry.data, limits.max_picture_pixels, where)
    except (ValueError, OSError, SyntaxError) as error:  # damaged bytes: this picture fails, not the document
        entry.decide("failed", "undecodable_picture", f"{_short(entry.source)}: {error}")
        return None


def _sources_from_markers(
    doc: DoclingDocument,
    fmt: str,
    markers: _Markers,
    limits: ExtractionLimits,
    name: str,
    alts: dict[str, str] | None = None,
    chart_note: str = "",
) -> dict[int, _Source]:
    """A source for every picture docling reports: marker pictures resolved, the rest rendered or explained."""
    found: list[tuple[PictureItem, object, int | None]] = []
    for item in doc.pictures:
        if item.content_layer not in LAYERS:
            continue
        pil = None
        if item.image is not None:
            try:
                pil = item.image.pil_image
            except Exception:  # an undecodable data URI: no picture
                pil = None
        found.append((item, pil, markers.codec.decode(pil) if pil is not None else None))
    used = sorted({marker for _, _, marker in found if marker is not None})
    entries = [markers.entries[marker] for marker in used]
    _fetch_remote(entries, limits, name)
    _render_vectors(entries, limits)
    cache: dict[int, StoredImage | None] = {}
    sources: dict[int, _Source] = {}
    for item, pil, marker in found:
        where = f"{name}, picture {_picture_key(item) + 1}"
        page, bbox, location = _position(item, fmt, doc)
        kind = "chart" if _is_chart(item) else "picture"
        if marker is not None:
            entry = markers.entries[marker]
            if marker not in cache:  # one picture shown twice: one marker
                cache[marker] = _stored_entry(entry, limits, where)
            alt = (alts or {}).get(entry.source, "")
            source = _Source(cache[marker], page, bbox, location, alt, entry.status, entry.reason, entry.note, kind)
        elif pil is not None:
            # Rendered by docling itself (a chart or a DrawingML shape, through LibreOffice): only its pixels exist.
            stored = storable_pil(pil, limits.max_picture_pixels, where)
            note = "chart, rendered by LibreOffice" if kind == "chart" else (
                "a drawing, rendered by LibreOffice" if fmt in ("docx", "pptx", "xlsx") else "")
            source = _Source(stored, page, bbox, location, note=note, kind=kind)
        elif kind == "chart":
            source = _Source(None, page, bbox, location, status="skipped", reason="no_bitmap", kind=kind,
                             note=chart_note or CHART_NOT_RENDERED)
        else:
            source = _Source(None, page, bbox, location, status="skipped", reason="no_bitmap",
                             note=_no_bitmap_note(fmt))
        sources[_picture_key(item)] = source
    return sources


CHART_NOT_RENDERED = "a chart: its data follows as a table; LibreOffice was not available to render it for a description"
# docling renders each chart and each DrawingML shape with a LibreOffice run of its own (2-4 s): past these,
# a document would spend minutes there (and could hit its deadline), so the rest are listed unrendered
MAX_RENDERED_CHARTS = 12
MAX_RENDERED_DRAWINGS = 12
_CHART_PART = re.compile(r"/charts/chart\d+\.xml$")
_DRAWING_TAGS = (b"<wps:wsp", b"<wpg:wgp", b"<dgm:relIds")
_NO_LIBREOFFICE = "docsight-libreoffice-not-used-for-this-document"


def _rendering_budget(path: Path, fmt: str, limits: ExtractionLimits, options: ConverterOptions
                      ) -> tuple[ConverterOptions, str]:
    """Turn docling's chart and shape rendering off for a document with too many; the note for its charts."""
    chart_note = CHART_NOT_RENDERED
    try:
        with zipfile.ZipFile(path) as archive:
            charts = sum(1 for member in archive.namelist() if _CHART_PART.search(member))
            main = "word/document.xml" if fmt == "docx" else None
            info = archive.getinfo(main) if main and main in archive.namelist() else None
            xml = archive.read(info) if info is not None and info.file_size <= MAX_ARCHIVE_MEMBER_BYTES else b""
    except (zipfile.BadZipFile, OSError, EOFError, KeyError, RuntimeError, NotImplementedError):
        return options, chart_note  # the conversion reports the damage
    if options.render_charts and charts > MAX_RENDERED_CHARTS:
        options = dataclasses.replace(options, render_charts=False)
        chart_note = (f"a chart: its data follows as a table; not rendered ({charts} charts in the document, "
                      f"more than {MAX_RENDERED_CHARTS})")
    drawings = sum(xml.count(tag) for tag in _DRAWING_TAGS)
    if drawings > MAX_RENDERED_DRAWINGS:
        os.environ["DOCLING_LIBREOFFICE_CMD"] = _NO_LIBREOFFICE  # docling's attempts fail at once
    return options, chart_note


def _no_bitmap_note(fmt: str) -> str:
    if fmt in ("docx", "pptx", "xlsx"):
        return "a drawing or frame without picture data (a shape LibreOffice did not render, an empty frame)"
    return "a picture element without a source"


def extract(path: Path, fmt: str, store, limits: ExtractionLimits) -> ExtractionResult:
    name = path.name
    options = ConverterOptions.for_limits(limits)
    if fmt == "pdf":
        if options.pdf_pipeline == "unavailable":
            raise ExtractionError("conversion_failed", f"{name}: {options.pdf_problem}")
        doc, sources, page_count = _extract_pdf(path, limits, options)
        return _assemble(doc, fmt, sources, page_count, store, limits)

    _use_libreoffice(limits)
    if fmt in ("docx", "pptx", "xlsx"):
        check_archive_size(path, limits.max_archive_bytes)  # before a byte is decompressed
        options, chart_note = _rendering_budget(path, fmt, limits, options)
        markers = _Markers()
        workdir = Path(tempfile.mkdtemp(prefix="docsight-extract-"))
        try:
            surrogate = _ooxml_with_markers(path, workdir, markers, limits.max_picture_pixels)
            doc = _convert(surrogate, fmt, name, options)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        sources = _sources_from_markers(doc, fmt, markers, limits, name, chart_note=chart_note)
        page_count = len(doc.pages) if fmt in ("pptx", "xlsx") else None
        return _assemble(doc, fmt, sources, page_count, store, limits)

    session = _LoadSession(name, limits.max_picture_pixels)
    get_converter(options)  # installs the loader hook
    token = _load_session.set(session)
    try:
        doc = _convert(path, fmt, name, options)
    finally:
        _load_session.reset(token)
    if session.error is not None:
        raise session.error
    sources = _sources_from_markers(doc, fmt, session.markers, limits, name, _alt_texts(path, fmt))
    return _assemble(doc, fmt, sources, None, store, limits)
