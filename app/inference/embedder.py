"""The Embedder interface and the choice of backend.

An embedder takes face crops already prepared by app/pipeline/crop.py (float32,
(n, 160, 160, 3), RGB, standardised) and returns raw vectors (n, 512); the pipeline
L2-normalises them. `name` is stored in Faces.EmbeddingModel, so vectors of two
models are never compared.
"""
from __future__ import annotations

from typing import Protocol

import numpy as np

# setting -> the name stored in Faces.EmbeddingModel
MODEL_NAMES = {
    "facenet-casia": "facenet-casia-20180408",
    "facenet-vggface2": "facenet-vggface2-20180402",
}
EMBEDDERS = tuple(MODEL_NAMES)


def model_name(setting: str) -> str:
    return MODEL_NAMES[setting]


class Embedder(Protocol):
    name: str

    def load(self) -> None:
        """Load the weights once (thread-safe); later calls return at once."""

    def embed(self, crops: np.ndarray) -> np.ndarray:
        """(n, 160, 160, 3) float32 -> (n, 512) float32."""


def make_embedder(name: str, threads: int = 0, batch_size: int = 32) -> Embedder:
    if name == "facenet-casia":
        from app.inference.facenet_onnx import FaceNetCasia

        return FaceNetCasia(threads=threads, batch_size=batch_size)
    if name == "facenet-vggface2":
        from app.inference.facenet_keras import FaceNetVGGFace2

        return FaceNetVGGFace2(batch_size=batch_size)
    raise ValueError(f"unknown embedder {name!r}; choose one of {', '.join(EMBEDDERS)}")
