"""Photo metadata from EXIF (app/pipeline/photo_meta.py), on JPEG files written with
Pillow and read back the way the decoder opens them."""
import io
import re
from datetime import datetime, timedelta, timezone

from PIL import Image

from app.pipeline import photo_meta as pm


def _jpeg(exif: Image.Exif) -> Image.Image:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (120, 90, 60)).save(buf, "JPEG", exif=exif)
    buf.seek(0)
    return Image.open(buf)


def _camera_exif() -> Image.Exif:
    exif = Image.Exif()
    exif[pm.MAKE] = "Canon"
    exif[pm.MODEL] = "Canon EOS 5D Mark IV"
    exif[pm.ORIENTATION] = 6
    sub = exif.get_ifd(pm.EXIF_IFD)
    sub[pm.DATETIME_ORIGINAL] = "2024:01:15 14:03:27"
    sub[pm.OFFSET_TIME_ORIGINAL] = "+01:00"
    gps = exif.get_ifd(pm.GPS_IFD)
    gps[pm.GPS_LAT_REF], gps[pm.GPS_LAT] = "N", (48.0, 51.0, 29.5)
    gps[pm.GPS_LON_REF], gps[pm.GPS_LON] = "W", (2.0, 17.0, 40.2)
    gps[pm.GPS_ALT_REF], gps[pm.GPS_ALT] = b"\x00", 35.5
    return exif


def test_camera_photo_gives_every_field():
    img = _jpeg(_camera_exif())
    meta = pm.read(img.getexif(), *img.size, "IMG_0001.JPG")
    assert meta.problems == []
    assert meta.taken_at == datetime(2024, 1, 15, 14, 3, 27, tzinfo=timezone(timedelta(hours=1)))
    assert (meta.camera_make, meta.camera_model) == ("Canon", "Canon EOS 5D Mark IV")
    assert meta.device_id == "Canon EOS 5D Mark IV"  # the model already names the maker
    assert abs(meta.latitude - (48 + 51 / 60 + 29.5 / 3600)) < 1e-6
    assert abs(meta.longitude + (2 + 17 / 60 + 40.2 / 3600)) < 1e-6  # west is negative
    assert meta.altitude == 35.5 and meta.orientation == 6 and (meta.width, meta.height) == (64, 48)


def test_no_exif_uses_the_file_name_pattern_for_the_device():
    img = _jpeg(Image.Exif())
    pattern = re.compile(r"(AXIS-[A-Z0-9]+)")
    meta = pm.read(img.getexif(), *img.size, "AXIS-W120_2024-01-15.jpg", pattern)
    assert meta.device_id == "AXIS-W120" and meta.taken_at is None and meta.latitude is None
    assert pm.read(None, 10, 10, "x.jpg", pattern).device_id is None


def test_broken_fields_are_left_out_with_a_reason_and_never_raise():
    exif = _camera_exif()
    exif[pm.ORIENTATION] = 42
    sub = exif.get_ifd(pm.EXIF_IFD)
    sub[pm.DATETIME_ORIGINAL] = "yesterday-ish"
    gps = exif.get_ifd(pm.GPS_IFD)
    gps[pm.GPS_LAT] = (95.0, 0.0, 0.0)  # beyond a pole
    img = _jpeg(exif)
    meta = pm.read(img.getexif(), *img.size, "x.jpg")
    assert meta.orientation is None and meta.taken_at is None
    assert meta.latitude is None and meta.longitude is None  # no half a position
    assert meta.camera_model == "Canon EOS 5D Mark IV"  # the rest is kept
    assert {p.split(":")[0] for p in meta.problems} >= {"Orientation", "DateTimeOriginal", "GPS latitude", "GPS"}


def test_zero_date_and_no_offset():
    exif = Image.Exif()
    exif.get_ifd(pm.EXIF_IFD)[pm.DATETIME_ORIGINAL] = "0000:00:00 00:00:00"
    img = _jpeg(exif)
    assert pm.read(img.getexif(), *img.size, "x.jpg").taken_at is None
    exif.get_ifd(pm.EXIF_IFD)[pm.DATETIME_ORIGINAL] = "2020:02:29 23:59:59"
    img = _jpeg(exif)
    taken = pm.read(img.getexif(), *img.size, "x.jpg").taken_at
    assert taken == datetime(2020, 2, 29, 23, 59, 59) and taken.tzinfo is None


def test_device_from_make_and_model():
    assert pm.device_id("NIKON CORPORATION", "D750", "a.jpg", None) == "NIKON CORPORATION D750"
    assert pm.device_id("Apple", "iPhone 12", "a.jpg", None) == "Apple iPhone 12"
    assert pm.device_id("Apple", None, "a.jpg", None) == "Apple"
