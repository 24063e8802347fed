"""Resize images for detection and map the faces back to original pixels."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from app.types import Box, DetectedFace


@dataclass(frozen=True)
class Scale:
    sx: float  # detector pixels per original pixel, horizontally
    sy: float
    width: int  # original size
    height: int


def fit(image: np.ndarray, max_side: int) -> tuple[np.ndarray, Scale]:
    """Shrink so the longest side is at most `max_side`; never enlarge."""
    h, w = image.shape[:2]
    if max(h, w) <= max_side:
        return image, Scale(1.0, 1.0, w, h)
    ratio = max_side / max(h, w)
    nw, nh = max(1, round(w * ratio)), max(1, round(h * ratio))
    resized = np.asarray(Image.fromarray(image).resize((nw, nh), Image.Resampling.BILINEAR))
    return resized, Scale(nw / w, nh / h, w, h)


def to_original(face: DetectedFace, scale: Scale) -> DetectedFace:
    """Map a face found on the resized image back to the original, clipped to it."""
    x0 = min(max(face.box.x / scale.sx, 0.0), scale.width)
    y0 = min(max(face.box.y / scale.sy, 0.0), scale.height)
    x1 = min(max((face.box.x + face.box.w) / scale.sx, 0.0), scale.width)
    y1 = min(max((face.box.y + face.box.h) / scale.sy, 0.0), scale.height)
    points = tuple((x / scale.sx, y / scale.sy) for x, y in face.landmarks)
    return DetectedFace(Box(x0, y0, x1 - x0, y1 - y0), face.score, points)
