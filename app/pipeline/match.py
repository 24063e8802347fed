"""Incremental matching: new faces take the person of their most similar known face.

Cosine similarity on L2-normalised vectors (a dot product). A face matched in this run
serves as a known face for the rest of the run (chaining), and a face never takes a
person that already has another face in the same photo. Known faces are scanned in
blocks, so memory stays bounded however many there are.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

BLOCK_NEW = 1024
BLOCK_KNOWN = 32768
TOP_K = 8  # candidate matches kept per new face (needed for the same-photo rule)


# (query vectors, k) -> (indices, similarities), as top_k
Search = Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Known:
    vectors: np.ndarray  # (m, d) float32, L2-normalised
    person_ids: np.ndarray  # (m,) int64
    media_ids: np.ndarray  # (m,) int64


def top_k(queries: np.ndarray, base: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and similarities of the k most similar base rows per query, best first."""
    n = queries.shape[0]
    k = min(k, base.shape[0])
    best_sim = np.full((n, k), -np.inf, dtype=np.float32)
    best_idx = np.full((n, k), -1, dtype=np.int64)
    if k == 0:
        return best_idx, best_sim
    for qs in range(0, n, BLOCK_NEW):
        q = queries[qs:qs + BLOCK_NEW]
        bs_, bi_ = best_sim[qs:qs + BLOCK_NEW], best_idx[qs:qs + BLOCK_NEW]
        for bs in range(0, base.shape[0], BLOCK_KNOWN):
            sims = q @ base[bs:bs + BLOCK_KNOWN].T
            kk = min(k, sims.shape[1])
            part = np.argpartition(-sims, kk - 1, axis=1)[:, :kk]
            part_sim = np.take_along_axis(sims, part, axis=1)
            all_sim = np.concatenate([bs_, part_sim], axis=1)
            all_idx = np.concatenate([bi_, part + bs], axis=1)
            order = np.argsort(-all_sim, axis=1)[:, :k]
            bs_[:] = np.take_along_axis(all_sim, order, axis=1)
            bi_[:] = np.take_along_axis(all_idx, order, axis=1)
    return best_idx, best_sim


def match_faces(new_vectors: np.ndarray, new_media_ids: np.ndarray, known: Known,
                threshold: float, forbidden: dict[int, set[int]] | None = None,
                search: Search | None = None) -> np.ndarray:
    """Person id per new face, or -1 where no known face reaches `threshold`.
    `forbidden`: new face index -> persons it must never take (a user's "not this person").
    `search`: finds the known faces nearest to some new faces (indices into `known`'s
    arrays), instead of comparing with every row of `known.vectors` (a vector index)."""
    forbidden = forbidden or {}
    n = new_vectors.shape[0]
    result = np.full(n, -1, dtype=np.int64)
    # persons present in the new faces' photos: the same-photo rule
    taken: dict[int, set[int]] = {}
    in_photos = np.isin(known.media_ids, new_media_ids) & (known.person_ids >= 0)
    for media, person in zip(known.media_ids[in_photos].tolist(), known.person_ids[in_photos].tolist()):
        taken.setdefault(media, set()).add(person)
    base_persons = known.person_ids
    if search is None:
        base_vectors = known.vectors
        find: Search = lambda q, k: top_k(q, base_vectors, k)  # noqa: E731
        more = base_vectors.shape[0] > 0
    else:
        find = search
        more = bool((known.person_ids >= 0).any())
    open_rows = np.arange(n)
    while open_rows.size and more:
        idx, sim = find(new_vectors[open_rows], TOP_K)
        # Most confident decisions first (then the later face, the higher person id, as
        # before), so a weak match never blocks a strong one.
        r_idx, c_idx = np.nonzero((idx >= 0) & (sim >= threshold))
        sims = sim[r_idx, c_idx].astype(np.float64)
        persons = base_persons[idx[r_idx, c_idx]]
        order = np.lexsort((persons, r_idx, sims))[::-1]
        candidates = zip(r_idx[order].tolist(), persons[order].tolist())
        newly: list[int] = []
        for r, person in candidates:
            row = int(open_rows[r])
            media = int(new_media_ids[row])
            if result[row] >= 0 or person in taken.get(media, ()) or person in forbidden.get(row, ()):
                continue
            result[row] = person
            taken.setdefault(media, set()).add(person)
            newly.append(row)
        if not newly:
            break
        # Chaining: what was matched now is known for the faces still open.
        chained, base_persons = new_vectors[newly], result[newly]
        find = lambda q, k: top_k(q, chained, k)  # noqa: E731
        open_rows = np.array([r for r in open_rows.tolist() if result[r] < 0], dtype=np.int64)
    return result
