"""Issue 12: real documents from elsewhere. No document lost to one picture, every picture docling
reports listed in its place with a status and reason, tables that stay tables, remote pictures refused
from private addresses, the PDF pipeline choice.

Real docling, real LibreOffice (``make test`` installs it; the tests that need it are skipped without
it) and, for the path without it, the LibreOffice setting pointed at a binary that does not exist.
"""

from __future__ import annotations

import http.server
import io
import re
import shutil
import threading
from collections import Counter
from pathlib import Path

import pytest
from markdown_it import MarkdownIt
from PIL import Image

from docsight.benchmarks import fidelity_corpus as corpus
from docsight.extraction import ExtractionError, ExtractionLimits, extract_document
from docsight.extraction.figures import bitmap_figures, drawing_figures
from docsight.extraction.layout import Box, Line, Paragraph, heading_levels
from docsight.extraction.models import PICTURE_REASONS, RemotePicturePolicy
from docsight.extraction.pipelines import choose_pdf_pipeline, standard_pipeline_gaps
from docsight.extraction.remote import (RemoteNotAllowed, RemoteRefused, address_refusal, check_url, fetch,
                                        host_allowed)
from docsight.extraction.render import crop_to_content, libreoffice_command, vector_kind
from docsight.extraction.text import NOTE_IN_TABLE, NOTE_REPEATED, PictureTokens, place_tokens
from docsight.storage import BlobStore
from docsight.tables.rendering import render_markdown

SOFFICE = libreoffice_command("soffice")
needs_libreoffice = pytest.mark.skipif(
    SOFFICE is None, reason="LibreOffice is not installed (make system-deps: libreoffice-*-nogui)")
WITHOUT_LIBREOFFICE = ExtractionLimits(libreoffice="/nonexistent/libreoffice/soffice")
WITH_LIBREOFFICE = ExtractionLimits()


@pytest.fixture(scope="module")
def documents(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("corpus")
    corpus.build_corpus(folder)
    return folder / "documents"


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> BlobStore:
    return BlobStore(tmp_path_factory.mktemp("blobs"))


def statuses(result) -> list[tuple[str, str]]:
    return [(p.status or "describe", p.reason) for p in result.pictures]


def rendered(result) -> str:
    """The markdown as the aggregate renders it, with a placeholder for each picture's outcome."""
    pictures = [{"index": p.index, "location": p.location, "note": p.note} for p in result.pictures]
    results = {str(p.index): ({"status": "described", "description": f"DESCRIPTION {p.index + 1}"}
                              if not p.status else {"status": p.status, "reason": p.reason})
               for p in result.pictures}
    return render_markdown(result.segments, pictures, results)


MD = MarkdownIt("commonmark").enable("table")


def tables(markdown: str) -> list[list[list[str]]]:
    """Every table a markdown parser finds: rows of cell texts."""
    found, row, rows, cell = [], None, None, False
    for token in MD.parse(markdown):
        if token.type == "table_open":
            rows = []
        elif token.type == "tr_open":
            row = []
        elif token.type in ("th_open", "td_open"):
            cell = True
        elif token.type == "inline" and cell:
            row.append(token.content)
            cell = False
        elif token.type == "tr_close":
            rows.append(row)
        elif token.type == "table_close":
            found.append(rows)
    return found


def bare_docling_pictures(path: Path) -> int:
    """Pictures bare docling (DocumentConverter() defaults) reports in the body and furniture."""
    from docling.document_converter import DocumentConverter
    from docling_core.types.doc import ContentLayer

    document = DocumentConverter().convert(path, raises_on_error=False).document
    return sum(1 for p in document.pictures if p.content_layer in (ContentLayer.BODY, ContentLayer.FURNITURE))


# ----------------------------------------------------------------------------
# Placement: pure
# ----------------------------------------------------------------------------


def test_a_picture_in_a_spanning_cell_is_one_picture_after_its_table():
    tokens = PictureTokens.new()
    a, b = tokens.token(4), tokens.token(5)
    markdown = (f"# Lake\n\n| Lake | Lake |\n|---|---|\n| winter {a} | winter {a} |\n| map {b} | map {b} |\n"
                f"| Area | 41 |\n\nAfter the table.\n")
    placement = place_tokens(markdown, tokens)  # a saved Wikipedia page used to fail here
    assert placement.keys == [4, 5]
    assert placement.notes == {4: NOTE_IN_TABLE, 5: NOTE_IN_TABLE}
    table_text, between, after = placement.texts
    assert tokens.reference(4) in table_text and tokens.pattern.search(table_text) is None
    assert table_text.rstrip().endswith("| Area | 41 |")
    assert between.strip() == "" and after.strip() == "After the table."


def test_a_repeated_token_outside_tables_keeps_its_first_place():
    tokens = PictureTokens.new()
    markdown = f"one {tokens.token(1)} two {tokens.token(1)} three {tokens.token(2)}"
    placement = place_tokens(markdown, tokens)
    assert placement.keys == [1, 2]
    assert placement.notes == {1: NOTE_REPEATED}
    assert placement.texts[1] == f" two {tokens.reference(1)} three "


# ----------------------------------------------------------------------------
# Every picture listed: with LibreOffice, without it
# ----------------------------------------------------------------------------

OFFICE_AND_WEB = ["office_metafiles.docx", "office_drawings.docx", "slides_charts.pptx", "workbook_charts.xlsx",
                  "wiki_lake.html", "tables_and_remote.md"]


@needs_libreoffice
@pytest.mark.parametrize("name", OFFICE_AND_WEB)
def test_every_picture_bare_docling_reports_is_listed_with_a_status_and_reason(documents, store, name):
    result = extract_document(documents / name, None, store, WITH_LIBREOFFICE)
    assert len(result.pictures) == bare_docling_pictures(documents / name)
    assert len(result.segments) == len(result.pictures) + 1
    for picture in result.pictures:
        if picture.status:
            assert picture.status in ("skipped", "failed") and picture.reason in PICTURE_REASONS
            assert picture.sha256 == "" and picture.note
        else:
            assert picture.reason == "" and store.get(picture.sha256)


@needs_libreoffice
def test_emf_and_wmf_pictures_are_rendered_to_png_with_libreoffice(documents, store):
    result = extract_document(documents / "office_metafiles.docx", None, store, WITH_LIBREOFFICE)
    assert statuses(result) == [("describe", "")] * 3
    emf, wmf = result.pictures[1:]
    assert (emf.note, wmf.note) == ("EMF picture, rendered by LibreOffice", "WMF picture, rendered by LibreOffice")
    for picture in (emf, wmf):
        assert picture.mime_type == "image/png"
        with Image.open(io.BytesIO(store.get(picture.sha256))) as image:
            assert (image.width, image.height) == (picture.width, picture.height)
            assert 300 < image.width < 500 and 200 < image.height < 400  # the drawing, not the page around it
            colours = {colour for _, colour in image.convert("RGB").getcolors(1 << 20)}
            assert len(colours) > 3  # the shapes are there, not a blank page
    assert [p.caption for p in result.pictures] == [
        "Figure 1: Map of the twelve stations.", "Figure 2: Buoy schematic (EMF).", "Figure 3: Sensor housing (WMF)."]


def test_without_libreoffice_no_document_is_lost_and_each_picture_says_why(documents, store):
    metafiles = extract_document(documents / "office_metafiles.docx", None, store, WITHOUT_LIBREOFFICE)
    assert statuses(metafiles) == [("describe", ""), ("skipped", "unsupported_picture_format"),
                                   ("skipped", "unsupported_picture_format")]
    assert "LibreOffice (/nonexistent/libreoffice/soffice) is not available" in metafiles.pictures[1].note
    drawings = extract_document(documents / "office_drawings.docx", None, store, WITHOUT_LIBREOFFICE)
    assert statuses(drawings) == [("skipped", "no_bitmap"), ("skipped", "no_bitmap"), ("skipped", "remote_picture"),
                                  ("describe", ""), ("describe", "")]
    assert drawings.pictures[0].kind == "chart"
    slides = extract_document(documents / "slides_charts.pptx", None, store, WITHOUT_LIBREOFFICE)
    assert statuses(slides) == [("skipped", "no_bitmap"), ("describe", ""), ("skipped", "unsupported_picture_format")]
    workbook = extract_document(documents / "workbook_charts.xlsx", None, store, WITHOUT_LIBREOFFICE)
    assert statuses(workbook) == [("skipped", "no_bitmap")] * 2 + [("describe", ""),
                                                                   ("skipped", "unsupported_picture_format")]
    assert [p.location for p in workbook.pictures] == [
        "sheet Readings, cell E2", "sheet Readings, cell E20", "sheet Photos, cell D2", "sheet Photos, cell D20"]
    # a chart is never dropped: listed in its place, its data right after it
    for result in (drawings, slides, workbook):
        chart = result.pictures[0]
        assert chart.kind == "chart" and "its data follows as a table" in chart.note
        assert "|" in result.segments[chart.index + 1]
    assert re.search(r"\| Nov +\| +11\.2 +\| +10\.8 +\|", drawings.segments[1])


@needs_libreoffice
def test_charts_are_rendered_for_a_description_and_keep_their_data(documents, store):
    workbook = extract_document(documents / "workbook_charts.xlsx", None, store, WITH_LIBREOFFICE)
    charts = [p for p in workbook.pictures if p.kind == "chart"]
    assert len(charts) == 2 and all(not p.status and p.width > 200 for p in charts)
    assert all(p.note == "chart, rendered by LibreOffice" for p in charts)
    assert re.search(r"\| Jan +\| +38 +\|", workbook.segments[1])  # the bar chart's series, after it
    slides = extract_document(documents / "slides_charts.pptx", None, store, WITH_LIBREOFFICE)
    assert slides.pictures[0].kind == "chart" and not slides.pictures[0].status
    assert "North bay" in slides.segments[1]
    drawings = extract_document(documents / "office_drawings.docx", None, store, WITH_LIBREOFFICE)
    assert statuses(drawings)[:2] == [("describe", ""), ("describe", "")]  # the chart and the DrawingML star
    assert drawings.pictures[1].note == "a drawing, rendered by LibreOffice"


def test_a_saved_encyclopedia_page_converts_with_every_picture_placed(documents, store):
    result = extract_document(documents / "wiki_lake.html", None, store, WITHOUT_LIBREOFFICE)
    reasons = [p.reason or "describe" for p in result.pictures]
    assert len(result.pictures) == 48
    assert reasons.count("remote_picture") == 26  # https and protocol-relative //upload... pictures
    assert reasons.count("describe") == 19  # 4 icons, 12 photos, 3 inline data: badges
    assert reasons.count("missing_picture") == reasons.count("outside_document_folder") == 1
    assert reasons.count("unsupported_picture_format") == 1  # the SVG, with no LibreOffice to render it
    missing = next(p for p in result.pictures if p.reason == "missing_picture")
    assert missing.note.startswith("wiki_lake_files/not_saved.jpg")  # as the page names it, no worker paths
    remote = next(p for p in result.pictures if p.reason == "remote_picture")
    assert remote.note.startswith("https://upload.wikimedia.org/")
    infobox_photo = result.pictures[4]
    assert infobox_photo.caption == "The lake in winter" and infobox_photo.note == NOTE_IN_TABLE


def test_pictures_in_table_cells_leave_a_reference_and_the_tables_stay_valid(documents, store):
    for name, limits in (("wiki_lake.html", WITHOUT_LIBREOFFICE), ("tables_and_remote.md", WITHOUT_LIBREOFFICE),
                         ("office_drawings.docx", WITHOUT_LIBREOFFICE)):
        result = extract_document(documents / name, None, store, limits)
        markdown = rendered(result)
        plain = "".join(result.segments)  # the text alone: every table exactly as docling made it
        assert [len(t) for t in tables(markdown)] == [len(t) for t in tables(plain)], name
        for table in tables(markdown):
            assert len({len(row) for row in table}) == 1, f"{name}: a row lost or gained cells"
            for number in re.findall(r"\[Picture (\d+)\]", " ".join(" ".join(row) for row in table)):
                # the description comes after the table that refers to it
                assert f"> **Picture {number}:**" in markdown
        for picture in (p for p in result.pictures if p.note == NOTE_IN_TABLE):
            reference = f"[Picture {picture.index + 1}]"
            assert reference in markdown
            assert markdown.index(reference) < markdown.index(f"> **Picture {picture.index + 1}:**")
    sheet = tables(rendered(extract_document(documents / "office_drawings.docx", None, store, WITHOUT_LIBREOFFICE)))
    assert sheet[-1][1:] == [["North bay", "14", "[Picture 4]"], ["Outlet", "6", "[Picture 5]"]]


def test_an_undecodable_picture_fails_alone(tmp_path, store):
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 40)
    (tmp_path / "ok.png").write_bytes(corpus.labelled_png("fine", seed=5))
    (tmp_path / "page.md").write_text("# Page\n\n![broken](broken.png)\n\n![ok](ok.png)\n\nend\n")
    result = extract_document(tmp_path / "page.md", None, store, WITHOUT_LIBREOFFICE)
    assert len(result.pictures) == 2 and not result.pictures[1].status
    assert result.pictures[0].status in ("skipped", "failed")
    assert result.pictures[0].reason in ("unsupported_picture_format", "undecodable_picture")


# ----------------------------------------------------------------------------
# LibreOffice rendering helpers: pure
# ----------------------------------------------------------------------------


def test_vector_pictures_are_recognised_by_their_bytes():
    assert vector_kind(corpus.emf_bytes()) == "emf"
    assert vector_kind(corpus.wmf_bytes()) == "wmf"
    assert vector_kind(corpus.SVG.encode()) == "svg"
    assert vector_kind(b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>') == "svg"
    assert vector_kind(corpus.labelled_png("x")) is None
    assert libreoffice_command("/nonexistent/soffice") is None


def test_cropping_keeps_the_drawing_and_drops_the_page():
    page = Image.new("RGB", (400, 300), "white")
    page.paste((200, 0, 0), (100, 120, 160, 200))
    cropped = crop_to_content(page, padding=4)
    assert cropped.size == (68, 88)
    assert crop_to_content(Image.new("RGB", (50, 50), "white")) is None


# ----------------------------------------------------------------------------
# Remote pictures: off by default, an allowlist, never private addresses
# ----------------------------------------------------------------------------


def test_host_allowlist():
    hosts = ("upload.wikimedia.org", ".example.org")
    assert host_allowed("upload.wikimedia.org", hosts)
    assert host_allowed("UPLOAD.wikimedia.org.", hosts)
    assert not host_allowed("wikimedia.org", hosts) and not host_allowed("evil-upload.wikimedia.org", hosts)
    assert host_allowed("example.org", hosts) and host_allowed("a.b.example.org", hosts)
    assert not host_allowed("notexample.org", hosts)
    assert host_allowed("anything.test", ("*",)) and not host_allowed("", ("*",))


def test_private_and_special_addresses_are_refused():
    for address in ("127.0.0.1", "::1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "fe80::1",
                    "0.0.0.0", "224.0.0.1", "::ffff:127.0.0.1", "64:ff9b::a9fe:a9fe", "100.64.0.1"):
        assert address_refusal(address), address
    assert address_refusal("127.0.0.1") == "127.0.0.1 is a loopback address"
    assert address_refusal("169.254.169.254") == "169.254.169.254 is a link-local address"
    assert address_refusal("93.184.216.34") is None and address_refusal("2606:4700::1111") is None


def test_urls_are_checked_against_the_policy():
    with pytest.raises(RemoteNotAllowed, match="DOCSIGHT_REMOTE_PICTURES is off"):
        check_url("https://upload.wikimedia.org/a.png", RemotePicturePolicy())
    policy = RemotePicturePolicy(enabled=True, hosts=("upload.wikimedia.org",))
    assert check_url("https://upload.wikimedia.org/a.png", policy) == ("upload.wikimedia.org", 443)
    with pytest.raises(RemoteNotAllowed, match="not on DOCSIGHT_REMOTE_PICTURE_HOSTS"):
        check_url("https://evil.test/a.png", policy)
    with pytest.raises(RemoteRefused, match="only http and https"):
        check_url("ftp://upload.wikimedia.org/a.png", policy)


class _CountingHandler(http.server.BaseHTTPRequestHandler):
    hits = 0

    def do_GET(self):  # noqa: N802 - http.server's name
        type(self).hits += 1
        body = corpus.labelled_png("served", seed=1)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def local_server():
    _CountingHandler.hits = 0
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _CountingHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_a_loopback_server_is_never_fetched_even_when_allowed(local_server, tmp_path, store):
    port = local_server.server_address[1]
    policy = RemotePicturePolicy(enabled=True, hosts=("127.0.0.1", "localhost"))
    for url in (f"http://127.0.0.1:{port}/a.png", f"http://localhost:{port}/a.png"):
        with pytest.raises(RemoteRefused, match="loopback"):
            fetch(url, policy)
    (tmp_path / "page.html").write_text(
        f"<html><body><h1>Remote</h1><img src='http://127.0.0.1:{port}/a.png' alt='a'>"
        f"<img src='http://localhost:{port}/b.png' alt='b'><img src='https://elsewhere.test/c.png'><p>end</p>"
        "</body></html>")
    limits = ExtractionLimits(libreoffice=WITHOUT_LIBREOFFICE.libreoffice, remote=policy)
    result = extract_document(tmp_path / "page.html", None, store, limits)
    assert statuses(result) == [("failed", "remote_fetch_failed")] * 2 + [("skipped", "remote_picture")]
    assert "loopback" in result.pictures[0].note and "not on DOCSIGHT_REMOTE_PICTURE_HOSTS" in result.pictures[2].note
    assert _CountingHandler.hits == 0
    # off by default: listed, not fetched
    result = extract_document(tmp_path / "page.html", None, store, WITHOUT_LIBREOFFICE)
    assert statuses(result) == [("skipped", "remote_picture")] * 3
    assert _CountingHandler.hits == 0


# ----------------------------------------------------------------------------
# The PDF pipeline choice
# ----------------------------------------------------------------------------


def test_pdf_pipeline_choice(tmp_path):
    assert choose_pdf_pipeline("native", None).pipeline == "native"
    assert choose_pdf_pipeline("auto", None).pipeline == "native"  # no model files: model-free
    forced = choose_pdf_pipeline("standard", tmp_path)
    assert forced.pipeline == "unavailable"
    assert "DOCSIGHT_PDF_PIPELINE=standard needs docling's layout model" in forced.problem
    assert str(tmp_path / "docling-project--docling-layout-heron") in forced.problem
    with pytest.raises(ValueError):
        choose_pdf_pipeline("fast", None)


def test_forcing_the_standard_pipeline_without_its_model_fails_pdfs_with_a_clear_message(tmp_path, store):
    model = tmp_path / "models" / "docling-project--docling-layout-heron"
    model.mkdir(parents=True)
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").write_bytes(b"not really weights")
    gaps = standard_pipeline_gaps(tmp_path / "models")
    if not gaps:
        pytest.skip("torch and transformers are installed: the standard pipeline would load these files")
    assert all("layout model folder" not in gap for gap in gaps)  # the files are found; the runtime is not
    assert "torch" in " ".join(gaps)
    limits = ExtractionLimits(pdf_pipeline="standard", pdf_artifacts_path=str(tmp_path / "models"))
    with pytest.raises(ExtractionError) as caught:
        extract_document(Path(__file__).parents[1] / "samples" / "documents" / "annual_report.pdf", None, store,
                         limits)
    assert caught.value.reason == "conversion_failed"
    assert "DOCSIGHT_PDF_PIPELINE=standard" in str(caught.value) and "torch" in str(caught.value)
    # other formats are not affected
    markdown = tmp_path / "note.md"
    markdown.write_text("# Note\n\nText.\n")
    assert extract_document(markdown, None, store, limits).pictures == []


# ----------------------------------------------------------------------------
# docsight submit from outside the document root: the pictures come along
# ----------------------------------------------------------------------------


def test_local_picture_references_of_html_and_markdown(tmp_path):
    from docsight.extraction.references import local_pictures, picture_sources

    text = ('<p><img src="a.png"><img src="https://x.test/b.png"><img src="//cdn.test/c.png">'
            '<img src="data:image/png;base64,AAAA"><img src="sub/d%20e.png?v=2"></p>\n'
            '![f](f.png "title") ![g][ref]\n\n[ref]: <img/g.jpg>\n')
    assert picture_sources(text, markdown=True) == [
        "a.png", "https://x.test/b.png", "//cdn.test/c.png", "data:image/png;base64,AAAA", "sub/d%20e.png?v=2",
        "f.png", "img/g.jpg"]
    (tmp_path / "doc").mkdir()
    (tmp_path / "doc" / "a.png").write_bytes(b"x")
    (tmp_path / "doc" / "page.md").write_text(text + "![out](../out.png) ![abs](/etc/hostname)\n")
    pictures = {p.source: p for p in local_pictures(tmp_path / "doc" / "page.md")}
    assert set(pictures) == {"a.png", "sub/d%20e.png?v=2", "f.png", "img/g.jpg", "../out.png", "/etc/hostname"}
    assert pictures["a.png"].exists and pictures["a.png"].relative == Path("a.png")
    assert pictures["sub/d%20e.png?v=2"].relative == Path("sub/d e.png") and not pictures["f.png"].exists
    assert pictures["../out.png"].relative is None and pictures["/etc/hostname"].relative is None


def test_submit_from_outside_the_root_brings_the_pictures_along(documents, tmp_path, store, capsys):
    from docsight.commands.submit import Submission, place_under_root
    from docsight.extraction import resolve_document_path

    root = tmp_path / "root"
    root.mkdir()
    page = documents / "wiki_lake.html"
    location = place_under_root(Submission(page, "wiki-1"), root)
    out = capsys.readouterr().out
    assert "wiki_lake.html: brought along 17 pictures it refers to" in out
    assert "refers to 1 picture(s) outside its folder (../outside.png)" in out
    assert "1 picture(s) that do not exist (wiki_lake_files/not_saved.jpg)" in out
    copied = extract_document(resolve_document_path(location, root), None, store, WITHOUT_LIBREOFFICE)
    in_place = extract_document(page, None, store, WITHOUT_LIBREOFFICE)
    assert statuses(copied) == statuses(in_place)  # nothing lost by the copy
    assert [p.sha256 for p in copied.pictures] == [p.sha256 for p in in_place.pictures]
    markdown = documents / "tables_and_remote.md"
    location = place_under_root(Submission(markdown, "md-1"), root)
    assert "brought along 3 pictures" in capsys.readouterr().out
    copied = extract_document(resolve_document_path(location, root), None, store, WITHOUT_LIBREOFFICE)
    assert statuses(copied) == [("describe", "")] * 3 + [("skipped", "remote_picture")] * 2


# ----------------------------------------------------------------------------
# PDF: one figure = one picture, vector figures, headings
# ----------------------------------------------------------------------------


def caption(text: str, l: float, t: float) -> Line:
    return Line(text, Box(l, t - 8, l + 200, t))


def test_touching_fragments_are_one_figure_and_captioned_neighbours_are_two():
    tiles = [Box(60 + c * 110, 500 - r * 73, 170 + c * 110, 573 - r * 73) for r in range(3) for c in range(3)]
    assert [f.bitmaps for f in bitmap_figures(tiles, [])] == [list(range(9))]
    chart_and_legend = [Box(60, 400, 360, 580), Box(364, 490, 444, 550)]  # 4 pt apart
    (figure,) = bitmap_figures(chart_and_legend, [caption("Figure 3: Oxygen.", 60, 390)])
    assert figure.box == Box(60, 400, 444, 580)
    side_by_side = [Box(60, 200, 270, 340), Box(290, 200, 500, 340)]  # 20 pt apart, a caption each
    lines = [caption("Figure 7: North bay.", 60, 190), caption("Figure 8: Outlet.", 290, 190)]
    assert len(bitmap_figures(side_by_side, lines)) == 2
    assert len(bitmap_figures(side_by_side, [caption("Figure 7: Both.", 60, 190)])) == 1  # one caption: one figure
    stacked = [Box(60, 400, 300, 500), Box(60, 300, 300, 390)]
    between = [Line("A paragraph sits between the two pictures.", Box(60, 392, 300, 399))]
    assert len(bitmap_figures(stacked, between)) == 2 and len(bitmap_figures(stacked, [])) == 1


def test_vector_drawings_are_figures_but_rules_and_tables_are_not():
    page = Box(0, 0, 595, 842)
    axes = [Box(60, 400, 380, 401), Box(60, 400, 61, 550)]
    bars = [Box(80 + n * 60, 400, 120 + n * 60, 400 + h) for n, h in enumerate([60, 110, 140])]
    labels = [Line(month, Box(90 + n * 60, 388, 110 + n * 60, 395)) for n, month in enumerate(["Nov", "Dec", "Jan"])]
    (chart,) = drawing_figures(axes + bars, labels, page)
    assert chart.box == Box(60, 388, 380, 550)  # with its axis labels
    rules = [Box(60, 700, 540, 700.5), Box(60, 100, 540, 100.5), Box(60, 300, 200, 300.8)]
    assert drawing_figures(rules, [], page) == []
    grid = [Box(60, 300 + 20 * n, 540, 300.5 + 20 * n) for n in range(6)] + [Box(60, 300, 540, 320)]
    text = [Line("A long cell text of the table, row %d, with words" % n, Box(62, 302 + 20 * n, 538, 318 + 20 * n))
            for n in range(5)]
    assert drawing_figures(grid, text, page) == []  # a table: mostly text
    assert drawing_figures([Box(0, 0, 595, 842)] * 4, [], page) == []  # a page background


def test_headings_from_the_outline_and_from_larger_type():
    pages = {1: [Paragraph("Annual report", Box(60, 780, 300, 797)), Paragraph("Body text of the page.",
                                                                                Box(60, 700, 500, 710), 3),
                 Paragraph("Results", Box(60, 650, 200, 663)), Paragraph("Figure 1: small.", Box(60, 600, 200, 608))],
             2: [Paragraph("Methods and sites", Box(60, 780, 300, 790))]}
    assert heading_levels(pages, 9.7) == {(1, 0): 1, (1, 2): 2}
    outline = [("Methods and sites", 1, 2)]
    assert heading_levels(pages, 9.7, outline)[(2, 0)] == 2  # the outline names it, same size as the body


def test_a_pdf_with_fragmented_and_vector_figures_gives_one_picture_per_figure(documents, store):
    result = extract_document(documents / "figures_fragments.pdf", None, store, WITH_LIBREOFFICE)
    assert len(result.pictures) == 8  # 16 bitmaps and 2 drawings; bare docling's native pipeline reports 16
    assert [p.page for p in result.pictures] == [1, 1, 2, 2, 3, 3, 3, 3]
    assert [p.caption for p in result.pictures] == [f"Figure {n}: " + text for n, text in enumerate([
        "The lake from the north shore, January.", "Ice thickness by month (cm).",
        "Dissolved oxygen by station, with its legend.", "Sampling through the ice.",
        "Ice days per month (vector chart).", "Data flow from buoy to report (vector diagram).",
        "North bay.", "Outlet."], start=1)]
    assert [p.note for p in result.pictures[:3]] == ["figure rendered from the page: 9 bitmaps",
                                                     "figure rendered from the page: 2 bitmaps",
                                                     "figure rendered from the page: 2 bitmaps"]
    assert result.pictures[3].mime_type == "image/jpeg" and result.pictures[3].note == ""  # one bitmap: its bytes
    assert [p.note for p in result.pictures[4:6]] == ["figure rendered from the page: vector drawing"] * 2
    tiled = result.pictures[0]
    assert tiled.bbox[2] - tiled.bbox[0] == pytest.approx(330, abs=1)  # the 3 x 110 pt tiles, as one
    text = "".join(result.segments)
    for heading in ("## Ice survey 2023", "## Results", "### Oxygen", "### Field work", "## Vector figures"):
        assert f"\n{heading}\n" in f"\n{text}", heading
    assert "Gateway" not in text and "\nNov\n" not in text  # labels inside drawings are part of the figure


# ----------------------------------------------------------------------------
# Through the pipeline: pictures without bytes arrive decided, the document completes
# ----------------------------------------------------------------------------


@pytest.mark.cluster
def test_a_saved_page_is_enriched_with_every_picture_listed(cluster, gemini, tmp_path):
    from cluster_helpers import submit_document

    corpus.build_corpus(tmp_path)
    target = cluster.document_root / "issue12"
    shutil.copytree(tmp_path / "documents", target, dirs_exist_ok=True)
    outcome = submit_document(cluster, "issue12/wiki_lake.html", prefix="wiki")
    assert outcome.enriched, outcome.value
    pictures = outcome.value["pictures"]
    assert len(pictures) == 48
    reasons = Counter(p["reason"] or p["status"] for p in pictures)
    assert reasons["remote_picture"] == 26 and reasons["outside_document_folder"] == 1
    assert reasons["missing_picture"] == 1 and reasons["described"] >= 12
    assert all(p["sha256"] == "" for p in pictures if p["reason"] == "remote_picture")
    markdown = outcome.value["markdown"]
    assert "Description unavailable: remote_picture" in markdown
    assert [len(t) for t in tables(markdown)] == [5, 4]  # the infobox and the seasons table, whole


@needs_libreoffice
def test_a_document_with_many_charts_lists_them_unrendered_with_their_data(tmp_path, store):
    from docsight.extraction.engine import MAX_RENDERED_CHARTS

    path = tmp_path / "dashboard.docx"
    corpus.docx_many_charts(path, MAX_RENDERED_CHARTS + 1)
    result = extract_document(path, None, store, WITH_LIBREOFFICE)
    assert statuses(result) == [("skipped", "no_bitmap")] * (MAX_RENDERED_CHARTS + 1)
    assert all(p.kind == "chart" and f"not rendered ({MAX_RENDERED_CHARTS + 1} charts" in p.note
               for p in result.pictures)
    assert all("| Nov" in segment for segment in result.segments[1:])  # every chart's data, after it
