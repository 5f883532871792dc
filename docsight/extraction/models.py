"""Plain data passed between the extraction worker processes and the service."""

from __future__ import annotations

from dataclasses import dataclass

FORMATS = ("pdf", "docx", "pptx", "xlsx", "html", "md")


@dataclass(frozen=True)
class ExtractionLimits:
    max_file_bytes: int = 50 * 1024 * 1024
    max_picture_pixels: int = 50_000_000
    context_chars: int = 600


@dataclass(frozen=True)
class ExtractedPicture:
    index: int  # 0-based, reading order
    sha256: str  # digest of the bytes stored in the BlobStore
    mime_type: str  # of the stored bytes: the original where usable (JPEG stays JPEG), else PNG
    width: int
    height: int
    size_bytes: int
    page: int | None  # page, slide or sheet number (1-based) where known
    bbox: tuple[float, float, float, float] | None  # (left, top, right, bottom), top-left origin, points
    location: str | None  # "page 2", "slide 3", "sheet Sales, cell B4"
    caption: str  # "" when none
    context: str  # text before and after the picture, "[picture]" marks its place


@dataclass(frozen=True)
class ExtractionResult:
    format: str  # one of FORMATS
    # The markdown split at the pictures: segments[0] + pic0 + segments[1] + pic1 + ...
    segments: list[str]
    pictures: list[ExtractedPicture]
    page_count: int | None  # pages (PDF), slides (PPTX), sheets (XLSX); None otherwise

    @property
    def markdown(self) -> str:
        """The whole text without pictures (segments joined)."""
        return "".join(self.segments)
