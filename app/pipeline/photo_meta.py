"""Photo metadata from the EXIF block the decoder already read (no second decode): when it
was taken (DateTimeOriginal, with its offset when present), camera make and model, GPS
position, size and orientation, and a device id.

Pure: a Pillow `Image.Exif` in, a `PhotoMeta` out. Broken or odd EXIF never fails the
photo: a field that cannot be read stays None and the reason is returned, to be logged.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from PIL import Image

# EXIF tags (CIPA DC-008): IFD0 and the Exif and GPS sub-IFDs
MAKE, MODEL, ORIENTATION = 0x010F, 0x0110, 0x0112
EXIF_IFD, GPS_IFD = 0x8769, 0x8825
DATETIME_ORIGINAL, OFFSET_TIME_ORIGINAL = 0x9003, 0x9011
GPS_LAT_REF, GPS_LAT, GPS_LON_REF, GPS_LON, GPS_ALT_REF, GPS_ALT = 1, 2, 3, 4, 5, 6
TEXT_MAX = 100


@dataclass(frozen=True)
class PhotoMeta:
    width: int
    height: int
    taken_at: datetime | None = None  # aware when the photo gives its offset, else naive (camera's clock)
    camera_make: str | None = None
    camera_model: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    altitude: float | None = None  # metres above sea level
    orientation: int | None = None  # EXIF 1..8
    device_id: str | None = None
    problems: list[str] = field(default_factory=list, compare=False)  # fields that could not be read, and why
    # a video's facts (app/pipeline/video.py); None for a photo
    media_type: str | None = None
    duration_ms: int | None = None
    codec: str | None = None
    frame_rate: float | None = None


def device_id(make: str | None, model: str | None, file_name: str, pattern: re.Pattern[str] | None) -> str | None:
    """Camera make + model (the model alone when it already names the maker), else the
    first match of `pattern` in the file name (its first group when it has one), else None."""
    if model:
        if make and not model.lower().startswith(make.lower().split()[0]):
            return f"{make} {model}"
        return model
    if make:
        return make
    if pattern is not None:
        found = pattern.search(file_name)
        if found:
            return found.group(1) if pattern.groups else found.group(0)
    return None


def read(exif: Image.Exif | None, width: int, height: int, file_name: str,
         pattern: re.Pattern[str] | None = None) -> PhotoMeta:
    problems: list[str] = []
    if exif is None:
        return PhotoMeta(width, height, device_id=device_id(None, None, file_name, pattern))
    make, model = _text(exif, MAKE, "Make", problems), _text(exif, MODEL, "Model", problems)
    orientation = _field(lambda: _orientation(exif.get(ORIENTATION)), "Orientation", problems)
    sub = _field(lambda: exif.get_ifd(EXIF_IFD), "Exif IFD", problems) or {}
    taken = _field(lambda: _taken(sub.get(DATETIME_ORIGINAL), sub.get(OFFSET_TIME_ORIGINAL)),
                   "DateTimeOriginal", problems)
    gps = _field(lambda: exif.get_ifd(GPS_IFD), "GPS IFD", problems) or {}
    lat = _field(lambda: _coordinate(gps.get(GPS_LAT), gps.get(GPS_LAT_REF), "N", "S", 90), "GPS latitude", problems)
    lon = _field(lambda: _coordinate(gps.get(GPS_LON), gps.get(GPS_LON_REF), "E", "W", 180), "GPS longitude",
                 problems)
    alt = _field(lambda: _altitude(gps.get(GPS_ALT), gps.get(GPS_ALT_REF)), "GPS altitude", problems)
    if (lat is None) != (lon is None):
        problems.append("GPS: latitude without longitude or the reverse; position left out")
        lat = lon = None
    return PhotoMeta(width, height, taken, make, model, lat, lon, alt, orientation,
                     device_id(make, model, file_name, pattern), problems)


def _field(get, name: str, problems: list[str]):
    try:
        return get()
    except Exception as exc:  # noqa: BLE001 - any EXIF oddity: the field stays empty
        problems.append(f"{name}: {exc}")
        return None


def _text(exif, tag: int, name: str, problems: list[str]) -> str | None:
    value = exif.get(tag)
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        problems.append(f"{name}: not text ({type(value).__name__})")
        return None
    value = " ".join(value.replace("\x00", " ").split())[:TEXT_MAX]
    return value or None


def _orientation(value) -> int | None:
    if value is None:
        return None
    value = int(value)
    if not 1 <= value <= 8:
        raise ValueError(f"{value} is not 1..8")
    return value


def _taken(value, offset) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    text = str(value).strip().rstrip("\x00")
    if not text or text.startswith("0000"):
        return None  # cameras write zeros when their clock was never set
    taken = datetime.strptime(text[:19], "%Y:%m:%d %H:%M:%S")
    if offset:
        if isinstance(offset, bytes):
            offset = offset.decode("ascii", "replace")
        found = re.fullmatch(r"([+-])(\d{2}):(\d{2})", str(offset).strip().rstrip("\x00"))
        if not found:
            raise ValueError(f"offset {offset!r} is not +HH:MM")
        sign = 1 if found.group(1) == "+" else -1
        taken = taken.replace(tzinfo=timezone(sign * timedelta(hours=int(found.group(2)),
                                                               minutes=int(found.group(3)))))
    return taken


def _coordinate(value, ref, positive: str, negative: str, limit: float) -> float | None:
    if value is None:
        return None
    degrees, minutes, seconds = (float(v) for v in value)
    result = degrees + minutes / 60 + seconds / 3600
    ref = (ref.decode("ascii", "replace") if isinstance(ref, bytes) else str(ref or positive)).strip().upper()[:1]
    if ref not in (positive, negative):
        raise ValueError(f"reference {ref!r} is not {positive} or {negative}")
    if not 0 <= result <= limit:
        raise ValueError(f"{result} is out of range")
    return round(-result if ref == negative else result, 7)


def _altitude(value, ref) -> float | None:
    if value is None:
        return None
    metres = float(value)
    below = ref in (1, b"\x01", "1")
    return round(-metres if below else metres, 2)
