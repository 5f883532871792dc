"""Picture bytes: inspection, pixel caps, stored encodings, and marker images.

Markers: docling decodes every picture and re-encodes it as a PNG (twice in
DOCX), which costs about 0.6 s per 1600x1200 photo and loses the original
bytes. So before docling sees a document, each embedded raster image is
swapped for a tiny marker PNG that encodes an index; after conversion the
marker found in a picture item points back at the original bytes. docling does
the structure, we keep the originals, and the picture cost disappears.
"""

from __future__ import annotations

import io
import secrets
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from .errors import ExtractionError

# Originals stored as they are. Anything else (BMP, TIFF, JPEG 2000, CMYK JPEG) becomes PNG.
WEB_SAFE = {"JPEG": "image/jpeg", "MPO": "image/jpeg", "PNG": "image/png", "GIF": "image/gif", "WEBP": "image/webp"}
WEB_SAFE_MODES = {"JPEG": {"RGB", "L"}, "MPO": {"RGB", "L"}}

MARKER_SIZE = 16


@dataclass(frozen=True)
class ImageInfo:
    format: str  # PIL format name
    width: int
    height: int
    mode: str


def inspect_image(data: bytes) -> ImageInfo | None:
    """Header-only look at an image; None when PIL does not know it (EMF, SVG, junk)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None  # the caller applies its own cap, with a clear error
        try:
            with Image.open(io.BytesIO(data)) as img:
                return ImageInfo(img.format or "", img.width, img.height, img.mode)
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError):
            return None
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def check_pixels(width: int, height: int, cap: int, where: str) -> None:
    if width * height > cap:
        raise ExtractionError(
            "decompression_bomb",
            f"{where}: a picture of {width}x{height} pixels ({width * height:,}) is above the cap of {cap:,} pixels",
        )


def encode_png(image: Image.Image) -> bytes:
    if image.mode not in ("RGB", "RGBA", "L", "LA", "P", "1", "I;16"):
        image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


@dataclass(frozen=True)
class StoredImage:
    data: bytes
    mime_type: str
    width: int
    height: int


def storable(data: bytes, cap: int, where: str) -> StoredImage:
    """The bytes to store for an original image: itself if web-safe, else a PNG of it."""
    info = inspect_image(data)
    if info is None:
        raise ValueError("not a raster image")
    check_pixels(info.width, info.height, cap, where)
    mime = WEB_SAFE.get(info.format)
    if mime and info.mode in WEB_SAFE_MODES.get(info.format, {info.mode}):
        return StoredImage(data, mime, info.width, info.height)
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        png = encode_png(img)
    return StoredImage(png, "image/png", info.width, info.height)


def storable_pil(image: Image.Image, cap: int, where: str) -> StoredImage:
    """A PNG of a decoded image (docling's, or a rendered region): no original exists."""
    check_pixels(image.width, image.height, cap, where)
    return StoredImage(encode_png(image), "image/png", image.width, image.height)


def is_invisible_spacer(data: bytes, info: ImageInfo) -> bool:
    """docling's DOCX rule for layout spacers (tiny, fully transparent or pure white).

    Such images are left in place so that docling still files them as invisible.
    """
    if info.width * info.height <= 25:
        return True
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.draft("RGB", (64, 64))  # JPEG: decode at reduced size, enough for extrema
            if img.mode in ("RGBA", "LA"):
                return img.getextrema()[-1][1] == 0
            if img.mode == "RGB":
                return img.getextrema() == ((255, 255), (255, 255), (255, 255))
    except (OSError, ValueError, SyntaxError):
        return False
    return False


class MarkerCodec:
    """Marker PNGs: row 0 holds a per-document random nonce, row 1 the index.

    The nonce makes a real 16x16 picture that happens to look like a marker
    impossible in practice. Markers are opaque, grey and 256 px², so docling
    never takes them for spacers.
    """

    def __init__(self) -> None:
        self.nonce = secrets.token_bytes(MARKER_SIZE * 3)

    def encode(self, index: int) -> bytes:
        if not 0 <= index < 1 << 24:
            raise ValueError("marker index out of range")
        img = Image.new("RGB", (MARKER_SIZE, MARKER_SIZE), (128, 128, 128))
        img.putdata(
            [tuple(self.nonce[i * 3 : i * 3 + 3]) for i in range(MARKER_SIZE)]
            + [((index >> 16) & 255, (index >> 8) & 255, index & 255)] * MARKER_SIZE,
        )
        # putdata above filled rows 0 and 1; rows 2.. stay grey.
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        return buf.getvalue()

    def decode(self, image: Image.Image | None) -> int | None:
        if image is None or image.size != (MARKER_SIZE, MARKER_SIZE):
            return None
        try:
            rgb = image.convert("RGB")
        except (OSError, ValueError):
            return None
        raw = rgb.tobytes()
        row = MARKER_SIZE * 3
        if raw[:row] != self.nonce:
            return None
        r, g, b = raw[row : row + 3]
        return (r << 16) | (g << 8) | b
