"""Decide a person for each unassigned face: match, then cluster with the known persons.

Pure: vectors and ids in, decisions out. The recognition service reads and writes.

1. Matching (app/pipeline/match.py) at the contract's strict threshold, on the FaceNet
   vectors (Faces.Embedding).
2. The faces left over are clustered on the deciding vectors (EMBEDDER), by default with
   average linkage under an absolute bound (app/pipeline/linkage.py; `plan_linkage`), the
   known persons entering as ready groups: a face joins a person, or forms a new one with
   other faces, only when its average similarity to that group reaches the bound. Groups
   smaller than the minimum size stay unassigned.
   With CLUSTER_ALGORITHM hdbscan or dbscan (`plan`), the leftovers are clustered with a
   few exemplar faces of every known person instead: a cluster holding exemplars of one
   person joins that person; one holding exemplars of several persons gives each face
   the person of its nearest exemplar; a cluster with none becomes a new person.
3. Same-photo rule throughout: one photo never holds two faces of one person.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from app.pipeline.cluster import ClusterParams, cluster_vectors, split_same_photo
from app.pipeline.linkage import LinkageParams, Seeds, cluster
from app.pipeline.match import FacesOf, Known, forbidden_of, match_faces, match_to_persons, top_k
from app.pipeline.neighbours import exact


@dataclass
class Plan:
    matched: dict[int, int] = field(default_factory=dict)  # face index -> person id
    joined: dict[int, int] = field(default_factory=dict)  # face index -> existing person (by clustering)
    new_groups: list[list[int]] = field(default_factory=list)  # face indices of each new person
    merged: dict[int, int] = field(default_factory=dict)  # person id -> the person it merged into


def pick_exemplars(known: Known, per_person: int) -> np.ndarray:
    """Row indices of up to `per_person` faces per person, the most central first."""
    rows: list[int] = []
    for person in np.unique(known.person_ids):
        members = np.flatnonzero(known.person_ids == person)
        if members.size > per_person:
            centre = known.vectors[members].mean(axis=0)
            order = np.argsort(-(known.vectors[members] @ centre))
            members = members[order[:per_person]]
        rows.extend(members.tolist())
    return np.array(rows, dtype=np.int64)


def plan(vectors: np.ndarray, media_ids: np.ndarray, known: Known, threshold: float,
         params: ClusterParams, exemplars_per_person: int, forbidden: dict[int, set[int]] | None = None) -> Plan:
    result = Plan()
    forbidden = forbidden or {}
    matched = match_faces(vectors, media_ids, known, threshold, forbidden)
    result.matched = {i: int(p) for i, p in enumerate(matched.tolist()) if p >= 0}

    # Known faces now include this run's matches.
    all_known = Known(
        vectors=np.vstack([known.vectors, vectors[matched >= 0]]) if known.vectors.size else vectors[matched >= 0],
        person_ids=np.concatenate([known.person_ids, matched[matched >= 0]]),
        media_ids=np.concatenate([known.media_ids, media_ids[matched >= 0]]),
    )
    left = np.flatnonzero(matched < 0)
    if left.size == 0:
        return result
    ex = pick_exemplars(all_known, exemplars_per_person) if all_known.person_ids.size else np.zeros(0, np.int64)
    space = np.vstack([vectors[left], all_known.vectors[ex]]) if ex.size else vectors[left]
    labels = cluster_vectors(space, params)
    left_labels, ex_labels = labels[: left.size], labels[left.size:]
    ex_persons, ex_vectors = all_known.person_ids[ex], all_known.vectors[ex]

    persons_in_photo: dict[int, set[int]] = {}
    for m, p in zip(all_known.media_ids.tolist(), all_known.person_ids.tolist()):
        persons_in_photo.setdefault(m, set()).add(p)

    fresh = np.full(left.size, -1, dtype=np.int64)  # cluster label of faces for new persons
    for label in np.unique(left_labels[left_labels >= 0]):
        members = np.flatnonzero(left_labels == label)
        holders = np.flatnonzero(ex_labels == label)
        if holders.size == 0:
            fresh[members] = label
            continue
        # Nearest exemplar decides; with one person in the cluster that is that person.
        sims = vectors[left[members]] @ ex_vectors[holders].T
        # Most similar first, so the same-photo rule keeps the best face.
        for j in np.argsort(-sims.max(axis=1)):
            face = int(left[members[j]])
            person = int(ex_persons[holders[int(np.argmax(sims[j]))]])
            media = int(media_ids[face])
            if person in persons_in_photo.get(media, set()) or person in forbidden.get(face, ()):
                continue
            persons_in_photo.setdefault(media, set()).add(person)
            result.joined[face] = person

    fresh = split_same_photo(fresh, vectors[left], media_ids[left])
    for label in np.unique(fresh[fresh >= 0]):
        members = left[np.flatnonzero(fresh == label)]
        if members.size >= max(2, params.min_cluster):
            result.new_groups.append([int(i) for i in members])
    return result


@dataclass(frozen=True)
class Faces:
    """Faces as the planner needs them: the FaceNet vectors match, the deciding ones cluster
    (the same array when FaceNet decides). Large libraries may give the FaceNet vectors
    as a function of face indices, read only for the faces that may match."""

    match_vectors: np.ndarray | Callable[[np.ndarray], np.ndarray]
    vectors: np.ndarray
    media_ids: np.ndarray
    person_ids: np.ndarray  # -1 for the unassigned


def _confirmed(matched: np.ndarray, vectors: np.ndarray, seeds: Seeds, persons: np.ndarray,
               bound: float | np.ndarray) -> np.ndarray:
    """A FaceNet match stands only when the deciding vectors agree: the face's average
    similarity to the person's known faces reaches the join bound and no other person
    is closer on average (look-alike relatives pass FaceNet's 0.8 more often than SFace's
    bound). A match it refuses goes on to clustering, where the bound decides."""
    rows = np.flatnonzero(matched >= 0)
    if rows.size == 0:
        return matched
    means = seeds.sums / seeds.counts[:, None]
    out = matched.copy()
    bounds = np.broadcast_to(np.asarray(bound, np.float64), matched.shape)
    idx, sim = top_k(vectors[rows].astype(np.float64), means, 1)
    for j, r in enumerate(rows.tolist()):
        if persons[idx[j, 0]] != matched[r] or sim[j, 0] < bounds[r]:
            out[r] = -1
    return out


def _nearest_persons(vectors: np.ndarray, seeds: Seeds, bound: np.ndarray) -> np.ndarray:
    """Per face, the seed whose faces it resembles most on average (the deciding
    vectors), where that average reaches `bound`; else -1. Exact (faiss brute force over
    one mean per person: 10,000 faces against 100,000 persons take about a second): an
    inverted-file index with 12 probes missed the nearest person for 34 of 518 dev faces
    among 100,000 look-alike persons (bench/match_recall.py)."""
    means = seeds.sums / seeds.counts[:, None]
    idx, _ = exact(vectors, means.astype(np.float32), 1)
    near = idx[:, 0]
    own = np.einsum("qd,qd->q", vectors.astype(np.float64), means[np.maximum(near, 0)])
    return np.where((near >= 0) & (own >= bound), near, -1)


def match_known(new: Faces, known: Faces, seeds: Seeds, persons: np.ndarray, threshold: float,
                bounds: np.ndarray, forbidden: dict[int, set[int]], rows: np.ndarray,
                faces_of: FacesOf | None = None) -> np.ndarray:
    """The matching step of `plan_linkage`: a known person id per new face, or -1, for
    the faces `rows` (the others -1). FaceNet at `threshold`, confirmed by the deciding
    vectors (`bounds`: per face). Exact: every known face searched, then `_confirmed`.
    Large libraries (`faces_of`): the deciding vectors choose the one person a face may
    match, and only that person's faces are compared (`match_to_persons`)."""
    matched = np.full(new.media_ids.size, -1, np.int64)
    if faces_of is None:
        known_for_match = Known(known.match_vectors, known.person_ids, known.media_ids)
        matched[rows] = match_faces(new.match_vectors[rows], new.media_ids[rows], known_for_match, threshold,
                                    forbidden_of(forbidden, rows))
        return _confirmed(matched, new.vectors, seeds, persons, bounds)
    if rows.size == 0 or persons.size == 0:
        return matched
    near = _nearest_persons(new.vectors[rows], seeds, bounds[rows])
    has = np.flatnonzero(near >= 0)  # only these are compared, and their FaceNet vectors read
    vectors = new.match_vectors(rows[has]) if callable(new.match_vectors) else new.match_vectors[rows[has]]
    matched[rows[has]] = match_to_persons(vectors, new.media_ids[rows[has]], persons[near[has]],
                                          seeds.counts[near[has]], faces_of, threshold,
                                          forbidden_of(forbidden, rows[has]))
    return matched


def plan_linkage(new: Faces, known: Faces, threshold: float, params: LinkageParams, min_size: int,
                 free: set[int] | frozenset[int] = frozenset(), forbidden: dict[int, set[int]] | None = None,
                 leftover: np.ndarray | None = None, faces_of: FacesOf | None = None,
                 seeds: tuple[Seeds, np.ndarray] | None = None, approximate: bool = False,
                 match_only: np.ndarray | None = None) -> Plan:
    """`free`: persons that may merge with each other (automatic, unnamed, untouched by users).
    `forbidden`: new face index -> persons it must never be given (a user's "not this person").
    `leftover`: faces an earlier run left alone (bool per face): they join a known person
    only at the linkage threshold, never at the lower join bound.
    Large libraries (`faces_of` given, reading the known faces of some persons): the
    known persons come as `seeds` (`Seeds.of`; `known` is not read), the deciding vectors
    choose the one person each face may match (the nearest on average, at the join
    bound: what `_confirmed` would keep), and FaceNet confirms it against that person's
    faces only (`match_to_persons`): no search over every known face. `approximate` lets
    the neighbour searches use an inverted-file index (app/pipeline/neighbours.py).
    `match_only` (bool per face): the faces matching looks at (the others go straight to
    clustering, where they may still join a known person by the deciding vectors)."""
    result = Plan()
    forbidden = forbidden or {}
    base, persons = seeds or Seeds.of(known.vectors, known.person_ids, known.media_ids, free)
    stale = np.zeros(new.media_ids.size, bool) if leftover is None else np.asarray(leftover, bool)
    bounds = np.where(stale, params.threshold, params.join)
    rows = np.arange(new.media_ids.size) if match_only is None else np.flatnonzero(match_only)
    matched = match_known(new, known, base, persons, threshold, bounds, forbidden, rows, faces_of)
    result.matched = {i: int(p) for i, p in enumerate(matched.tolist()) if p >= 0}
    left = np.flatnonzero(matched < 0)
    if left.size == 0:
        return result
    took = matched >= 0  # matches are to known persons: add them to those persons' groups
    seeds = base.with_faces(new.vectors[took], np.searchsorted(persons, matched[took]), new.media_ids[took])
    banned = {}
    for j, face in enumerate(left.tolist()):
        rows = [int(np.searchsorted(persons, q)) for q in forbidden.get(face, ())]
        rows = [r for r in rows if r < persons.size and persons[r] in forbidden[face]]
        if rows:
            banned[j] = set(rows)
    labels, roots = cluster(new.vectors[left], new.media_ids[left], seeds, params, banned, stale[left], approximate)
    m = persons.size
    result.merged = {int(persons[s]): int(persons[r]) for s, r in enumerate(roots.tolist()) if r != s}
    groups: dict[int, list[int]] = {}
    for face, label in zip(left.tolist(), labels.tolist()):
        if label < m:
            result.joined[face] = int(persons[label])
        else:
            groups.setdefault(label, []).append(face)
    result.new_groups = [g for g in groups.values() if len(g) >= max(2, min_size)]
    return result
