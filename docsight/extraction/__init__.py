"""Document extraction: a file (PDF, DOCX, PPTX, XLSX, HTML, Markdown) to markdown segments and pictures.

    pool = ExtractionPool(store_root, processes=2)
    result = await pool.extract(resolve_document_path(location, root), content_type)
    # result.segments[0] + picture 0 + result.segments[1] + picture 1 + ...

Importing this package is cheap: docling is only imported in the worker
processes (or on the first direct call to extract_document).
"""

from .errors import ExtractionError
from .extract import extract_document
from .formats import detect_format
from .models import ExtractedPicture, ExtractionLimits, ExtractionResult
from .paths import resolve_document_path
from .pool import ExtractionPool

__all__ = [
    "ExtractedPicture",
    "ExtractionError",
    "ExtractionLimits",
    "ExtractionPool",
    "ExtractionResult",
    "detect_format",
    "extract_document",
    "resolve_document_path",
]
