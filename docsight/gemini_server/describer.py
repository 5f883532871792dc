"""A deterministic stand-in for the model: describes a picture from its pixels.

Same bytes give the same text; different bytes give different texts (the text
carries a short sha256 fingerprint). A few sentences, like a real caption.
"""

from __future__ import annotations

import hashlib
import io
import threading
import warnings
from collections import Counter, OrderedDict
from dataclasses import dataclass

from PIL import Image, ImageStat

# Reference colours for naming pixels; nearest by RGB distance.
_NAMED_COLOURS = {
    "black": (0, 0, 0),
    "dark grey": (64, 64, 64),
    "grey": (128, 128, 128),
    "light grey": (192, 192, 192),
    "white": (255, 255, 255),
    "dark red": (120, 10, 10),
    "red": (210, 35, 35),
    "pink": (245, 160, 190),
    "orange": (245, 140, 20),
    "brown": (125, 80, 40),
    "beige": (225, 205, 165),
    "yellow": (245, 225, 40),
    "olive": (120, 120, 20),
    "light green": (150, 220, 130),
    "green": (40, 165, 60),
    "dark green": (10, 80, 30),
    "teal": (0, 128, 128),
    "cyan": (40, 220, 225),
    "light blue": (150, 195, 240),
    "blue": (35, 85, 210),
    "navy": (15, 25, 90),
    "purple": (115, 50, 160),
    "magenta": (215, 45, 200),
}
_COLOUR_SAMPLE_SIDE = 48
_COUNT_SAMPLE_SIDE = 128


class UndecodableImage(ValueError):
    """The bytes are not a picture PIL can open."""


@dataclass(frozen=True)
class ImageFacts:
    width: int
    height: int
    format: str
    fingerprint: str  # first 8 hex chars of sha256 of the bytes
    dominant_colours: tuple[str, ...]
    brightness: str
    distinct_colours: int
    kind: str
    orientation: str


def fingerprint(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:8]


def inspect_image(data: bytes) -> ImageFacts:
    """Open the picture and measure what the description talks about."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size  # before draft(), which shrinks what size reports
            image.draft("RGB", (_COUNT_SAMPLE_SIDE * 2, _COUNT_SAMPLE_SIDE * 2))  # JPEG: decode small, fast
            image_format = image.format or "unknown"
            image.load()
    except Exception as exc:  # PIL raises many types for bad input
        raise UndecodableImage(str(exc)) from exc
    if width <= 0 or height <= 0:
        raise UndecodableImage("empty image")
    rgb = _flatten_to_rgb(image)
    return ImageFacts(
        width=width,
        height=height,
        format=image_format,
        fingerprint=fingerprint(data),
        dominant_colours=_dominant_colours(rgb),
        brightness=_brightness(rgb),
        distinct_colours=(count := _distinct_colours(rgb)),
        kind=_kind(count),
        orientation=_orientation(width, height),
    )


def _flatten_to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _nearest_colour_name(rgb: tuple[int, int, int]) -> str:
    r, g, b = rgb
    return min(
        _NAMED_COLOURS,
        key=lambda name: (r - _NAMED_COLOURS[name][0]) ** 2
        + (g - _NAMED_COLOURS[name][1]) ** 2
        + (b - _NAMED_COLOURS[name][2]) ** 2,
    )


def _pixels(image: Image.Image):
    # getdata is deprecated from Pillow 12 on; older Pillow lacks the new name.
    flattened = getattr(image, "get_flattened_data", None)
    return flattened() if flattened else image.getdata()


def _dominant_colours(rgb: Image.Image) -> tuple[str, ...]:
    sample = rgb.resize((_COLOUR_SAMPLE_SIDE, _COLOUR_SAMPLE_SIDE), Image.Resampling.NEAREST)
    counts = Counter(_nearest_colour_name(pixel) for pixel in _pixels(sample))
    total = sum(counts.values())
    # Sorted by count then name, so ties never depend on dict order.
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    names = [name for name, n in ranked if n / total >= 0.05][:3]
    return tuple(names or [ranked[0][0]])


def _brightness(rgb: Image.Image) -> str:
    mean = ImageStat.Stat(rgb.convert("L")).mean[0]
    for bound, word in ((50, "very dark"), (100, "dark"), (160, "moderately lit"), (210, "bright")):
        if mean < bound:
            return word
    return "very bright"


def _distinct_colours(rgb: Image.Image) -> int:
    sample = rgb.copy()
    sample.thumbnail((_COUNT_SAMPLE_SIDE, _COUNT_SAMPLE_SIDE), Image.Resampling.NEAREST)
    return len(sample.getcolors(maxcolors=sample.width * sample.height) or ())


def _kind(distinct_colours: int) -> str:
    if distinct_colours <= 1:
        return "plain single-colour image"
    if distinct_colours <= 16:
        return "flat graphic such as a logo or icon"
    if distinct_colours <= 256:
        return "diagram or chart-like graphic"
    return "photograph-like picture"


def _orientation(width: int, height: int) -> str:
    if width > height * 1.1:
        return "landscape"
    if height > width * 1.1:
        return "portrait"
    return "square"


def _join_words(words: tuple[str, ...]) -> str:
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " and " + words[-1]


def caption_from_prompt(prompt: str) -> str | None:
    """The text after the first line starting ``Caption:``, if any."""
    for line in prompt.splitlines():
        stripped = line.strip()
        if stripped.lower().startswith("caption:"):
            caption = stripped[len("caption:"):].strip()
            return caption or None
    return None


_FACTS_CACHE: OrderedDict[str, ImageFacts] = OrderedDict()
_FACTS_CACHE_SIZE = 4096
_FACTS_LOCK = threading.Lock()  # servers in several threads share the cache


def image_facts(data: bytes) -> ImageFacts:
    """inspect_image, cached."""
    # Keyed by digest, not bytes, so the cache never holds the pictures themselves.
    digest = hashlib.sha256(data).hexdigest()
    with _FACTS_LOCK:
        facts = _FACTS_CACHE.get(digest)
        if facts is not None:
            _FACTS_CACHE.move_to_end(digest)
            return facts
    facts = inspect_image(data)
    with _FACTS_LOCK:
        _FACTS_CACHE[digest] = facts
        if len(_FACTS_CACHE) > _FACTS_CACHE_SIZE:
            _FACTS_CACHE.popitem(last=False)
    return facts


def describe_image(data: bytes, caption: str | None = None) -> str:
    """A few sentences about the picture; raises UndecodableImage."""
    facts = image_facts(data)
    colour_word = "colour is" if len(facts.dominant_colours) == 1 else "colours are"
    sentences = [
        f"A {facts.width}x{facts.height} {facts.orientation} {facts.format} {facts.kind} "
        f"(fingerprint {facts.fingerprint}).",
        f"The dominant {colour_word} {_join_words(facts.dominant_colours)}, "
        f"and the picture is {facts.brightness} overall with {facts.distinct_colours} distinct {'colour' if facts.distinct_colours == 1 else 'colours'} in a sample.",
    ]
    if caption:
        sentences.append(f'It matches the caption "{caption}".')
    return " ".join(sentences)


def describe_text_only(prompt: str) -> str:
    """Answer for a request with no picture: acknowledges the prompt, deterministically."""
    words = len(prompt.split())
    return (
        f"No image was provided, so there is nothing to describe. "
        f"The request text has {words} words (fingerprint {fingerprint(prompt.encode())})."
    )
