"""extract_document: one file in, markdown segments and stored pictures out."""

from __future__ import annotations

import logging
from pathlib import Path

from .errors import ExtractionError
from .formats import detect_format
from .models import ExtractionLimits, ExtractionResult

_log = logging.getLogger(__name__)


def check_file(path: Path, limits: ExtractionLimits) -> int:
    """The file's size, after the checks that need no reading."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise ExtractionError("not_found", f"{path} does not exist") from None
    except OSError as exc:
        raise ExtractionError("not_found", f"{path} cannot be accessed: {exc.strerror or exc}") from None
    if not path.is_file():
        raise ExtractionError("not_a_file", f"{path} is not a regular file")
    if stat.st_size == 0:
        raise ExtractionError("empty", f"{path.name} is empty")
    if stat.st_size > limits.max_file_bytes:
        raise ExtractionError(
            "too_large",
            f"{path.name} is {stat.st_size:,} bytes, above the limit of {limits.max_file_bytes:,} bytes",
        )
    return stat.st_size


def extract_document(
    path: Path, content_type: str | None, store, limits: ExtractionLimits = ExtractionLimits()
) -> ExtractionResult:
    """Convert a document to markdown segments and store its pictures in ``store``.

    Synchronous and CPU-bound: call it in a worker process (see ExtractionPool).
    Every failure is an ExtractionError with a reason code.
    """
    path = Path(path)
    check_file(path, limits)
    try:
        fmt = detect_format(path, content_type)
    except OSError as exc:
        raise ExtractionError("not_found", f"{path} cannot be read: {exc.strerror or exc}") from None
    from . import engine  # docling: heavy, imported only where documents are converted

    try:
        return engine.extract(path, fmt, store, limits)
    except ExtractionError:
        raise
    except MemoryError:
        raise ExtractionError("conversion_failed", f"{path.name}: out of memory while converting") from None
    except Exception as exc:
        # PIL's DecompressionBombError/Warning (when promoted to an error) can surface from deep inside docling.
        if type(exc).__name__.startswith("DecompressionBomb"):
            raise ExtractionError("decompression_bomb", f"{path.name}: {exc}") from None
        _log.exception("extraction of %s failed", path)
        raise ExtractionError(
            "conversion_failed", f"{path.name}: unexpected {type(exc).__name__} while converting: {exc}"
        ) from None
