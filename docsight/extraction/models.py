"""Plain data passed between the extraction worker processes and the service."""

from __future__ import annotations

from dataclasses import dataclass, field

FORMATS = ("pdf", "docx", "pptx", "xlsx", "html", "md")

# Why a picture docling reports has no bytes to describe: it is listed, in its place, with one of these.
PICTURE_REASONS = {
    "unsupported_picture_format": "a format that cannot be decoded here (EMF/WMF/SVG without LibreOffice, unknown)",
    "remote_picture": "on the web (not fetched: DOCSIGHT_REMOTE_PICTURES is off or the host is not allowed)",
    "remote_fetch_failed": "on the web; fetching it failed or was refused",
    "no_bitmap": "no picture data in the file (a chart or shape that was not rendered, an empty frame)",
    "missing_picture": "a local file that does not exist or cannot be read",
    "outside_document_folder": "a local file outside the document's folder (not read, by design)",
    "render_failed": "LibreOffice could not render it",
    "undecodable_picture": "picture bytes that are damaged or cannot be decoded",
}


@dataclass(frozen=True)
class RemotePicturePolicy:
    """Fetching pictures from the web (HTML ``<img src="https://...">``, DOCX/PPTX linked pictures): opt-in."""

    enabled: bool = False
    hosts: tuple[str, ...] = ()  # allowlist: exact host names, or ".example.org" for the domain and below
    max_bytes: int = 5 * 1024 * 1024
    timeout_seconds: float = 10.0
    max_pictures: int = 50  # per document, so one page cannot make thousands of requests


@dataclass(frozen=True)
class ExtractionLimits:
    max_file_bytes: int = 50 * 1024 * 1024
    max_picture_pixels: int = 50_000_000
    context_chars: int = 600
    # All the parts of a DOCX/PPTX/XLSX archive, decompressed (each part alone is capped too).
    max_archive_bytes: int = 1024 * 1024 * 1024
    # Per document, enforced by ExtractionPool (extract_document alone does not): past the
    # deadline its process is killed; the memory is each process's address space (RLIMIT_AS).
    timeout_seconds: float = 300.0
    memory_bytes: int | None = 4096 * 1024 * 1024
    # LibreOffice (a name on PATH or a path) renders EMF/WMF/SVG pictures, charts and DrawingML shapes;
    # when it cannot be run those pictures are listed as skipped with a reason.
    libreoffice: str = "soffice"
    libreoffice_timeout_seconds: float = 60.0
    remote: RemotePicturePolicy = field(default_factory=RemotePicturePolicy)
    pdf_pipeline: str = "auto"  # auto | standard (docling's layout model) | native (model-free)
    pdf_artifacts_path: str | None = None  # where docling's model files are (standard pipeline)

    @classmethod
    def from_settings(cls, settings) -> ExtractionLimits:
        return cls(
            max_file_bytes=int(settings.max_document_mb * 1024 * 1024),
            max_picture_pixels=settings.vision_max_image_pixels,
            max_archive_bytes=int(settings.max_archive_mb * 1024 * 1024),
            timeout_seconds=settings.extraction_timeout_seconds,
            memory_bytes=settings.extraction_memory_mb * 1024 * 1024,
            libreoffice=settings.libreoffice,
            remote=RemotePicturePolicy(
                enabled=settings.remote_pictures,
                hosts=tuple(h.strip().lower() for h in settings.remote_picture_hosts.split(",") if h.strip()),
                max_bytes=int(settings.remote_picture_max_mb * 1024 * 1024),
                timeout_seconds=settings.remote_picture_timeout_seconds,
            ),
            pdf_pipeline=settings.pdf_pipeline,
            pdf_artifacts_path=str(settings.pdf_artifacts_path) if settings.pdf_artifacts_path else None,
        )


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
    # "" for a picture with bytes (the pipeline decides); "skipped" or "failed" for one without: decided here
    status: str = ""
    reason: str = ""  # why it is skipped or failed: a key of PICTURE_REASONS
    # for people: where it comes from (a URL, "EMF"), or where its description went when its place
    # in the markdown could not be used ("in a table cell: described after the table")
    note: str = ""
    kind: str = "picture"  # picture | chart | shape


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
