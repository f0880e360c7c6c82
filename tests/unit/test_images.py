"""Image handling with Pillow: type from bytes, decoding guards, EXIF, fitting and encoding."""

from __future__ import annotations

import io
import random

import pytest
from PIL import Image

from editgate.domain.envelope import WORST_BYTES_PER_PIXEL
from editgate.domain.errors import InvalidRequest
from editgate.domain.images import (
    OUTPUT_FORMATS,
    OutputFormat,
    Size,
    UploadedImage,
    encode,
    finish,
    fit,
)
from tests.conftest import open_image, png_bytes


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
def test_given_encoded_bytes_then_the_format_comes_from_the_bytes(fmt: OutputFormat) -> None:
    decoded = UploadedImage(encode(Image.new("RGB", (8, 6)), fmt), param="image", max_pixels=10**6).decoded()
    assert decoded.size == (8, 6)
    with pytest.raises(InvalidRequest) as caught:
        UploadedImage(b"GIF? no, text", param="image", max_pixels=10**6).decoded()
    assert caught.value.code == "invalid_image_format"


def test_given_an_image_over_the_pixel_limit_then_it_is_refused_before_decoding() -> None:
    with pytest.raises(InvalidRequest) as caught:
        UploadedImage(png_bytes((1000, 1000)), param="image", max_pixels=999_999).decoded()
    assert caught.value.code == "image_too_large"


def test_given_a_gif_then_it_is_refused_as_unsupported_input() -> None:
    with pytest.raises(InvalidRequest) as caught:
        UploadedImage(encode(Image.new("RGB", (8, 8)), "gif"), param="image", max_pixels=10**6).decoded()
    assert caught.value.code == "invalid_image_format"


def test_given_a_truncated_png_then_it_is_refused_not_crashed() -> None:
    with pytest.raises(InvalidRequest):
        UploadedImage(png_bytes((300, 300))[:200], param="image", max_pixels=10**6).decoded()


def test_given_exif_orientation_then_it_is_applied_first() -> None:
    image = Image.new("RGB", (40, 20), (10, 20, 30))
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif)
    assert UploadedImage(out.getvalue(), param="image", max_pixels=10**6).decoded().size == (20, 40)


def test_given_bytes_already_in_the_target_format_and_size_then_they_are_kept_untouched() -> None:
    data = png_bytes((64, 64))
    assert finish(data, Size(64, 64), "png", compression=None) is data


def test_given_another_size_then_the_result_is_resized_exactly() -> None:
    result = open_image(finish(png_bytes((64, 64)), Size(100, 50), "jpeg", compression=80))
    assert result.format == "JPEG"
    assert result.size == (100, 50)


@pytest.mark.parametrize("mode", ["cover", "contain", "stretch"])
def test_given_any_fit_then_the_image_has_exactly_the_size(mode: str) -> None:
    assert fit(Image.new("RGB", (300, 100)), Size(128, 128), mode).size == (128, 128)


def test_given_transparency_and_jpeg_then_it_is_flattened_on_white() -> None:
    clear = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    assert open_image(encode(clear, "jpeg")).getpixel((4, 4)) == (255, 255, 255)
    assert open_image(encode(clear, "png")).mode == "RGBA"


@pytest.mark.parametrize("fmt", OUTPUT_FORMATS)
@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
def test_given_incompressible_noise_then_no_format_takes_more_bytes_per_pixel_than_the_b64_guard_assumes(
    fmt: OutputFormat, mode: str
) -> None:
    # The worst case for every encoder: random pixels (with random alpha), encoded as answers are.
    side = 256
    noise = Image.frombytes(mode, (side, side), random.Random(7).randbytes(side * side * len(mode)))
    size = len(encode(noise, fmt))
    assert size / (side * side) <= WORST_BYTES_PER_PIXEL[fmt]


def _jpeg_with_orientation(size: tuple[int, int], orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    out = io.BytesIO()
    Image.new("RGB", size, (10, 20, 30)).save(out, format="JPEG", exif=exif)
    return out.getvalue()


def test_given_an_exif_quarter_turn_then_the_upright_size_is_read_from_the_header() -> None:
    upload = UploadedImage(_jpeg_with_orientation((300, 200), 6), param="image", max_pixels=10**6)
    assert upload.size == Size(200, 300)
    assert not upload.sendable_as_is(Size(200, 300))  # it must be turned before fal sees it
    assert upload.decoded().size == (200, 300)


@pytest.mark.parametrize(
    ("data", "size", "as_is"),
    [(png_bytes((64, 48)), Size(64, 48), True), (png_bytes((64, 48)), Size(48, 64), False),
     (png_bytes((64, 48), (1, 2, 3, 255), "RGBA"), Size(64, 48), False),
     (_jpeg_with_orientation((64, 48), 1), Size(64, 48), True)],
)  # fmt: skip
def test_given_an_upload_then_only_an_upright_opaque_one_of_the_providers_size_goes_as_is(
    data: bytes, size: Size, as_is: bool
) -> None:
    assert UploadedImage(data, param="image", max_pixels=10**6).sendable_as_is(size) is as_is


def test_given_a_png_with_a_broken_chunk_then_it_is_not_sent_as_is() -> None:
    data = bytearray(png_bytes((64, 48)))
    data[-20] ^= 0xFF  # inside the image data: a CRC mismatch
    assert not UploadedImage(bytes(data), param="image", max_pixels=10**6).sendable_as_is(Size(64, 48))
