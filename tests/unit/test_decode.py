import io

import numpy as np
import pytest
from PIL import Image, ImageOps

from app.pipeline.decode import DecodeError, load, load_rgb

LIMIT = 50_000_000


def _save(img: Image.Image, path, **kw):
    img.save(path, **kw)
    return path


def test_rgb_jpeg(tmp_path):
    arr = load_rgb(_save(Image.new("RGB", (40, 30), (200, 10, 10)), tmp_path / "a.jpg"), LIMIT)
    assert arr.shape == (30, 40, 3) and arr.dtype == np.uint8 and arr[0, 0, 0] > 150


@pytest.mark.parametrize("mode,colour", [("L", 128), ("1", 1), ("P", 5)])
def test_grayscale_bilevel_palette_become_rgb(tmp_path, mode, colour):
    arr = load_rgb(_save(Image.new(mode, (10, 10), colour), tmp_path / "a.png"), LIMIT)
    assert arr.shape == (10, 10, 3)


def test_cmyk_jpeg(tmp_path):
    arr = load_rgb(_save(Image.new("CMYK", (10, 10), (0, 255, 255, 0)), tmp_path / "a.jpg"), LIMIT)
    assert arr.shape == (10, 10, 3) and arr[5, 5, 0] > 200 and arr[5, 5, 1] < 60  # red


def test_rgba_is_composited_on_white(tmp_path):
    arr = load_rgb(_save(Image.new("RGBA", (10, 10), (0, 0, 0, 0)), tmp_path / "a.png"), LIMIT)
    assert (arr == 255).all()


def test_16_bit_png_is_scaled_to_8_bit(tmp_path):
    data = np.linspace(0, 65535, 100, dtype=np.uint16).reshape(10, 10)
    path = tmp_path / "a.png"
    Image.fromarray(data).save(path)
    arr = load_rgb(path, LIMIT)
    assert arr.shape == (10, 10, 3) and arr.min() == 0 and arr.max() == 255


def test_exif_orientation_is_applied(tmp_path):
    img = Image.new("RGB", (40, 20), (0, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = tmp_path / "a.jpg"
    img.save(path, exif=exif)
    assert load_rgb(path, LIMIT).shape == (40, 20, 3)


def test_missing_empty_text_truncated(tmp_path):
    with pytest.raises(DecodeError, match="not found"):
        load_rgb(tmp_path / "missing.jpg", LIMIT)
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(DecodeError, match="empty file"):
        load_rgb(tmp_path / "empty.jpg", LIMIT)
    (tmp_path / "text.jpg").write_text("hello")
    with pytest.raises(DecodeError, match="not an image"):
        load_rgb(tmp_path / "text.jpg", LIMIT)
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8)).save(buf, "JPEG")
    (tmp_path / "cut.jpg").write_bytes(buf.getvalue()[:2000])
    with pytest.raises(DecodeError, match="truncated"):
        load_rgb(tmp_path / "cut.jpg", LIMIT)
    with pytest.raises(DecodeError, match="not a regular file"):
        load_rgb(tmp_path, LIMIT)


def test_pixel_limit_is_checked_before_decoding(tmp_path):
    path = _save(Image.new("1", (8000, 8000)), tmp_path / "big.png")  # 64 MP
    with pytest.raises(DecodeError, match="too large: 8000x8000 = 64,000,000 pixels"):
        load_rgb(path, LIMIT)
    assert load_rgb(path, 70_000_000).shape == (8000, 8000, 3)


def test_decompression_bomb_is_refused(tmp_path):
    path = _save(Image.new("1", (20000, 20000)), tmp_path / "huge.png")  # 400 MP
    with pytest.raises(DecodeError, match="too large"):
        load_rgb(path, LIMIT)


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("at_least", [None, 200])
def test_every_exif_orientation_gives_the_upright_pixels(tmp_path, orientation, at_least):
    rng = np.random.default_rng(orientation)
    # blocks of 8 px survive JPEG well enough to compare, and 400x240 can be decoded at 1/2
    img = Image.fromarray(np.kron(rng.integers(0, 256, (30, 50, 3), dtype=np.uint8),
                                  np.ones((8, 8, 1), np.uint8)))
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "a.jpg"
    img.save(path, exif=exif, quality=95)
    with Image.open(path) as reference:
        if at_least:
            reference.draft("RGB", (200, 120))
        upright = np.asarray(ImageOps.exif_transpose(reference).convert("RGB"))
    decoded = load(path, LIMIT, at_least)
    assert np.array_equal(decoded.rgb, upright)
    assert (decoded.width, decoded.height) == ((240, 400) if orientation >= 5 else (400, 240))
