"""Quality measures and gates for detected faces."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.types import Box, DetectedFace

# ITU-R BT.601 luma weights.
LUMA = np.array([0.299, 0.587, 0.114])


def luma(rgb: np.ndarray) -> np.ndarray:
    """The grey image (float64) of HxWx3 pixels; a grey image (HxW) is returned as it is."""
    return rgb if rgb.ndim == 2 else rgb.astype(np.float64) @ LUMA


def laplacian_variance(rgb: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian of the grey image: low means blurred.

    Measured on the face crop resized to a fixed size, so the number does not depend on
    the face's resolution in the photo. Takes the pixels or their `luma`.
    """
    gray = luma(rgb)
    if gray.shape[0] < 3 or gray.shape[1] < 3:
        return 0.0
    lap = (
        gray[:-2, 1:-1] + gray[2:, 1:-1] + gray[1:-1, :-2] + gray[1:-1, 2:]
        - 4.0 * gray[1:-1, 1:-1]
    )
    return float(lap.var())


@dataclass(frozen=True)
class Gates:
    min_score: float
    min_face_px: int
    min_blur: float


def is_usable(face: DetectedFace, blur: float, gates: Gates) -> bool:
    """Faces below a gate are stored (and shown) but never embedded or clustered."""
    return face.score >= gates.min_score and face.box.short_side >= gates.min_face_px and blur >= gates.min_blur


def clip_box(box: Box, width: int, height: int) -> Box:
    x0, y0 = max(0.0, box.x), max(0.0, box.y)
    x1, y1 = min(float(width), box.x + box.w), min(float(height), box.y + box.h)
    return Box(x0, y0, max(0.0, x1 - x0), max(0.0, y1 - y0))
