"""Clustering of face embeddings: optional UMAP, then HDBSCAN or DBSCAN.

Input vectors are L2-normalised, so Euclidean distance d and cosine similarity s are
tied by d^2 = 2 - 2s. Labels are -1 for noise, else 0..k-1. Inputs too small for UMAP
are clustered without it; inputs smaller than a cluster are all noise.
"""
from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import numpy as np

log = logging.getLogger("app.recognition")


@dataclass(frozen=True)
class ClusterParams:
    """Clustering settings; built from Settings (app/config.py says why each value) by
    app.services.assign.cluster_params."""

    algorithm: str  # "hdbscan" or "dbscan"
    use_umap: bool
    umap_neighbors: int
    umap_components: int
    umap_min_dist: float
    random_state: int
    dbscan_eps: float  # in UMAP space
    dbscan_min_samples: int
    hdbscan_min_cluster_size: int
    hdbscan_min_samples: int
    hdbscan_epsilon: float  # on the 512-d unit vectors
    hdbscan_umap_epsilon: float  # in UMAP space
    raw_limit: int  # above this many faces HDBSCAN reduces with UMAP first
    # DBSCAN without UMAP (small inputs): Euclidean eps on the unit sphere.
    # 0.9 is cosine similarity 0.595, near the false-match rate 1e-3 of FaceNet CASIA.
    raw_eps: float = 0.9

    @property
    def min_cluster(self) -> int:
        return self.hdbscan_min_cluster_size if self.algorithm == "hdbscan" else self.dbscan_min_samples


def reduce(vectors: np.ndarray, p: ClusterParams) -> np.ndarray | None:
    """UMAP projection, or None when there are too few points for it."""
    n = vectors.shape[0]
    if n < max(p.umap_neighbors + 2, p.umap_components + 3):
        return None
    import umap

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # n_jobs overridden by random_state, etc.
        reducer = umap.UMAP(
            n_neighbors=p.umap_neighbors, n_components=p.umap_components, min_dist=p.umap_min_dist,
            metric="cosine", random_state=p.random_state,
        )
        return reducer.fit_transform(vectors).astype(np.float64)


def cluster_vectors(vectors: np.ndarray, p: ClusterParams) -> np.ndarray:
    n = vectors.shape[0]
    if n < max(2, p.min_cluster):
        return np.full(n, -1, dtype=np.int64)
    use_umap = p.use_umap
    if not use_umap and p.algorithm == "hdbscan" and n > p.raw_limit:
        log.warning("clustering %d faces: more than CLUSTER_RAW_LIMIT=%d, reducing with UMAP first "
                    "(slightly less precise, far faster)", n, p.raw_limit)
        use_umap = True
    space = reduce(vectors, p) if use_umap else None
    reduced = space is not None
    if space is None:
        space = vectors.astype(np.float64)
    if p.algorithm == "hdbscan":
        epsilon = p.hdbscan_umap_epsilon if reduced else p.hdbscan_epsilon
        labels = _hdbscan(space, p, epsilon, single=False)
        if labels.max() < 0:
            # HDBSCAN never returns the whole input as one cluster unless told to; when it
            # finds nothing, the input may be one person (a first run on a small album).
            labels = _hdbscan(space, p, epsilon, single=True)
    elif p.algorithm == "dbscan":
        from sklearn.cluster import DBSCAN

        eps = p.dbscan_eps if reduced else p.raw_eps
        labels = DBSCAN(eps=eps, min_samples=p.dbscan_min_samples).fit_predict(space)
    else:
        raise ValueError(f"unknown clustering algorithm {p.algorithm!r}")
    return labels.astype(np.int64)


def _hdbscan(space: np.ndarray, p: ClusterParams, epsilon: float, single: bool) -> np.ndarray:
    from sklearn.cluster import HDBSCAN

    return HDBSCAN(
        min_cluster_size=max(2, p.hdbscan_min_cluster_size),
        min_samples=p.hdbscan_min_samples,
        cluster_selection_epsilon=epsilon,
        allow_single_cluster=single,
        copy=True,
    ).fit_predict(space)


def split_same_photo(labels: np.ndarray, vectors: np.ndarray, media_ids: np.ndarray) -> np.ndarray:
    """Two faces of one photo are two people: in each cluster keep, per photo, only the
    face nearest the cluster's centre; the others become noise."""
    out = labels.copy()
    for label in np.unique(labels[labels >= 0]):
        members = np.flatnonzero(labels == label)
        centre = vectors[members].mean(axis=0)
        by_media: dict[int, list[int]] = {}
        for m in members.tolist():
            by_media.setdefault(int(media_ids[m]), []).append(m)
        for faces in by_media.values():
            if len(faces) > 1:
                best = max(faces, key=lambda i: float(vectors[i] @ centre))
                for i in faces:
                    if i != best:
                        out[i] = -1
    return out
