"""Assignment use case: give unassigned faces a person (--recognize), or rebuild every
automatic assignment (--recluster).

The whole step is one transaction under an advisory lock: a crash leaves the old
assignments or the new ones, never half; two runs at once cannot both create persons
for the same faces. Users' work is never touched: faces a user assigned, and persons
with a name or made by a user, keep what they have; only a user's face whose photo was
replaced under its name is first re-checked against its person (app/services/recheck.py).
"""
from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.db.models import ASSIGNED_CLUSTERED, ASSIGNED_MATCHED, WHO_RECLUSTER, WHO_WORKER
from app.db.types import utcnow
from app.inference.names import facenet_setting, model_name
from app.pipeline.assign import Faces as PlanFaces
from app.pipeline.assign import Plan, plan, plan_linkage
from app.pipeline.cluster import ClusterParams
from app.pipeline.linkage import LinkageParams, Seeds
from app.pipeline.match import Known
from app.pipeline.neighbours import search
from app.repositories import history as hrepo
from app.repositories import persons as prepo
from app.repositories import recognition as repo
from app.repositories.history import LogEntry
from app.services.recheck import recheck_refreshed
from app.storage.vector_store import Changes, StoreKey, VectorStore

log = logging.getLogger("app.recognition")

# Average-linkage bounds per deciding embedder (LINK_THRESHOLD, LINK_PAIR_THRESHOLD unset):
# the cosine similarity that different people reach at a false-match rate of 1e-4 (to
# join a group) and 1e-5 (for two lone faces to pair up), measured on the main faces of
# the dev set with the 998 strangers (3,292 faces, 5.4 million different-person pairs),
# and confirmed by 5-fold cross-validation over identities (README, "Recognition quality").
# facenet-vggface2 was not measured (its weights cannot be had here): FaceNet CASIA's.
LINKAGE_CALIBRATED = {
    "sface": (0.425, 0.485),
    "facenet-casia": (0.604, 0.678),
}
# The bound for joining a person known before the run (LINK_JOIN_THRESHOLD unset), chosen
# by cross-validation over identities on the incremental test (bench/quality_join.py
# --incremental-cv; README, "Recognition quality"); None: LINK_THRESHOLD (not measured).
JOIN_CALIBRATED = {
    "sface": 0.400,
}
# A face left over by an earlier run is decided again when a new face is among its
# nearest and this close (cosine, below the linkage bound: a group the new face joins may
# now reach the bound for it).
NEAR_MARGIN = 0.1
NEAR_NEIGHBOURS = 10


@dataclass
class AssignReport:
    faces: int = 0  # faces considered
    matched: int = 0
    joined: int = 0  # clustered into an existing person
    clustered: int = 0  # in new persons
    persons_created: int = 0
    persons_reused: int = 0  # --recluster: ids kept for the same group of faces
    persons_deleted: int = 0
    persons_merged: int = 0  # persons split in two made one again
    unassigned: int = 0
    left: int = 0  # users' faces in changed files that left their person on re-check
    seconds: float = 0.0
    # seconds per phase: read (faces and vectors, the vector store kept in step), decide
    # (matching and clustering), write (assignments, persons, log, covers)
    phases: dict[str, float] = field(default_factory=dict)


def cluster_params(settings: Settings) -> ClusterParams:
    return ClusterParams(
        algorithm=settings.cluster_algorithm,
        use_umap=settings.cluster_use_umap,
        umap_neighbors=settings.umap_n_neighbors,
        umap_components=settings.umap_n_components,
        umap_min_dist=settings.umap_min_dist,
        random_state=settings.random_state,
        dbscan_eps=settings.dbscan_eps,
        dbscan_min_samples=settings.dbscan_min_samples,
        hdbscan_min_cluster_size=settings.hdbscan_min_cluster_size,
        hdbscan_min_samples=settings.hdbscan_min_samples,
        hdbscan_epsilon=settings.hdbscan_epsilon,
        hdbscan_umap_epsilon=settings.hdbscan_umap_epsilon,
        raw_limit=settings.cluster_raw_limit,
    )


def _reuse_ids(groups: list[list[int]], face_ids: np.ndarray, previous: dict[int, int]) -> list[int | None]:
    """For each new group, the old automatic person most of its faces had, if any
    (each old id used once, the largest groups first): links stay valid across reclusters."""
    chosen: list[int | None] = [None] * len(groups)
    used: set[int] = set()
    for g in sorted(range(len(groups)), key=lambda g: -len(groups[g])):
        votes = Counter(previous[int(face_ids[i])] for i in groups[g] if int(face_ids[i]) in previous)
        for person, count in votes.most_common():
            if count * 2 > len(groups[g]) and person not in used:
                chosen[g] = person
                used.add(person)
            break
    return chosen


def calibrated_bounds(embedder: str) -> tuple[float, float]:
    """(LINK_THRESHOLD, LINK_PAIR_THRESHOLD) calibrated for the deciding embedder."""
    return LINKAGE_CALIBRATED.get(embedder, LINKAGE_CALIBRATED["facenet-casia"])


def linkage_params(settings: Settings) -> LinkageParams:
    calibrated = calibrated_bounds(settings.embedder)
    return LinkageParams(
        threshold=settings.link_threshold if settings.link_threshold is not None else calibrated[0],
        pair_threshold=settings.link_pair_threshold if settings.link_pair_threshold is not None else calibrated[1],
        neighbours=settings.link_neighbours,
        join_threshold=settings.link_join_threshold if settings.link_join_threshold is not None
        else JOIN_CALIBRATED.get(settings.embedder),
    )


def candidates(pool: repo.FaceVectors, near: float, approximate: bool = False) -> np.ndarray:
    """Rows of `pool` to decide now: faces never looked at, and faces left over before
    that are close to one of those (similarity >= near on the deciding vectors). With
    nothing new, nothing: a run with nothing new changes nothing."""
    return _candidates(pool.vectors, pool.considered, near, approximate)


def _candidates(vectors: np.ndarray, considered: np.ndarray, near: float, approximate: bool) -> np.ndarray:
    fresh = np.flatnonzero(~considered)
    old = np.flatnonzero(considered)
    if fresh.size == 0 or old.size == 0:
        return fresh
    idx, sim = search(vectors[fresh], vectors[old], NEAR_NEIGHBOURS, approximate)
    close = np.unique(idx[(sim >= near) & (idx >= 0)])
    return np.sort(np.concatenate([fresh, old[close]]))


def _plan_faces(f: repo.FaceVectors, rows: np.ndarray | None = None) -> PlanFaces:
    if rows is None:
        return PlanFaces(f.match_vectors, f.vectors, f.media_ids, f.person_ids)
    return PlanFaces(f.match_vectors[rows], f.vectors[rows], f.media_ids[rows], f.person_ids[rows])


def _forbidden(session: Session, ids: np.ndarray) -> dict[int, set[int]]:
    rejected = hrepo.rejections(session, ids.tolist())
    return {i: rejected[f] for i, f in enumerate(ids.tolist()) if f in rejected}


def _decide(session: Session, settings: Settings, report: AssignReport) -> tuple[np.ndarray, Plan]:
    """The faces decided now (ids) and the decision, indices into them; small libraries:
    every vector in memory and exact searches."""
    model = model_name(settings.embedder)
    facenet = model_name(facenet_setting(settings.embedder, settings.facenet))
    if settings.cluster_algorithm == "linkage" and \
            repo.count_ready(session, facenet, model) >= settings.large_library_faces:
        return _decide_large(session, settings, facenet, model, report)
    pool = repo.unassigned_faces(session, facenet, model)
    if pool.face_ids.size == 0:
        return pool.face_ids, Plan()
    link = linkage_params(settings)
    rows = candidates(pool, link.threshold - NEAR_MARGIN)
    report.faces = int(rows.size)
    if rows.size == 0:
        return rows, Plan()
    known = repo.known_faces(session, facenet, model)
    ids = pool.face_ids[rows]
    forbidden = _forbidden(session, ids)
    if settings.cluster_algorithm == "linkage":
        decision = plan_linkage(_plan_faces(pool, rows), _plan_faces(known), settings.match_threshold, link,
                                settings.link_min_size, free=repo.free_persons(session), forbidden=forbidden,
                                leftover=pool.considered[rows])
    else:  # HDBSCAN / DBSCAN with exemplars: one kind of vector for both steps
        decision = plan(
            pool.vectors[rows], pool.media_ids[rows],
            Known(known.vectors, known.person_ids, known.media_ids),
            settings.match_threshold, cluster_params(settings), settings.exemplars_per_person, forbidden,
        )
    return ids, decision


def store_key(settings: Settings, facenet: str, model: str) -> StoreKey:
    return StoreKey(make_url(settings.database_url).render_as_string(hide_password=True), facenet, model)


def open_store(session: Session, settings: Settings, facenet: str, model: str,
               table: repo.FaceTable) -> VectorStore:
    """The vector store of this database and these models, in step with `table`."""
    changes = Changes(lambda: repo.database_now(session),
                      lambda since: repo.vectors_modified_since(session, since, facenet, model))
    return VectorStore.synced(settings.data_dir / "vectors", store_key(settings, facenet, model), table.face_ids,
                              lambda ids: repo.vectors_of(session, ids, facenet, model), changes)


def _decide_large(session: Session, settings: Settings, facenet: str, model: str,
                  report: AssignReport) -> tuple[np.ndarray, Plan]:
    """As `_decide`, for a large library: ids and states from the database as arrays,
    vectors from the vector store on disk (app/storage/vector_store.py), matching through
    the person the deciding vectors put each face nearest to, the neighbour searches
    through inverted-file indexes (app/pipeline/neighbours.py)."""
    started = time.perf_counter()
    table = repo.face_table(session, facenet, model)
    store = open_store(session, settings, facenet, model, table)
    rows = store.rows_of(table.face_ids)
    open_rows = np.flatnonzero(table.open)
    vectors = store.decide(rows[open_rows])
    link = linkage_params(settings)
    chosen = _candidates(vectors, table.considered[open_rows], link.threshold - NEAR_MARGIN, approximate=True)
    report.faces = int(chosen.size)
    report.phases["read"] = time.perf_counter() - started
    log.info("large library: %d faces, %d without a person, %d to decide now (vectors read in %.1f s)",
             table.face_ids.size, open_rows.size, chosen.size, report.phases["read"])
    if chosen.size == 0:
        return np.zeros(0, np.int64), Plan()
    faces = open_rows[chosen]
    ids = table.face_ids[faces]
    known = np.flatnonzero(table.person_ids >= 0)
    free = repo.free_persons(session)
    seeds = Seeds.of(store.decide(rows[known]), table.person_ids[known], table.media_ids[known], free)
    by_person = known[np.argsort(table.person_ids[known], kind="stable")]
    sorted_persons = table.person_ids[by_person]

    def faces_of(persons: np.ndarray) -> Known:
        lo = np.searchsorted(sorted_persons, persons, "left")
        sizes = np.searchsorted(sorted_persons, persons, "right") - lo
        at = by_person[np.repeat(lo - np.cumsum(sizes) + sizes, sizes) + np.arange(int(sizes.sum()))]
        return Known(store.facenet(rows[at]), table.person_ids[at], table.media_ids[at])

    # Matching looks at faces never considered before: a face left over by an earlier run
    # was matched against the known faces then, and may still join a person by clustering
    # (at the group bound).
    fresh = ~table.considered[faces]
    new = PlanFaces(lambda i: store.facenet(rows[faces[i]]), vectors[chosen], table.media_ids[faces],
                    table.person_ids[faces])
    nothing = np.zeros(0, np.int64)
    decision = plan_linkage(
        new, PlanFaces(np.zeros((0, 0), np.float32), np.zeros((0, 0), np.float32), nothing, nothing),
        settings.match_threshold, link, settings.link_min_size, free=free, forbidden=_forbidden(session, ids),
        leftover=table.considered[faces], faces_of=faces_of, seeds=seeds, approximate=True, match_only=fresh,
    )
    return ids, decision


def _entries(states: dict[int, prepo.FaceState], pairs, who: str, by: str | None) -> list[LogEntry]:
    return [LogEntry(f, states[f].person_id, p, who, states[f].assigned_by, by, states[f].assigned_at)
            for f, p in pairs if f in states]


def _apply(session: Session, settings: Settings, previous: dict[int, int], log: list[LogEntry]) -> AssignReport:
    """Decide, write, and append to `log` every face whose person changed."""
    report = AssignReport()
    started = time.perf_counter()
    ids, decision = _decide(session, settings, report)
    report.phases["decide"] = time.perf_counter() - started - report.phases.get("read", 0.0)
    if ids.size == 0:
        return report
    started = time.perf_counter()
    now = utcnow()
    placed = set(decision.matched) | set(decision.joined) | {i for g in decision.new_groups for i in g}
    states = prepo.face_states(session, [int(ids[i]) for i in placed])  # before any write
    for state in prepo.face_states_of_persons(session, decision.merged):
        log.append(LogEntry(state.face_id, state.person_id, decision.merged[state.person_id], ASSIGNED_CLUSTERED,
                            state.assigned_by, state.assigned_by, state.assigned_at))
    repo.merge_persons(session, decision.merged, now)
    decision.matched = {i: decision.merged.get(p, p) for i, p in decision.matched.items()}
    repo.assign(session, [(int(ids[i]), p) for i, p in decision.matched.items()], ASSIGNED_MATCHED, now)
    repo.assign(session, [(int(ids[i]), p) for i, p in decision.joined.items()], ASSIGNED_CLUSTERED, now)
    reuse = _reuse_ids(decision.new_groups, ids, previous)
    fresh = iter(repo.create_persons(session, sum(1 for r in reuse if r is None)))
    group_persons = [r if r is not None else next(fresh) for r in reuse]
    pairs = [(int(ids[i]), person) for group, person in zip(decision.new_groups, group_persons) for i in group]
    repo.assign(session, pairs, ASSIGNED_CLUSTERED, now)
    matched = [(int(ids[i]), p) for i, p in decision.matched.items()]
    joined = [(int(ids[i]), p) for i, p in decision.joined.items()] + pairs
    log += _entries(states, matched, ASSIGNED_MATCHED, ASSIGNED_MATCHED)
    log += _entries(states, joined, ASSIGNED_CLUSTERED, ASSIGNED_CLUSTERED)
    repo.touch_persons(session, [*decision.matched.values(), *decision.joined.values(), *group_persons,
                                 *decision.merged.values()])
    repo.mark_considered(session, [int(ids[i]) for i in range(ids.size) if i not in placed], now)

    report.phases["write"] = time.perf_counter() - started
    report.matched = len(decision.matched)
    report.joined = len(decision.joined)
    report.clustered = len(pairs)
    report.persons_reused = sum(1 for r in reuse if r is not None)
    report.persons_created = len(reuse) - report.persons_reused
    report.persons_merged = len(decision.merged)
    report.unassigned = report.faces - report.matched - report.joined - report.clustered
    return report


def _record(session: Session, kind: str, report: AssignReport, log: list[LogEntry]) -> None:
    """One Operations row per run that changed assignments, with its log rows (a face
    that --recluster cleared and gave the same person again did not change)."""
    first: dict[int, LogEntry] = {}
    last: dict[int, LogEntry] = {}
    for e in log:
        first.setdefault(e.face_id, e)
        last[e.face_id] = e
    same = {f for f, e in first.items()
            if e.old_person == last[f].new_person and e.old_assigned_by == last[f].new_assigned_by}
    log = [e for e in log if e.face_id not in same]
    if log:
        summary = (f"{report.matched} matched, {report.joined} joined, {report.clustered} in "
                   f"{report.persons_created} new persons, {report.persons_merged} persons merged")
        if report.left:
            summary += f", {report.left} left a user's person on re-check"
        hrepo.add_operation(session, kind, WHO_WORKER, summary, None, log)


def _finish(session: Session, kind: str, report: AssignReport, entries: list[LogEntry]) -> None:
    started = time.perf_counter()
    _record(session, kind, report, entries)
    prepo.refresh_covers(session, hrepo.persons_of(entries))
    report.phases["log"] = time.perf_counter() - started


def assign_unassigned(sessions: sessionmaker[Session], settings: Settings) -> AssignReport:
    started = time.perf_counter()
    with sessions.begin() as session:
        repo.lock_assignment(session)
        entries: list[LogEntry] = []
        left = recheck_refreshed(session, settings, linkage_params(settings).join, entries).left
        report = _apply(session, settings, previous={}, log=entries)
        report.left = left
        _finish(session, "recognize", report, entries)
    report.seconds = time.perf_counter() - started
    _log(report, "assignment")
    return report


def recluster(sessions: sessionmaker[Session], settings: Settings) -> AssignReport:
    started = time.perf_counter()
    with sessions.begin() as session:
        repo.lock_assignment(session)
        entries: list[LogEntry] = []
        left = recheck_refreshed(session, settings, linkage_params(settings).join, entries).left
        before = repo.automatic_assignments(session)
        entries += _entries(before, [(f, None) for f in sorted(before)], WHO_RECLUSTER, None)
        cleared = repo.clear_automatic_assignments(session, utcnow())
        log.info("recluster: cleared %d automatic assignments", cleared)
        report = _apply(session, settings, {f: s.person_id for f, s in before.items()}, entries)
        report.left = left
        report.persons_deleted = repo.delete_empty_automatic_persons(session)
        _finish(session, "recluster", report, entries)
    report.seconds = time.perf_counter() - started
    _log(report, "recluster")
    return report


def _log(r: AssignReport, what: str) -> None:
    log.info(
        "%s: %d faces: %d matched, %d joined existing persons by clustering, %d in %d new persons%s, "
        "%d left unassigned, %d persons merged into others, in %.1f s",
        what, r.faces, r.matched, r.joined, r.clustered, r.persons_created,
        f" (+{r.persons_reused} ids kept)" if r.persons_reused else "", r.unassigned, r.persons_merged, r.seconds,
    )
