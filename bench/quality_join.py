"""Levers for the worst cross-validated fold and the incremental test, on cached vectors
(bench/quality_cache.py), no database.

    python bench/quality_join.py CACHE.npz [--levers base,join_known,...] [--seeds 0,1,2]

Every lever is scored with the evaluation's own scoring and objective
(app/services/crossval.py) and the same identity folds (seed 0 reproduces --folds). For
each lever and fold seed, every setting of the lever's grid is clustered once on each
training side and once on each test fold; the selection rules (how near-ties are broken)
are then only look-ups:

- conservative: the evaluation's rule: within TIE of the best training objective, the
  highest bounds, then the largest minimum size;
- calibrated: within TIE, the setting nearest the FMR 1e-4 / 1e-5 bounds measured on the
  training folds' own main faces (then the conservative order);
- best: the best training objective, no tie band.

Levers (base and join_known run the app's planner; the other join modes a copy of it with
their extra rules):
- base: the planner as it is;
- join_known: a face or new group joins a person known before this run at JOIN (lower
  than LINK_THRESHOLD; LINK_JOIN_THRESHOLD in the app), and a FaceNet match is confirmed
  at JOIN; first runs unchanged. The app's leftover rule (faces left alone before keep
  LINK_THRESHOLD) is not applied here;
- join_large: also, inside a run, a fragment smaller than the minimum size joins a group
  of at least the minimum size at JOIN;
- join_group: also, inside a run, any merge where the larger side has at least the
  minimum size (a fragment or another established group joins it) needs only JOIN;
- fusion_W: the deciding vector is [sqrt(W) FaceNet, sqrt(1-W) SFace] (cosine = W cos_fn
  + (1-W) cos_sf), its bounds calibrated like SFace's;
- the deciding key (sface, sface_mirror) and the matching key (facenet, facenet_mirror).

And the incremental test simulated as app/services/evaluate.py runs it: identities with at
least 8 photos hold back their last 2; a first run on the rest (strangers and group
photos included); then the held-back faces with the earlier leftovers near them
(ConsideredAt rule) go through the planner with the known persons (all free).
"""
from __future__ import annotations

import argparse
import heapq
import json
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from app.pipeline.assign import Faces as PlanFaces  # noqa: E402
from app.pipeline.assign import Plan, _confirmed  # noqa: E402
from app.pipeline.assign import plan_linkage as app_plan_linkage  # noqa: E402
from app.pipeline.linkage import LinkageParams, Seeds, _root  # noqa: E402
from app.pipeline.match import Known, match_faces, top_k  # noqa: E402
from app.services import crossval  # noqa: E402
from app.services.assign import NEAR_MARGIN, NEAR_NEIGHBOURS  # noqa: E402
from quality_levers import load, separation  # noqa: E402

MATCH_THRESHOLD = 0.8
NEIGHBOURS = 10
HOLD_BACK, HOLD_BACK_MIN = 2, 8


# ---------------------------------------------------------------- the planner, one change

@dataclass(frozen=True)
class Lever:
    join: float | None = None  # None: LINK_THRESHOLD everywhere, as now
    mode: str = "known"  # known | large
    join_min: int = 3  # "large": a group this size absorbs smaller fragments at `join`


def cluster(vectors: np.ndarray, media_ids: np.ndarray, seeds: Seeds, p: LinkageParams, lever: Lever
            ) -> tuple[np.ndarray, np.ndarray]:
    """app.pipeline.linkage.cluster with the join modes "large" and "group" (plan_linkage
    sends base and join_known to the app's own planner)."""
    n, m = vectors.shape[0], seeds.counts.size
    if n == 0:
        return np.zeros(0, np.int64), np.arange(m)
    x = vectors.astype(np.float32)
    total = m + n
    sums = [seeds.sums[i].astype(np.float64) for i in range(m)] + [x[i].astype(np.float64) for i in range(n)]
    counts = [int(c) for c in seeds.counts.tolist()] + [1] * n
    media = [set(s) for s in seeds.media] + [{int(v)} for v in media_ids.tolist()]
    known = [True] * m + [False] * n
    free = [seeds.is_free(i) for i in range(m)] + [True] * n
    neighbours: list[set[int]] = [set() for _ in range(total)]
    version = [0] * total
    alive = [True] * total
    parent = list(range(total))

    def mergeable(a: int, b: int) -> bool:
        return not (known[a] and known[b]) or (free[a] and free[b])

    def link(a: int, b: int) -> None:
        if a != b and mergeable(a, b):
            neighbours[a].add(b)
            neighbours[b].add(a)

    if n > 1:
        idx, _ = top_k(x, x, min(p.neighbours + 1, n))
        for i in range(n):
            for j in idx[i].tolist():
                if j >= 0:
                    link(m + i, m + j)
    if m:
        centres = (seeds.sums / np.maximum(np.linalg.norm(seeds.sums, axis=1, keepdims=True), 1e-12)).astype(np.float32)
        idx, _ = top_k(x, centres, min(p.neighbours, m))
        for i in range(n):
            near = [s for s in idx[i].tolist() if s >= 0]
            for s in near:
                link(m + i, s)
            for j, s in enumerate(near):
                for t in near[j + 1:]:
                    link(s, t)

    heap: list[tuple[float, int, int, int, int]] = []

    def need(a: int, b: int) -> float:
        if counts[a] + counts[b] == 2 or (known[a] and known[b]):
            return p.pair_threshold
        if known[a] != known[b]:
            return lever.join  # joining a person known before this run
        if lever.mode == "large":
            big, small = max(counts[a], counts[b]), min(counts[a], counts[b])
            if big >= lever.join_min > small:
                return lever.join
        if lever.mode == "group" and max(counts[a], counts[b]) >= lever.join_min:
            return lever.join  # an established group (or person) takes faces and groups
        return p.threshold

    def push(a: int, b: int) -> None:
        sim = float(sums[a] @ sums[b]) / (counts[a] * counts[b])
        if sim >= need(a, b):
            heapq.heappush(heap, (-sim, a, b, version[a], version[b]))

    for a in range(total):
        for b in neighbours[a]:
            if a < b:
                push(a, b)

    while heap:
        _, a, b, va, vb = heapq.heappop(heap)
        if not (alive[a] and alive[b]) or version[a] != va or version[b] != vb:
            continue
        if media[a] & media[b]:
            continue
        if known[b] and (not known[a] or counts[b] > counts[a]):
            a, b = b, a
        sums[a] = sums[a] + sums[b]
        counts[a] += counts[b]
        media[a] |= media[b]
        alive[b] = False
        version[a] += 1
        neighbours[a] |= neighbours[b]
        neighbours[a].discard(a)
        neighbours[a].discard(b)
        for c in neighbours[b]:
            neighbours[c].discard(b)
            if c != a:
                neighbours[c].add(a)
        neighbours[b] = set()
        sums[b] = None  # type: ignore[call-overload]
        for c in list(neighbours[a]):
            if alive[c] and mergeable(a, c):
                push(a, c)
        parent[b] = a
    return (np.array([_root(parent, m + i) for i in range(n)], dtype=np.int64),
            np.array([_root(parent, i) for i in range(m)], dtype=np.int64))


def plan_linkage(new: PlanFaces, known: PlanFaces, threshold: float, params: LinkageParams, min_size: int,
                 free: set[int] | frozenset[int], lever: Lever) -> Plan:
    """The app's planner for `base` and `join_known` (LinkageParams.join_threshold, the
    leftover rule not applied); the copy with the extra join rules for the other modes."""
    if lever.join is None or lever.mode == "known":
        return app_plan_linkage(new, known, threshold, replace(params, join_threshold=lever.join), min_size, free)
    result = Plan()
    matched = match_faces(new.match_vectors, new.media_ids,
                          Known(known.match_vectors, known.person_ids, known.media_ids), threshold)
    base, persons = Seeds.of(known.vectors, known.person_ids, known.media_ids, free)
    bound = params.threshold if lever.join is None else lever.join
    matched = _confirmed(matched, new.vectors, base, persons, bound)
    result.matched = {i: int(p) for i, p in enumerate(matched.tolist()) if p >= 0}
    left = np.flatnonzero(matched < 0)
    if left.size == 0:
        return result
    took = matched >= 0
    seeds = base.with_faces(new.vectors[took], np.searchsorted(persons, matched[took]), new.media_ids[took])
    labels, roots = cluster(new.vectors[left], new.media_ids[left], seeds, params, lever)
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


# ---------------------------------------------------------------- settings and CV

@dataclass(frozen=True)
class Setting:
    threshold: float
    pair_threshold: float
    min_size: int
    join: float | None = None  # an absolute bound (None: the threshold)

    def describe(self) -> str:
        j = "" if self.join is None else f" JOIN={self.join:.3f}"
        return f"{self.threshold:.3f}/{self.pair_threshold:.3f}/{self.min_size}{j}"

    def order(self) -> tuple:
        return (self.threshold, self.pair_threshold, self.min_size,
                self.threshold if self.join is None else self.join)


def grid(centre: tuple[float, float], joins: tuple[float, ...] = ()) -> list[Setting]:
    """The evaluation's grid (crossval.grid); with `joins`, each setting also at each join
    offset below its threshold."""
    out = []
    for s in crossval.grid(*centre):
        out.append(Setting(s.threshold, s.pair_threshold, s.min_size))
        for off in joins:
            out.append(Setting(s.threshold, s.pair_threshold, s.min_size, round(s.threshold - off, 3)))
    return out


def labels_for(faces: crossval.FoldFaces, keep: np.ndarray, s: Setting, mode: str) -> np.ndarray:
    rows = np.flatnonzero(keep)
    new = PlanFaces(faces.match_vectors[rows], faces.vectors[rows], faces.media_ids[rows],
                    np.full(rows.size, -1, np.int64))
    known = PlanFaces(faces.match_vectors[:0], faces.vectors[:0], faces.media_ids[:0], np.zeros(0, np.int64))
    plan = plan_linkage(new, known, MATCH_THRESHOLD, LinkageParams(s.threshold, s.pair_threshold, NEIGHBOURS),
                        s.min_size, frozenset(), Lever(s.join, mode, s.min_size))
    labels = np.full(faces.identity.size, -1, np.int64)
    for g, group in enumerate(plan.new_groups):
        labels[rows[group]] = g
    return labels


def fmr_bounds(faces: crossval.FoldFaces, keep: np.ndarray, rates=(1e-4, 1e-5)) -> tuple[float, ...]:
    """Similarity that different identities' main faces reach at each false-match rate."""
    rows = keep & faces.main & (faces.identity != "")
    v = faces.vectors[rows].astype(np.float32)
    _, truth = np.unique(faces.identity[rows], return_inverse=True)
    s = v @ v.T
    iu = np.triu_indices(truth.size, 1)
    neg = np.sort(s[iu][(truth[:, None] != truth[None, :])[iu]])
    return tuple(float(neg[-int(np.ceil(r * neg.size))]) for r in rates)


def person_fmr(faces: crossval.FoldFaces, keep: np.ndarray, rate: float = 1e-4, min_faces: int = 3) -> float:
    """The average similarity a face reaches with the main faces of another identity (one
    with at least `min_faces`) at this false-match rate: the join bound that errs on a
    face-to-person decision as often as LINK_THRESHOLD errs on one pair."""
    rows = keep & faces.main & (faces.identity != "")
    v = faces.vectors[rows].astype(np.float32)
    names = faces.identity[rows]
    uniq, truth = np.unique(names, return_inverse=True)
    counts = np.bincount(truth)
    big = np.flatnonzero(counts >= min_faces)
    onehot = np.zeros((truth.size, uniq.size), np.float32)
    onehot[np.arange(truth.size), truth] = 1
    means = (v @ (v.T @ onehot[:, big])) / counts[big]  # (faces, persons): average similarity
    means[truth[:, None] == big[None, :]] = -np.inf  # own identity
    neg = np.sort(means[np.isfinite(means)])
    return float(neg[-int(np.ceil(rate * neg.size))])


def fold_of(faces: crossval.FoldFaces, k: int, seed: int) -> np.ndarray:
    names = np.unique(faces.identity[faces.identity != ""])
    order = np.random.default_rng(seed).permutation(names)
    f = {n: i % k for i, n in enumerate(order.tolist())}
    return np.array([f.get(n, -1) for n in faces.identity.tolist()])


def cv_tables(faces: crossval.FoldFaces, settings: list[Setting], k: int, seed: int, mode: str) -> dict:
    """Training objective and test scores of every setting on every fold."""
    fold = fold_of(faces, k, seed)
    out = {"train": [], "test": [], "calibrated": []}
    for f in range(k):
        train, test = fold != f, fold == f
        out["train"].append([crossval.objective(crossval.score(faces, train, labels_for(faces, train, s, mode)))
                             for s in settings])
        out["test"].append([crossval.score(faces, test, labels_for(faces, test, s, mode)) for s in settings])
        out["calibrated"].append(fmr_bounds(faces, train))
    return out


def choose(settings: list[Setting], train: list[float], rule: str, calibrated: tuple[float, float],
           join_pref: float | None = None) -> int:
    top = max(train)
    band = TIE if rule != "best" else 0.0
    near = [i for i, o in enumerate(train) if o >= top - band]
    if rule in ("conservative", "best"):
        return max(near, key=lambda i: settings[i].order())
    if rule == "calibrated":
        t0, p0 = calibrated

        def dist(i: int) -> tuple:
            s = settings[i]
            j = 0.0 if s.join is None or join_pref is None else abs(s.join - (s.threshold - join_pref))
            return (round(abs(s.threshold - t0) + abs(s.pair_threshold - p0) + j, 4), -s.min_size,
                    tuple(-x for x in s.order()))
        return min(near, key=dist)
    raise ValueError(rule)


TIE = crossval.TIE


def summarise(settings: list[Setting], tables: dict, rule: str, join_pref: float | None = None,
              centre: tuple[float, float] | None = None) -> dict:
    folds = []
    for f, (train, test, cal) in enumerate(zip(tables["train"], tables["test"], tables["calibrated"])):
        if rule == "centre":  # "calibrated", preferring the grid's centre (calibrated_bounds) itself
            i = choose(settings, train, "calibrated", centre, join_pref)
        else:
            i = choose(settings, train, rule, cal, join_pref)
        r = test[i]
        folds.append({"chosen": settings[i].describe(), "P": r["pairwise"]["precision"], "R": r["pairwise"]["recall"],
                      "F": r["pairwise"]["f1"], "B3F": r["bcubed"]["f1"], "strangers_merged": r["strangers_merged"],
                      "strangers": r["strangers"], "mixed": r["mixed_persons"]})
    f1 = [x["F"] for x in folds]
    return {"folds": folds, "mean_F": float(np.mean(f1)), "worst_F": float(min(f1)),
            "min_P": float(min(x["P"] for x in folds)), "mean_P": float(np.mean([x["P"] for x in folds])),
            "strangers_merged": int(sum(x["strangers_merged"] for x in folds)),
            "chosen": Counter(x["chosen"] for x in folds).most_common()}


# ---------------------------------------------------------------- incremental simulation

def incremental(d: dict, key: str, match_key: str, s: Setting, mode: str, strangers_later: bool = False,
                keep: np.ndarray | None = None) -> dict:
    """evaluate.incremental on cached vectors. `strangers_later`: the strangers arrive with
    the held-back photos (a safety check: each that ends in a person is a false join)."""
    ident = d["identity"].astype(str)
    paths = d["path"].astype(str)
    media = np.unique(paths, return_inverse=True)[1]
    photos: dict[str, list[str]] = defaultdict(list)
    for p, i in sorted(set(zip(paths.tolist(), ident.tolist()))):
        if i:
            photos[i].append(p)
    later = {p for ps in photos.values() if len(ps) >= HOLD_BACK_MIN for p in sorted(ps)[-HOLD_BACK:]}
    stranger = np.char.startswith(ident, crossval.STRANGER)
    held = np.array([p in later for p in paths.tolist()]) | (stranger & strangers_later)
    usable = d["usable"] if keep is None else d["usable"] & keep
    vec, mvec = d[key].astype(np.float32), d[match_key].astype(np.float32)
    params = LinkageParams(s.threshold, s.pair_threshold, NEIGHBOURS)
    lever = Lever(s.join, mode, s.min_size)
    person = np.full(ident.size, -1, np.int64)
    considered = np.zeros(ident.size, bool)

    def run(rows: np.ndarray, known_rows: np.ndarray, next_id: int) -> tuple[int, dict]:
        new = PlanFaces(mvec[rows], vec[rows], media[rows], np.full(rows.size, -1, np.int64))
        known = PlanFaces(mvec[known_rows], vec[known_rows], media[known_rows], person[known_rows])
        free = frozenset(int(x) for x in np.unique(person[known_rows]).tolist())
        plan = plan_linkage(new, known, MATCH_THRESHOLD, params, s.min_size, free, lever)
        for gone, into in plan.merged.items():
            person[person == gone] = into
        for i, p in plan.matched.items():
            person[rows[i]] = plan.merged.get(p, p)
        for i, p in plan.joined.items():
            person[rows[i]] = p
        for g in plan.new_groups:
            person[rows[g]] = next_id
            next_id += 1
        placed = set(plan.matched) | set(plan.joined) | {i for g in plan.new_groups for i in g}
        considered[[rows[i] for i in range(rows.size) if i not in placed]] = True
        return next_id, {"matched": len(plan.matched), "joined": len(plan.joined),
                         "new_groups": len(plan.new_groups), "merged": len(plan.merged)}

    first = np.flatnonzero(usable & ~held)
    next_id, _ = run(first, np.zeros(0, np.int64), 0)
    votes: dict[str, Counter] = defaultdict(Counter)
    for r in np.flatnonzero(d["main"] & ~held & (ident != "")):
        if person[r] >= 0:
            votes[ident[r]][int(person[r])] += 1
    known_persons = {p for c in votes.values() for p in c}
    # second run: the held-back faces, and earlier leftovers near one of them
    pool = np.flatnonzero(usable & (person < 0))
    fresh, old = pool[~considered[pool]], pool[considered[pool]]
    idx, sim = top_k(vec[fresh], vec[old], NEAR_NEIGHBOURS)
    close = np.unique(idx[(sim >= s.threshold - NEAR_MARGIN) & (idx >= 0)])
    rows = np.sort(np.concatenate([fresh, old[close]]))
    before = person.copy()
    _, what = run(rows, np.flatnonzero(person >= 0), next_id)
    out = Counter()
    detail = []
    for r in np.flatnonzero(d["main"] & held & ~stranger & (keep if keep is not None else True)):
        own = votes[ident[r]].most_common(1)[0][0] if votes[ident[r]] else None
        p = int(person[r])
        if p < 0:
            o = "unassigned"
        elif p == own:
            o = "right"
        elif p in known_persons:
            o = "wrong"
        else:
            o = "new"
        out[o] += 1
        if o != "right":
            detail.append(f"{o}: {Path(paths[r]).parent.name}/{Path(paths[r]).name}")
    old_moved = int(((before >= 0) & (before != person)).sum())
    added = int(sum(out.values()))
    sm = d["main"] & held & stranger & (person >= 0) & usable
    out["strangers_late"] = int((d["main"] & held & stranger & usable).sum())
    out["strangers_in_known"] = int(sum(1 for r in np.flatnonzero(sm) if int(person[r]) in known_persons
                                        or int(person[r]) < next_id))
    out["strangers_in_person"] = int(sm.sum())
    return {"strangers_late": out["strangers_late"], "strangers_in_known": out["strangers_in_known"], "strangers_in_person": out["strangers_in_person"],
            "added": added, **{k: out[k] for k in ("right", "wrong", "new", "unassigned")},
            "detail": detail, "second_run": what, "known_faces_moved": old_moved}


def incremental_cv(d: dict, key: str, match_key: str, base: Setting, mode: str, joins: tuple[float, ...],
                   k: int, seed: int) -> dict:
    """The join bound chosen by cross-validation over identities on the incremental test:
    on the training identities (the strangers arriving with the held-back photos), the
    join bound with the most held-back photos in their own person, wrong joins and strangers
    joining an earlier person (over 0.5 %) costing 10 times more; ties: the highest bound.
    Then the held-back photos of the test fold's identities, with the test fold's
    strangers arriving late too."""
    ident = d["identity"].astype(str)
    names = np.unique(ident[ident != ""])
    order = np.random.default_rng(seed).permutation(names)
    f_of = {n: i % k for i, n in enumerate(order.tolist())}
    fold = np.array([f_of.get(n, -1) for n in ident.tolist()])
    options = [base] + [replace(base, join=round(base.threshold - o, 3)) for o in joins]

    def objective(r: dict) -> float:
        added = max(1, r["added"])
        share = r["strangers_in_known"] / max(1, r["strangers_late"])
        return r["right"] / added - 10 * r["wrong"] / added - 10 * max(0.0, share - crossval.STRANGER_SHARE_CEILING)

    total = Counter()
    chosen = []
    for f in range(k):
        train = [incremental(d, key, match_key, o, mode, True, fold != f) for o in options]
        obj = [objective(r) for r in train]
        best = max((i for i in range(len(options)) if obj[i] >= max(obj) - 1e-9),
                   key=lambda i: options[i].order())
        test = incremental(d, key, match_key, options[best], mode, True, fold == f)
        chosen.append(options[best].describe())
        for x in ("added", "right", "wrong", "new", "unassigned", "strangers_late", "strangers_in_known"):
            total[x] += test[x]
    return {"chosen": chosen, **total}


# ---------------------------------------------------------------- levers

def faces_for(d: dict, key: str, match_key: str) -> crossval.FoldFaces:
    rows = d["usable"]
    media = np.unique(d["path"], return_inverse=True)[1]
    return crossval.FoldFaces(d["identity"][rows], d["main"][rows], media[rows], d[key][rows].astype(np.float32),
                              d[match_key][rows].astype(np.float32))


def add_fusion(d: dict, w: float, base: str = "sface") -> str:
    k = f"fusion_{w:g}" + ("" if base == "sface" else "_m")
    fn = d["facenet" if base == "sface" else "facenet_mirror"]
    d[k] = np.hstack([np.sqrt(w) * fn, np.sqrt(1 - w) * d[base]]).astype(np.float32)
    return k


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cache", type=Path)
    ap.add_argument("--levers", default="base")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--rules", default="conservative,calibrated,centre,best")
    ap.add_argument("--json", type=Path, help="append each result as one JSON line")
    ap.add_argument("--no-incremental", action="store_true")
    ap.add_argument("--incremental-cv", default="", help="fold seeds for the join bound's incremental CV")
    args = ap.parse_args()
    d = load(args.cache)
    for lever in args.levers.split(","):
        run_lever(d, lever, [int(x) for x in args.seeds.split(",") if x], args)


def parse(d: dict, lever: str) -> tuple[str, str, str, tuple[float, ...], float | None]:
    """lever name -> (deciding key, matching key, join mode, join offsets, preferred offset).

    Names: [mirror_|flipboth_|fusionW_][base|join_known|join_large]; e.g. mirror_join_known.
    """
    key, match_key = "sface", "facenet"
    name = lever
    if name.startswith("mirror_"):
        key, name = "sface_mirror", name[len("mirror_"):]
    elif name.startswith("flipboth_"):
        key, match_key, name = "sface_mirror", "facenet_mirror", name[len("flipboth_"):]
    elif name.startswith("fusion"):
        w, name = name[len("fusion"):].split("_", 1)
        key = add_fusion(d, float(w))
    if name == "base":
        return key, match_key, "known", (), None
    if name == "join_known_fine":
        return key, match_key, "known", (0.0125, 0.025, 0.0375, 0.05), None
    if name.startswith("join_known"):
        return key, match_key, "known", (0.025, 0.05, 0.075), None
    if name.startswith("join_large"):
        return key, match_key, "large", (0.025, 0.05, 0.075), None
    if name.startswith("join_group"):
        return key, match_key, "group", (0.0125, 0.025, 0.05), None
    raise ValueError(lever)


def run_lever(d: dict, lever: str, seeds: list[int], args) -> None:
    fixed_centre = lever.endswith("_c425")  # the grid centred on SFace's calibrated bounds, as the app would
    key, match_key, mode, joins, pref = parse(d, lever.removesuffix("_c425"))
    faces = faces_for(d, key, match_key)
    everyone = np.ones(faces.identity.size, bool)
    sep = separation(d, key)  # as bench/quality_levers.py centres its grid
    cal = (sep[1e-4][0], sep[1e-5][0])
    centre = (round(cal[0], 3), round(cal[1], 3))
    if key == "sface" or fixed_centre:
        centre = (0.425, 0.485)  # app.services.assign.LINKAGE_CALIBRATED, as --folds uses
    settings = grid(centre, joins)
    print(f"\n== {lever}: deciding {key}, matching {match_key}; FMR 1e-4 / 1e-5 bounds on the whole set "
          f"{cal[0]:.3f} / {cal[1]:.3f}; grid centre {centre}; {len(settings)} settings", flush=True)
    pj = {(n, r): person_fmr(faces, everyone, r, n) for n in (3, 8) for r in (1e-4, 1e-5)}
    print("  face-to-person average similarity at FMR (identities with >= n main faces): "
          + " ".join(f"n>={n} {r:g}: {v:.3f}" for (n, r), v in pj.items()), flush=True)
    # the whole set at the centre (and its join variants): what the defaults would give
    whole = {}
    for s in [x for x in settings if x.threshold == centre[0] and x.pair_threshold == centre[1] and x.min_size == 3]:
        sc = crossval.score(faces, everyone, labels_for(faces, everyone, s, mode))
        whole[s.describe()] = sc
        print(f"  whole set {s.describe()}: P={sc['pairwise']['precision']:.4f} R={sc['pairwise']['recall']:.4f} "
              f"F={sc['pairwise']['f1']:.4f} strangers_merged={sc['strangers_merged']} mixed={sc['mixed_persons']}",
              flush=True)
    results = {"lever": lever, "key": key, "match_key": match_key, "centre": centre, "seeds": {}}
    for seed in (seeds if args.seeds else []):
        t = time.perf_counter()
        tables = cv_tables(faces, settings, args.folds, seed, mode)
        results["seeds"][seed] = {}
        for rule in args.rules.split(","):
            r = summarise(settings, tables, rule, pref, centre)
            results["seeds"][seed][rule] = r
            print(f"  seed {seed} {rule:12s} mean F {r['mean_F']:.4f} worst F {r['worst_F']:.4f} "
                  f"min P {r['min_P']:.4f} strangers {r['strangers_merged']}  folds "
                  + " ".join(f"{x['F']:.4f}({x['chosen']})" for x in r["folds"]), flush=True)
        # oracle view: every setting's test folds (no choice)
        per = [(settings[i].describe(), float(np.mean([tables["test"][f][i]["pairwise"]["f1"] for f in range(args.folds)])),
                float(min(tables["test"][f][i]["pairwise"]["f1"] for f in range(args.folds))),
                float(min(tables["test"][f][i]["pairwise"]["precision"] for f in range(args.folds))),
                int(sum(tables["test"][f][i]["strangers_merged"] for f in range(args.folds))))
               for i in range(len(settings))]
        results["seeds"][seed]["fixed"] = per
        results["seeds"][seed]["test_by_fold"] = {
            settings[i].describe(): [(t["pairwise"]["f1"], t["pairwise"]["precision"], t["strangers_merged"])
                                     for t in (tables["test"][f][i] for f in range(args.folds))]
            for i in range(len(settings))}
        results["seeds"][seed]["train_objective"] = {settings[i].describe(): [tables["train"][f][i] for f in range(args.folds)]
                                                     for i in range(len(settings))}
        cal_folds = [tuple(round(x, 3) for x in c) for c in tables["calibrated"]]
        print(f"  seed {seed}: training folds' FMR bounds {cal_folds}; {time.perf_counter() - t:.0f} s", flush=True)
    if not args.no_incremental:
        for s in [x for x in settings if x.threshold == centre[0] and x.pair_threshold == centre[1] and x.min_size == 3]:
            inc = incremental(d, key, match_key, s, mode)
            late = incremental(d, key, match_key, s, mode, strangers_later=True)
            results.setdefault("incremental", {})[s.describe()] = inc
            results.setdefault("incremental_strangers_later", {})[s.describe()] = late
            print(f"  incremental {s.describe()}: right {inc['right']}/{inc['added']} wrong {inc['wrong']} "
                  f"new {inc['new']} unassigned {inc['unassigned']}; second run {inc['second_run']}, "
                  f"known faces moved {inc['known_faces_moved']}; {inc['detail']}", flush=True)
            print(f"    with the strangers arriving late: right {late['right']} wrong {late['wrong']} new {late['new']} "
                  f"unassigned {late['unassigned']}; strangers in an earlier person {late['strangers_in_known']}, "
                  f"in any person {late['strangers_in_person']}", flush=True)
    for seed in [int(x) for x in args.incremental_cv.split(",") if x] if joins else []:
        base = Setting(centre[0], centre[1], 3)
        r = incremental_cv(d, key, match_key, base, mode, joins, args.folds, seed)
        results.setdefault("incremental_cv", {})[seed] = r
        print(f"  incremental CV seed {seed}: right {r['right']}/{r['added']} wrong {r['wrong']} new {r['new']} "
              f"unassigned {r['unassigned']}; late strangers in an earlier person {r['strangers_in_known']}/"
              f"{r['strangers_late']}; chosen {r['chosen']}", flush=True)
    if args.json:
        with args.json.open("a") as fh:
            fh.write(json.dumps(results, default=float) + "\n")


if __name__ == "__main__":
    main()
