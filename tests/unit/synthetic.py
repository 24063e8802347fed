"""Synthetic face embeddings: identities as random unit vectors, faces scattered around them."""
from __future__ import annotations

import numpy as np


def normalise(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def identities(n: int, dim: int = 512, seed: int = 0) -> np.ndarray:
    return normalise(np.random.default_rng(seed).normal(size=(n, dim)))


def faces_around(centre: np.ndarray, count: int, similarity: float, seed: int) -> np.ndarray:
    """Unit vectors whose cosine similarity to `centre` is about `similarity`."""
    rng = np.random.default_rng([seed, 7919])  # a stream apart from identities(seed)
    noise = normalise(rng.normal(size=(count, centre.shape[0])))
    noise -= (noise @ centre)[:, None] * centre  # orthogonal to the centre
    noise = normalise(noise)
    angle = np.arccos(similarity)
    return normalise(np.cos(angle) * centre + np.sin(angle) * noise)
