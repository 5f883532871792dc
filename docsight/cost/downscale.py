"""Shrink a picture to the fewest Gemini tiles that still show what a description needs.

Why 768 px on the longest side (see docsight.cost.tokens): a picture with
both sides <= 384 px costs 258 tokens, a larger one ceil(w/768) x ceil(h/768)
tiles of 258 tokens. Any picture that fits in 768x768 is therefore one tile,
258 tokens, the same as a 384 px thumbnail: 768 is the largest size at the
minimum price, so going smaller saves nothing and loses legibility, and going
larger than 768 by one pixel doubles the cost. A 1600x1200 scan (3x2 = 6 tiles,
1,548 tokens) becomes 768x576 (1 tile, 258 tokens), 83% fewer input tokens.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from docsight.cost.tokens import TILE_SIDE, image_tokens

DEFAULT_MAX_SIDE = TILE_SIDE
# Same bound as the extraction's ExtractionLimits.max_picture_pixels: 50 Mpx is about
# 200 MB decoded as RGBA, enough for any real page scan.
DEFAULT_MAX_PIXELS = 50_000_000
# An original that needs no downscaling and is at most this big is sent as it is:
# re-encoding it would cost CPU for a few KB at best, and never changes the tokens.
DEFAULT_KEEP_ORIGINAL_MAX_BYTES = 512 * 1024
DEFAULT_JPEG_QUALITY = 85
# At most this many distinct colours: a diagram, chart, logo or screenshot of text
# (palette PNG); more: a photo (JPEG, unless a lossless PNG turns out smaller).
FEW_COLOURS = 256
# A grey picture has at most 256 shades whatever it shows; a bilevel scan or a grey
# chart has far fewer than a grey photo.
FEW_GREYS = 32
COLOUR_SAMPLE_SIDE = 256

# Formats Gemini accepts that are sent unchanged when they fit; anything else Pillow reads
# (GIF, BMP, TIFF, ...) is re-encoded. HEIC/HEIF would need a Pillow plugin: unreadable here.
GEMINI_MIME_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
_ROTATED_ORIENTATIONS = {5, 6, 7, 8}  # EXIF orientations that swap width and height
_EXIF_ORIENTATION = 0x0112


class ImageRejectedError(ValueError):
    """The picture cannot be sent to Gemini; the message says why."""


class DecompressionBombError(ImageRejectedError):
    """The picture declares more pixels than allowed; it was not decoded."""


class UnreadableImageError(ImageRejectedError):
    """The bytes are not a picture Pillow can decode (unknown format, truncated, corrupt)."""


@dataclass(frozen=True)
class PreparedImage:
    data: bytes  # what to send: Part.from_bytes(data=prepared.data, mime_type=prepared.mime_type)
    mime_type: str
    width: int
    height: int
    estimated_tokens: int
    original_width: int
    original_height: int
    original_tokens: int  # what the picture as extracted would have cost
    reencoded: bool


def fit_within(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """The size with the longest side at most ``max_side``, same aspect ratio, never larger."""
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    longest = max(width, height)
    if not max_side or longest <= max_side:
        return width, height
    scale = max_side / longest
    return max(1, round(width * scale)), max(1, round(height * scale))


def prepare_for_api(image_bytes: bytes, mime_type: str, max_side: int = DEFAULT_MAX_SIDE, *,
                    media_resolution: str | None = None,
                    max_pixels: int = DEFAULT_MAX_PIXELS,
                    keep_original_max_bytes: int = DEFAULT_KEEP_ORIGINAL_MAX_BYTES,
                    jpeg_quality: int = DEFAULT_JPEG_QUALITY) -> PreparedImage:
    """The picture as Gemini should get it: downscaled, flattened, in the smaller faithful format.

    Raises DecompressionBombError before decoding when the declared size exceeds ``max_pixels``
    and UnreadableImageError for bytes Pillow cannot decode. CPU-bound: run it off the event loop.
    """
    if max_side < 1:
        raise ValueError(f"max_side must be positive, got {max_side}")
    image = _open(image_bytes, mime_type, max_pixels)
    with image:
        orientation = _orientation(image)
        stored_width, stored_height = image.size
        rotated = orientation in _ROTATED_ORIENTATIONS
        width, height = (stored_height, stored_width) if rotated else (stored_width, stored_height)
        target = fit_within(width, height, max_side)
        original_tokens = image_tokens(width, height, media_resolution)
        original_mime = GEMINI_MIME_TYPES.get(image.format or "")

        # Sent as-is only when upright: without EXIF, the re-encoded copy would lie on its side.
        original_usable = original_mime is not None and target == (width, height) and orientation == 1
        if original_usable and len(image_bytes) <= keep_original_max_bytes:
            return PreparedImage(image_bytes, original_mime, width, height, original_tokens,
                                 width, height, original_tokens, reencoded=False)

        if image.format == "JPEG" and target != (width, height):
            # Let libjpeg decode at 1/2, 1/4 or 1/8 scale (never below the target): much less work.
            image.draft(None, (target[1], target[0]) if rotated else target)
        picture = _decode(image, mime_type)
        if orientation != 1:
            picture = ImageOps.exif_transpose(picture)
        picture = _flatten(picture)
        diagram = _has_few_colours(picture)
        if picture.size != target:
            picture = picture.resize(target, Image.Resampling.LANCZOS, reducing_gap=3.0)

        if diagram:  # JPEG smears lines and text, so diagrams stay PNG
            candidates = [_encode_png(picture, palette=picture.mode == "RGB", fast=False)]
        else:
            # A fast PNG is enough to tell whether lossless beats JPEG (flat synthetic
            # pictures); on real photos it never does, and optimize=True costs seconds.
            candidates = [_encode_jpeg(picture, jpeg_quality), _encode_png(picture, palette=False, fast=True)]
        data, chosen_mime = min(candidates, key=lambda candidate: len(candidate[0]))
        if original_usable and len(image_bytes) <= len(data):
            return PreparedImage(image_bytes, original_mime, width, height, original_tokens,
                                 width, height, original_tokens, reencoded=False)
        return PreparedImage(data, chosen_mime, *target, image_tokens(*target, media_resolution),
                             width, height, original_tokens, reencoded=True)


def _open(image_bytes: bytes, mime_type: str, max_pixels: int) -> Image.Image:
    try:
        # Reads the header only; Pillow raises its own DecompressionBombError beyond
        # 2 x Image.MAX_IMAGE_PIXELS, our stricter max_pixels is checked right after.
        image = Image.open(io.BytesIO(image_bytes))
    except Image.DecompressionBombError as error:
        raise DecompressionBombError(f"{mime_type} picture refused: {error}") from None
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise UnreadableImageError(f"{mime_type} picture of {len(image_bytes)} bytes is unreadable: {error}") from None
    width, height = image.size
    if width * height > max_pixels:
        image.close()
        raise DecompressionBombError(
            f"{mime_type} picture declares {width}x{height} = {width * height:,} pixels, "
            f"more than the {max_pixels:,} allowed; it was not decoded")
    if width <= 0 or height <= 0:
        image.close()
        raise UnreadableImageError(f"{mime_type} picture declares an empty size {width}x{height}")
    return image


def _orientation(image: Image.Image) -> int:
    try:
        orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
    except Exception:  # malformed EXIF must not cost the picture its description
        return 1
    return orientation if orientation in range(1, 9) else 1


def _decode(image: Image.Image, mime_type: str) -> Image.Image:
    try:
        image.load()
    except Image.DecompressionBombError as error:
        raise DecompressionBombError(f"{mime_type} picture refused: {error}") from None
    except (OSError, ValueError, SyntaxError) as error:  # truncated or corrupt data
        raise UnreadableImageError(f"{mime_type} picture cannot be decoded: {error}") from None
    return image


def _flatten(image: Image.Image) -> Image.Image:
    """RGB or L with no alpha: transparent areas become white, like the page behind them."""
    if image.mode in ("1", "L"):
        return image.convert("L")
    if image.mode.startswith("I") or image.mode == "F":
        return _to_8_bit_grey(image)
    has_alpha = image.mode in ("LA", "La", "PA", "RGBA", "RGBa") or (
        image.mode == "P" and "transparency" in image.info)
    if not has_alpha:
        return image.convert("RGB") if image.mode != "RGB" else image
    grayscale = image.mode in ("LA", "La")
    rgba = image.convert("RGBA")
    page = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    page.alpha_composite(rgba)
    return page.convert("L" if grayscale else "RGB")


def _to_8_bit_grey(image: Image.Image) -> Image.Image:
    """16-bit and float greys (scientific figures): Pillow would clip them, so stretch instead."""
    wide = image.convert("I") if image.mode.startswith("I;16") else image
    low, high = wide.getextrema()
    if 0 <= low and high <= 255:
        return wide.convert("L")
    scale = 255 / (high - low) if high > low else 0
    return wide.point(lambda value: (value - low) * scale).convert("L")


def _has_few_colours(image: Image.Image) -> bool:
    # A nearest-neighbour sample invents no colours, and keeps the count cheap on big pictures.
    sample = image
    if max(image.size) > COLOUR_SAMPLE_SIDE:
        sample = image.resize(fit_within(*image.size, COLOUR_SAMPLE_SIDE), Image.Resampling.NEAREST)
    return sample.getcolors(FEW_GREYS if sample.mode == "L" else FEW_COLOURS) is not None


def _encode_png(image: Image.Image, palette: bool, fast: bool) -> tuple[bytes, str]:
    if palette:
        # Downscaling adds in-between shades at edges; a 256-colour palette keeps them
        # well enough for a diagram at a fraction of the size of 24-bit PNG.
        image = image.quantize(FEW_COLOURS, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    buffer = io.BytesIO()
    image.save(buffer, "PNG", **({"compress_level": 1} if fast else {"optimize": True}))
    return buffer.getvalue(), "image/png"


def _encode_jpeg(image: Image.Image, quality: int) -> tuple[bytes, str]:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality, optimize=True)
    return buffer.getvalue(), "image/jpeg"
