"""Face crops in, stored vectors out: the contract's FaceNet vector and, when the
decision embedder is another model (SFace), its vector beside it.

`Faces.Embedding` always holds the FaceNet 512-d vector the contract promises to other
applications; `Faces.Embedding2` holds the second model's. Which one decides persons is
the EMBEDDER setting (app/services/assign.py reads it).
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from app.inference.embedder import Embedder
from app.pipeline.align import aligned_crop
from app.pipeline.crop import face_crop, l2_normalise, standardise
from app.types import Box


@dataclass(frozen=True)
class Prepared:
    """One face's crops: FaceNet's box crop (160x160) and, for the second model, the crop
    aligned on the landmarks (112x112). Both uint8 RGB."""

    box_crop: np.ndarray
    aligned: np.ndarray | None


@dataclass(frozen=True)
class Vectors:
    embedding: bytes  # FaceNet, float32, L2-normalised
    embedding2: bytes | None  # the second model's, or None when there is none


def parse_landmarks(text: str | None) -> list[tuple[float, float]]:
    points = json.loads(text) if text else None
    if not points or len(points) != 5:
        raise ValueError("the face has no 5 landmarks to align it")
    return [(float(x), float(y)) for x, y in points]


@dataclass(frozen=True)
class Cropper:
    """How a run cuts a face for its embedders (no model needed: the detection stage's
    lane processes cut crops with it and the worker embeds them)."""

    margin: float
    aligned: bool  # a second model, which takes the crop aligned on the landmarks

    def prepare(self, image: np.ndarray, box: Box, landmarks: list[tuple[float, float]] | None) -> Prepared:
        """Landmarks in the same pixels as `image` (needed only with a second model)."""
        crop = face_crop(image, box, self.margin, square=False)
        if not self.aligned:
            return Prepared(crop, None)
        if landmarks is None:
            raise ValueError("the face has no landmarks to align it")
        return Prepared(crop, aligned_crop(image, landmarks))


class FaceEncoder:
    """The two embedders of a run, loaded once."""

    def __init__(self, facenet: Embedder, second: Embedder | None, margin: float, flip: bool):
        self.facenet = facenet
        self.second = second
        self.margin = margin
        self.flip = flip

    @property
    def name(self) -> str:
        return self.facenet.name + (f" + {self.second.name}" if self.second else "")

    @property
    def model(self) -> str:
        return self.facenet.name

    @property
    def model2(self) -> str | None:
        return self.second.name if self.second else None

    def load(self) -> None:
        self.facenet.load()
        if self.second:
            self.second.load()

    @property
    def cropper(self) -> Cropper:
        return Cropper(self.margin, self.second is not None)

    def prepare(self, image: np.ndarray, box: Box, landmarks: list[tuple[float, float]] | None) -> Prepared:
        """Landmarks in the same pixels as `image` (needed only with a second model)."""
        return self.cropper.prepare(image, box, landmarks)

    def _vectors(self, model: Embedder, crops: np.ndarray, prepare) -> np.ndarray:
        """One model's L2-normalised vectors, averaged with the mirrored crops' with flip."""
        vectors = model.embed(prepare(crops))
        if self.flip:
            vectors = vectors + model.embed(prepare(np.ascontiguousarray(crops[:, :, ::-1])))
        return l2_normalise(vectors)

    def encode(self, faces: list[Prepared]) -> list[Vectors]:
        if not faces:
            return []
        first = self._vectors(self.facenet, np.stack([f.box_crop for f in faces]), standardise)
        if self.second is None:
            return [Vectors(v.tobytes(), None) for v in first]
        second = self._vectors(self.second, np.stack([f.aligned for f in faces]), np.ascontiguousarray)
        return [Vectors(a.tobytes(), b.tobytes()) for a, b in zip(first, second)]
