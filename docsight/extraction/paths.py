"""Turning a document location from an event into a path confined to the document root."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

from .errors import ExtractionError


def resolve_document_path(location: str, document_root: Path) -> Path:
    """Resolve ``location`` (relative path, absolute path or file:// URI) inside ``document_root``.

    Symlinks are resolved before the check, so a link pointing outside the root
    is refused too. The returned path is the resolved one: later opens cannot be
    redirected through the original spelling.
    """
    if not location or "\x00" in location:
        raise ExtractionError("not_found", f"invalid document location {location!r}")
    root = Path(document_root).resolve()
    parsed = urlparse(location)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise ExtractionError("outside_root", f"file URI on another host is not accepted: {location}")
        raw = Path(unquote(parsed.path))
    elif parsed.scheme and len(parsed.scheme) > 1:
        # http(s), s3, ...: this service only reads files under its document root.
        raise ExtractionError(
            "outside_root", f"only paths inside the document root are accepted, not {parsed.scheme}: URIs"
        )
    else:
        raw = Path(location)
    candidate = raw if raw.is_absolute() else root / raw
    try:
        resolved = candidate.resolve()
    except (OSError, RuntimeError) as exc:  # RuntimeError: symlink loop on older Pythons
        raise ExtractionError("not_found", f"cannot resolve document location {location!r}: {exc}") from None
    if not resolved.is_relative_to(root):
        raise ExtractionError(
            "outside_root", f"document location {location!r} resolves outside the document root {root}"
        )
    return resolved
