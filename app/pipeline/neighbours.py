"""Nearest neighbours by cosine similarity (unit vectors): exact in blocks, or through an
inverted-file index (faiss IVF) when the inputs are large.

Exact search (`app.pipeline.match.top_k`) costs queries x base dot products: fine for a
library of a few tens of thousands of faces, hours for a million against a million. The
approximate search partitions the base into cells around k-means centres and compares
each query only with the faces of its `probe` nearest cells: near-linear time, and a
face's true near neighbours (the only ones that can ever decide anything, at similarities
far above chance) fall in the probed cells (README, "Scale" has the measured recall).
Results have the shape of `top_k`'s: indices into `base` (-1 where fewer were found) and
similarities, best first.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.pipeline.match import top_k

# Below this many query x base pairs an approximate search is done exactly (it is as fast).
EXACT_PAIRS = 200_000_000


@dataclass(frozen=True)
class IvfParams:
    cells_per_sqrt: float = 4.0  # cells = this x sqrt(base size): 4,000 cells of 250 faces for a million
    probe: int = 12  # cells searched per query
    train_per_cell: int = 20  # k-means sample: this many faces per cell
    seed: int = 42


def cells_for(n: int, p: IvfParams) -> int:
    return max(1, min(int(p.cells_per_sqrt * np.sqrt(n)), n // p.train_per_cell or 1))


def train_quantizer(base: np.ndarray, p: IvfParams, cells: int | None = None):
    """A trained (empty) IVF-Flat index on inner product for vectors like `base`."""
    import faiss

    n, d = base.shape
    cells = cells or cells_for(n, p)
    rng = np.random.default_rng(p.seed)
    sample = base if n <= cells * p.train_per_cell else base[np.sort(rng.choice(n, cells * p.train_per_cell,
                                                                                 replace=False))]
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, cells, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = p.seed
    index.cp.min_points_per_centroid = p.train_per_cell  # the sample is that size on purpose
    index.train(np.ascontiguousarray(sample, dtype=np.float32))
    index.nprobe = min(p.probe, cells)
    return index


def search(queries: np.ndarray, base: np.ndarray, k: int, approximate: bool = False,
           params: IvfParams = IvfParams()) -> tuple[np.ndarray, np.ndarray]:
    """The k most similar base rows per query. `approximate`: through a transient IVF
    index when the problem is large enough for it to pay."""
    n, m = queries.shape[0], base.shape[0]
    if not approximate:
        return top_k(np.ascontiguousarray(queries, dtype=np.float32),
                     np.ascontiguousarray(base, dtype=np.float32), k)
    if n * m <= EXACT_PAIRS or m < 4 * params.train_per_cell:
        return exact(queries, base, k)
    index = train_quantizer(base, params)
    for start in range(0, m, 262_144):  # add in slices: no float32 copy of a big base at once
        index.add(np.ascontiguousarray(base[start:start + 262_144], dtype=np.float32))
    return _search_index(index, queries, min(k, m))


def exact(queries: np.ndarray, base: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """As `top_k`, through faiss's brute-force search (matrix products, a heap per query in
    C++: a few times faster than sorting blocks in NumPy)."""
    import faiss

    k = min(k, base.shape[0])
    if k == 0 or queries.shape[0] == 0:
        return np.full((queries.shape[0], k), -1, np.int64), np.full((queries.shape[0], k), -np.inf, np.float32)
    d, i = faiss.knn(np.ascontiguousarray(queries, dtype=np.float32), np.ascontiguousarray(base, dtype=np.float32),
                     k, metric=faiss.METRIC_INNER_PRODUCT)
    return i.astype(np.int64), np.where(i >= 0, d, -np.inf).astype(np.float32)


def _search_index(index, queries: np.ndarray, k: int, block: int = 65_536) -> tuple[np.ndarray, np.ndarray]:
    n = queries.shape[0]
    idx = np.full((n, k), -1, np.int64)
    sim = np.full((n, k), -np.inf, np.float32)
    for start in range(0, n, block):
        d, i = index.search(np.ascontiguousarray(queries[start:start + block], dtype=np.float32), k)
        found = i >= 0
        idx[start:start + block] = np.where(found, i, -1)
        sim[start:start + block] = np.where(found, d, -np.inf)
    return idx, sim
