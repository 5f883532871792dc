"""Generate the sample documents under samples/documents/.

    python samples/make_samples.py

Every document holds real paragraphs around 3-5 pictures of different kinds
(a PIL-drawn chart, a photo-like JPEG, a diagram), captions where the format
has them, and the same company logo (identical JPEG bytes everywhere, so
dedupe can be shown). The logo is a JPEG because a PDF keeps JPEG bytes
verbatim (DCTDecode) while it re-encodes PNGs. Output is deterministic:
fixed seeds, fixed timestamps in the OOXML archives, reportlab invariant mode.
"""

from __future__ import annotations

import io
import math
import random
import shutil
import zipfile
from datetime import datetime
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

OUT = Path(__file__).resolve().parent / "documents"
IMAGES = OUT / "images"
FIXED_TIME = datetime(2024, 1, 15, 9, 30, 0)
COMPANY = "Aurora Instruments"

# ----------------------------------------------------------------------------
# Pictures
# ----------------------------------------------------------------------------


def _font(size: int) -> ImageFont.FreeTypeFont:
    # Pillow's bundled font: identical rendering on every machine.
    return ImageFont.load_default(size=size)


def _jpeg(image: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=quality, optimize=True)
    return buf.getvalue()


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def make_logo() -> bytes:
    img = Image.new("RGB", (240, 96), (255, 255, 255))
    d = ImageDraw.Draw(img)
    d.ellipse((12, 14, 80, 82), fill=(18, 86, 160))
    d.polygon([(46, 22), (70, 72), (22, 72)], fill=(250, 190, 40))
    d.text((92, 22), "AURORA", font=_font(30), fill=(18, 86, 160))
    d.text((94, 58), "INSTRUMENTS", font=_font(15), fill=(90, 90, 90))
    return _jpeg(img, 92)


def make_bar_chart(title: str, labels: list[str], values: list[float], seed: int) -> bytes:
    w, h = 640, 400
    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    d.text((20, 12), title, font=_font(20), fill="black")
    left, bottom, top, right = 60, h - 50, 60, w - 20
    d.line((left, top, left, bottom), fill="black", width=2)
    d.line((left, bottom, right, bottom), fill="black", width=2)
    vmax = max(values) * 1.15
    for tick in range(0, 5):
        y = bottom - (bottom - top) * tick / 4
        d.line((left - 5, y, left, y), fill="black")
        d.text((10, y - 8), f"{vmax * tick / 4:.0f}", font=_font(12), fill="black")
    rng = random.Random(seed)
    slot = (right - left) / len(values)
    for i, (label, value) in enumerate(zip(labels, values)):
        x0 = left + slot * i + slot * 0.2
        x1 = left + slot * (i + 1) - slot * 0.2
        y0 = bottom - (bottom - top) * value / vmax
        colour = (rng.randint(30, 200), rng.randint(60, 180), rng.randint(120, 230))
        d.rectangle((x0, y0, x1, bottom), fill=colour, outline="black")
        d.text((x0, bottom + 8), label, font=_font(14), fill="black")
        d.text((x0, y0 - 18), f"{value:g}", font=_font(12), fill="black")
    return _png(img)


def make_line_chart(title: str, seed: int) -> bytes:
    w, h = 640, 360
    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    d.text((20, 12), title, font=_font(20), fill="black")
    left, bottom, top, right = 50, h - 40, 50, w - 20
    for i in range(6):
        y = top + (bottom - top) * i / 5
        d.line((left, y, right, y), fill=(225, 225, 225))
    d.line((left, top, left, bottom), fill="black", width=2)
    d.line((left, bottom, right, bottom), fill="black", width=2)
    rng = random.Random(seed)
    for colour in ((200, 60, 60), (40, 120, 200)):
        level = rng.uniform(0.3, 0.6)
        points = []
        for i in range(12):
            level = min(0.95, max(0.05, level + rng.uniform(-0.12, 0.14)))
            x = left + (right - left) * i / 11
            points.append((x, bottom - (bottom - top) * level))
        d.line(points, fill=colour, width=3)
        for x, y in points:
            d.ellipse((x - 4, y - 4, x + 4, y + 4), fill=colour)
    for i, month in enumerate("JFMAMJJASOND"):
        d.text((left + (right - left) * i / 11 - 4, bottom + 8), month, font=_font(12), fill="black")
    return _png(img)


def make_photo(width: int, height: int, seed: int, quality: int) -> bytes:
    """A photo-like landscape: sky gradient, hills, sun, soft grain."""
    rng = np.random.default_rng(seed)
    y = np.linspace(0.0, 1.0, height)[:, None]
    sky = np.empty((height, width, 3))
    sky[..., 0] = 90 + 120 * y
    sky[..., 1] = 140 + 80 * y
    sky[..., 2] = 230 - 40 * y
    img = Image.fromarray(sky.clip(0, 255).astype(np.uint8))
    d = ImageDraw.Draw(img)
    sun_x, sun_y, r = width * 0.72, height * 0.25, height * 0.08
    d.ellipse((sun_x - r, sun_y - r, sun_x + r, sun_y + r), fill=(255, 236, 170))
    prng = random.Random(seed)
    for layer, colour in enumerate(((70, 110, 80), (50, 90, 60), (35, 70, 45))):
        base = height * (0.55 + 0.12 * layer)
        phase = prng.uniform(0, math.tau)
        pts = [(0, height)]
        for i in range(0, 41):
            x = width * i / 40
            pts.append((x, base - height * 0.08 * math.sin(phase + i / 40 * math.tau * (1.5 + layer))))
        pts.append((width, height))
        d.polygon(pts, fill=colour)
    img = img.filter(ImageFilter.GaussianBlur(radius=max(1, width // 400)))
    # Grain, blurred so that it looks photographic and still compresses.
    grain = rng.normal(0, 9, (height // 4, width // 4, 1)).repeat(3, axis=2)
    grain_img = Image.fromarray((grain + 128).clip(0, 255).astype(np.uint8)).resize((width, height), Image.BICUBIC)
    arr = np.asarray(img, dtype=np.int16) + np.asarray(grain_img, dtype=np.int16) - 128
    return _jpeg(Image.fromarray(arr.clip(0, 255).astype(np.uint8)), quality)


def make_diagram(title: str, steps: list[str]) -> bytes:
    w, h = 720, 260
    img = Image.new("RGB", (w, h), (250, 250, 247))
    d = ImageDraw.Draw(img)
    d.text((20, 14), title, font=_font(20), fill="black")
    box_w, box_h, gap = 140, 70, (w - 40 - 140 * len(steps)) / max(1, len(steps) - 1)
    y0 = 110
    for i, step in enumerate(steps):
        x0 = 20 + i * (box_w + gap)
        d.rounded_rectangle((x0, y0, x0 + box_w, y0 + box_h), radius=12, fill=(220, 235, 250), outline=(18, 86, 160), width=3)
        tw = d.textlength(step, font=_font(16))
        d.text((x0 + (box_w - tw) / 2, y0 + 25), step, font=_font(16), fill=(10, 40, 80))
        if i < len(steps) - 1:
            ax0, ax1, ay = x0 + box_w + 4, x0 + box_w + gap - 4, y0 + box_h / 2
            d.line((ax0, ay, ax1, ay), fill=(60, 60, 60), width=3)
            d.polygon([(ax1, ay), (ax1 - 10, ay - 7), (ax1 - 10, ay + 7)], fill=(60, 60, 60))
    d.text((20, 210), "Each stage publishes its result to the next topic.", font=_font(14), fill=(80, 80, 80))
    return _png(img)


def build_pictures() -> dict[str, bytes]:
    return {
        "logo.jpg": make_logo(),
        "revenue_chart.png": make_bar_chart(
            "Revenue by region (EUR k)", ["North", "South", "East", "West", "Online"], [420, 310, 275, 390, 515], seed=1
        ),
        "sensor_trend.png": make_line_chart("Sensor shipments 2023 (two product lines)", seed=2),
        "lake_photo.jpg": make_photo(800, 600, seed=3, quality=80),
        "field_site_large.jpg": make_photo(1600, 1200, seed=4, quality=70),
        "pipeline_diagram.png": make_diagram("Calibration pipeline", ["Collect", "Calibrate", "Validate", "Ship"]),
    }


# ----------------------------------------------------------------------------
# Text
# ----------------------------------------------------------------------------

INTRO = (
    f"{COMPANY} designs rugged environmental sensors for lakes, rivers and coastal "
    "stations. This year we shipped more units than ever before, opened a second "
    "calibration laboratory and moved our data platform to a streaming design."
)
REVENUE = (
    "Revenue grew in every region. Online sales, launched only eighteen months ago, "
    "are now our largest channel, while the West region recovered after the supply "
    "problems of the previous year."
)
FIELD = (
    "Our field team spent six weeks at the northern lake site, replacing forty buoys "
    "and testing the new low-power radio modules in freezing conditions."
)
PIPELINE = (
    "Every instrument passes four stages before it ships. Failures at the validation "
    "stage dropped by a third after we automated the calibration step."
)
TREND = (
    "Shipments of both product lines rose through the summer season, with the "
    "compact line overtaking the classic line in September."
)
OUTLOOK = (
    "Next year we will focus on coastal stations, where salt and storms make "
    "reliable measurements hardest, and on shortening delivery times."
)


# ----------------------------------------------------------------------------
# Documents
# ----------------------------------------------------------------------------


def make_pdf(pics: dict[str, bytes], path: Path) -> None:
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen.canvas import Canvas

    width, height = A4
    margin = 56
    canvas = Canvas(str(path), pagesize=A4, invariant=1)
    canvas.setTitle(f"{COMPANY} annual report")

    def paragraph(y: float, text: str, size: int = 11) -> float:
        """Write wrapped text starting at baseline y (bottom-left origin); return the next free y."""
        from reportlab.lib.utils import simpleSplit

        canvas.setFont("Helvetica", size)
        for line in simpleSplit(text, "Helvetica", size, width - 2 * margin):
            canvas.drawString(margin, y, line)
            y -= size * 1.4
        return y - 8

    def picture(y_top: float, name: str, draw_w: float) -> float:
        img = ImageReader(io.BytesIO(pics[name]))
        iw, ih = img.getSize()
        draw_h = draw_w * ih / iw
        canvas.drawImage(img, margin, y_top - draw_h, draw_w, draw_h)
        return y_top - draw_h - 14

    def caption(y: float, text: str) -> float:
        canvas.setFont("Helvetica-Oblique", 9)
        canvas.drawString(margin, y, text)
        return y - 22

    # Page 1: the logo sits above the title, so a naive "pictures after text" order is wrong.
    y = height - margin
    y = picture(y, "logo.jpg", 120)
    canvas.setFont("Helvetica-Bold", 20)
    canvas.drawString(margin, y - 10, f"{COMPANY}: Annual Report 2023")
    y = paragraph(y - 40, INTRO)
    y = paragraph(y, REVENUE)
    y = picture(y, "revenue_chart.png", 360)
    y = caption(y, "Figure 1: Revenue by region in 2023.")
    paragraph(y, "The online channel is discussed in detail in section three of this report.")
    canvas.showPage()

    # Page 2: the large photo.
    y = height - margin
    canvas.setFont("Helvetica-Bold", 14)
    canvas.drawString(margin, y - 10, "Field work")
    y = paragraph(y - 34, FIELD)
    y = picture(y, "field_site_large.jpg", width - 2 * margin)
    y = caption(y, "Figure 2: The northern lake field site at dawn.")
    paragraph(y, "The buoys installed there now report every five minutes.")
    canvas.showPage()

    # Page 3: two pictures on one page.
    y = height - margin
    canvas.setFont("Helvetica-Bold", 14)
    canvas.drawString(margin, y - 10, "Operations")
    y = paragraph(y - 34, PIPELINE)
    y = picture(y, "pipeline_diagram.png", 400)
    y = caption(y, "Figure 3: The four stages of the calibration pipeline.")
    y = paragraph(y, TREND)
    y = picture(y, "sensor_trend.png", 340)
    y = caption(y, "Figure 4: Monthly shipments of the two product lines.")
    paragraph(y, OUTLOOK)
    canvas.showPage()
    canvas.save()


def make_docx(pics: dict[str, bytes], path: Path, with_pictures: bool = True) -> None:
    from docx import Document
    from docx.shared import Inches

    doc = Document()
    doc.core_properties.created = FIXED_TIME
    doc.core_properties.modified = FIXED_TIME
    doc.core_properties.author = COMPANY
    if not with_pictures:
        doc.add_heading("Memo: office move", level=1)
        doc.add_paragraph(
            "The Lisbon office moves to the new building on the third of March. Desks are "
            "packed by the facilities team; please label personal items by Friday."
        )
        doc.add_paragraph("Parking permits for the new building are available from reception.")
        doc.save(path)
        return

    def figure(name: str, width_in: float, text: str) -> None:
        doc.add_picture(io.BytesIO(pics[name]), width=Inches(width_in))
        doc.add_paragraph(text, style="Caption")

    doc.add_picture(io.BytesIO(pics["logo.jpg"]), width=Inches(1.5))
    doc.add_heading("Product brief: the Aurora LakeSense buoy", level=1)
    doc.add_paragraph(INTRO)
    doc.add_heading("Sales", level=2)
    doc.add_paragraph(REVENUE)
    figure("revenue_chart.png", 5.0, "Figure 1: Revenue by region in 2023.")
    doc.add_paragraph("Online sales are expected to keep growing next year.")
    doc.add_heading("In the field", level=2)
    doc.add_paragraph(FIELD)
    figure("lake_photo.jpg", 4.5, "Figure 2: A LakeSense buoy on the northern lake.")
    doc.add_heading("How we build it", level=2)
    doc.add_paragraph(PIPELINE)
    figure("pipeline_diagram.png", 5.5, "Figure 3: The calibration pipeline.")
    doc.add_paragraph(OUTLOOK)
    doc.save(path)


def make_pptx(pics: dict[str, bytes], path: Path) -> None:
    from pptx import Presentation
    from pptx.util import Inches, Pt

    prs = Presentation()
    prs.core_properties.created = FIXED_TIME
    prs.core_properties.modified = FIXED_TIME
    prs.core_properties.last_modified_by = COMPANY
    title_only = prs.slide_layouts[5]

    def text_box(slide, left, top, width, height, text, size=16):
        box = slide.shapes.add_textbox(Inches(left), Inches(top), Inches(width), Inches(height))
        box.text_frame.word_wrap = True
        box.text_frame.text = text
        for p in box.text_frame.paragraphs:
            for run in p.runs:
                run.font.size = Pt(size)

    s1 = prs.slides.add_slide(prs.slide_layouts[0])
    s1.shapes.title.text = "Quarterly review Q4 2023"
    s1.placeholders[1].text = INTRO
    s1.shapes.add_picture(io.BytesIO(pics["logo.jpg"]), Inches(7.2), Inches(0.3), width=Inches(2.3))

    s2 = prs.slides.add_slide(title_only)
    s2.shapes.title.text = "Revenue by region"
    text_box(s2, 0.5, 1.6, 3.8, 3.0, REVENUE)
    s2.shapes.add_picture(io.BytesIO(pics["revenue_chart.png"]), Inches(4.5), Inches(1.6), width=Inches(5.0))
    text_box(s2, 4.5, 4.9, 5.0, 0.5, "Figure 1: Revenue by region in 2023.", size=12)

    s3 = prs.slides.add_slide(title_only)
    s3.shapes.title.text = "Field work and operations"
    s3.shapes.add_picture(io.BytesIO(pics["lake_photo.jpg"]), Inches(0.5), Inches(1.6), width=Inches(4.3))
    s3.shapes.add_picture(io.BytesIO(pics["pipeline_diagram.png"]), Inches(5.0), Inches(1.8), width=Inches(4.6))
    text_box(s3, 0.5, 5.0, 9.0, 1.5, FIELD + " " + PIPELINE, size=14)
    prs.save(path)


def make_xlsx(pics: dict[str, bytes], path: Path) -> None:
    from openpyxl import Workbook
    from openpyxl.drawing.image import Image as XlImage

    wb = Workbook()
    wb.properties.created = FIXED_TIME
    wb.properties.modified = FIXED_TIME
    wb.properties.creator = COMPANY
    sales = wb.active
    sales.title = "Sales"
    sales.append(["Region", "Revenue (EUR k)", "Units"])
    for row in [("North", 420, 1310), ("South", 310, 980), ("East", 275, 860), ("West", 390, 1220), ("Online", 515, 1730)]:
        sales.append(list(row))
    sales.add_image(XlImage(io.BytesIO(pics["logo.jpg"])), "F2")
    sales.add_image(XlImage(io.BytesIO(pics["revenue_chart.png"])), "F9")

    sites = wb.create_sheet("Sites")
    sites.append(["Site", "Buoys", "Status"])
    for row in [("Northern lake", 40, "replaced"), ("River delta", 12, "active"), ("Harbour", 8, "testing")]:
        sites.append(list(row))
    sites.add_image(XlImage(io.BytesIO(pics["lake_photo.jpg"])), "E3")
    wb.save(path)


def make_html(pics: dict[str, bytes], path: Path) -> None:
    path.write_text(
        f"""<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>{COMPANY} field notes</title></head>
<body>
<img src="images/logo.jpg" alt="{COMPANY} logo">
<h1>Field notes: northern lake, winter 2023</h1>
<p>{FIELD}</p>
<figure>
  <img src="images/lake_photo.jpg" alt="Buoys on a calm lake at dawn">
  <figcaption>Figure 1: A LakeSense buoy on the northern lake.</figcaption>
</figure>
<p>{PIPELINE}</p>
<figure>
  <img src="images/pipeline_diagram.png" alt="Diagram of the calibration pipeline">
  <figcaption>Figure 2: The four stages of the calibration pipeline.</figcaption>
</figure>
<h2>Shipments</h2>
<p>{TREND}</p>
<figure>
  <img src="images/sensor_trend.png" alt="Line chart of monthly shipments">
  <figcaption>Figure 3: Monthly shipments of the two product lines.</figcaption>
</figure>
<p>{OUTLOOK}</p>
</body>
</html>
""",
        encoding="utf-8",
    )


def make_markdown(pics: dict[str, bytes], path: Path) -> None:
    path.write_text(
        f"""![{COMPANY} logo](images/logo.jpg)

# Team update: January

{INTRO}

## Revenue

{REVENUE}

![Bar chart of revenue by region](images/revenue_chart.png)

Figure 1: Revenue by region in 2023.

## Operations

{PIPELINE}

![Diagram of the calibration pipeline](images/pipeline_diagram.png)

Figure 2: The calibration pipeline.

{OUTLOOK}
""",
        encoding="utf-8",
    )


def _normalise_zip(path: Path) -> None:
    """Rewrite an OOXML archive with fixed timestamps so that output is byte-stable."""
    with zipfile.ZipFile(path) as src:
        members = [(info.filename, src.read(info.filename)) for info in src.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=FIXED_TIME.timetuple()[:6])
            info.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(info, data)


def main() -> None:
    if OUT.exists():
        shutil.rmtree(OUT)
    IMAGES.mkdir(parents=True)
    pics = build_pictures()
    # The HTML and Markdown documents reference these files; the large photo is only in the PDF.
    for name, data in pics.items():
        if name != "field_site_large.jpg":
            (IMAGES / name).write_bytes(data)
    make_pdf(pics, OUT / "annual_report.pdf")
    make_docx(pics, OUT / "product_brief.docx")
    make_docx(pics, OUT / "memo_no_pictures.docx", with_pictures=False)
    make_pptx(pics, OUT / "quarterly_review.pptx")
    make_xlsx(pics, OUT / "sales_data.xlsx")
    make_html(pics, OUT / "field_notes.html")
    make_markdown(pics, OUT / "team_update.md")
    for name in ("product_brief.docx", "memo_no_pictures.docx", "quarterly_review.pptx", "sales_data.xlsx"):
        _normalise_zip(OUT / name)
    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    for p in sorted(OUT.rglob("*")):
        if p.is_file():
            print(f"{p.stat().st_size:>9}  {p.relative_to(OUT)}")
    print(f"{total:>9}  total")


if __name__ == "__main__":
    main()
