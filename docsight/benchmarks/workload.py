"""Documents for the benchmarks: never-seen pictures (so the description cache cannot absorb them),
large photos, icons and repeated logos.

Markdown needs nothing beyond Pillow; DOCX and PDF use python-docx and reportlab,
which come with the ``dev`` extra (``pip install -e ".[dev]"``).
"""

from __future__ import annotations

import io
import os
import random
import uuid
from pathlib import Path

from PIL import Image, ImageDraw

SAMPLE_DOCUMENTS = Path(__file__).resolve().parents[2] / "samples" / "documents"
SAMPLE_SUFFIXES = {".pdf", ".docx", ".pptx", ".xlsx", ".html", ".htm", ".md"}


def noise_png(width: int = 320, height: int = 240) -> bytes:
    """A unique picture: 64x48 random pixels scaled up (random bytes never repeat)."""
    buffer = io.BytesIO()
    Image.frombytes("RGB", (64, 48), os.urandom(64 * 48 * 3)).resize((width, height)).save(buffer, "PNG")
    return buffer.getvalue()


def photo_jpeg(width: int, height: int, seed: int | None = None, quality: int = 85) -> bytes:
    """A photo-like JPEG (smooth gradients, shapes and grain): unique for each seed."""
    rng = random.Random(seed if seed is not None else uuid.uuid4().int)
    base = Image.linear_gradient("L").resize((width, height))
    red = base.point(lambda v: (v + rng.randrange(256)) % 256)
    green = base.rotate(90, expand=False).resize((width, height)).point(lambda v: (v * 2 + rng.randrange(256)) % 256)
    blue = Image.radial_gradient("L").resize((width, height))
    image = Image.merge("RGB", (red, green, blue))
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x, y = rng.randrange(width), rng.randrange(height)
        r = rng.randrange(max(8, width // 20), max(16, width // 6))
        draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(rng.randrange(256) for _ in range(3)))
    grain = Image.frombytes("L", (width // 4, height // 4), rng.randbytes((width // 4) * (height // 4)))
    image = Image.blend(image, Image.merge("RGB", [grain.resize((width, height))] * 3), 0.15)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def icon_png(side: int = 24) -> bytes:
    """A decorative bullet: below the size filters (both sides < 32 px)."""
    image = Image.new("RGB", (side, side), "white")
    ImageDraw.Draw(image).ellipse((2, 2, side - 3, side - 3), fill=(30, 90, 200))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def unique_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def markdown_document(root: Path, pictures: list[bytes], prefix: str = "md", suffix: str = "png") -> str:
    """A markdown file with its pictures in a folder of its own; returns its path relative to ``root``."""
    name = unique_name(prefix)
    folder = Path(root) / name
    folder.mkdir(parents=True)
    lines = [f"# Document {name}", "", "Some text before the pictures.", ""]
    for number, data in enumerate(pictures):
        (folder / f"p{number}.{suffix}").write_bytes(data)
        lines += [f"Paragraph {number} introduces the next figure.", "", f"![Figure {number}](p{number}.{suffix})", ""]
    (folder / "doc.md").write_text("\n".join(lines + ["The end."]))
    return f"{name}/doc.md"


def unique_markdown_documents(root: Path, documents: int, pictures_each: int, width: int = 320,
                              height: int = 240) -> list[str]:
    return [markdown_document(root, [noise_png(width, height) for _ in range(pictures_each)])
            for _ in range(documents)]


def docx_document(path: Path, pictures: list[bytes], title: str = "Report") -> Path:
    docx = _require("docx", "python-docx")
    from docx.shared import Inches

    document = docx.Document()
    document.add_heading(title, 1)
    for number, data in enumerate(pictures):
        document.add_paragraph(f"Paragraph {number} explains the figure below in a sentence or two.")
        with Image.open(io.BytesIO(data)) as image:
            wide = image.width >= image.height
        document.add_picture(io.BytesIO(data), width=Inches(4) if wide else None, height=None if wide else Inches(4))
        document.add_paragraph(f"Figure {number}: a picture of the report.")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    document.save(path)
    return path


def pdf_document(path: Path, pictures: list[bytes], per_page: int = 2) -> Path:
    _require("reportlab", "reportlab")
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen import canvas

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pdf = canvas.Canvas(str(path), pagesize=A4)
    width, height = A4
    slot = (height - 144) / per_page
    for number, data in enumerate(pictures):
        if number and number % per_page == 0:
            pdf.showPage()
        top = height - 72 - (number % per_page) * slot
        pdf.drawString(72, top - 14, f"Paragraph {number} explains the figure below.")
        reader = ImageReader(io.BytesIO(data))
        w, h = reader.getSize()
        scale = min((width - 144) / w, (slot - 40) / h)
        pdf.drawImage(reader, 72, top - 24 - h * scale, width=w * scale, height=h * scale)
    pdf.save()
    return path


def sample_documents(folder: Path = SAMPLE_DOCUMENTS) -> list[Path]:
    return sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in SAMPLE_SUFFIXES)


def _require(module: str, package: str):
    try:
        return __import__(module)
    except ImportError:
        raise RuntimeError(f"this benchmark writes documents with {package}: pip install -e '.[dev]'") from None
