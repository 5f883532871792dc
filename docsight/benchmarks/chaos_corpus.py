"""The chaos run's corpus: every supported format, 0 to 50 pictures per document, some shared.

Pictures come from a seeded generator (random blocks as PNG, smooth gradients with shapes as JPEG), so
one seed gives one corpus and no two pictures of a run are alike: the description cache can only
absorb the pictures shared on purpose. Shared pictures are JPEGs because every format keeps JPEG bytes
as they are (a PDF embeds them verbatim as DCTDecode), so a shared picture has one SHA-256 everywhere.

``plan_corpus`` is pure (what to write); ``write_corpus`` writes it: PDF and DOCX with the benchmark
writers (docsight.benchmarks.workload), PPTX, XLSX, HTML and Markdown the way samples/make_samples.py
lays them out, with any number of pictures.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from .workload import docx_document, pdf_document

FORMATS = ("pdf", "docx", "pptx", "xlsx", "html", "md")
MAX_PICTURES = 50
SHARED_POOL = 8              # pictures that several documents carry
MAX_SHARED_PER_DOCUMENT = 3
BIG_DOCUMENT_SHARE = 0.15    # documents drawn from the top of the range; the rest are small


@dataclass(frozen=True)
class PlannedDocument:
    name: str                    # also the document id's stem and the folder it is written to
    format: str
    distinct: tuple[int, ...]    # numbers of this document's own pictures (unique in the corpus)
    shared: tuple[int, ...]      # numbers into the shared pool

    @property
    def pictures(self) -> int:
        return len(self.distinct) + len(self.shared)


def plan_corpus(documents: int, seed: int, max_pictures: int = MAX_PICTURES,
                shared_pool: int = SHARED_POOL) -> list[PlannedDocument]:
    """Which documents to write: formats in a shuffled round-robin (each format once per six documents),
    pictures per document from 0 to ``max_pictures`` (mostly few, about one in seven many; the first
    two documents of a corpus of four or more take the extremes), and 0-3 of the shared pictures each."""
    if documents < 1:
        raise ValueError("documents must be at least 1")
    if max_pictures < 0:
        raise ValueError("max_pictures must be 0 or more")
    rng = random.Random(f"corpus-{seed}")
    formats: list[str] = []
    while len(formats) < documents:
        round_robin = list(FORMATS)
        rng.shuffle(round_robin)
        formats += round_robin
    planned = []
    next_picture = 0
    for number in range(documents):
        shared = tuple(sorted(rng.sample(range(shared_pool), rng.randint(0, min(MAX_SHARED_PER_DOCUMENT,
                                                                                  shared_pool)))))
        if documents >= 4 and number < 2:  # the edges: a document without pictures, one at the cap
            total = 0 if number == 0 else max_pictures
        elif rng.random() < BIG_DOCUMENT_SHARE:
            total = rng.randint(max(0, max_pictures * 3 // 5), max_pictures)
        else:
            total = rng.randint(0, min(12, max_pictures))
        shared = shared[:total]
        own = total - len(shared)
        planned.append(PlannedDocument(f"c{number:04d}-{formats[number]}", formats[number],
                                       tuple(range(next_picture, next_picture + own)), shared))
        next_picture += own
    return planned


# --- pictures -------------------------------------------------------------------

def distinct_picture(seed: int, number: int) -> tuple[bytes, str]:
    """Picture ``number`` of the corpus of ``seed``: (bytes, "png" | "jpg"). Never equal to another."""
    rng = random.Random(f"picture-{seed}-{number}")
    width, height = rng.choice(((160, 120), (240, 180), (320, 240), (200, 300), (400, 240)))
    if number % 2 == 0:
        cells = Image.frombytes("RGB", (width // 5, height // 5), rng.randbytes((width // 5) * (height // 5) * 3))
        return _encode(cells.resize((width, height), Image.NEAREST), "PNG"), "png"
    return _encode(_gradient(rng, width, height), "JPEG"), "jpg"


def shared_picture(seed: int, number: int) -> bytes:
    """Shared picture ``number``: a JPEG (kept byte for byte by every format)."""
    return _encode(_gradient(random.Random(f"shared-{seed}-{number}"), 320, 240), "JPEG")


def _gradient(rng: random.Random, width: int, height: int) -> Image.Image:
    red = Image.linear_gradient("L").resize((width, height)).point(lambda v, o=rng.randrange(256): (v + o) % 256)
    green = Image.radial_gradient("L").resize((width, height)).point(lambda v, o=rng.randrange(256): (v + o) % 256)
    blue = Image.linear_gradient("L").rotate(90).resize((width, height))
    image = Image.merge("RGB", (red, green, blue))
    draw = ImageDraw.Draw(image)
    for _ in range(8):
        x, y, r = rng.randrange(width), rng.randrange(height), rng.randrange(8, max(9, width // 5))
        draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(rng.randrange(256) for _ in range(3)))
    # a few random pixels: two gradients alike in every drawn shape still differ
    for _ in range(32):
        image.putpixel((rng.randrange(width), rng.randrange(height)), tuple(rng.randrange(256) for _ in range(3)))
    return image


def _encode(image: Image.Image, kind: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, kind, **({"quality": 88} if kind == "JPEG" else {}))
    return buffer.getvalue()


# --- documents --------------------------------------------------------------------

@dataclass(frozen=True)
class WrittenDocument:
    plan: PlannedDocument
    location: str                # relative to the corpus root, as document-received names it


def write_corpus(root: Path, planned: list[PlannedDocument], seed: int) -> list[WrittenDocument]:
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    pool = {number: shared_picture(seed, number) for number in {n for p in planned for n in p.shared}}
    written = []
    for document in planned:
        pictures = [distinct_picture(seed, number) for number in document.distinct]
        pictures += [(pool[number], "jpg") for number in document.shared]
        # shared pictures among the document's own, not all at the end
        random.Random(f"order-{seed}-{document.name}").shuffle(pictures)
        written.append(WrittenDocument(document, write_document(root, document, pictures)))
    return written


def write_document(root: Path, document: PlannedDocument, pictures: list[tuple[bytes, str]]) -> str:
    folder = Path(root) / document.name
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"doc.{document.format}"
    data = [picture for picture, _ in pictures]
    if document.format == "pdf" and not data:
        _text_pdf(path, document.name)  # an empty canvas saves a PDF without pages, which PDFium refuses
    elif document.format == "pdf":
        pdf_document(path, data)
    elif document.format == "docx":
        docx_document(path, data, title=f"Report {document.name}")
    elif document.format == "pptx":
        _pptx(path, data, document.name)
    elif document.format == "xlsx":
        _xlsx(path, data, document.name)
    else:
        names = []
        for number, (picture, suffix) in enumerate(pictures):
            names.append(f"p{number}.{suffix}")
            (folder / names[-1]).write_bytes(picture)
        path.write_text(_html(names, document.name) if document.format == "html" else _markdown(names, document.name),
                        encoding="utf-8")
    return f"{document.name}/{path.name}"


def _text_pdf(path: Path, title: str) -> None:
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    pdf = canvas.Canvas(str(path), pagesize=A4)
    pdf.drawString(72, A4[1] - 72, f"Memo {title}: a page of text without pictures.")
    pdf.showPage()
    pdf.save()


def _pptx(path: Path, pictures: list[bytes], title: str) -> None:
    from pptx import Presentation
    from pptx.util import Inches

    deck = Presentation()
    first = deck.slides.add_slide(deck.slide_layouts[5])
    first.shapes.title.text = f"Review {title}"
    for start in range(0, len(pictures), 2):  # two pictures a slide, with a title
        slide = deck.slides.add_slide(deck.slide_layouts[5])
        slide.shapes.title.text = f"Figures {start + 1}-{min(start + 2, len(pictures))}"
        for column, data in enumerate(pictures[start:start + 2]):
            slide.shapes.add_picture(io.BytesIO(data), Inches(0.5 + 4.7 * column), Inches(1.8), width=Inches(4.3))
    deck.save(path)


def _xlsx(path: Path, pictures: list[bytes], title: str) -> None:
    from openpyxl import Workbook
    from openpyxl.drawing.image import Image as SheetImage

    book = Workbook()
    sheet = book.active
    sheet.title = "Figures"
    sheet.append(["Figure", "Note"])
    for number, data in enumerate(pictures):
        sheet.append([number + 1, f"{title}: figure {number + 1}"])
        sheet.add_image(SheetImage(io.BytesIO(data)), f"D{2 + number * 14}")  # one picture every 14 rows
    book.save(path)


def _html(names: list[str], title: str) -> str:
    figures = "\n".join(f'<p>Paragraph {number} introduces the next figure.</p>\n<figure><img src="{name}" '
                        f'alt="Figure {number}"><figcaption>Figure {number}.</figcaption></figure>'
                        for number, name in enumerate(names))
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>\n'
            f"<body>\n<h1>Field notes {title}</h1>\n{figures}\n<p>The end.</p>\n</body></html>\n")


def _markdown(names: list[str], title: str) -> str:
    lines = [f"# Team update {title}", "", "Some text before the pictures.", ""]
    for number, name in enumerate(names):
        lines += [f"Paragraph {number} introduces the next figure.", "", f"![Figure {number}]({name})", ""]
    return "\n".join(lines + ["The end.", ""])
