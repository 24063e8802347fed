"""Decode an image file into an RGB uint8 array, or say exactly why not.

EXIF orientation is applied (phones store portraits sideways); grayscale, palette,
alpha, CMYK and 16-bit images become 8-bit RGB. The pixel count is checked from the
header, before any pixel is decoded, so a decompression bomb costs nothing.
"""
from __future__ import annotations

import logging
import re
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from app.pipeline import photo_meta
from app.pipeline.photo_meta import PhotoMeta

log = logging.getLogger("app.detection")


class DecodeError(Exception):
    """The file cannot be used as an image; the message is stored on the media item.

    `permanent`: retrying cannot help (an empty file, not an image, too many pixels), so
    the item fails at once; the others (file missing, I/O error, truncated data: a file
    still being copied) are retried after RETRY_DELAY_SECONDS.
    """

    def __init__(self, message: str, permanent: bool = False):
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True)
class Decoded:
    rgb: np.ndarray
    # Original size (after EXIF orientation); larger than rgb's when a JPEG was decoded
    # at reduced scale.
    width: int
    height: int
    # EXIF facts (taken at, camera, GPS, ...) read while the file was open
    meta: PhotoMeta | None = None


# EXIF orientations that turn the picture by 90 degrees (width and height swap).
_SWAPPING = {5, 6, 7, 8}


def load_rgb(path: Path, max_pixels: int) -> np.ndarray:
    return load(path, max_pixels).rgb


def _exif(img: Image.Image) -> tuple[Image.Exif | None, str | None]:
    """The EXIF block, or None and why: broken EXIF never fails the image."""
    try:
        return img.getexif(), None
    except Exception as exc:  # noqa: BLE001 - any parser error in a corrupt block
        return None, f"EXIF unreadable: {type(exc).__name__}: {exc}"


def check_file(path: Path) -> None:
    """Raise the DecodeError of a path that is no readable file: missing (retried: it may be
    on its way), a broken link, not a regular file, empty (neither can change by waiting)."""
    try:
        st = path.stat()  # one call for the usual case: on a network share each one is a round trip
    except OSError:
        if path.is_symlink():  # its target is missing, or the links loop
            raise DecodeError(f"file not found: broken symbolic link (target missing or a loop): {path}") from None
        raise DecodeError(f"file not found: {path}") from None
    if not stat.S_ISREG(st.st_mode):
        raise DecodeError(f"not a regular file: {path}", permanent=True)
    if st.st_size == 0:
        raise DecodeError("empty file (0 bytes)", permanent=True)


def load(path: Path, max_pixels: int, at_least: int | None = None,
         device_pattern: re.Pattern[str] | None = None) -> Decoded:
    """Decode an image. With `at_least`, a JPEG is decoded directly at 1/2, 1/4 or 1/8
    scale when its longest side stays at or above that (several times faster on camera
    photos); `width` and `height` are always the original's. `meta` holds what its EXIF
    says (app/pipeline/photo_meta.py); unreadable fields are logged and left out."""
    check_file(path)
    try:
        with warnings.catch_warnings():
            # Our own limit below replaces Pillow's bomb check (a warning, then an error at 2x).
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                w, h = img.size
                if w * h > max_pixels:
                    raise DecodeError(
                        f"image too large: {w}x{h} = {w * h:,} pixels, "
                        f"limit {max_pixels:,} (MAX_IMAGE_PIXELS)", permanent=True,
                    )
                if w == 0 or h == 0:
                    raise DecodeError(f"image has no pixels: {w}x{h}", permanent=True)
                exif, problem = _exif(img)
                turned = exif is not None and exif.get(0x0112) in _SWAPPING
                ow, oh = (h, w) if turned else (w, h)
                meta = photo_meta.read(exif, ow, oh, path.name, device_pattern)
                problems = ([problem] if problem else []) + meta.problems
                if problems:
                    log.warning("%s: EXIF fields left out: %s", path, "; ".join(problems))
                    meta.problems[:] = problems
                if at_least and img.format == "JPEG" and max(w, h) >= 2 * at_least:
                    img.draft("RGB", (max(1, w * at_least // max(w, h)), max(1, h * at_least // max(w, h))))
                img.load()
                if exif is not None:  # in place: no copy of the pixels when upright already
                    ImageOps.exif_transpose(img, in_place=True)
                rgb = to_rgb_array(img)
                return Decoded(rgb, ow, oh, meta)
    except DecodeError:
        raise
    except UnidentifiedImageError:
        raise DecodeError("not an image file (unrecognised format)", permanent=True) from None
    except Image.DecompressionBombError as exc:
        # Pillow refuses images above twice its own limit (about 179 MP) at open,
        # before our check can run; its message gives the pixel count.
        raise DecodeError(f"image too large: {exc}", permanent=True) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        # Truncated or corrupt data: Pillow raises OSError ("image file is truncated",
        # "broken data stream"), SyntaxError (bad PNG chunks) or ValueError.
        raise DecodeError(f"corrupt or truncated image: {exc}") from None


def to_rgb_array(img: Image.Image) -> np.ndarray:
    """Any Pillow mode -> HxWx3 uint8 RGB."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        # 16-bit and float data: stretch the used range to 0..255.
        scaled = (arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(arr)
        gray = np.clip(scaled + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    if img.mode != "RGB":
        img = img.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV
    return np.ascontiguousarray(np.asarray(img, dtype=np.uint8))
