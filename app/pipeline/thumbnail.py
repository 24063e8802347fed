"""Square face thumbnails: box plus a margin, made square, resized, JPEG."""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image

from app.pipeline.faces import Box, square_crop


def thumbnail_jpeg(image: np.ndarray, box: Box, size: int, margin: float) -> bytes:
    crop = square_crop(image, box, margin)
    # reducing_gap: shrink large crops by whole factors first (much faster, same look)
    pil = Image.fromarray(crop).resize((size, size), Image.Resampling.LANCZOS, reducing_gap=3.0)
    buf = io.BytesIO()
    pil.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def thumbnail_dir(root: Path, media_file_id: int) -> Path:
    # A thousand media files per folder keeps directories small on any filesystem.
    return root / f"{media_file_id // 1000:06d}"


def thumbnail_path(root: Path, media_file_id: int, face_id: int) -> Path:
    """Derived from ids only, never from the user's file names."""
    return thumbnail_dir(root, media_file_id) / f"{media_file_id}_{face_id}.jpg"


def stale_thumbnails(root: Path, media_file_id: int, keep: set[Path]) -> list[Path]:
    """Thumbnails of this media file that no stored face points to (from a crashed run,
    or of faces a re-detection replaced)."""
    folder = thumbnail_dir(root, media_file_id)
    if not folder.is_dir():
        return []
    return [p for p in folder.glob(f"{media_file_id}_*.jpg") if p not in keep]


def write_atomic(path: Path, data: bytes) -> None:
    """Write via a temporary file and rename, so a crash never leaves half a JPEG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
