"""Which format a document claims to be, and whether its bytes agree."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

from .errors import ExtractionError

MIME_TO_FORMAT = {
    "application/pdf": "pdf",
    "application/x-pdf": "pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": "pptx",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "text/html": "html",
    "application/xhtml+xml": "html",
    "text/markdown": "md",
    "text/x-markdown": "md",
}
# Types that say nothing about the content: the extension decides.
GENERIC_MIME_TYPES = {"application/octet-stream", "binary/octet-stream", "application/unknown"}

EXTENSION_TO_FORMAT = {
    ".pdf": "pdf",
    ".docx": "docx",
    ".pptx": "pptx",
    ".xlsx": "xlsx",
    ".html": "html",
    ".htm": "html",
    ".xhtml": "html",
    ".md": "md",
    ".markdown": "md",
}

FORMAT_NAMES = {
    "pdf": "a PDF document",
    "docx": "a Word (DOCX) document",
    "pptx": "a PowerPoint (PPTX) presentation",
    "xlsx": "an Excel (XLSX) workbook",
    "html": "an HTML document",
    "md": "a Markdown document",
}

# Main part content types in [Content_Types].xml.
OOXML_MAIN_TYPES = {
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml": "docx",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation.main+xml": "pptx",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml": "xlsx",
}

OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
# An encrypted OOXML file is an OLE2 container holding an "EncryptionInfo" stream.
OLE2_ENCRYPTION_INFO = "EncryptionInfo".encode("utf-16-le")

IMAGE_MAGICS = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"BM", "a BMP image"),
)

HTML_TAG = re.compile(
    rb"<(?:!doctype\s+html|html|head|body|title|meta|p|div|span|h[1-6]|img|table|ul|ol|br|a\s)[\s>/]",
    re.IGNORECASE,
)

SNIFF_BYTES = 64 * 1024


def declared_format(path: Path, content_type: str | None) -> tuple[str, str]:
    """(format, what declared it) from the MIME type if it is specific, else from the extension."""
    mime = (content_type or "").split(";", 1)[0].strip().lower()
    suffix = path.suffix.lower()
    if mime == "text/plain" and EXTENSION_TO_FORMAT.get(suffix) == "md":
        mime = ""  # uploads often label Markdown as plain text
    if mime and mime not in GENERIC_MIME_TYPES:
        fmt = MIME_TO_FORMAT.get(mime)
        if fmt is None:
            raise ExtractionError(
                "unsupported_type",
                f"{path.name}: content type {mime!r} is not supported "
                f"(supported: PDF, DOCX, PPTX, XLSX, HTML, Markdown)",
            )
        return fmt, f"content type {mime!r}"
    fmt = EXTENSION_TO_FORMAT.get(suffix)
    if fmt is None:
        shown = f"extension {suffix!r}" if suffix else "no extension"
        raise ExtractionError(
            "unsupported_type",
            f"{path.name}: {shown} is not a supported document type "
            f"(supported: .pdf, .docx, .pptx, .xlsx, .html, .htm, .md, .markdown)",
        )
    return fmt, f"extension {suffix!r}"


def sniff_content(path: Path) -> str:
    """What the bytes are: a format key ("pdf", "docx", ...) or a short description.

    Descriptions start with "a"/"an" (for messages) except the special keys
    "text", "corrupt_zip", "encrypted_office".
    """
    with path.open("rb") as handle:
        head = handle.read(SNIFF_BYTES)
    if b"%PDF-" in head[:1024]:
        return "pdf"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return _sniff_zip(path)
    if head.startswith(OLE2_MAGIC):
        return "encrypted_office" if _contains(path, OLE2_ENCRYPTION_INFO) else (
            "a legacy binary Office file (.doc/.xls/.ppt)"
        )
    for magic, description in IMAGE_MAGICS:
        if head.startswith(magic):
            return description
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "a WebP image"
    text = _as_text(head)
    if text is None:
        return "binary data"
    return "html" if HTML_TAG.search(head) else "text"


def detect_format(path: Path, content_type: str | None) -> str:
    """The document's format; raises when the bytes do not match what was declared."""
    fmt, declared_by = declared_format(path, content_type)
    actual = sniff_content(path)
    if actual == fmt:
        return fmt
    if fmt in ("docx", "pptx", "xlsx"):
        if actual == "encrypted_office":
            raise ExtractionError("encrypted", f"{path.name} is a password-protected Office document")
        if actual == "corrupt_zip":
            raise ExtractionError("corrupt", f"{path.name} is a damaged ZIP archive, not a readable {fmt.upper()}")
    if fmt == "html" and actual == "text":
        return fmt  # an HTML file with no tags is still readable text
    if fmt == "md" and actual in ("text", "html"):
        return fmt  # Markdown may embed HTML
    raise ExtractionError(
        "wrong_extension",
        f"{path.name} is declared as {FORMAT_NAMES[fmt]} ({declared_by}) but its content is {_describe(actual)}",
    )


def _describe(actual: str) -> str:
    if actual in FORMAT_NAMES:
        return FORMAT_NAMES[actual]
    return {
        "text": "plain text",
        "corrupt_zip": "a damaged ZIP archive",
        "encrypted_office": "a password-protected Office document",
    }.get(actual, actual)


def _sniff_zip(path: Path) -> str:
    try:
        with zipfile.ZipFile(path) as archive:
            try:
                info = archive.getinfo("[Content_Types].xml")
            except KeyError:
                return "a ZIP archive that is not an Office Open XML document"
            if info.file_size > 4 * 1024 * 1024:
                return "a ZIP archive with an implausible [Content_Types].xml"
            types = archive.read(info).decode("utf-8", "replace")
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError):
        return "corrupt_zip"
    for main_type, fmt in OOXML_MAIN_TYPES.items():
        if main_type in types:
            return fmt
    return "an Office Open XML package of another kind (not DOCX, PPTX or XLSX)"


def _contains(path: Path, needle: bytes, chunk: int = 1 << 20) -> bool:
    overlap = len(needle) - 1
    tail = b""
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            if needle in tail + block:
                return True
            tail = block[-overlap:]
    return False


def _as_text(head: bytes) -> str | None:
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return head.decode("utf-16")
        except UnicodeDecodeError:
            return None
    if b"\x00" in head:
        return None
    try:
        return head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start >= len(head) - 3:  # a multi-byte character cut by the sniff window
            return head[: exc.start].decode("utf-8")
    try:
        return head.decode("cp1252")  # docling's own fallback for text formats
    except UnicodeDecodeError:
        return None


def check_archive_size(path: Path, max_total_bytes: int) -> None:
    """Refuse a DOCX/PPTX/XLSX whose parts expand to more than ``max_total_bytes`` together.

    Sizes come from the central directory, before anything is decompressed; zipfile never
    yields more bytes than a member declares, so a member cannot lie its way past this.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            total = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise ExtractionError("corrupt", f"{path.name} is a damaged archive: {exc}") from None
    if total > max_total_bytes:
        raise ExtractionError(
            "decompression_bomb",
            f"{path.name}: its parts expand to {total:,} bytes in all, above the limit of {max_total_bytes:,} bytes",
        )
