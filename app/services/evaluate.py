"""--evaluate DIR: the whole pipeline on a labelled folder, scored.

DIR holds one sub-folder per identity; `group/` is processed but not scored. With
--strangers S, every image file in S is one more identity of its own (people seen once,
as in every real album), and the report counts the strangers that end in a person with
someone else. With --folds K, the clustering settings are also chosen by
cross-validation over identities (app/services/crossval.py). Each
single-person image is scored by its main face: the face nearest the image centre among
the faces at least 80 % as large as the largest one (LFW photos often show a second,
slightly larger neighbour; on the dev set the plain "largest" rule picks a wrong face in
10 images and costs 0.006 AUC).

Two runs, each into a fresh database:
1. all images at once (detection, embedding separation, clustering);
2. incremental: identities with at least 8 images keep their last 2 images back; the
   rest run first, then the held-back photos are added and the pipeline runs again;
   each added photo joins the right existing person, a wrong one, a new one, or none.
"""
from __future__ import annotations

import csv
import json
import logging
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from app.config import Settings
from app.db import schema
from app.db.engine import make_engine, session_factory
from app.inference.detector import Detector
from app.pipeline.encode import FaceEncoder
from app.pipeline import metrics
from app.pipeline.cluster import cluster_vectors
from app.types import Box
from app.repositories import evaluation as repo
from app.services import crossval
from app.services.assign import calibrated_bounds, cluster_params, linkage_params
from app.services.detect import detect_pending
from app.services.ingest import IMAGE_EXTENSIONS, register_files
from app.services.recognize import recognize

log = logging.getLogger("app.evaluate")
GROUP = "group"
HOLD_BACK, HOLD_BACK_MIN = 2, 8
STRANGER = crossval.STRANGER
SIMILAR_SIZE = 0.8


@dataclass(frozen=True)
class Sample:
    path: Path
    identity: str | None  # None: group photo, not scored
    dataset: str


def load_strangers(folder: Path) -> list[Sample]:
    """One identity per image file (hidden files skipped: they are not photos)."""
    return [Sample(p.resolve(), STRANGER + p.stem, "strangers")
            for p in sorted(folder.iterdir())
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS]


def load_samples(root: Path) -> list[Sample]:
    datasets: dict[str, str] = {}
    manifest = root / "manifest.csv"
    if manifest.is_file():
        with manifest.open(newline="") as fh:
            for row in csv.DictReader(fh):
                datasets[row.get("file", "")] = row.get("dataset", "") or ""
    samples = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        for path in sorted(folder.rglob("*")):
            if path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file():
                rel = path.relative_to(root).as_posix()
                identity = None if folder.name == GROUP else folder.name
                samples.append(Sample(path.resolve(), identity, datasets.get(rel, "")))
    return samples


def main_face(faces: list[repo.ScoredFace], width: int, height: int) -> repo.ScoredFace | None:
    if not faces:
        return None
    boxes = [Box.from_json(f.bounding_box) for f in faces]
    largest = max(b.w * b.h for b in boxes)
    cx, cy = width / 2, height / 2
    candidates = [(f, b) for f, b in zip(faces, boxes) if b.w * b.h >= SIMILAR_SIZE * largest]
    return min(candidates, key=lambda fb: (fb[1].x + fb[1].w / 2 - cx) ** 2 + (fb[1].y + fb[1].h / 2 - cy) ** 2)[0]


def _image_size(path: Path) -> tuple[int, int]:
    from PIL import Image, ImageOps

    with Image.open(path) as im:
        return ImageOps.exif_transpose(im).size


class Run:
    """One fresh database, and the pipeline run on it stage by stage."""

    def __init__(self, url: str, settings: Settings, detector: Detector, encoder: FaceEncoder, work: Path):
        schema.upgrade(url)
        self.engine = make_engine(url)
        self.sessions = session_factory(self.engine)
        self.settings = replace(settings, database_url=url, thumbnail_path=work / "thumbnails")
        self.detector, self.encoder = detector, encoder
        self.timings: dict[str, float] = defaultdict(float)

    def add(self, paths: list[Path]) -> None:
        t = time.perf_counter()
        register_files(self.sessions, paths)
        self.timings["ingest"] += time.perf_counter() - t
        t = time.perf_counter()
        detect_pending(self.sessions, self.detector, self.settings)
        self.timings["detection"] += time.perf_counter() - t
        report = recognize(self.sessions, self.encoder, self.settings)
        self.timings["embedding"] += report.embed.seconds
        self.timings["assignment"] += report.assign.seconds

    def faces_by_path(self) -> dict[str, list[repo.ScoredFace]]:
        with self.sessions() as s:
            out: dict[str, list[repo.ScoredFace]] = defaultdict(list)
            for f in repo.all_faces(s):
                out[f.file_path].append(f)
            return out

    def close(self) -> None:
        self.engine.dispose()


def _scored(samples: list[Sample], faces: dict[str, list[repo.ScoredFace]]):
    """(sample, main face) for single-person images, main face None where none found."""
    out = []
    for s in samples:
        if s.identity is None:
            continue
        w, h = _image_size(s.path)
        out.append((s, main_face(faces.get(str(s.path), []), w, h)))
    return out


def detection_stats(samples: list[Sample], faces: dict[str, list[repo.ScoredFace]]) -> dict:
    groups: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        groups["all"].append(s)
        groups[(s.dataset or "unknown") if s.identity else "group photos"].append(s)
    out = {}
    for name, members in groups.items():
        counts = [len(faces.get(str(s.path), [])) for s in members]
        out[name] = {
            "images": len(members),
            "images_without_face": sum(1 for c in counts if c == 0),
            "faces_per_image": round(float(np.mean(counts)), 3) if counts else 0.0,
        }
    return out


def clustering_stats(scored) -> dict:
    with_face = [(s, f) for s, f in scored if f is not None]
    truth_names = [s.identity for s, _ in scored]
    _, truth = np.unique(np.array(truth_names), return_inverse=True)
    labels = np.array([f.person_id if f is not None and f.person_id is not None else -1 for _, f in scored])
    is_stranger = np.array([n.startswith(STRANGER) for n in truth_names], dtype=bool)
    pw, b3 = metrics.pairwise(truth, labels), metrics.bcubed(truth, labels)
    return {
        "scored_faces": len(scored),
        "images_without_main_face": len(scored) - len(with_face),
        "pairwise": {"precision": pw.precision, "recall": pw.recall, "f1": pw.f1},
        "bcubed": {"precision": b3.precision, "recall": b3.recall, "f1": b3.f1},
        "persons_made": len(set(labels.tolist()) - {-1}),
        "identities": len(set(truth_names)),
        "unassigned_share": float((labels < 0).mean()) if labels.size else 0.0,
        # strangers are meant to stay unassigned: the share among the folder's own identities
        "unassigned_share_named": float((labels[~is_stranger] < 0).mean()) if (~is_stranger).any() else 0.0,
        "largest_mixed_person_identities": metrics.largest_mixed(truth, labels),
        # the same, counting only the folder's own identities (strangers left out)
        "largest_mixed_person_named_identities": metrics.largest_mixed(
            truth[~is_stranger], labels[~is_stranger]) if is_stranger.any() else metrics.largest_mixed(truth, labels),
    }


def strangers_stats(scored, faces: dict[str, list[repo.ScoredFace]]) -> dict:
    """Strangers whose main face is in a person holding any other face."""
    per_person = Counter(f.person_id for fs in faces.values() for f in fs if f.person_id is not None)
    strangers = [(s, f) for s, f in scored if s.identity.startswith(STRANGER)]
    merged = [s.path.name for s, f in strangers
              if f is not None and f.person_id is not None and per_person[f.person_id] > 1]
    return {"strangers": len(strangers), "merged": len(merged),
            "merged_share": len(merged) / len(strangers) if strangers else 0.0,
            "without_main_face": sum(1 for _, f in strangers if f is None), "merged_files": merged}


def fold_faces(samples: list[Sample], faces: dict[str, list[repo.ScoredFace]], scored, second: bool
               ) -> crossval.FoldFaces:
    """Every usable embedded face of the run, with its photo's identity and whether it is
    the photo's main face (`scored`: _scored's pairs); `second`: the second model decides."""
    identity: list[str] = []
    main: list[bool] = []
    media: list[int] = []
    vectors: list[np.ndarray] = []
    match: list[np.ndarray] = []
    chosen = {str(s.path): f for s, f in scored if f is not None}
    for s in samples:
        for f in faces.get(str(s.path), []):
            if not f.usable or f.embedding is None or (second and f.embedding2 is None):
                continue
            identity.append(s.identity or "")
            main.append(f is chosen.get(str(s.path)))
            media.append(f.media_file_id)
            match.append(np.frombuffer(f.embedding, np.float32))
            vectors.append(np.frombuffer(f.embedding2 if second else f.embedding, np.float32))
    return crossval.FoldFaces(np.array(identity), np.array(main, bool), np.array(media, np.int64),
                              np.vstack(vectors), np.vstack(match))


def separation_stats(scored, threshold: float, second: bool = False) -> dict:
    """Same vs different identity similarity of the main faces: FaceNet's (Embedding), or
    the second model's (Embedding2)."""
    pairs = [(s.identity, np.frombuffer(f.embedding2 if second else f.embedding, np.float32)) for s, f in scored
             if f is not None and (f.embedding2 if second else f.embedding) is not None]
    if len(pairs) < 2:
        return {}
    _, truth = np.unique(np.array([p[0] for p in pairs]), return_inverse=True)
    return metrics.verification(np.vstack([p[1] for p in pairs]), truth, threshold)


def incremental(samples: list[Sample], settings: Settings, detector, encoder, make_url, work: Path) -> dict:
    by_identity: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        if s.identity:
            by_identity[s.identity].append(s)
    later = {s.path for members in by_identity.values() if len(members) >= HOLD_BACK_MIN
             for s in members[-HOLD_BACK:]}
    run = Run(make_url("incremental"), settings, detector, encoder, work / "incremental")
    try:
        run.add([s.path for s in samples if s.path not in later])
        first = run.faces_by_path()
        scored_first = _scored(samples, first)  # the held-back photos have no faces yet
        # the person holding most of each identity's first faces is "its" person
        votes: dict[str, Counter] = defaultdict(Counter)
        for s, f in scored_first:
            if s.path not in later and f is not None and f.person_id is not None:
                votes[s.identity][f.person_id] += 1
        known_persons = {p for c in votes.values() for p in c}
        run.add(sorted(later))
        final = run.faces_by_path()
        scored_final = _scored(samples, final)
        outcome = Counter()
        wrong: list[str] = []
        for s, f in scored_final:
            if s.path not in later:
                continue
            own = votes[s.identity].most_common(1)[0][0] if votes[s.identity] else None
            if f is None or f.person_id is None:
                outcome["unassigned"] += 1
            elif f.person_id == own:
                outcome["joined_right_person"] += 1
            elif f.person_id in known_persons:
                outcome["joined_wrong_person"] += 1
                wrong.append(str(s.path.relative_to(s.path.parent.parent)))
            else:
                outcome["new_person"] += 1
        total = sum(outcome.values())
        # strangers that went into a person with someone else in the second run: faces
        # left alone before, decided again because a new face came near them
        before = set(strangers_stats(scored_first, first)["merged_files"])
        after = strangers_stats(scored_final, final)
        return {"added_photos": total, **outcome, "wrong_files": wrong,
                "joined_right_share": outcome["joined_right_person"] / total if total else 0.0,
                "strangers_merged_first_run": len(before), "strangers_merged_after": after["merged"],
                "strangers_merged_late": sorted(set(after["merged_files"]) - before),
                "timings_seconds": dict(run.timings)}
    finally:
        run.close()


SWEEP = [
    {"cluster_algorithm": "hdbscan", "hdbscan_epsilon": e, "cluster_use_umap": False} for e in (0.6, 0.65, 0.7, 0.75)
] + [
    {"cluster_algorithm": "hdbscan", "hdbscan_umap_epsilon": e, "cluster_use_umap": True} for e in (0.05, 0.1, 0.15)
] + [
    {"cluster_algorithm": "dbscan", "dbscan_eps": e, "cluster_use_umap": True} for e in (0.1, 0.14, 0.2)
]


def sweep(scored, settings: Settings) -> list[dict]:
    """Cluster the main faces' embeddings under several settings (no database)."""
    pairs = [(s.identity, np.frombuffer(f.embedding, np.float32)) for s, f in scored
             if f is not None and f.embedding is not None]
    _, truth = np.unique(np.array([p[0] for p in pairs]), return_inverse=True)
    vectors = np.vstack([p[1] for p in pairs])
    rows = []
    for change in SWEEP:
        t = time.perf_counter()
        labels = cluster_vectors(vectors, cluster_params(replace(settings, **change)))
        pw, b3 = metrics.pairwise(truth, labels), metrics.bcubed(truth, labels)
        rows.append({**change, "pairwise_precision": pw.precision, "pairwise_recall": pw.recall,
                     "bcubed_f1": b3.f1, "clusters": len(set(labels.tolist()) - {-1}),
                     "noise_share": float((labels < 0).mean()), "seconds": time.perf_counter() - t})
    return rows


def require_empty(url: str) -> None:
    """Evaluation writes a whole data set into the database: never into one in use."""
    engine = make_engine(url)
    try:
        if not schema.is_empty(engine):
            raise ValueError(
                f"the evaluation database must be empty (it already has tables): {url.split('@')[-1]}"
            )
    finally:
        engine.dispose()


def evaluate(root: Path, settings: Settings, detector: Detector, encoder: FaceEncoder,
             database_url: str | None = None, do_sweep: bool = False, do_incremental: bool = True,
             strangers: Path | None = None, folds: int = 0) -> dict:
    if database_url:
        require_empty(database_url)
    samples = load_samples(root)
    if not any(s.identity for s in samples):
        raise ValueError(f"{root} has no identity sub-folders with images")
    if strangers is not None:
        extra = load_strangers(strangers)
        if not extra:
            raise ValueError(f"{strangers} holds no image files")
        samples += extra
    if folds and settings.cluster_algorithm != "linkage":
        raise ValueError("--folds cross-validates the linkage settings: use CLUSTER_ALGORITHM=linkage")
    link = linkage_params(settings)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="facegroup-eval-") as tmp:
        work = Path(tmp)

        def make_url(name: str) -> str:
            if database_url:
                return database_url if name == "full" else _sibling_database(database_url, name)
            return f"sqlite:///{work / (name + '.db')}"

        run = Run(make_url("full"), settings, detector, encoder, work / "full")
        try:
            run.add([s.path for s in samples])
            faces = run.faces_by_path()
        finally:
            run.close()
        scored = _scored(samples, faces)
        result = {
            "data": str(root),
            "settings": {k: getattr(settings, k) for k in (
                "detector", "detect_max_side", "detect_min_score", "min_face_size", "embedder", "facenet",
                "embed_crop_margin", "embed_flip", "match_threshold", "cluster_algorithm", "link_min_size",
                "link_neighbours")},
            "linkage": {"threshold": link.threshold, "pair_threshold": link.pair_threshold},
            "main_face_rule": "nearest the centre among faces >= 80% of the largest face's area",
            "detection": detection_stats(samples, faces),
            "embedding_separation": separation_stats(scored, settings.match_threshold),
            "decision_separation": separation_stats(scored, link.threshold, second=True)
            if encoder.second is not None else {},
            "clustering": clustering_stats(scored),
            "timings_seconds": dict(run.timings),
        }
        if strangers is not None:
            result["strangers"] = strangers_stats(scored, faces)
        if folds:
            result["cross_validation"] = crossval.cross_validate(
                fold_faces(samples, faces, scored, second=encoder.second is not None), folds,
                crossval.Setting(link.threshold, link.pair_threshold, settings.link_min_size),
                settings.match_threshold, settings.link_neighbours, centre=calibrated_bounds(settings.embedder))
        if do_incremental:
            result["incremental"] = incremental(samples, settings, detector, encoder, make_url, work)
        if do_sweep:
            result["sweep"] = sweep(scored, settings)
    result["total_seconds"] = time.perf_counter() - started
    return result


def _sibling_database(url: str, name: str) -> str:
    """A second, empty database for the incremental run: same server, suffixed name."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from app.db.url import normalise

    url = normalise(url)  # postgresql:// means psycopg2 here, whatever SQLAlchemy's default
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return str(parsed.set(database=f"{parsed.database}.{name}"))
    sibling = f"{parsed.database}_{name}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{sibling}"'))
        conn.execute(text(f'CREATE DATABASE "{sibling}"'))
    admin.dispose()
    return parsed.set(database=sibling).render_as_string(hide_password=False)


def write_json(result: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, default=float))
