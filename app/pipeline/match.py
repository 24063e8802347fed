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
# person ids -> the known faces of those persons (a large library's faces, read from disk)
FacesOf = Callable[[np.ndarray], "Known"]
# known faces compared at once when matching to one person each (about 512 MB of FaceNet vectors)
PERSON_FACES_CHUNK = 262_144


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
                threshold: float, forbidden: dict[int, set[int]] | None = None) -> np.ndarray:
    """Person id per new face, or -1 where no known face reaches `threshold`.
    `forbidden`: new face index -> persons it must never take (a user's "not this person")."""
    forbidden = forbidden or {}
    n = new_vectors.shape[0]
    result = np.full(n, -1, dtype=np.int64)
    # persons present in the new faces' photos: the same-photo rule
    taken: dict[int, set[int]] = {}
    in_photos = np.isin(known.media_ids, new_media_ids) & (known.person_ids >= 0)
    for media, person in zip(known.media_ids[in_photos].tolist(), known.person_ids[in_photos].tolist()):
        taken.setdefault(media, set()).add(person)
    base_persons = known.person_ids
    base_vectors = known.vectors
    find: Search = lambda q, k: top_k(q, base_vectors, k)  # noqa: E731
    open_rows = np.arange(n)
    while open_rows.size and base_vectors.shape[0] > 0:
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


def forbidden_of(forbidden: dict[int, set[int]], rows: np.ndarray) -> dict[int, set[int]]:
    """`forbidden` (face index -> persons) for the faces `rows`, indexed by position in `rows`."""
    back = {int(r): j for j, r in enumerate(rows.tolist())}
    return {back[i]: f for i, f in forbidden.items() if i in back}


def match_to_persons(new_vectors: np.ndarray, new_media_ids: np.ndarray, candidate: np.ndarray,
                     candidate_faces: np.ndarray, faces_of: FacesOf, threshold: float,
                     forbidden: dict[int, set[int]] | None = None) -> np.ndarray:
    """Person id per new face, or -1: as `match_faces`, where each face may take one person
    only, `candidate[i]` (-1: none), when its most similar face of that person (known, or
    matched in this run: chaining) reaches `threshold`. `candidate_faces[i]`: how many
    known faces that person has; the known faces are read with `faces_of`, for a few
    persons at a time (about PERSON_FACES_CHUNK faces), so memory stays bounded."""
    forbidden = forbidden or {}
    result = np.full(new_vectors.shape[0], -1, np.int64)
    persons, first = np.unique(candidate[candidate >= 0], return_index=True)
    sizes = candidate_faces[candidate >= 0][first]
    start = 0
    while start < persons.size:
        stop = start + max(1, int(np.searchsorted(np.cumsum(sizes[start:]), PERSON_FACES_CHUNK, side="right")))
        chunk = persons[start:stop]
        rows = np.flatnonzero(np.isin(candidate, chunk))
        result[rows] = _match_within(new_vectors[rows], new_media_ids[rows], candidate[rows], faces_of(chunk),
                                     threshold, forbidden_of(forbidden, rows))
        start = stop
    return result


def _match_within(vectors: np.ndarray, media_ids: np.ndarray, candidate: np.ndarray, known: Known,
                  threshold: float, forbidden: dict[int, set[int]]) -> np.ndarray:
    n = vectors.shape[0]
    result = np.full(n, -1, np.int64)
    in_photos = np.isin(known.media_ids, media_ids)
    taken = set(zip(known.media_ids[in_photos].tolist(), known.person_ids[in_photos].tolist()))
    ref_vectors, ref_persons = known.vectors, known.person_ids
    open_rows = np.arange(n)
    while open_rows.size and ref_persons.size:
        # the most similar reference face of each open face's person
        best = np.full(open_rows.size, -np.inf, np.float32)
        order = np.argsort(ref_persons, kind="stable")
        sorted_persons = ref_persons[order]
        wanted = candidate[open_rows]
        for person in np.unique(wanted).tolist():
            lo, hi = np.searchsorted(sorted_persons, [person, person + 1])
            if lo == hi:
                continue
            faces = np.flatnonzero(wanted == person)
            best[faces] = (vectors[open_rows[faces]] @ ref_vectors[order[lo:hi]].T).max(axis=1)
        # most confident first (then the later face, as match_faces), so a weak match never blocks a strong one
        r = np.flatnonzero(best >= threshold)
        newly: list[int] = []
        for j in r[np.lexsort((r, best[r].astype(np.float64)))[::-1]].tolist():
            row = int(open_rows[j])
            person, media = int(candidate[row]), int(media_ids[row])
            if (media, person) in taken or person in forbidden.get(row, ()):
                continue
            result[row] = person
            taken.add((media, person))
            newly.append(row)
        if not newly:
            break
        # chaining: what was matched now is known for the faces still open with those persons
        ref_vectors, ref_persons = vectors[newly], result[newly]
        open_rows = open_rows[(result[open_rows] < 0) & np.isin(candidate[open_rows], ref_persons)]
    return result
