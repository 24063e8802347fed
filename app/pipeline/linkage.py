"""Average-linkage clustering with an absolute bound, over a sparse neighbour graph.

For L2-normalised vectors the average cosine similarity between the members of two
groups A and B is sum(A) . sum(B) / (|A| |B|), so every group is kept as its sum vector
and its size, and average linkage costs one dot product per candidate pair. Two groups
merge only when that average reaches `threshold` (a fixed number, calibrated to a
false-match rate: README, "Recognition quality"), whatever the density around them;
the groups formed this way satisfy the bound by construction, and a stranger joins a
group only when it resembles that group's faces on average as strongly as a true match.

Two singletons pair up only at the stricter `pair_threshold`: a pair of two faces is
decided by one similarity, with no average to steady it, and pairs of strangers are
the most frequent false merges in a library full of people seen once.

Only pairs linked in the k-nearest-neighbour graph are ever compared, so memory grows
with n * k, never n^2 (the path to a million faces).

Known persons enter as ready groups (their faces' sum and count): a face (or a new group)
joins a person by the same rule as two new faces form one, but at `join_threshold`, a
little below `threshold`: a person made by an earlier run has passed the bound already,
its average over many faces is steady, and the face's best alternative is to stay alone
(the join bound is chosen by cross-validation over identities on the incremental test:
README, "Recognition quality"). Two known persons merge by the same rule (a
person split in two, e.g. by an earlier clustering, becomes one) when both are *free*
(automatic, unnamed, with no face placed by a user), some new face is near both (a run
with nothing new merges nothing), and their average similarity reaches the stricter
`pair_threshold`: two persons each formed under the bound are two groups the bound
already kept apart, and look-alike relatives sit just at it (on the dev set, Jeb Bush's
and George W. Bush's faces average 0.427 against SFace's bound 0.425). Vetoes: a person that is not free never merges with
another person, and two groups holding faces of one photo never merge (one photo, one face
per person), and a face is never grouped with a person a user said it is not
(`forbidden`), however the groups grow.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np

from app.pipeline.neighbours import search

# Group sums are kept in float64 up to this many numbers (1 GB), in float32 beyond.
SUMS_FLOAT64_LIMIT = 2 ** 27
SCORE_CHUNK = 32_768  # candidate pairs scored at once (two float64 slices of the group sums)


@dataclass(frozen=True)
class LinkageParams:
    threshold: float  # average cosine similarity needed to merge two groups
    pair_threshold: float  # needed to merge two single faces
    neighbours: int = 10  # k of the candidate graph
    # needed for a face or a new group to join a person known before this run (None: threshold)
    join_threshold: float | None = None

    @property
    def join(self) -> float:
        return self.threshold if self.join_threshold is None else self.join_threshold


def group_sums(vectors: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per distinct label (sorted): the label, each vector's group index, the float64 sum of
    the group's vectors and its size (a group's average similarity to a vector v is
    sum . v / size)."""
    groups, inverse = np.unique(labels, return_inverse=True)
    sums = np.zeros((groups.size, vectors.shape[1] if vectors.ndim == 2 else 0))
    order = np.argsort(inverse, kind="stable")
    for start in range(0, order.size, 262_144):  # sorted runs summed a slice at a time
        part = order[start:start + 262_144]
        heads = np.flatnonzero(np.r_[True, inverse[part[1:]] != inverse[part[:-1]]])
        sums[inverse[part[heads]]] += np.add.reduceat(vectors[part].astype(np.float64), heads, axis=0)
    return groups, inverse, sums, np.bincount(inverse, minlength=groups.size)


@dataclass(frozen=True)
class Seeds:
    """Known persons as ready groups."""

    sums: np.ndarray  # (m, d) float64: sum of each person's unit vectors
    counts: np.ndarray  # (m,) int
    media: list[set[int]]  # photos each person already appears in
    free: np.ndarray | None = None  # (m,) bool: may merge with another free person; None: none may

    @classmethod
    def empty(cls, dim: int) -> "Seeds":
        return cls(np.zeros((0, dim)), np.zeros(0, np.int64), [])

    def is_free(self, i: int) -> bool:
        return bool(self.free[i]) if self.free is not None else False

    @classmethod
    def of(cls, vectors: np.ndarray, person_ids: np.ndarray, media_ids: np.ndarray,
           free: set[int] | frozenset[int] = frozenset()) -> tuple["Seeds", np.ndarray]:
        """Seeds from known faces (persons in `free` may merge with each other); also
        returns the person id of each seed."""
        persons, inverse, sums, counts = group_sums(vectors, person_ids)
        media: list[set[int]] = [set() for _ in range(persons.size)]
        for i, m in zip(inverse.tolist(), media_ids.tolist()):
            media[i].add(int(m))
        return cls(sums, counts, media, np.array([int(p) in free for p in persons.tolist()], bool)), persons

    def with_faces(self, vectors: np.ndarray, seed_rows: np.ndarray, media_ids: np.ndarray) -> "Seeds":
        """These seeds with more faces added: face i to seed seed_rows[i]."""
        sums = self.sums.copy()
        np.add.at(sums, seed_rows, vectors.astype(np.float64))
        counts = self.counts + np.bincount(seed_rows, minlength=self.counts.size)
        media = [set(s) for s in self.media]
        for i, m in zip(seed_rows.tolist(), media_ids.tolist()):
            media[i].add(int(m))
        return Seeds(sums, counts, media, self.free)


def cluster(vectors: np.ndarray, media_ids: np.ndarray, seeds: Seeds, p: LinkageParams,
            forbidden: dict[int, set[int]] | None = None, leftover: np.ndarray | None = None,
            approximate: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Group label per face: s in [0, m) joins seed s; m and above, a new group (the
    label of one of its members, offset by m); faces left alone keep their own label too
    (callers count group sizes). Also the seed each seed ended in (itself, or the free
    seed it merged into). `forbidden`: face index -> seeds it must never end in.
    `leftover`: faces an earlier run left alone (bool per face); a group holding one joins
    a known person only at `threshold`, the bar it failed before, never the lower join
    bound (a run must not take a face it refused, unless the evidence grew).
    `approximate`: the candidate graph comes from an inverted-file index when the input is
    large (app/pipeline/neighbours.py), in time near-linear in the faces."""
    n, m = vectors.shape[0], seeds.counts.size
    if n == 0:
        return np.zeros(0, np.int64), np.arange(m)
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    total = m + n
    # one row per group, updated in place; float64 unless that would not fit comfortably
    sums = np.empty((total, x.shape[1]), np.float64 if total * x.shape[1] <= SUMS_FLOAT64_LIMIT else np.float32)
    sums[:m] = seeds.sums
    sums[m:] = x
    counts_arr = np.concatenate([seeds.counts, np.ones(n)]).astype(np.float64)
    media = [set(s) for s in seeds.media] + [{int(v)} for v in media_ids.tolist()]
    known = [True] * m + [False] * n
    stale_arr = np.concatenate([np.zeros(m, bool),
                                np.zeros(n, bool) if leftover is None else np.asarray(leftover, bool)])
    free = [seeds.is_free(i) for i in range(m)] + [True] * n
    version = [0] * total
    alive = [True] * total
    parent = np.arange(total)
    # seeds each group must never join (its faces' rejections), carried through merges
    banned: list[set[int] | None] = [None] * m + [set(forbidden[i]) if forbidden and i in forbidden else None
                                                  for i in range(n)]

    def roots(ix: np.ndarray) -> np.ndarray:
        """The group each of these (former) groups is now part of (pointer jumping, with
        the pointers shortened on the way)."""
        r = parent[ix]
        while True:
            up = parent[r]
            if np.array_equal(up, r):
                break
            r = up
        parent[ix] = r
        return r

    def vetoed(a: int, b: int) -> bool:
        return any(_root(parent, s) == b for s in banned[a] or ()) or \
            any(_root(parent, s) == a for s in banned[b] or ())

    known_arr = np.array(known, bool)
    free_arr = np.array(free, bool)
    parts: list[np.ndarray] = []  # candidate pairs (a, b), as rows of two
    if n > 1:
        idx, _ = search(x, x, min(p.neighbours + 1, n), approximate)
        rows = np.repeat(np.arange(n), idx.shape[1])
        parts.append(np.stack([m + rows, m + idx.ravel()], 1)[idx.ravel() >= 0])
    if m:
        centres = (seeds.sums / np.maximum(np.linalg.norm(seeds.sums, axis=1, keepdims=True), 1e-12)).astype(np.float32)
        idx, _ = search(x, centres, min(p.neighbours, m), approximate)
        rows = np.repeat(np.arange(n), idx.shape[1])
        parts.append(np.stack([m + rows, idx.ravel()], 1)[idx.ravel() >= 0])
        # persons near the same new face may be one person split in two
        for j in range(idx.shape[1]):
            for t in range(j + 1, idx.shape[1]):
                parts.append(np.stack([idx[:, j], idx[:, t]], 1)[(idx[:, j] >= 0) & (idx[:, t] >= 0)])
    edges = np.concatenate(parts) if parts else np.zeros((0, 2), np.int64)
    edges = np.sort(edges, axis=1)
    a_, b_ = edges[:, 0], edges[:, 1]
    keep = (a_ != b_) & (~(known_arr[a_] & known_arr[b_]) | (free_arr[a_] & free_arr[b_]))
    pairs = np.unique(edges[keep, 0] * total + edges[keep, 1])
    edges = np.stack([pairs // total, pairs % total], 1)
    # each group's neighbour groups, as views into one array; an entry may name a group
    # that has merged into another since (read through `roots`)
    ends = np.concatenate([edges[:, 0], edges[:, 1]])
    order = np.argsort(ends, kind="stable")
    flat = np.concatenate([edges[:, 1], edges[:, 0]])[order]
    cuts = np.searchsorted(ends[order], np.arange(total + 1))
    del ends, order
    neighbours: list[np.ndarray] = [flat[cuts[i]:cuts[i + 1]] for i in range(total)]

    def need_of(a, b):
        """The bound pairs (a, b) must reach (a: one group or an array, b: an array): two
        lone faces, and two persons already made, the stricter one; joining a person
        known before this run, the join bound (the group bound when a face left over
        before is involved); else the group bound."""
        ka, kb = known_arr[a], known_arr[b]
        return np.where((counts_arr[a] + counts_arr[b] == 2) | (ka & kb), p.pair_threshold,
                        np.where(ka != kb, np.where(stale_arr[a] | stale_arr[b], p.threshold, p.join),
                                 p.threshold))

    # every candidate pair at once: similarities in slices; the pairs that reach their bound,
    # best first (as the heap orders them: similarity, then a, then b), are taken from these
    # arrays, and the pairs a merge makes go on the heap
    found = [(np.zeros(0), np.zeros(0, np.int64), np.zeros(0, np.int64))]
    for start in range(0, edges.shape[0], SCORE_CHUNK):
        a, b = edges[start:start + SCORE_CHUNK, 0], edges[start:start + SCORE_CHUNK, 1]
        sim = np.einsum("ij,ij->i", sums[a], sums[b], dtype=np.float64) / (counts_arr[a] * counts_arr[b])
        ok = sim >= need_of(a, b)
        found.append((-sim[ok], a[ok], b[ok]))
    del edges
    first_neg, first_a, first_b = (np.concatenate(part) for part in zip(*found))
    del found
    order = np.lexsort((first_b, first_a, first_neg))
    first_neg, first_a, first_b = first_neg[order], first_a[order], first_b[order]
    del order
    heap: list[tuple[float, int, int, int, int]] = []
    at, first_n = 0, first_neg.size

    while True:
        if at < first_n and (not heap or (float(first_neg[at]), int(first_a[at]), int(first_b[at]), 0, 0) < heap[0]):
            a, b, va, vb = int(first_a[at]), int(first_b[at]), 0, 0
            at += 1
        elif heap:
            _, a, b, va, vb = heapq.heappop(heap)
        else:
            break
        if not (alive[a] and alive[b]) or version[a] != va or version[b] != vb:
            continue
        if media[a] & media[b] or vetoed(a, b):
            continue  # one photo, one face per person; "not this person": never, however the groups grow
        if known[b] and (not known[a] or counts_arr[b] > counts_arr[a]):
            a, b = b, a  # a known person keeps its identity; of two, the larger one
        sums[a] += sums[b]
        counts_arr[a] += counts_arr[b]
        media[a] |= media[b]
        stale_arr[a] = stale_arr[a] or stale_arr[b]
        if banned[b]:
            banned[a] = (banned[a] or set()) | banned[b]
        alive[b] = False
        version[a] += 1
        parent[b] = a
        cs = np.unique(roots(np.concatenate([neighbours[a], neighbours[b]])))
        cs = cs[cs != a]
        neighbours[a], neighbours[b] = cs, cs[:0]
        # the merged group against each live neighbour it may merge with, at once
        if known[a] and not free[a]:
            cs = cs[~known_arr[cs]]
        elif known[a]:
            cs = cs[~known_arr[cs] | free_arr[cs]]
        if cs.size:
            sim = (sums[cs] @ sums[a]).astype(np.float64) / (counts_arr[a] * counts_arr[cs])
            ok = sim >= need_of(a, cs)
            version_a = version[a]
            for c, value in zip(cs[ok].tolist(), sim[ok].tolist()):
                heapq.heappush(heap, (-value, a, c, version_a, version[c]))
    return roots(np.arange(m, total)), roots(np.arange(m))


def _root(parent: np.ndarray, i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = int(parent[i])
    return int(i)
