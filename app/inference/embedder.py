"""The Embedder interface (the choice of backend is app/inference/registry.py).

An embedder takes face crops already prepared by app/pipeline/encode.py and returns raw
vectors; the pipeline L2-normalises them. FaceNet takes box crops (float32,
(n, 160, 160, 3), RGB, standardised by app/pipeline/crop.py) and returns (n, 512); SFace
takes crops aligned on the landmarks (uint8, (n, 112, 112, 3), RGB) and returns (n, 128).
`name` is stored beside the vectors, so vectors of two models are never compared.
"""
from __future__ import annotations

from typing import Protocol

import numpy as np


class Embedder(Protocol):
    name: str

    def load(self) -> None:
        """Load the weights once (thread-safe); later calls return at once."""

    def embed(self, crops: np.ndarray) -> np.ndarray:
        """Prepared crops (n, ...) -> raw vectors (n, d) float32."""
