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


DETECTORS = ("retinaface-mobilenet", "retinaface-resnet50")


def make_detector(name: str, threads: int = 0) -> Detector:
    if name == "retinaface-mobilenet":
        from app.inference.retinaface_onnx import MobileNetRetinaFace

        return MobileNetRetinaFace(threads=threads)
    if name == "retinaface-resnet50":
        from app.inference.retinaface_serengil import SerengilRetinaFace

        return SerengilRetinaFace()
    raise ValueError(f"unknown detector {name!r}; choose one of {', '.join(DETECTORS)}")
