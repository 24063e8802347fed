"""The Detector interface and the choice of backend.

A detector takes RGB uint8 images (HxWx3) and returns, per image, the faces found in
that image's own pixel coordinates. Resizing for speed and mapping boxes back to the
original image is the pipeline's job (app/pipeline/resize.py), not the backend's.
"""
from __future__ import annotations

from typing import Protocol, Sequence

import numpy as np

from app.types import DetectedFace


class Detector(Protocol):
    name: str

    def load(self) -> None:
        """Load the weights once (thread-safe); later calls return at once."""

    def detect(self, images: Sequence[np.ndarray], min_score: float) -> list[list[DetectedFace]]:
        """Faces with score >= min_score in each image. Images of equal size run as one batch."""
