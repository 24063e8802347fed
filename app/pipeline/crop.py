"""Face crops for the embedder, prepared the way FaceNet (davidsandberg 2018) was trained:
a box crop with a margin, resized to 160x160 RGB, fixed standardisation (x - 127.5) / 128.
The choice of margin and shape was measured on the dev set (README, "Embeddings").
"""
from __future__ import annotations

import numpy as np
from PIL import Image

from app.pipeline.faces import box_crop, square_crop
from app.types import Box

INPUT_SIZE = 160


def face_crop(image: np.ndarray, box: Box, margin: float, square: bool, size: int = INPUT_SIZE) -> np.ndarray:
    crop = square_crop(image, box, margin) if square else box_crop(image, box, margin)
    h, w = crop.shape[:2]
    # Shrinking: area averaging (box filter) avoids aliasing; enlarging: bilinear.
    method = Image.Resampling.BOX if max(h, w) > size else Image.Resampling.BILINEAR
    return np.asarray(Image.fromarray(crop).resize((size, size), method))


def standardise(crops: np.ndarray) -> np.ndarray:
    """uint8 (n, 160, 160, 3) -> float32, (x - 127.5) / 128."""
    return (crops.astype(np.float32) - 127.5) / 128.0


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    """The one place embeddings are normalised."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)
