"""The local pictures an HTML or Markdown file refers to (``<img src>``, ``![alt](path)``). Pure and cheap:
``docsight submit`` uses it to bring them along when it copies the file under the document root."""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

_MD_IMAGE = re.compile(r"!\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+[\"'][^\"']*[\"'])?\s*\)")
# reference-style images: ![alt][label] ... [label]: path
_MD_DEFINITION = re.compile(r"^\s{0,3}\[([^\]]+)\]:\s*<?(\S+?)>?(?:\s+[\"'(].*)?$", re.MULTILINE)
_MD_REFERENCE_IMAGE = re.compile(r"!\[(?:[^\]\\]|\\.)*\]\[([^\]]*)\]")


class _ImgSources(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.sources: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            src = dict(attrs).get("src")
            if src:
                self.sources.append(src)


def picture_sources(text: str, markdown: bool) -> list[str]:
    """Every picture source the text names, in order, duplicates removed."""
    parser = _ImgSources()
    try:
        parser.feed(text)
    except Exception:  # noqa: BLE001 - a malformed page still yields the sources read so far
        pass
    sources = list(parser.sources)
    if markdown:
        sources += _MD_IMAGE.findall(text)
        definitions = {label.lower(): target for label, target in _MD_DEFINITION.findall(text)}
        sources += [definitions[label.lower()] for label in _MD_REFERENCE_IMAGE.findall(text)
                    if label.lower() in definitions]
    return list(dict.fromkeys(s.strip() for s in sources if s.strip()))


def is_local(source: str) -> bool:
    """A path on this machine, not a URL (http, //host, data:, ...) nor an anchor."""
    if source.startswith(("//", "#")):
        return False
    parts = urlsplit(source)
    return parts.scheme in ("", "file") and not (parts.scheme == "file" and parts.netloc not in ("", "localhost"))


@dataclass(frozen=True)
class LocalPicture:
    source: str  # as the file writes it
    path: Path  # resolved
    relative: Path | None  # below the file's folder; None when outside it (docling never reads those)
    exists: bool


def local_pictures(document: Path) -> list[LocalPicture]:
    """The local pictures an HTML or Markdown file refers to, resolved against its folder."""
    document = Path(document)
    text = document.read_text(encoding="utf-8", errors="replace")
    folder = document.parent.resolve()
    found = []
    for source in picture_sources(text, markdown=document.suffix.lower() in (".md", ".markdown")):
        if not is_local(source):
            continue
        raw = unquote(urlsplit(source).path) if source.startswith("file:") else unquote(source.split("#")[0])
        raw = raw.split("?", 1)[0]
        if not raw:
            continue
        path = Path(raw)
        resolved = (path if path.is_absolute() else folder / path).resolve()
        inside = not path.is_absolute() and resolved.is_relative_to(folder)
        found.append(LocalPicture(source, resolved, resolved.relative_to(folder) if inside else None,
                                  resolved.is_file()))
    return found
