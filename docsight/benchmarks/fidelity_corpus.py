"""A corpus of real-style documents for ``docsight bench fidelity``: every case of issue 12.

    python -m docsight.benchmarks.fidelity_corpus OUT_DIR

Writes one document per case plus ``corpus.json`` (what each document holds; for PDFs the
number of figures a reader sees, which the benchmark divides the pictures sent by):

- ``office_metafiles.docx``, ``workbook_charts.xlsx``, ``slides_charts.pptx``: EMF and WMF pictures
  (made here, byte by byte), native charts with their data, an ordinary PNG;
- ``office_drawings.docx``: a native chart, a DrawingML shape, a picture linked from the web
  (``r:link``, no bytes in the file), a picture inside a table cell;
- ``wiki_lake.html`` + ``wiki_lake_files/``: a saved encyclopedia page with dozens of pictures:
  local thumbnails, remote and protocol-relative ``//upload...`` pictures, data URIs, SVG,
  a missing file, one outside the page's folder, pictures in an infobox and a gallery table;
- ``tables_and_remote.md`` + ``tables_and_remote_files/``: pictures inside a Markdown table, remote pictures;
- ``figures_fragments.pdf``: figures cut into touching bitmap tiles and strips (one caption each), a chart
  with its legend as a second bitmap, vector-drawn charts and diagrams, two photos side by side with a
  caption each, headings in a larger font and in the PDF outline.

Needs python-docx, python-pptx, openpyxl and reportlab (the ``dev`` extra). Deterministic: fixed seeds.
"""

from __future__ import annotations

import io
import json
import random
import re
import struct
import sys
import zipfile
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from .workload import _require, photo_jpeg

EMU_PER_INCH = 914400

# ----------------------------------------------------------------------------
# Pictures
# ----------------------------------------------------------------------------


def wmf_bytes(width: int = 400, height: int = 300, color: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    """A placeable Windows Metafile: a filled rectangle and an ellipse (what Office keeps from old clip art)."""
    records: list[bytes] = []

    def words(function: int, *values: int) -> None:
        records.append(struct.pack("<IH", 3 + len(values), function) + b"".join(struct.pack("<h", v) for v in values))

    def raw(function: int, payload: bytes) -> None:
        records.append(struct.pack("<IH", 3 + len(payload) // 2, function) + payload)

    words(0x020B, 0, 0)  # SETWINDOWORG
    words(0x020C, height, width)  # SETWINDOWEXT
    raw(0x02FC, struct.pack("<HBBBBH", 0, *color, 0, 0))  # CREATEBRUSHINDIRECT
    words(0x012D, 0)  # SELECTOBJECT
    words(0x041B, height - 20, width // 2, 20, 20)  # RECTANGLE (bottom, right, top, left)
    raw(0x02FC, struct.pack("<HBBBBH", 0, 40, 90, 200, 0, 0))
    words(0x012D, 1)
    words(0x0418, height - 40, width - 20, 40, width // 2 + 10)  # ELLIPSE
    records.append(struct.pack("<IH", 3, 0))  # EOF
    body = b"".join(records)
    header = struct.pack("<HHHIHIH", 1, 9, 0x0300, 9 + len(body) // 2, 2, max(len(r) // 2 for r in records), 0)
    placeable = struct.pack("<IHhhhhHI", 0x9AC6CDD7, 0, 0, 0, width, height, 96, 0)
    checksum = 0
    for (word,) in struct.iter_unpack("<H", placeable):
        checksum ^= word
    return placeable + struct.pack("<H", checksum) + header + body


def emf_bytes(width: int = 400, height: int = 300, color: tuple[int, int, int] = (30, 140, 60)) -> bytes:
    """An Enhanced Metafile: a filled rectangle and an ellipse."""
    records: list[bytes] = []

    def record(kind: int, payload: bytes) -> None:
        records.append(struct.pack("<II", kind, 8 + len(payload)) + payload)

    record(39, struct.pack("<IIBBBBI", 1, 0, *color, 0, 0))  # CREATEBRUSHINDIRECT
    record(37, struct.pack("<I", 1))  # SELECTOBJECT
    record(43, struct.pack("<iiii", 20, 20, width // 2, height - 20))  # RECTANGLE
    record(39, struct.pack("<IIBBBBI", 2, 0, 230, 160, 20, 0, 0))
    record(37, struct.pack("<I", 2))
    record(42, struct.pack("<iiii", width // 2 + 10, 40, width - 20, height - 40))  # ELLIPSE
    record(14, struct.pack("<III", 0, 16, 20))  # EOF
    body = b"".join(records)
    mm_w, mm_h = round(width * 25.4 / 96), round(height * 25.4 / 96)
    header = struct.pack("<II", 1, 88) + struct.pack("<iiii", 0, 0, width - 1, height - 1)
    header += struct.pack("<iiii", 0, 0, mm_w * 100, mm_h * 100)
    header += struct.pack("<IIIIHHIIIiiii", 0x464D4520, 0x10000, 88 + len(body), len(records) + 1, 3, 0, 0, 0, 0,
                          width, height, mm_w, mm_h)
    return header + body


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def labelled_png(text: str, width: int = 480, height: int = 320, seed: int = 0) -> bytes:
    """A distinct picture with a title and a few shapes (distinct bytes: no dedupe across the corpus)."""
    rng = random.Random(seed)
    image = Image.new("RGB", (width, height), (250, 250, 245))
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x, y = rng.randrange(width), rng.randrange(height)
        r = rng.randrange(20, 70)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(rng.randrange(40, 230) for _ in range(3)))
    draw.text((16, 12), text, font=ImageFont.load_default(size=22), fill=(20, 20, 20))
    return _png(image)


def icon_png(side: int, seed: int) -> bytes:
    rng = random.Random(seed)
    image = Image.new("RGB", (side, side), "white")
    ImageDraw.Draw(image).rectangle((2, 2, side - 3, side - 3), fill=tuple(rng.randrange(256) for _ in range(3)))
    return _png(image)


SVG = ('<svg xmlns="http://www.w3.org/2000/svg" width="320" height="200" viewBox="0 0 320 200">'
       '<rect x="10" y="10" width="140" height="180" fill="#2a6fb0"/>'
       '<circle cx="230" cy="100" r="70" fill="#e0a030"/></svg>')

# ----------------------------------------------------------------------------
# OOXML surgery: swap media, add parts
# ----------------------------------------------------------------------------

CONTENT_TYPES = {"emf": "image/x-emf", "wmf": "image/x-wmf", "svg": "image/svg+xml"}


def rewrite_zip(path: Path, edit) -> None:
    """Rewrite an OOXML archive: ``edit(members)`` changes the dict name -> bytes in place."""
    with zipfile.ZipFile(path) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    edit(members)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(zipfile.ZipInfo(name, date_time=(2024, 1, 15, 9, 30, 0)), data)


def swap_media(members: dict[str, bytes], swaps: dict[str, tuple[str, bytes]]) -> None:
    """Replace media members (``{old: (new name, bytes)}``) and fix every relationship pointing at them."""
    for old, (new, data) in swaps.items():
        del members[old]
        members[new] = data
        old_leaf, new_leaf = old.rsplit("/", 1)[1], new.rsplit("/", 1)[1]
        for name in [n for n in members if n.endswith(".rels")]:
            members[name] = members[name].replace(f"/{old_leaf}\"".encode(), f"/{new_leaf}\"".encode())
    types = members["[Content_Types].xml"].decode()
    for extension, mime in CONTENT_TYPES.items():
        if f'Extension="{extension}"' not in types:
            types = types.replace("<Default ", f'<Default Extension="{extension}" ContentType="{mime}"/><Default ', 1)
    members["[Content_Types].xml"] = types.encode()


def _media_in_order(members: dict[str, bytes], prefix: str) -> list[str]:
    def number(name: str) -> int:
        digits = re.findall(r"\d+", name.rsplit("/", 1)[1])
        return int(digits[0]) if digits else 0

    return sorted((n for n in members if n.startswith(prefix)), key=number)


# ----------------------------------------------------------------------------
# DOCX
# ----------------------------------------------------------------------------

LAKE = ("The northern lake freezes for about ninety days a year. The survey team measured ice thickness, water "
        "temperature and dissolved oxygen at twelve stations, twice a month, from November to March.")
METHOD = ("Each station has a buoy with four sensors; the readings are sent every ten minutes and checked against "
          "manual samples taken by the field team on every visit.")


def docx_metafiles(path: Path) -> dict:
    """A Word report whose pictures are a PNG, an EMF and a WMF (as old Office clip art and Visio exports are)."""
    docx = _require("docx", "python-docx")
    from docx.shared import Inches

    document = docx.Document()
    document.add_heading("Ice survey 2023", 1)
    document.add_paragraph(LAKE)
    pictures = [labelled_png("Station map", seed=1), labelled_png("EMF slot", seed=2), labelled_png("WMF slot", seed=3)]
    captions = ["Figure 1: Map of the twelve stations.", "Figure 2: Buoy schematic (EMF).",
                "Figure 3: Sensor housing (WMF)."]
    for data, caption in zip(pictures, captions):
        document.add_picture(io.BytesIO(data), width=Inches(4))
        document.add_paragraph(caption, style="Caption")
        document.add_paragraph(METHOD)
    document.save(path)

    def edit(members: dict[str, bytes]) -> None:
        media = _media_in_order(members, "word/media/")
        swap_media(members, {media[1]: ("word/media/image2.emf", emf_bytes()),
                             media[2]: ("word/media/image3.wmf", wmf_bytes())})

    rewrite_zip(path, edit)
    return {"kinds": ["png", "emf", "wmf"]}


W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
CHART_URI = "http://schemas.openxmlformats.org/drawingml/2006/chart"
WPS_URI = "http://schemas.microsoft.com/office/word/2010/wordprocessingShape"
RT_CHART = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/chart"
RT_IMAGE = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/image"
CHART_CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.drawingml.chart+xml"


def chart_xml(categories: list[str], series: dict[str, list[float]], kind: str = "column") -> bytes:
    """A DrawingML chart part (the schema Word, PowerPoint and Excel share), written by python-pptx."""
    _require("pptx", "python-pptx")
    from pptx.chart.data import CategoryChartData
    from pptx.chart.xmlwriter import ChartXmlWriter
    from pptx.enum.chart import XL_CHART_TYPE

    data = CategoryChartData()
    data.categories = categories
    for name, values in series.items():
        data.add_series(name, values)
    chart_type = {"column": XL_CHART_TYPE.COLUMN_CLUSTERED, "line": XL_CHART_TYPE.LINE,
                  "pie": XL_CHART_TYPE.PIE}[kind]
    return ChartXmlWriter(chart_type, data).xml.encode()


def _inline(extent_cx: int, extent_cy: int, drawing_id: int, name: str, graphic_data: str) -> str:
    return (
        f'<w:r xmlns:w="{W_NS}"><w:drawing>'
        '<wp:inline xmlns:wp="http://schemas.openxmlformats.org/drawingml/2006/wordprocessingDrawing" '
        'distT="0" distB="0" distL="0" distR="0">'
        f'<wp:extent cx="{extent_cx}" cy="{extent_cy}"/><wp:docPr id="{drawing_id}" name="{name}"/>'
        '<a:graphic xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main">'
        f'{graphic_data}</a:graphic></wp:inline></w:drawing></w:r>'
    )


def add_docx_chart(document, number: int, blob: bytes) -> None:
    """A paragraph holding a native chart (a graphic frame pointing at word/charts/chartN.xml)."""
    from docx.opc.packuri import PackURI
    from docx.opc.part import Part
    from docx.oxml import parse_xml

    part = Part(PackURI(f"/word/charts/chart{number}.xml"), CHART_CONTENT_TYPE, blob, document.part.package)
    rid = document.part.relate_to(part, RT_CHART)
    paragraph = document.add_paragraph()
    paragraph._p.append(parse_xml(_inline(
        5486400, 3200400, 100 + number, f"Chart {number}",
        f'<a:graphicData uri="{CHART_URI}"><c:chart xmlns:c="{CHART_URI}" '
        f'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships" r:id="{rid}"/>'
        '</a:graphicData>')))


def docx_many_charts(path: Path, count: int) -> dict:
    """A report with one native chart per paragraph (a dashboard export)."""
    docx = _require("docx", "python-docx")
    document = docx.Document()
    document.add_heading("Dashboard", 1)
    for number in range(1, count + 1):
        document.add_paragraph(f"Station {number}: readings of the winter.")
        add_docx_chart(document, number, chart_xml(["Nov", "Dec", "Jan"], {"Ice (cm)": [5 + number, 20, 38]}))
    document.save(path)
    return {"kinds": ["chart"] * count}


def docx_drawings(path: Path) -> dict:
    """A Word report with a native chart, a DrawingML shape, a web-linked picture and a picture in a table."""
    docx = _require("docx", "python-docx")
    from docx.oxml import parse_xml
    from docx.shared import Inches

    document = docx.Document()
    document.add_heading("Station report", 1)
    document.add_paragraph(LAKE)

    # a native chart: a graphic frame pointing at word/charts/chart1.xml
    document.add_paragraph("Oxygen fell at every station through the winter, as the chart shows.")
    add_docx_chart(document, 1, chart_xml(["Nov", "Dec", "Jan", "Feb", "Mar"], {
        "Station 1": [11.2, 10.1, 8.7, 7.9, 8.8], "Station 7": [10.8, 9.6, 8.1, 7.2, 8.0]}, "line"))
    document.add_paragraph("Figure 1: Dissolved oxygen (mg/l) at two stations.", style="Caption")

    # a DrawingML shape with no picture inside (a callout drawn in Word)
    document.add_paragraph("The buoy's float is marked by the star below on every chart of the lake.")
    shape = (
        f'<a:graphicData uri="{WPS_URI}"><wps:wsp xmlns:wps="{WPS_URI}">'
        '<wps:cNvSpPr/><wps:spPr><a:xfrm><a:off x="0" y="0"/><a:ext cx="1828800" cy="1828800"/></a:xfrm>'
        '<a:prstGeom prst="star5"><a:avLst/></a:prstGeom><a:solidFill><a:srgbClr val="E0A030"/></a:solidFill>'
        '</wps:spPr><wps:bodyPr/></wps:wsp></a:graphicData>')
    paragraph = document.add_paragraph()
    paragraph._p.append(parse_xml(_inline(1828800, 1828800, 101, "Star 1", shape)))

    # a picture linked from the web: Word keeps only the address (r:link), no bytes
    document.add_paragraph("The lake from the air, as published by the regional survey office:")
    document.add_picture(io.BytesIO(labelled_png("link placeholder", seed=11)), width=Inches(4))
    document.add_paragraph("Figure 2: Aerial view of the lake.", style="Caption")

    # pictures inside a table: a station sheet with a photo per station
    document.add_paragraph("Station sheet:")
    table = document.add_table(rows=3, cols=3)
    table.style = "Table Grid"
    for cell, text in zip(table.rows[0].cells, ["Station", "Depth (m)", "Photo"]):
        cell.text = text
    for row, (station, depth, seed) in zip(table.rows[1:], [("North bay", "14", 21), ("Outlet", "6", 22)]):
        row.cells[0].text = station
        row.cells[1].text = depth
        row.cells[2].paragraphs[0].add_run().add_picture(
            io.BytesIO(labelled_png(station, 320, 240, seed=seed)), width=Inches(1.5))
    document.add_paragraph(METHOD)
    document.save(path)

    def edit(members: dict[str, bytes]) -> None:
        xml = members["word/document.xml"].decode()
        rels = members["word/_rels/document.xml.rels"].decode()
        media = _media_in_order(members, "word/media/")
        linked = media[0]  # the first picture added is the one to link
        rid = re.search(rf'Id="(rId\d+)"[^>]*Target="media/{re.escape(linked.rsplit("/", 1)[1])}"', rels)
        if rid is None:
            rid = re.search(rf'Target="media/{re.escape(linked.rsplit("/", 1)[1])}"[^>]*Id="(rId\d+)"', rels)
        old = rid.group(1)
        rels = rels.replace("</Relationships>", f'<Relationship Id="rIdWeb1" Type="{RT_IMAGE}" '
                            'Target="https://upload.example.org/lake/aerial.jpg" TargetMode="External"/>'
                            "</Relationships>")
        xml = xml.replace(f'r:embed="{old}"', 'r:link="rIdWeb1"', 1)
        members["word/document.xml"] = xml.encode()
        members["word/_rels/document.xml.rels"] = rels.encode()

    rewrite_zip(path, edit)
    return {"kinds": ["chart", "drawingml_shape", "linked", "table_picture", "table_picture"]}


# ----------------------------------------------------------------------------
# PPTX and XLSX
# ----------------------------------------------------------------------------


def pptx_charts(path: Path) -> dict:
    """Slides with a native chart, a PNG and an EMF picture."""
    pptx = _require("pptx", "python-pptx")
    from pptx.chart.data import CategoryChartData
    from pptx.enum.chart import XL_CHART_TYPE
    from pptx.util import Inches

    presentation = pptx.Presentation()
    layout = presentation.slide_layouts[5]
    slide = presentation.slides.add_slide(layout)
    slide.shapes.title.text = "Readings by station"
    data = CategoryChartData()
    data.categories = ["North bay", "Outlet", "Delta"]
    data.add_series("Ice (cm)", (42, 31, 18))
    data.add_series("Oxygen (mg/l)", (8.1, 9.4, 10.2))
    slide.shapes.add_chart(XL_CHART_TYPE.COLUMN_CLUSTERED, Inches(0.5), Inches(1.5), Inches(6), Inches(4.5), data)
    slide = presentation.slides.add_slide(layout)
    slide.shapes.title.text = "The buoy"
    slide.shapes.add_picture(io.BytesIO(labelled_png("Buoy photo", seed=31)), Inches(0.5), Inches(1.5), Inches(4))
    slide.shapes.add_picture(io.BytesIO(labelled_png("EMF slot", seed=32)), Inches(5), Inches(1.5), Inches(4))
    presentation.save(path)

    def edit(members: dict[str, bytes]) -> None:
        media = _media_in_order(members, "ppt/media/")
        swap_media(members, {media[-1]: ("ppt/media/image9.emf", emf_bytes(color=(120, 60, 160)))})

    rewrite_zip(path, edit)
    return {"kinds": ["chart", "png", "emf"]}


def xlsx_charts(path: Path) -> dict:
    """A workbook with two native charts, a PNG and a WMF picture."""
    openpyxl = _require("openpyxl", "openpyxl")
    from openpyxl.chart import BarChart, LineChart, Reference
    from openpyxl.drawing.image import Image as XlImage

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "Readings"
    sheet.append(["Month", "Ice (cm)", "Oxygen (mg/l)"])
    for row in [("Nov", 5, 11.2), ("Dec", 21, 10.1), ("Jan", 38, 8.7), ("Feb", 44, 7.9), ("Mar", 30, 8.8)]:
        sheet.append(list(row))
    bars = BarChart()
    bars.title = "Ice thickness"
    bars.add_data(Reference(sheet, min_col=2, min_row=1, max_row=6), titles_from_data=True)
    bars.set_categories(Reference(sheet, min_col=1, min_row=2, max_row=6))
    sheet.add_chart(bars, "E2")
    line = LineChart()
    line.title = "Oxygen"
    line.add_data(Reference(sheet, min_col=3, min_row=1, max_row=6), titles_from_data=True)
    line.set_categories(Reference(sheet, min_col=1, min_row=2, max_row=6))
    sheet.add_chart(line, "E20")
    photos = workbook.create_sheet("Photos")
    photos.append(["Station", "Note"])
    photos.append(["North bay", "buoy replaced"])
    photos.add_image(XlImage(io.BytesIO(labelled_png("Station photo", seed=41))), "D2")
    photos.add_image(XlImage(io.BytesIO(labelled_png("WMF slot", seed=42))), "D20")
    workbook.save(path)

    def edit(members: dict[str, bytes]) -> None:
        media = _media_in_order(members, "xl/media/")
        swap_media(members, {media[-1]: ("xl/media/image9.wmf", wmf_bytes(color=(20, 120, 160)))})

    rewrite_zip(path, edit)
    return {"kinds": ["chart", "chart", "png", "wmf"]}


# ----------------------------------------------------------------------------
# HTML and Markdown
# ----------------------------------------------------------------------------


def html_wiki_page(path: Path) -> dict:
    """A saved encyclopedia page ("Save page as: complete"): pictures beside it, on the web, inline, in tables."""
    folder = path.parent / f"{path.stem}_files"
    folder.mkdir(parents=True, exist_ok=True)
    kinds: list[str] = []

    def local(name: str, data: bytes) -> str:
        (folder / name).write_bytes(data)
        return f"{folder.name}/{name}"

    def remote(n: int, svg: bool = False) -> str:
        if svg:
            return f"https://wikimedia.org/api/rest_v1/media/math/render/svg/{n:040x}"
        return f"https://upload.wikimedia.org/wikipedia/commons/thumb/{n % 10}/{n:02x}/Lake_{n}.jpg/220px-Lake_{n}.jpg"

    icons = "".join(
        f'<li><img src="{local(f"icon{n}.png", icon_png(16, n))}" width="16" height="16" alt="">Portal {n}</li>'
        for n in range(4))
    kinds += ["local_icon"] * 4
    infobox = (
        '<table class="infobox"><tbody>'
        '<tr><th colspan="2">Northern Lake</th></tr>'
        f'<tr><td colspan="2"><img src="{local("infobox.jpg", photo_jpeg(640, 420, seed=50))}" '
        'alt="The lake in winter" width="300"></td></tr>'
        f'<tr><td colspan="2"><img src="{remote(1)}" alt="Location map" width="250"></td></tr>'
        '<tr><th>Area</th><td>41 km<sup>2</sup></td></tr><tr><th>Max. depth</th><td>38 m</td></tr>'
        '</tbody></table>')
    kinds += ["local_in_table", "remote_in_table"]
    thumbs = []
    for n in range(8):
        src = local(f"thumb{n}.jpg", photo_jpeg(440, 300, seed=60 + n))
        thumbs.append(f'<figure class="thumb"><a href="/wiki/File:Thumb{n}.jpg"><img src="{src}" '
                      f'alt="Shore {n}" width="220"></a><figcaption>Shore line near station {n + 1}.</figcaption>'
                      f'</figure><p>{LAKE}</p>')
    kinds += ["local_thumb"] * 8
    remote_pictures = "".join(
        f'<li class="gallerybox"><img src="{remote(10 + n)}" alt="Lake {n}" width="120"><p>Lake view {n}</p></li>'
        for n in range(18))
    kinds += ["remote"] * 18
    protocol_relative = "".join(
        f'<img src="//upload.wikimedia.org/wikipedia/commons/{n}/flag_{n}.svg.png" alt="flag {n}" width="23">'
        for n in range(5))
    kinds += ["remote_protocol_relative"] * 5
    math = "".join(f'<span class="mwe-math"><img src="{remote(200 + n, svg=True)}" alt="x_{n}"></span>'
                   for n in range(2))
    kinds += ["remote_svg"] * 2
    data_uri = "".join(
        '<img src="data:image/png;base64,' + __import__("base64").b64encode(icon_png(40, 90 + n)).decode()
        + f'" alt="badge {n}">' for n in range(3))
    kinds += ["data_uri"] * 3
    (folder / "diagram.svg").write_text(SVG)
    kinds += ["local_svg"]
    gallery_table = "<table class=\"wikitable\"><tr><th>Season</th><th>Picture</th><th>Note</th></tr>" + "".join(
        f'<tr><td>{season}</td><td><img src="{local(f"season{n}.jpg", photo_jpeg(300, 200, seed=80 + n))}" '
        f'alt="{season}"></td><td>station {n + 1}</td></tr>'
        for n, season in enumerate(["Winter", "Spring", "Summer"])) + "</table>"
    kinds += ["local_in_table"] * 3
    page = f"""<!DOCTYPE html>
<html lang="en" class="client-nojs"><head><meta charset="UTF-8"><title>Northern Lake - Wikipedia</title>
<link rel="stylesheet" href="{folder.name}/load.css"></head>
<body class="mediawiki">
<div id="mw-navigation"><ul class="portals">{icons}</ul></div>
<main id="content"><h1 id="firstHeading">Northern Lake</h1>
<div id="bodyContent">{infobox}
<p><b>Northern Lake</b> is a lake in the north of the region. {LAKE}</p>
<h2>Geography</h2>{''.join(thumbs[:4])}
<p>The flags of the four municipalities: {protocol_relative}</p>
<h2>Climate</h2><p>The mean depth d is given by {math} in the survey.</p>
{''.join(thumbs[4:])}
<h2>Gallery</h2><ul class="gallery">{remote_pictures}</ul>
{gallery_table}
<h2>Diagrams</h2><figure><img src="{folder.name}/diagram.svg" alt="Lake cross-section"><figcaption>Cross-section
of the lake basin.</figcaption></figure>
<p>A missing picture: <img src="{folder.name}/not_saved.jpg" alt="never saved"></p>
<p>A picture outside the page's folder: <img src="../outside.png" alt="outside"></p>
<h2>Badges</h2><p>{data_uri}</p>
</div></main></body></html>
"""
    kinds += ["missing", "outside_folder"]
    (path.parent.parent / "outside.png").write_bytes(labelled_png("outside", seed=99))  # exists, but out of reach
    path.write_text(page, encoding="utf-8")
    return {"kinds": kinds}


def markdown_tables(path: Path) -> dict:
    folder = path.parent / f"{path.stem}_files"
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(3):
        (folder / f"p{n}.png").write_bytes(labelled_png(f"Sensor {n}", 320, 240, seed=100 + n))
    path.write_text(f"""# Sensor inventory

{METHOD}

| Sensor | Picture | Range |
| --- | --- | --- |
| Temperature | ![Temperature sensor]({folder.name}/p0.png) | -20 to 40 °C |
| Oxygen | ![Oxygen sensor]({folder.name}/p1.png) | 0 to 20 mg/l |

The housing is shown below.

![Housing]({folder.name}/p2.png)

Figure 1: The sensor housing.

Pictures from the manufacturer's site:

![Datasheet front](https://example.com/sensors/front.png)

![Datasheet back](https://example.com/sensors/back.png)

The end.
""", encoding="utf-8")
    return {"kinds": ["table_picture", "table_picture", "local", "remote", "remote"]}


# ----------------------------------------------------------------------------
# PDF
# ----------------------------------------------------------------------------


def _tiles(data: bytes, columns: int, rows: int) -> list[list[bytes]]:
    with Image.open(io.BytesIO(data)) as image:
        image = image.convert("RGB")
        w, h = image.width // columns, image.height // rows
        return [[_jpeg(image.crop((c * w, r * h, (c + 1) * w, (r + 1) * h))) for c in range(columns)]
                for r in range(rows)]


def _jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def pdf_fragments(path: Path) -> dict:
    """A 3-page report whose figures are cut into fragments or drawn with vector paths.

    Figures a reader sees: 8 (tiled 3x3, two strips, chart + legend, one photo, vector bar chart,
    vector diagram, two photos side by side with a caption each). Embedded bitmaps: 16.
    """
    _require("reportlab", "reportlab")
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen import canvas

    pdf = canvas.Canvas(str(path), pagesize=A4, invariant=1)
    page_w, page_h = A4
    left = 64.0

    def heading(y: float, text: str, key: str, level: int = 0) -> float:
        pdf.setFont("Helvetica-Bold", 18 if level == 0 else 14)
        pdf.drawString(left, y, text)
        pdf.bookmarkPage(key)
        pdf.addOutlineEntry(text, key, level=level)
        return y - 30

    def paragraph(y: float, text: str, size: float = 10.5, width: int = 95) -> float:
        pdf.setFont("Helvetica", size)
        words, line = text.split(), ""
        for word in words:
            if len(line) + len(word) + 1 > width:
                pdf.drawString(left, y, line)
                y -= size * 1.35
                line = word
            else:
                line = f"{line} {word}".strip()
        if line:
            pdf.drawString(left, y, line)
            y -= size * 1.35
        return y - 8

    def caption(y: float, text: str, x: float = left) -> float:
        pdf.setFont("Helvetica-Oblique", 9)
        pdf.drawString(x, y, text)
        return y - 22

    def image(data: bytes, x: float, top: float, w: float, h: float) -> None:
        pdf.drawImage(ImageReader(io.BytesIO(data)), x, top - h, width=w, height=h)

    # page 1: a photo cut into 3x3 touching tiles; a chart cut into two strips
    y = heading(page_h - 72, "Ice survey 2023", "p1")
    y = paragraph(y, LAKE + " " + METHOD)
    tiles = _tiles(photo_jpeg(900, 600, seed=201), 3, 3)
    tile_w, tile_h = 110.0, 73.3
    for r, row in enumerate(tiles):
        for c, data in enumerate(row):
            image(data, left + c * tile_w, y - r * tile_h, tile_w, tile_h)
    y = caption(y - 3 * tile_h - 14, "Figure 1: The lake from the north shore, January.")
    y = paragraph(y, METHOD)
    strips = _tiles(labelled_png("Ice thickness by month", 800, 400, seed=202), 1, 2)
    for r, row in enumerate(strips):
        image(row[0], left, y - r * 90, 360, 90)
    y = caption(y - 180 - 14, "Figure 2: Ice thickness by month (cm).")
    y = paragraph(y, LAKE)
    pdf.showPage()

    # page 2: a chart and its legend as two bitmaps; one photo; headings
    y = heading(page_h - 72, "Results", "p2")
    y = heading(y, "Oxygen", "p2a", level=1)
    y = paragraph(y, METHOD + " " + LAKE)
    image(labelled_png("Oxygen by station", 600, 360, seed=203), left, y, 300, 180)
    image(labelled_png("legend", 160, 120, seed=204), left + 304, y - 30, 80, 60)
    y = caption(y - 180 - 14, "Figure 3: Dissolved oxygen by station, with its legend.")
    y = heading(y, "Field work", "p2b", level=1)
    y = paragraph(y, LAKE)
    image(photo_jpeg(800, 500, seed=205), left, y, 280, 175)
    y = caption(y - 175 - 14, "Figure 4: Sampling through the ice.")
    y = paragraph(y, METHOD)
    pdf.showPage()

    # page 3: vector figures (paths only) and two photos side by side
    y = heading(page_h - 72, "Vector figures", "p3")
    y = paragraph(y, "The two figures below are drawn with lines and shapes, without any bitmap.")
    base, chart_h = y - 170, 150.0
    pdf.setStrokeColorRGB(0, 0, 0)
    pdf.line(left, base, left + 320, base)
    pdf.line(left, base, left, base + chart_h)
    for n, value in enumerate([60, 110, 140, 90, 70]):
        pdf.setFillColorRGB(0.2, 0.4 + n * 0.1, 0.7)
        pdf.rect(left + 20 + n * 60, base, 40, value, fill=1, stroke=0)
    pdf.setFillColorRGB(0, 0, 0)
    pdf.setFont("Helvetica", 7)
    for n, month in enumerate(["Nov", "Dec", "Jan", "Feb", "Mar"]):
        pdf.drawString(left + 30 + n * 60, base - 10, month)
    y = caption(base - 28, "Figure 5: Ice days per month (vector chart).")
    top = y - 10
    for n, label in enumerate(["Buoy", "Gateway", "Server", "Report"]):
        x = left + n * 110
        pdf.setFillColorRGB(0.85, 0.9, 1.0)
        pdf.roundRect(x, top - 50, 80, 40, 6, fill=1, stroke=1)
        pdf.setFillColorRGB(0, 0, 0)
        pdf.setFont("Helvetica", 8)
        pdf.drawString(x + 12, top - 33, label)
        if n < 3:
            pdf.line(x + 80, top - 30, x + 110, top - 30)
            path_ = pdf.beginPath()
            path_.moveTo(x + 110, top - 30)
            path_.lineTo(x + 104, top - 26)
            path_.lineTo(x + 104, top - 34)
            path_.close()
            pdf.drawPath(path_, fill=1, stroke=0)
    y = caption(top - 64, "Figure 6: Data flow from buoy to report (vector diagram).")
    y = paragraph(y, METHOD)
    image(photo_jpeg(600, 400, seed=206), left, y, 210, 140)
    image(photo_jpeg(600, 400, seed=207), left + 240, y, 210, 140)
    caption(y - 154, "Figure 7: North bay.")
    caption(y - 154, "Figure 8: Outlet.", x=left + 240)
    y = paragraph(y - 176, LAKE)
    pdf.showPage()
    pdf.save()
    return {"figures": 8, "bitmaps": 16, "headings": ["Ice survey 2023", "Results", "Oxygen", "Field work",
                                                     "Vector figures"]}


# ----------------------------------------------------------------------------
# The corpus
# ----------------------------------------------------------------------------

DOCUMENTS = {
    "office_metafiles.docx": docx_metafiles,
    "office_drawings.docx": docx_drawings,
    "slides_charts.pptx": pptx_charts,
    "workbook_charts.xlsx": xlsx_charts,
    "wiki_lake.html": html_wiki_page,
    "tables_and_remote.md": markdown_tables,
    "figures_fragments.pdf": pdf_fragments,
}
MANIFEST = "corpus.json"


def build_corpus(folder: Path) -> dict[str, dict]:
    """Write every document under ``folder/documents`` and return (and write) the manifest."""
    folder = Path(folder)
    documents = folder / "documents"
    documents.mkdir(parents=True, exist_ok=True)
    manifest = {name: make(documents / name) for name, make in DOCUMENTS.items()}
    (documents / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return manifest


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m docsight.benchmarks.fidelity_corpus OUT_DIR")
    print(json.dumps(build_corpus(Path(sys.argv[1])), indent=2))
