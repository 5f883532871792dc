"""Real docling on the sample documents: pictures, bytes, positions, captions, context, reading order."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest
from PIL import Image

from docsight.extraction import ExtractionLimits, ExtractionResult, extract_document
from docsight.extraction.text import PICTURE_MARK
from docsight.storage import BlobStore

SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "documents"
IMAGES = SAMPLES / "images"
LIMITS = ExtractionLimits()

EXPECTED_COUNTS = {
    "annual_report.pdf": 5,
    "product_brief.docx": 4,
    "quarterly_review.pptx": 4,
    "sales_data.xlsx": 3,
    "field_notes.html": 4,
    "team_update.md": 3,
    "memo_no_pictures.docx": 0,
}


def sha_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


LOGO_SHA = sha_of(IMAGES / "logo.jpg")


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> BlobStore:
    return BlobStore(tmp_path_factory.mktemp("blobs"))


@pytest.fixture(scope="module")
def results(store) -> dict[str, ExtractionResult]:
    return {name: extract_document(SAMPLES / name, None, store, LIMITS) for name in EXPECTED_COUNTS}


def body(result: ExtractionResult) -> str:
    return "".join(result.segments)


@pytest.mark.parametrize("name", sorted(EXPECTED_COUNTS))
def test_every_sample_has_its_pictures_with_their_bytes_in_the_store(results, store, name):
    result = results[name]
    assert result.format == name.rsplit(".", 1)[1]
    assert len(result.pictures) == EXPECTED_COUNTS[name]
    assert len(result.segments) == len(result.pictures) + 1
    assert [p.index for p in result.pictures] == list(range(len(result.pictures)))
    for picture in result.pictures:
        data = store.get(picture.sha256)
        assert hashlib.sha256(data).hexdigest() == picture.sha256
        assert len(data) == picture.size_bytes
        with Image.open(io.BytesIO(data)) as img:
            assert (img.width, img.height) == (picture.width, picture.height)
            assert picture.mime_type == {"JPEG": "image/jpeg", "PNG": "image/png"}[img.format]
        assert PICTURE_MARK in picture.context
        assert 0 < len(picture.context) <= LIMITS.context_chars
        assert "  " not in picture.context and "\n" not in picture.context


def test_the_same_logo_bytes_come_out_of_every_format(results):
    for name, count in EXPECTED_COUNTS.items():
        if count:
            assert results[name].pictures[0].sha256 == LOGO_SHA, name
            assert results[name].pictures[0].mime_type == "image/jpeg"


def test_a_document_without_pictures_is_one_segment(results):
    result = results["memo_no_pictures.docx"]
    assert result.pictures == []
    assert len(result.segments) == 1
    assert "Memo: office move" in result.segments[0]
    assert "Parking permits" in result.segments[0]


def test_pdf_pictures_are_back_in_reading_order_with_original_jpeg_bytes(results):
    result = results["annual_report.pdf"]
    assert result.page_count == 3
    pics = result.pictures
    assert [p.page for p in pics] == [1, 1, 2, 3, 3]
    assert [p.location for p in pics] == ["page 1", "page 1", "page 2", "page 3", "page 3"]
    assert [p.mime_type for p in pics] == ["image/jpeg", "image/png", "image/jpeg", "image/png", "image/png"]
    assert (pics[2].width, pics[2].height) == (1600, 1200)
    assert [p.caption for p in pics] == [
        "",
        "Figure 1: Revenue by region in 2023.",
        "Figure 2: The northern lake field site at dawn.",
        "Figure 3: The four stages of the calibration pipeline.",
        "Figure 4: Monthly shipments of the two product lines.",
    ]
    # The logo sits above the title: nothing comes before it.
    assert result.segments[0].strip() == ""
    assert "Annual Report 2023" in result.segments[1]
    # The chart is between the revenue paragraph and its caption, not at the end of the page.
    assert "largest channel" in result.segments[1]
    assert result.segments[2].lstrip().startswith("Figure 1:")
    # Two pictures on page 3, each before its own caption.
    assert result.segments[4].lstrip().startswith("Figure 3:")
    assert "Shipments of both product lines" in result.segments[4]
    assert result.segments[5].lstrip().startswith("Figure 4:")
    # Lines are merged into paragraphs.
    assert "opened a second calibration laboratory and moved our data platform" in body(result)
    # Boxes: top-left origin, in points (the logo: 120x48 pt at the page's top margin).
    left, top, right, bottom = pics[0].bbox
    assert (left, right) == (56.0, 176.0)
    assert top == pytest.approx(56.0, abs=0.1) and bottom == pytest.approx(104.0, abs=0.1)
    assert pics[4].bbox[1] > pics[3].bbox[3]  # the second picture on page 3 is below the first
    # Context: the text around the chart, before and after.
    before, after = pics[1].context.split(PICTURE_MARK)
    assert "Revenue grew in every region" in before
    assert "Figure 1: Revenue by region" in after


def test_docx_captions_come_from_the_figure_lines(results):
    result = results["product_brief.docx"]
    assert result.page_count is None
    assert [p.caption for p in result.pictures] == [
        "",
        "Figure 1: Revenue by region in 2023.",
        "Figure 2: A LakeSense buoy on the northern lake.",
        "Figure 3: The calibration pipeline.",
    ]
    assert all(p.page is None and p.bbox is None for p in result.pictures)
    assert result.pictures[2].sha256 == sha_of(IMAGES / "lake_photo.jpg")
    assert "Product brief" in result.segments[1]  # the logo comes first
    assert "In the field" in result.segments[2]


def test_pptx_pictures_have_slide_and_box_in_points(results):
    result = results["quarterly_review.pptx"]
    assert result.page_count == 3
    pics = result.pictures
    assert [p.page for p in pics] == [1, 2, 3, 3]
    assert [p.location for p in pics] == ["slide 1", "slide 2", "slide 3", "slide 3"]
    # The logo was placed at 7.2 in x 0.3 in, 2.3 in wide (72 pt per inch).
    assert pics[0].bbox == pytest.approx((518.4, 21.6, 684.0, 87.84), abs=0.05)
    assert pics[1].caption == "Figure 1: Revenue by region in 2023."
    assert pics[2].sha256 == sha_of(IMAGES / "lake_photo.jpg")
    assert pics[3].sha256 == sha_of(IMAGES / "pipeline_diagram.png")


def test_xlsx_pictures_have_sheet_and_cell(results):
    result = results["sales_data.xlsx"]
    assert result.page_count == 2
    assert [p.location for p in result.pictures] == [
        "sheet Sales, cell F2",
        "sheet Sales, cell F9",
        "sheet Sites, cell E3",
    ]
    assert [p.page for p in result.pictures] == [1, 1, 2]
    assert "| North" in body(result) and "| Harbour" in body(result)


def test_html_pictures_are_the_files_beside_it_with_figcaptions_and_alt_text(results):
    result = results["field_notes.html"]
    assert [p.sha256 for p in result.pictures] == [
        sha_of(IMAGES / name) for name in ("logo.jpg", "lake_photo.jpg", "pipeline_diagram.png", "sensor_trend.png")
    ]
    assert [p.caption for p in result.pictures] == [
        "Aurora Instruments logo",  # alt text: no figcaption
        "Figure 1: A LakeSense buoy on the northern lake.",
        "Figure 2: The four stages of the calibration pipeline.",
        "Figure 3: Monthly shipments of the two product lines.",
    ]
    assert "Every instrument passes four stages" in result.segments[2]


def test_markdown_pictures_with_alt_text_and_figure_lines(results):
    result = results["team_update.md"]
    assert [p.sha256 for p in result.pictures] == [
        sha_of(IMAGES / name) for name in ("logo.jpg", "revenue_chart.png", "pipeline_diagram.png")
    ]
    assert [p.caption for p in result.pictures] == [
        "Aurora Instruments logo",
        "Figure 1: Revenue by region in 2023.",
        "Figure 2: The calibration pipeline.",
    ]
    assert "# Team update: January" in result.segments[1]


def test_extraction_is_deterministic(results, store):
    again = extract_document(SAMPLES / "annual_report.pdf", "application/pdf", store, LIMITS)
    assert again == results["annual_report.pdf"]
