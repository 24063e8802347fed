"""The Embedder interface and the choice of backend.

An embedder takes face crops already prepared by app/pipeline/crop.py (float32,
(n, 160, 160, 3), RGB, standardised) and returns raw vectors (n, 512); the pipeline
L2-normalises them. `name` is stored in Faces.EmbeddingModel, so vectors of two
models are never compared.
"""
from __future__ import annotations

from typing import Protocol

import numpy as np

class Embedder(Protocol):
    name: str

    def load(self) -> None:
        """Load the weights once (thread-safe); later calls return at once."""

    def embed(self, crops: np.ndarray) -> np.ndarray:
        """(n, 160, 160, 3) float32 -> (n, 512) float32."""
