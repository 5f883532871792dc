"""Extraction: pure helpers, bad inputs with their reasons, path confinement, the process pool."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import pickle
import shutil
import signal
import struct
import time
import zipfile
import zlib
from pathlib import Path

import pytest
from PIL import Image

from docsight.extraction import (
    ExtractionError,
    ExtractionLimits,
    ExtractionPool,
    detect_format,
    extract_document,
    resolve_document_path,
)
from docsight.extraction.images import MarkerCodec
from docsight.extraction.layout import Box, Line, Paragraph, interleave, match_boxes, merge_lines
from docsight.extraction.text import (
    PICTURE_MARK,
    PictureTokens,
    build_segments,
    figure_captions,
    normalise,
    picture_contexts,
)
from docsight.storage import BlobStore

SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "documents"
LIMITS = ExtractionLimits()


@pytest.fixture
def store(tmp_path) -> BlobStore:
    return BlobStore(tmp_path / "blobs")


def reason_of(path: Path, store: BlobStore, content_type: str | None = None, limits=LIMITS) -> str:
    with pytest.raises(ExtractionError) as caught:
        extract_document(path, content_type, store, limits)
    assert str(caught.value), "the error needs a human message"
    return caught.value.reason


# ----------------------------------------------------------------------------
# Builders for bad inputs
# ----------------------------------------------------------------------------


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height pixels (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def pdf_with_image(width_px: int, height_px: int) -> bytes:
    """A one-page PDF drawing one image XObject that declares the given pixel size."""
    data = zlib.compress(b"\x80" * 64)
    objects = [
        b"<</Type/Catalog/Pages 2 0 R>>",
        b"<</Type/Pages/Kids[3 0 R]/Count 1>>",
        b"<</Type/Page/Parent 2 0 R/MediaBox[0 0 200 200]/Resources<</XObject<</Im0 4 0 R>>>>/Contents 5 0 R>>",
        b"<</Type/XObject/Subtype/Image/Width %d/Height %d/ColorSpace/DeviceGray/BitsPerComponent 8"
        b"/Filter/FlateDecode/Length %d>>stream\n" % (width_px, height_px, len(data)) + data + b"\nendstream",
        b"<</Length 33>>stream\nq 100 0 0 100 50 50 cm /Im0 Do Q\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<</Size %d/Root 1 0 R>>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def encrypted_pdf(path: Path) -> None:
    from reportlab.lib import pdfencrypt
    from reportlab.pdfgen.canvas import Canvas

    canvas = Canvas(str(path), encrypt=pdfencrypt.StandardEncryption("user-secret", "owner-secret"))
    canvas.drawString(72, 720, "Quarterly numbers, confidential.")
    canvas.showPage()
    canvas.save()


# ----------------------------------------------------------------------------
# Pure helpers
# ----------------------------------------------------------------------------


def test_picture_tokens_split_and_detect_repeats():
    tokens = PictureTokens.new()
    markdown = f"intro\n\n{tokens.token(3)}\n\nmiddle {tokens.token(0)} end"
    assert tokens.split(markdown) == (["intro\n\n", "\n\nmiddle ", " end"], [3, 0])
    assert tokens.split(f"{tokens.token(1)} and {tokens.token(1)}") is None
    # Another export's tokens (a different nonce) are plain text to this one.
    other = PictureTokens.new().token(0)
    assert tokens.split(f"see {other}") == ([f"see {other}"], [])


def test_build_segments_drops_unwanted_and_reinserts_missing_pictures():
    # Markdown had pictures 0, 1, 3; picture 1 has no bytes; picture 2 was not serialized.
    segments, order = build_segments(["a", "b", "c", "d"], [0, 1, 3], wanted_keys=[0, 2, 3])
    assert order == [0, 2, 3]
    assert len(segments) == len(order) + 1
    assert segments == ["a", "", "bc", "d"]  # 2 right after 0; 1's token gone, its text kept
    # Missing before any present picture: after the opening text.
    segments, order = build_segments(["a", "b"], [5], wanted_keys=[4, 5])
    assert (segments, order) == (["a", "", "b"], [4, 5])
    # Nothing serialized at all.
    assert build_segments(["only text"], [], wanted_keys=[7]) == (["only text", ""], [7])
    assert build_segments(["only text"], [], wanted_keys=[]) == (["only text"], [])


def test_context_windows_are_bounded_and_centred_on_the_picture():
    before = "word " * 400
    after = "other " * 400
    (context,) = picture_contexts([f"# Title\n\n{before}", f"\n\n{after}"], 600)
    assert len(context) <= 600
    left, right = context.split(PICTURE_MARK)
    assert left.strip().startswith("word") and right.strip().startswith("other")
    assert abs(len(left) - len(right)) < 20
    # A short side leaves its room to the other.
    (context,) = picture_contexts(["Short intro.", after], 600)
    assert context.startswith("Short intro. [picture] other")
    assert 550 < len(context) <= 600
    # Neighbouring pictures share their surroundings; no picture, no context.
    assert picture_contexts(["x", "", "y"], 100) == ["x [picture] y", "x [picture] y"]
    assert picture_contexts(["just text"], 600) == []


def test_normalise_flattens_markdown():
    text = "## Heading\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n**bold**   words\n"
    assert normalise(text) == "Heading | a | b | | 1 | 2 | bold words"


def test_figure_captions_after_then_before_never_twice():
    segments = [
        "Intro.\n\n",
        "\n\nAlt text line\n\nFigure 1: After the first.\n\nBody.\n\n",
        "\n\nFig. 2 - Before the next? no, after.\n\n",
        "\n\nPlain text.\n\nMore text.\n\nFigure 4: Before the fourth.\n\n",
        "",
    ]
    assert figure_captions(segments) == [
        "Figure 1: After the first.",
        "Fig. 2 - Before the next? no, after.",
        "",  # the line before it is the previous picture's caption, the one after is too far
        "Figure 4: Before the fourth.",
    ]
    assert figure_captions(["**Figure 9: bold caption**", ""]) == ["Figure 9: bold caption"]


def test_merge_lines_joins_paragraph_lines_only():
    lines = [
        Line("Big title", Box(56, 700, 400, 720)),
        Line("First line of a paragraph that", Box(56, 670, 500, 680)),
        Line("continues here, and a hyphen-", Box(56, 655, 500, 665)),
        Line("ated word.", Box(56, 640, 300, 650)),
        Line("Next paragraph.", Box(56, 615, 300, 625)),  # a larger gap
        Line("Figure 1: a small caption", Box(56, 603, 300, 611)),  # smaller font
    ]
    paragraphs = merge_lines(lines)
    assert [p.text for p in paragraphs] == [
        "Big title",
        "First line of a paragraph that continues here, and a hyphen-ated word.",
        "Next paragraph.",
        "Figure 1: a small caption",
    ]
    assert paragraphs[1].box == Box(56, 640, 500, 680)


def test_interleave_puts_pictures_before_the_text_below_them_in_their_column():
    paragraphs = [
        Paragraph("title", Box(50, 700, 500, 720)),
        Paragraph("left column", Box(50, 300, 280, 650)),
        Paragraph("right column text", Box(300, 300, 550, 650)),
        Paragraph("right column after the picture", Box(300, 100, 550, 200)),
    ]
    pictures = [
        Box(300, 210, 550, 290),  # right column, between its two paragraphs
        Box(50, 750, 150, 800),  # logo above the title
        Box(50, 50, 280, 250),  # bottom of the left column, nothing of its column below
    ]
    assert interleave(paragraphs, pictures) == [
        ("picture", 1),
        ("text", 0),
        ("text", 1),
        ("picture", 2),
        ("text", 2),
        ("picture", 0),
        ("text", 3),
    ]


def test_match_boxes_by_overlap():
    targets = [Box(0, 0, 10, 10), Box(100, 100, 110, 110), Box(500, 500, 510, 510)]
    candidates = [Box(100.2, 100, 110, 110.1), Box(0, 0, 10, 10.5)]
    assert match_boxes(targets, candidates) == [1, 0, None]


def test_marker_codec_round_trip_and_rejects_others():
    codec = MarkerCodec()
    for index in (0, 1, 255, 70_000):
        with Image.open(io.BytesIO(codec.encode(index))) as img:
            assert codec.decode(img.convert("RGBA")) == index  # docling may change the mode
    with Image.open(io.BytesIO(MarkerCodec().encode(3))) as other_document:
        assert codec.decode(other_document) is None
    assert codec.decode(Image.new("RGB", (16, 16))) is None
    assert codec.decode(None) is None


def test_extraction_error_survives_pickling():
    error = ExtractionError("corrupt", "report.pdf is not a readable PDF")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.reason, str(copy)) == ("corrupt", "report.pdf is not a readable PDF")
    with pytest.raises(ValueError):
        ExtractionError("whatever", "unknown reasons are a bug")


# ----------------------------------------------------------------------------
# Paths and formats
# ----------------------------------------------------------------------------


def test_resolve_document_path_accepts_paths_inside_the_root(tmp_path):
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    target = root / "sub" / "a.pdf"
    target.write_bytes(b"%PDF-1.4")
    assert resolve_document_path("sub/a.pdf", root) == target
    assert resolve_document_path(str(target), root) == target
    assert resolve_document_path(target.as_uri(), root) == target
    assert resolve_document_path("sub/../sub/a.pdf", root) == target


def test_resolve_document_path_refuses_escapes(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    outside = tmp_path / "secret.pdf"
    outside.write_bytes(b"%PDF-1.4")
    (root / "link.pdf").symlink_to(outside)
    (root / "linkdir").symlink_to(tmp_path)
    for location in ("../secret.pdf", str(outside), outside.as_uri(), "link.pdf", "linkdir/secret.pdf",
                     "http://example.com/a.pdf", "file://otherhost/etc/passwd"):
        with pytest.raises(ExtractionError) as caught:
            resolve_document_path(location, root)
        assert caught.value.reason == "outside_root", location


def test_detect_format_by_content_type_then_extension():
    pdf = SAMPLES / "annual_report.pdf"
    docx = SAMPLES / "product_brief.docx"
    assert detect_format(pdf, None) == "pdf"
    assert detect_format(pdf, "application/pdf; charset=binary") == "pdf"
    assert detect_format(pdf, "application/octet-stream") == "pdf"  # generic: the extension decides
    assert detect_format(docx, "application/vnd.openxmlformats-officedocument.wordprocessingml.document") == "docx"
    assert detect_format(SAMPLES / "quarterly_review.pptx", None) == "pptx"
    assert detect_format(SAMPLES / "sales_data.xlsx", None) == "xlsx"
    assert detect_format(SAMPLES / "field_notes.html", "text/html") == "html"
    assert detect_format(SAMPLES / "team_update.md", "text/markdown") == "md"
    with pytest.raises(ExtractionError) as caught:
        detect_format(pdf, "application/vnd.openxmlformats-officedocument.wordprocessingml.document")
    assert caught.value.reason == "wrong_extension"
    assert "declared as a Word (DOCX) document" in str(caught.value) and "a PDF document" in str(caught.value)


# ----------------------------------------------------------------------------
# Bad inputs: each with its reason
# ----------------------------------------------------------------------------


def test_missing_directory_empty_and_too_large(tmp_path, store):
    assert reason_of(tmp_path / "missing.pdf", store) == "not_found"
    (tmp_path / "folder.pdf").mkdir()
    assert reason_of(tmp_path / "folder.pdf", store) == "not_a_file"
    (tmp_path / "empty.pdf").write_bytes(b"")
    assert reason_of(tmp_path / "empty.pdf", store) == "empty"
    small = ExtractionLimits(max_file_bytes=1000)
    assert reason_of(SAMPLES / "annual_report.pdf", store, limits=small) == "too_large"


def test_unsupported_types(tmp_path, store):
    notes = tmp_path / "notes.txt"
    notes.write_text("plain text")
    assert reason_of(notes, store) == "unsupported_type"
    assert reason_of(SAMPLES / "annual_report.pdf", store, content_type="image/png") == "unsupported_type"
    legacy = tmp_path / "old.doc"
    legacy.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 600)
    assert reason_of(legacy, store) == "unsupported_type"


def test_content_that_does_not_match_the_extension(tmp_path, store):
    picture = tmp_path / "scan.pdf"
    picture.write_bytes((SAMPLES / "images" / "revenue_chart.png").read_bytes())
    assert reason_of(picture, store) == "wrong_extension"
    slides = tmp_path / "slides.pptx"
    shutil.copy(SAMPLES / "product_brief.docx", slides)
    assert reason_of(slides, store) == "wrong_extension"
    archive = tmp_path / "archive.docx"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("hello.txt", "not office")
    assert reason_of(archive, store) == "wrong_extension"
    page = tmp_path / "page.md"
    page.write_bytes((SAMPLES / "annual_report.pdf").read_bytes())
    assert reason_of(page, store) == "wrong_extension"


def test_corrupt_documents(tmp_path, store):
    data = (SAMPLES / "annual_report.pdf").read_bytes()
    truncated = tmp_path / "truncated.pdf"
    truncated.write_bytes(data[: len(data) // 2])
    assert reason_of(truncated, store) == "corrupt"
    garbage = tmp_path / "garbage.pdf"
    garbage.write_bytes(b"%PDF-1.7\n" + os.urandom(4096))
    assert reason_of(garbage, store) == "corrupt"
    docx = (SAMPLES / "product_brief.docx").read_bytes()
    cut = tmp_path / "cut.docx"
    cut.write_bytes(docx[: len(docx) // 2])
    assert reason_of(cut, store) == "corrupt"
    hollow = tmp_path / "hollow.docx"  # a valid zip that lost its main part
    with zipfile.ZipFile(SAMPLES / "product_brief.docx") as src, zipfile.ZipFile(hollow, "w") as dst:
        for name in src.namelist():
            if name != "word/document.xml":
                dst.writestr(name, src.read(name))
    assert reason_of(hollow, store) == "corrupt"


def test_password_protected_documents(tmp_path, store):
    locked = tmp_path / "locked.pdf"
    encrypted_pdf(locked)
    assert reason_of(locked, store) == "encrypted"
    # Office encrypts OOXML into an OLE2 container with an EncryptionInfo stream.
    office = tmp_path / "locked.docx"
    office.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 500 + "EncryptionInfo".encode("utf-16-le"))
    assert reason_of(office, store) == "encrypted"


def test_decompression_bombs_are_refused_before_decoding(tmp_path, store):
    bomb = png_declaring(100_000, 100_000)
    (tmp_path / "huge.png").write_bytes(bomb)
    markdown = tmp_path / "bomb.md"
    markdown.write_text("# Bomb\n\n![huge](huge.png)\n")
    assert reason_of(markdown, store) == "decompression_bomb"

    from docx import Document

    doc = Document()
    doc.add_paragraph("A picture that declares ten billion pixels.")
    doc.add_picture(io.BytesIO(bomb))
    doc.save(tmp_path / "bomb.docx")
    assert reason_of(tmp_path / "bomb.docx", store) == "decompression_bomb"

    (tmp_path / "bomb.pdf").write_bytes(pdf_with_image(200_000, 200_000))
    assert reason_of(tmp_path / "bomb.pdf", store) == "decompression_bomb"
    # The same PDF with a sane image converts: the bomb check is what refused it.
    (tmp_path / "fine.pdf").write_bytes(pdf_with_image(8, 8))
    result = extract_document(tmp_path / "fine.pdf", None, store, LIMITS)
    assert [(p.width, p.height, p.mime_type) for p in result.pictures] == [(8, 8, "image/png")]
    # A lower cap applies to ordinary pictures too.
    assert reason_of(SAMPLES / "annual_report.pdf", store, limits=ExtractionLimits(max_picture_pixels=1_000_000)) == (
        "decompression_bomb"
    )


# ----------------------------------------------------------------------------
# What HTML and Markdown may load
# ----------------------------------------------------------------------------


def test_html_and_markdown_load_only_images_inside_their_folder(tmp_path, store):
    docs, outside = tmp_path / "docs", tmp_path / "outside"
    docs.mkdir()
    outside.mkdir()
    shutil.copy(SAMPLES / "images" / "logo.jpg", docs / "ok.jpg")
    shutil.copy(SAMPLES / "images" / "lake_photo.jpg", outside / "secret.jpg")
    (docs / "link.jpg").symlink_to(outside / "secret.jpg")
    secret = outside / "secret.jpg"
    (docs / "page.html").write_text(
        "<html><body><h1>Security</h1><p>one</p><img src='ok.jpg' alt='fine'>"
        f"<p>two</p><img src='../outside/secret.jpg'><img src='{secret}'><img src='{secret.as_uri()}'>"
        "<img src='link.jpg'><img src='http://127.0.0.1:9/x.png'><img src='//example.invalid/x.png'>"
        "<p>end</p></body></html>"
    )
    (docs / "page.md").write_text(
        f"# Security\n\n![fine](ok.jpg)\n\n![a](../outside/secret.jpg)\n\n![b]({secret})\n\n"
        "![c](link.jpg)\n\n![d](http://127.0.0.1:9/x.png)\n\nend\n"
    )
    html = extract_document(docs / "page.html", None, store, LIMITS)
    markdown = extract_document(docs / "page.md", None, store, LIMITS)
    secret_sha = hashlib.sha256(secret.read_bytes()).hexdigest()
    # Every picture is listed in its place; only the one inside the folder has bytes, the rest say why not.
    assert [(p.status, p.reason) for p in html.pictures] == [("", "")] + [
        ("skipped", "outside_document_folder")] * 4 + [("skipped", "remote_picture")] * 2
    assert [(p.status, p.reason) for p in markdown.pictures] == [("", "")] + [
        ("skipped", "outside_document_folder")] * 3 + [("skipped", "remote_picture")]
    for result in (html, markdown):
        assert result.pictures[0].caption == "fine"
        assert all(p.sha256 == "" and p.size_bytes == 0 for p in result.pictures[1:])
        assert secret_sha not in {p.sha256 for p in result.pictures}
        assert secret_sha not in store
        assert len(result.segments) == len(result.pictures) + 1
        assert "end" in result.segments[-1]


def test_literal_placeholders_in_the_text_do_not_split_it(tmp_path, store):
    shutil.copy(SAMPLES / "images" / "logo.jpg", tmp_path / "logo.jpg")
    text = "Tokens look like DSPIC0123456789ABCDEFK0E and docling's is &lt;!-- image --&gt;."
    (tmp_path / "tricky.md").write_text(f"# Tricky\n\n{text}\n\n![logo](logo.jpg)\n\nAfter {text}\n")
    result = extract_document(tmp_path / "tricky.md", None, store, LIMITS)
    assert len(result.pictures) == 1 and len(result.segments) == 2
    assert "DSPIC0123456789ABCDEFK0E" in result.segments[0]
    assert "DSPIC0123456789ABCDEFK0E" in result.segments[1]


# ----------------------------------------------------------------------------
# The process pool
# ----------------------------------------------------------------------------


def test_pool_extracts_in_worker_processes_and_survives_a_dead_worker(tmp_path):
    store_root = tmp_path / "blobs"

    async def scenario(pool: ExtractionPool):
        names = ["annual_report.pdf", "product_brief.docx", "quarterly_review.pptx", "team_update.md"]
        results = await asyncio.gather(*(pool.extract(SAMPLES / name, None) for name in names))
        missing = await asyncio.gather(pool.extract(tmp_path / "nope.pdf", None), return_exceptions=True)
        return results, missing[0]

    with ExtractionPool(store_root, processes=2) as pool:
        started = time.monotonic()
        pool.warm_up()
        warm = time.monotonic() - started
        results, missing = asyncio.run(scenario(pool))
        assert [len(r.pictures) for r in results] == [5, 4, 4, 3]
        store = BlobStore(store_root)
        assert all(p.sha256 in store for r in results for p in r.pictures)
        assert isinstance(missing, ExtractionError) and missing.reason == "not_found"

        # A process killed while idle: the next document goes to a fresh one, not to the corpse.
        victim = pool.pids()[0]
        os.kill(victim, signal.SIGKILL)
        time.sleep(0.5)
        again = asyncio.run(pool.extract(SAMPLES / "sales_data.xlsx", None))
        assert len(again.pictures) == 3
    assert warm < 30
