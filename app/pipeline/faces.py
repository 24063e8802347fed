"""Face crops shared by the stages (thumbnails, blur, embedding)."""
from __future__ import annotations

import numpy as np

from app.types import Box


def region(image: np.ndarray, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    """Pixels [x0, x1) x [y0, y1) of the image; parts outside it are black."""
    x0, y0, x1, y1 = (int(round(v)) for v in (x0, y0, x1, y1))
    out = np.zeros((max(1, y1 - y0), max(1, x1 - x0), 3), dtype=image.dtype)
    h, w = image.shape[:2]
    sx0, sy0, sx1, sy1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = image[sy0:sy1, sx0:sx1]
    return out


def square_crop(image: np.ndarray, box: Box, margin: float) -> np.ndarray:
    """A square around the box, enlarged by `margin` of its size on each side; the face
    stays centred even at the image border (outside is black)."""
    side = max(box.w, box.h) * (1.0 + 2.0 * margin)
    cx, cy = box.x + box.w / 2.0, box.y + box.h / 2.0
    return region(image, cx - side / 2.0, cy - side / 2.0, cx + side / 2.0, cy + side / 2.0)


def box_crop(image: np.ndarray, box: Box, margin: float) -> np.ndarray:
    """The box enlarged by `margin` of its width/height on each side (not squared)."""
    mx, my = box.w * margin, box.h * margin
    return region(image, box.x - mx, box.y - my, box.x + box.w + mx, box.y + box.h + my)
