"""Render a document's markdown with each picture's description in place."""

from __future__ import annotations

import re
from typing import Any

_MARKDOWN_SPECIALS = re.compile(r"([\\`*_\[\]<>|])")


def _plain(text: str) -> str:
    """A note in running text: one line, markdown characters escaped (URLs are full of underscores)."""
    return _MARKDOWN_SPECIALS.sub(r"\\\1", " ".join(text.split()))


def render_picture(picture: dict[str, Any], result: dict[str, Any]) -> str:
    label = f"Picture {picture['index'] + 1}"
    if picture.get("location"):
        label += f" ({picture['location']})"
    if result["status"] == "described":
        body = result["description"].strip().replace("\n", "\n> ")
    else:
        body = f"*Description unavailable: {result.get('reason') or result['status']}.*"
        note = picture.get("note") or ""
        if note:  # what the picture is and why it has no description: a URL, "EMF picture: no LibreOffice"
            body += f" {_plain(note)}"
    return f"> **{label}:** {body}"


def render_markdown(segments: list[str], pictures: list[dict[str, Any]], results: dict[str, dict[str, Any]]) -> str:
    """Interleave the markdown segments with the pictures' descriptions.

    ``segments`` has one more element than ``pictures``: the text before the
    first picture, between each pair, and after the last (extraction builds them
    so, every picture included, even those without bytes; a mismatch is a bug).
    """
    if len(segments) != len(pictures) + 1:
        raise ValueError(f"{len(segments)} markdown segments cannot hold {len(pictures)} pictures")
    # A blank line on each side of a description; only newlines where a picture
    # joins the text are trimmed, so nothing else of the text changes.
    blocks = [segments[0].strip("\n")]
    for picture, segment in zip(pictures, segments[1:]):
        blocks.append(render_picture(picture, results[str(picture["index"])]))
        blocks.append(segment.strip("\n"))
    return "\n\n".join(block for block in blocks if block.strip()) + "\n"
