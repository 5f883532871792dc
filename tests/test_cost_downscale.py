"""Downscaling: sizes, aspect ratio, no upscaling, flattening, format choice, tokens, bombs."""

import io
import random
import struct
import zlib

import pytest
from PIL import Image, ImageDraw

from docsight.cost.downscale import (
    DecompressionBombError,
    UnreadableImageError,
    fit_within,
    prepare_for_api,
)
from docsight.cost.tokens import image_tokens


def photo(width, height, mode="RGB", seed=1):
    """Many colours, like a photo: smooth gradients plus noise."""
    rng = random.Random(seed)
    small = (max(1, width // 4), max(1, height // 4))
    noise = Image.frombytes("L", small, rng.randbytes(small[0] * small[1])).resize((width, height), Image.BILINEAR)
    gradient = Image.linear_gradient("L").resize((width, height))
    image = Image.merge("RGB", (gradient, noise, gradient.transpose(Image.Transpose.FLIP_LEFT_RIGHT)))
    return image.convert(mode)


def diagram(width, height, mode="RGB"):
    """Few colours, like a chart: flat bars and lines on white."""
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    for i, colour in enumerate(["#1f77b4", "#ff7f0e", "#2ca02c"]):
        draw.rectangle([40 + i * width // 4, height // (i + 2), 40 + i * width // 4 + width // 6, height - 40], fill=colour)
    draw.line([(20, height - 30), (width - 20, height - 30)], fill="black", width=3)
    return image.convert(mode)


def encode(image, fmt, **options):
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def decoded(prepared):
    image = Image.open(io.BytesIO(prepared.data))
    image.load()
    return image


def test_fit_within_keeps_the_aspect_ratio_and_never_upscales():
    assert fit_within(1600, 1200, 768) == (768, 576)
    assert fit_within(1200, 1600, 768) == (576, 768)
    assert fit_within(3000, 100, 768) == (768, 26)
    assert fit_within(5000, 1, 768) == (768, 1)  # never zero
    assert fit_within(500, 300, 768) == (500, 300)
    assert fit_within(1600, 1200, None) == (1600, 1200)


def test_a_1600x1200_photo_drops_from_6_tiles_to_1():
    original = encode(photo(1600, 1200), "JPEG", quality=95)
    prepared = prepare_for_api(original, "image/jpeg")
    assert prepared.original_tokens == 6 * 258 == image_tokens(1600, 1200)
    assert (prepared.width, prepared.height) == (768, 576)
    assert prepared.estimated_tokens == 258
    assert prepared.reencoded and prepared.mime_type == "image/jpeg"
    assert len(prepared.data) < len(original)
    image = decoded(prepared)
    assert image.size == (768, 576) and image.format == "JPEG"


def test_portrait_and_custom_max_side():
    prepared = prepare_for_api(encode(photo(900, 1800), "PNG"), "image/png", max_side=1536)
    assert (prepared.width, prepared.height) == (768, 1536)
    assert prepared.estimated_tokens == 2 * 258
    assert decoded(prepared).size == (768, 1536)


def test_media_resolution_caps_the_estimate():
    prepared = prepare_for_api(encode(photo(1600, 1200), "JPEG"), "image/jpeg", media_resolution="LOW")
    assert prepared.estimated_tokens == 64 and prepared.original_tokens == 64


def test_a_small_original_is_sent_unchanged():
    original = encode(photo(300, 200), "JPEG", quality=80)
    prepared = prepare_for_api(original, "image/jpeg")
    assert prepared.data is original and not prepared.reencoded
    assert (prepared.width, prepared.height, prepared.mime_type) == (300, 200, "image/jpeg")
    assert prepared.estimated_tokens == 258


def test_no_upscaling_even_when_reencoding():
    original = encode(photo(500, 400, mode="RGBA"), "PNG")
    prepared = prepare_for_api(original, "image/png", keep_original_max_bytes=0)
    assert (prepared.width, prepared.height) == (500, 400)
    assert decoded(prepared).size == (500, 400)


def test_a_large_photo_that_fits_is_recompressed_when_that_is_smaller():
    original = encode(photo(760, 560), "PNG", compress_level=0)  # a photo stored as a big lossless PNG
    assert len(original) > 512 * 1024
    prepared = prepare_for_api(original, "image/png")
    assert prepared.reencoded and prepared.mime_type == "image/jpeg"
    assert (prepared.width, prepared.height) == (760, 560)
    assert len(prepared.data) < len(original) / 3


def test_rgba_photo_becomes_rgb_jpeg_on_white():
    image = photo(1000, 800, mode="RGBA")
    alpha = Image.new("L", image.size, 255)
    alpha.paste(0, (0, 0, 500, 800))  # left half fully transparent
    image.putalpha(alpha)
    prepared = prepare_for_api(encode(image, "PNG"), "image/png")
    result = decoded(prepared)
    assert prepared.mime_type == "image/jpeg" and result.mode == "RGB"
    red, green, blue = result.getpixel((10, 10))
    assert min(red, green, blue) >= 250  # transparent -> the white page, not black


def test_a_fully_transparent_picture_flattens_to_white():
    image = photo(1000, 800, mode="RGBA")
    image.putalpha(0)
    result = decoded(prepare_for_api(encode(image, "PNG"), "image/png"))
    assert "A" not in result.mode and "transparency" not in result.info
    assert result.convert("RGB").getcolors() == [(768 * 614, (255, 255, 255))]


def test_rgba_photo_with_content_becomes_jpeg():
    prepared = prepare_for_api(encode(photo(1000, 800, mode="RGBA"), "PNG"), "image/png")
    assert prepared.mime_type == "image/jpeg" and decoded(prepared).mode == "RGB"


def test_palette_diagram_becomes_png():
    original = encode(diagram(1600, 1000, mode="P"), "PNG")
    prepared = prepare_for_api(original, "image/png")
    assert prepared.mime_type == "image/png" and prepared.reencoded
    assert (prepared.width, prepared.height) == (768, 480)
    result = decoded(prepared)
    assert result.format == "PNG" and result.mode in ("P", "RGB")
    assert result.convert("RGB").getpixel((5, 5)) == (255, 255, 255)


def test_rgba_diagram_stays_png_and_keeps_its_colours():
    image = diagram(1200, 900, mode="RGBA")
    prepared = prepare_for_api(encode(image, "PNG"), "image/png", keep_original_max_bytes=0)
    assert prepared.mime_type == "image/png"
    colours = {colour for _, colour in decoded(prepared).convert("RGB").getcolors(1 << 16)}
    assert (255, 255, 255) in colours and (31, 119, 180) in colours  # the bar's exact colour survives


def test_gif_is_converted_to_a_format_gemini_accepts():
    original = encode(diagram(200, 150, mode="P"), "GIF")
    prepared = prepare_for_api(original, "image/gif")
    assert prepared.reencoded and prepared.mime_type == "image/png"
    assert (prepared.width, prepared.height) == (200, 150)


def test_grey_scan_gets_the_smaller_format():
    prepared = prepare_for_api(encode(photo(1600, 1200, mode="L"), "PNG"), "image/png")
    result = decoded(prepared)
    assert result.mode == "L" and result.size == (768, 576)
    assert prepared.mime_type == "image/jpeg"  # noisy grey: JPEG is far smaller than PNG


def test_exif_rotation_is_applied():
    image = photo(1600, 1200)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees: displayed as portrait
    prepared = prepare_for_api(encode(image, "JPEG", exif=exif.tobytes()), "image/jpeg")
    assert (prepared.original_width, prepared.original_height) == (1200, 1600)
    assert (prepared.width, prepared.height) == (576, 768)
    assert decoded(prepared).size == (576, 768)


def test_pictures_beyond_max_pixels_are_refused_before_decoding():
    original = encode(Image.new("L", (2000, 1000), 255), "PNG")
    with pytest.raises(DecompressionBombError, match="2000x1000"):
        prepare_for_api(original, "image/png", max_pixels=1_000_000)
    assert prepare_for_api(original, "image/png", max_pixels=2_000_000).width == 768


def png_header_only(width, height):
    """A PNG that claims a huge size but carries almost no data: a decompression bomb's header."""
    def chunk(kind, payload):
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_a_bomb_header_is_refused():
    with pytest.raises(DecompressionBombError):
        prepare_for_api(png_header_only(100_000, 100_000), "image/png")  # Pillow's own limit
    with pytest.raises(DecompressionBombError, match="not decoded"):
        prepare_for_api(png_header_only(9_000, 9_000), "image/png")  # our 50 Mpx limit


def test_unreadable_bytes_raise_a_clear_error():
    with pytest.raises(UnreadableImageError, match="image/png"):
        prepare_for_api(b"not a picture", "image/png")
    truncated = encode(photo(1600, 1200), "JPEG")[:5000]
    with pytest.raises(UnreadableImageError):
        prepare_for_api(truncated, "image/jpeg")


def test_sixteen_bit_grey_is_stretched_not_clipped():
    grey = Image.linear_gradient("L").resize((1000, 800)).convert("I").point(lambda v: v * 256)
    prepared = prepare_for_api(encode(grey.convert("I;16"), "PNG"), "image/png")
    result = decoded(prepared).convert("L")
    assert result.size == (768, 614)
    assert result.getextrema() == (0, 255)
    assert 100 < result.getpixel((400, 307)) < 160  # mid-grey stays mid-grey, not white


def test_a_bilevel_text_scan_stays_lossless_png():
    page = Image.new("1", (1700, 2200), 1)
    draw = ImageDraw.Draw(page)
    for line in range(40):
        draw.text((100, 100 + line * 50), "Quarterly revenue grew 12% in the north region " * 2, fill=0)
    prepared = prepare_for_api(encode(page, "PNG"), "image/png")
    assert prepared.mime_type == "image/png"
    assert (prepared.width, prepared.height) == (593, 768)  # 1700 x 768 / 2200 = 593.45
    assert prepared.estimated_tokens == 258
