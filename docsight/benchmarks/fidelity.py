"""Scenario ``fidelity`` (issue 12): what bare docling reports against what docsight lists, document by document.

    docsight bench fidelity            # the generated corpus (every case of issue 12)
    docsight bench fidelity DIR        # any folder of documents (HTML/Markdown with their pictures beside them)

For each document, side by side:

- **bare docling**: ``DocumentConverter()`` with its defaults (for PDFs, whose default pipeline needs a
  layout model that cannot be downloaded here, the model-free native pipeline with picture images):
  the pictures it reports in the body and furniture, how many carry a bitmap, its markdown tables;
- **docsight**: ``extract_document`` with this machine's settings, then the same picture selection
  the ingest agent applies: every picture listed to be described (one call each), skipped or failed,
  each with its reason; for PDFs, whether every picture docling reports lies inside a listed figure;
  its markdown rendered with a description at each picture, and the tables a markdown parser finds in it.

Documents lost = documents docsight fails whole. Calls per figure = pictures sent for description
divided by the figures a reader sees, where ``corpus.json`` says how many there are (the generated
corpus does for its PDFs). No Gemini call is made: "to describe" counts the calls that would be.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .report import ScenarioResult, Target
from .runner import BenchOptions

NAME = "fidelity"
TITLE = "Fidelity: every picture docling reports, listed by docsight with a status and reason (issue 12)"
DOCUMENT_SUFFIXES = {".pdf", ".docx", ".pptx", ".xlsx", ".html", ".htm", ".md", ".markdown"}
MAX_PICTURES_PER_FIGURE = 1.25


@dataclass
class DoclingSide:
    status: str = ""
    pipeline: str = "defaults"
    pictures: int = 0
    with_bitmap: int = 0
    boxes: list[tuple[int, tuple[float, float, float, float]]] = field(default_factory=list)  # PDF: page, l t r b
    tables: list[int] = field(default_factory=list)  # rows of each markdown table
    seconds: float = 0.0


@dataclass
class DocsightSide:
    lost: str = ""  # the failure reason when the document failed whole
    listed: int = 0
    outcomes: Counter = field(default_factory=Counter)  # "to describe" | "skipped: reason" | "failed: reason"
    covered: int | None = None  # PDF: docling's pictures inside a listed figure
    tables: list[int] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def calls(self) -> int:
        return self.outcomes.get("to describe", 0)


def markdown_tables(markdown: str) -> list[int]:
    """The number of rows of each table a markdown parser (markdown-it, with tables) finds."""
    from markdown_it import MarkdownIt

    rows, counts = 0, []
    for token in MarkdownIt("commonmark").enable("table").parse(markdown):
        if token.type == "table_open":
            rows = 0
        elif token.type == "tr_open":
            rows += 1
        elif token.type == "table_close":
            counts.append(rows)
    return counts


def documents_in(folder: Path) -> list[Path]:
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in DOCUMENT_SUFFIXES)


# --- bare docling -----------------------------------------------------------------------------


def _bare_converters():
    from docling.datamodel.base_models import InputFormat
    from docling.datamodel.pipeline_options import NativePdfPipelineOptions
    from docling.document_converter import DocumentConverter, NativePdfFormatOption

    native = DocumentConverter(allowed_formats=[InputFormat.PDF], format_options={
        InputFormat.PDF: NativePdfFormatOption(pipeline_options=NativePdfPipelineOptions(
            generate_page_images=False, generate_picture_images=True))})
    return DocumentConverter(), native


def bare_docling(path: Path, converters) -> DoclingSide:
    from docling.datamodel.base_models import ConversionStatus
    from docling_core.types.doc import ContentLayer, CoordOrigin

    default, native = converters
    side = DoclingSide()
    started = time.monotonic()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            result = default.convert(path, raises_on_error=False)
            ok = result.status in (ConversionStatus.SUCCESS, ConversionStatus.PARTIAL_SUCCESS)
        except Exception as error:  # noqa: BLE001 - the default PDF pipeline raises without its model
            result, ok = None, False
            side.status = f"{type(error).__name__}"
        if not ok and path.suffix.lower() == ".pdf":
            side.pipeline = "native (the default needs the layout model)"
            result = native.convert(path, raises_on_error=False)
            ok = result.status in (ConversionStatus.SUCCESS, ConversionStatus.PARTIAL_SUCCESS)
    side.seconds = time.monotonic() - started
    if result is None or not ok:
        side.status = side.status or (result.status.value if result is not None else "failed")
        return side
    side.status = result.status.value
    document = result.document
    layers = (ContentLayer.BODY, ContentLayer.FURNITURE)
    for picture in document.pictures:
        if picture.content_layer not in layers:
            continue
        side.pictures += 1
        side.with_bitmap += picture.image is not None
        if picture.prov:
            prov = picture.prov[0]
            page = document.pages.get(prov.page_no)
            box = prov.bbox
            if page is not None and box.coord_origin != CoordOrigin.TOPLEFT:
                box = box.to_top_left_origin(page_height=page.size.height)
            side.boxes.append((prov.page_no, (box.l, box.t, box.r, box.b)))
    side.tables = markdown_tables(document.export_to_markdown())
    return side


# --- docsight ---------------------------------------------------------------------------------


def _covered(boxes: list[tuple[int, tuple]], pictures) -> int:
    """docling's pictures that lie (80% or more) inside a picture docsight lists on the same page."""
    from docsight.extraction.figures import overlap_fraction
    from docsight.extraction.layout import Box

    def box(ltrb) -> Box:  # top-left origin: flip to keep t > b
        l, t, r, b = ltrb
        return Box(l, -b, r, -t)

    listed = [(p.page, box(p.bbox)) for p in pictures if p.bbox is not None]
    return sum(1 for page, ltrb in boxes
               if any(page == other_page and overlap_fraction(box(ltrb), other) >= 0.8 for other_page, other in listed))


def docsight(path: Path, store, limits, policy) -> tuple[DocsightSide, object]:
    from docsight.cost import PictureFacts, select_pictures
    from docsight.extraction import ExtractionError, extract_document
    from docsight.tables.rendering import render_markdown

    side = DocsightSide()
    started = time.monotonic()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = extract_document(path, None, store, limits)
    except ExtractionError as error:
        side.lost = f"{error.reason}: {error}"
        side.seconds = time.monotonic() - started
        return side, None
    side.seconds = time.monotonic() - started
    side.listed = len(result.pictures)
    pending = [p for p in result.pictures if not p.status]
    decisions = select_pictures([PictureFacts(p.index, p.width, p.height, p.size_bytes) for p in pending],
                                result.format, policy)
    outcome: dict[int, dict] = {}
    for picture in result.pictures:
        if picture.status:
            side.outcomes[f"{picture.status}: {picture.reason}"] += 1
            outcome[picture.index] = {"status": picture.status, "reason": picture.reason}
    for picture, decision in zip(pending, decisions):
        if decision.describe:
            side.outcomes["to describe"] += 1
            outcome[picture.index] = {"status": "described", "description": f"Description of picture {picture.index}."}
        else:
            side.outcomes[f"skipped: {decision.reason}"] += 1
            outcome[picture.index] = {"status": "skipped", "reason": str(decision.reason)}
    manifest = [{"index": p.index, "location": p.location, "note": p.note} for p in result.pictures]
    markdown = render_markdown(result.segments, manifest, {str(k): v for k, v in outcome.items()})
    side.tables = markdown_tables(markdown)
    return side, result


# --- the scenario -----------------------------------------------------------------------------


def run(options: BenchOptions) -> ScenarioResult:
    from docsight.config import get_settings
    from docsight.cost import FilterPolicy
    from docsight.extraction import ExtractionLimits
    from docsight.storage import BlobStore

    from .fidelity_corpus import MANIFEST, build_corpus

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    workdir = options.scenario_dir(NAME)
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    if options.folder is None:
        options.progress(f"{NAME}: generating the corpus")
        build_corpus(workdir / "corpus")
        folder = workdir / "corpus" / "documents"
    else:
        folder = Path(options.folder)
        if not folder.is_dir():
            raise ValueError(f"{folder} is not a folder of documents")
    manifest_path = folder / MANIFEST
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    settings = get_settings()
    limits = ExtractionLimits.from_settings(settings)
    # every format described, as in issue 12's measurement (the default describes PDF and DOCX only)
    policy = dataclasses.replace(FilterPolicy.from_settings(settings),
                                 enabled_formats=frozenset({"pdf", "docx", "pptx", "xlsx", "html", "md"}))
    store = BlobStore(workdir / "store")
    converters = _bare_converters()
    # docsight points docling at its own LibreOffice setting (DOCLING_LIBREOFFICE_CMD, process-wide):
    # bare docling gets the environment it started with before each of its conversions
    bare_libreoffice = os.environ.get("DOCLING_LIBREOFFICE_CMD")
    rows = []
    for path in documents_in(folder):
        options.progress(f"{NAME}: {path.name}")
        if bare_libreoffice is None:
            os.environ.pop("DOCLING_LIBREOFFICE_CMD", None)
        else:
            os.environ["DOCLING_LIBREOFFICE_CMD"] = bare_libreoffice
        bare = bare_docling(path, converters)
        ours, result = docsight(path, store, limits, policy)
        if result is not None and result.format == "pdf":
            ours.covered = _covered(bare.boxes, result.pictures)
        rows.append((path, bare, ours, manifest.get(path.name, {})))
    return _result(rows, folder, options.folder is None)


def _result(rows, folder: Path, generated: bool) -> ScenarioResult:
    result = ScenarioResult(NAME, TITLE)
    summary = result.table(f"{len(rows)} documents in {folder.name if not generated else 'the generated corpus'}")
    reported = sum(bare.pictures for _, bare, _, _ in rows)
    lost = [path.name for path, _, ours, _ in rows if ours.lost]
    accounted = 0
    for path, bare, ours, _ in rows:
        if ours.lost:
            continue
        accounted += min(bare.pictures, ours.covered if ours.covered is not None else ours.listed)
    summary.add("documents lost (docsight fails them whole)", len(lost), "", None, Target("==", 0, of="value"))
    summary.add("pictures docling reports (body and furniture)", reported, "")
    summary.add("of those, listed by docsight with status and reason", accounted, "", reported or None,
                Target(">=", 1.0))
    valid = sum(1 for _, bare, ours, _ in rows if not ours.lost and ours.tables == bare.tables)
    summary.add("documents whose markdown tables a parser reads as docling's", valid, "",
                sum(1 for _, _, ours, _ in rows if not ours.lost), Target(">=", 1.0))
    figures = sum(meta.get("figures", 0) for path, _, ours, meta in rows if path.suffix.lower() == ".pdf")
    if figures:
        calls = sum(ours.calls for path, _, ours, meta in rows if path.suffix.lower() == ".pdf" and "figures" in meta)
        bare_calls = sum(bare.with_bitmap for path, bare, _, meta in rows
                         if path.suffix.lower() == ".pdf" and "figures" in meta)
        summary.add("PDF: pictures sent per figure (docsight)", calls / figures, "", 1.0,
                    Target("<=", MAX_PICTURES_PER_FIGURE))
        summary.add("PDF: pictures per figure, bare docling (one per bitmap)", bare_calls / figures, "", 1.0)
    per_document = result.table("per document: bare docling | docsight")
    for path, bare, ours, meta in rows:
        label = path.name
        per_document.add(f"{label}: docling pictures (with a bitmap: {bare.with_bitmap})", bare.pictures, "")
        if ours.lost:
            per_document.add(f"{label}: docsight LOST the document ({ours.lost[:80]})", 0, "", bare.pictures or None,
                             Target(">=", 1.0))
            continue
        if ours.covered is not None:
            per_document.add(f"{label}: docsight figures listed (covering docling's pictures: {ours.covered})",
                             ours.listed, "")
            per_document.add(f"{label}: docling pictures inside a listed figure", ours.covered, "",
                             bare.pictures or None, Target(">=", 1.0))
        else:
            per_document.add(f"{label}: docsight listed", ours.listed, "", bare.pictures or None, Target(">=", 1.0))
        for outcome, count in sorted(ours.outcomes.items()):
            per_document.add(f"{label}:   {outcome}", count, "")
        if meta.get("figures"):
            per_document.add(f"{label}: pictures sent per figure ({meta['figures']} figures)",
                             ours.calls / meta["figures"], "", 1.0, Target("<=", MAX_PICTURES_PER_FIGURE))
        if bare.tables or ours.tables:
            per_document.add(f"{label}: tables read back with docling's rows ({bare.tables})",
                             int(ours.tables == bare.tables), "", 1, Target("==", 1, of="value"))
    for path, bare, ours, meta in rows:
        side = (f"{path.name}: docling [{bare.pipeline}] {bare.status}, {bare.pictures} pictures "
                f"({bare.with_bitmap} with a bitmap), {bare.seconds:.1f} s | docsight ")
        if ours.lost:
            side += f"LOST: {ours.lost}"
        else:
            side += (f"{ours.listed} listed: " + ", ".join(f"{n} {o}" for o, n in sorted(ours.outcomes.items()))
                     + f", {ours.seconds:.1f} s")
        result.notes.append(side)
    result.notes += [
        "bare docling = DocumentConverter() defaults; its PDF default needs the layout model, which cannot be "
        "downloaded here, so PDFs are converted with its model-free native pipeline with picture images",
        "docsight = extract_document with this machine's settings (LibreOffice: DOCSIGHT_LIBREOFFICE) and the ingest "
        "agent's picture selection with every format enabled; 'to describe' = the Gemini calls that would be made",
        "for PDFs docsight lists figures, not bitmaps: a docling picture counts as listed when it lies inside one",
        "tables: the row counts of every table markdown-it finds in docling's markdown and in docsight's rendered "
        "markdown (with a description at each picture) must be the same",
    ]
    result.data = {"documents": [{"file": path.name, "docling": bare.__dict__,
                                  "docsight": {**ours.__dict__, "outcomes": dict(ours.outcomes)}, "corpus": meta}
                                 for path, bare, ours, meta in rows]}
    return result
