"""Does the vector index change who is matched? Real dev-set faces, exact search against
the large-library index (app/storage/face_index.py), at the matching threshold.

    python bench/index_recall.py --database-url postgresql://postgres@127.0.0.1:5432/<db with the dev set>
        [--distractors 0,1000000] [--queries 0.2] [--threshold 0.8]

Reads every usable face's FaceNet vector and its identity (the photo's folder) from a
database the dev set went through (`--ingest` + `--all`, or `--evaluate`). A share of the
faces (--queries, drawn per face) plays the new faces, the rest the known ones. For each
query: every known face at or above the threshold by exact search, and what the index's
search returns (top 8, as matching asks, among known faces only), with --distractors
synthetic faces (drawn from a Gaussian fitted to the dev set's vectors: other people, in
the region of the sphere where faces lie) added to the index so that its cells are those
of a library of that size. Prints the recall of the index
(share of the exact neighbours at or above the threshold it returns, within the top 8)
and how many queries' nearest known face at or above the threshold differs.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TOP = 8  # as app.pipeline.match.TOP_K


def dev_faces(url: str) -> tuple[np.ndarray, np.ndarray]:
    from sqlalchemy import select

    from app.db.engine import make_engine, session_factory
    from app.db.models import Faces, MediaFile

    engine = make_engine(url)
    with session_factory(engine)() as s:
        rows = s.execute(select(Faces.Embedding, MediaFile.FilePath).join(MediaFile)
                         .where(Faces.IsUsable.is_(True), Faces.Embedding.is_not(None)).order_by(Faces.Id)).all()
    engine.dispose()
    vectors = np.vstack([np.frombuffer(r[0], np.float32) for r in rows])
    names = [Path(r[1]).parent.name for r in rows]
    _, labels = np.unique(names, return_inverse=True)
    return vectors, labels


def lookalikes(vectors: np.ndarray, n: int, seed: int) -> np.ndarray:
    """n synthetic faces drawn from a Gaussian fitted to the real vectors (mean and
    covariance), normalised: they fill the same region of the sphere real faces do, as
    a library of other people would (random directions would sit far from every real
    face and test nothing)."""
    rng = np.random.default_rng(seed)
    mean = vectors.mean(axis=0)
    u, s, _ = np.linalg.svd((vectors - mean).astype(np.float64), full_matrices=False)
    basis = (np.diag(s) @ _[: s.size]) / np.sqrt(vectors.shape[0] - 1)  # rows: scaled principal axes
    out = np.empty((n, vectors.shape[1]), np.float32)
    for start in range(0, n, 65536):
        z = rng.standard_normal((min(65536, n - start), s.size))
        x = mean + z @ basis
        out[start:start + x.shape[0]] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def main() -> None:
    from app.pipeline.neighbours import IvfParams

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url", required=True)
    ap.add_argument("--distractors", default="0,1000000")
    ap.add_argument("--queries", type=float, default=0.2)
    ap.add_argument("--threshold", type=float, default=0.8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--probes", default="12", help="cells probed per query, several to compare")
    ap.add_argument("--cells-per-sqrt", type=float, default=IvfParams().cells_per_sqrt)
    args = ap.parse_args()
    from app.pipeline.match import top_k
    from app.storage.face_index import FaceIndex, IndexKey

    vectors, labels = dev_faces(args.database_url)
    rng = np.random.default_rng(args.seed)
    is_query = rng.random(labels.size) < args.queries
    queries, known = np.flatnonzero(is_query), np.flatnonzero(~is_query)
    e_idx, e_sim = top_k(vectors[queries], vectors[known], TOP)
    exact_hits = [set(known[e_idx[q][e_sim[q] >= args.threshold - 1e-5]].tolist()) for q in range(queries.size)]
    exact_best = [int(known[e_idx[q, 0]]) if e_sim[q, 0] >= args.threshold - 1e-5 else -1 for q in range(queries.size)]
    print(f"# {time.strftime('%Y-%m-%d')} {os.cpu_count()} cores; dev set: {labels.size} usable faces, "
          f"{queries.size} as new faces; {sum(len(h) for h in exact_hits)} known faces at cosine >= "
          f"{args.threshold} of them (exact), {sum(b >= 0 for b in exact_best)} new faces with a match")
    for extra in (int(x) for x in args.distractors.split(",") if x != ""):
        noise = lookalikes(vectors, extra, args.seed)
        base = np.vstack([vectors, noise])
        del noise
        ids = np.arange(1, base.shape[0] + 1, dtype=np.int64)

        def fetch(wanted: np.ndarray):
            return wanted, base[wanted - 1], None

        folder = tempfile.mkdtemp(prefix="index-recall-")
        started = time.perf_counter()
        index = FaceIndex.synced(Path(folder), IndexKey("bench", "facenet", "facenet"), ids, fetch,
                                 min_rows=1, delta_rows=1, params=IvfParams(cells_per_sqrt=args.cells_per_sqrt))
        built = time.perf_counter() - started
        allowed = np.zeros(index.rows, bool)
        allowed[index.rows_of(ids[known])] = True
        for probe in (int(p) for p in args.probes.split(",")):
            index.params = replace(index.params, probe=probe)
            started = time.perf_counter()
            i_idx, i_sim = index.search(vectors[queries], TOP, allowed)
            searched = time.perf_counter() - started
            _report(args, index, ids, queries, labels, exact_hits, exact_best, i_idx, i_sim, built, searched)
        shutil.rmtree(folder)


def _report(args, index, ids, queries, labels, exact_hits, exact_best, i_idx, i_sim, built, searched) -> None:
    """Recall of the index against exact search, and whether the nearest match changes."""
    face_of_row = np.empty(index.rows, np.int64)
    face_of_row[index.rows_of(ids)] = np.arange(ids.size)
    found = wanted = differ = other_person = 0
    for q in range(queries.size):
        # a neighbour at the threshold to within float rounding (exact search itself gives
        # 0.8000001 or 0.79999995 for one pair, by the order of its sums) counts as found
        got = {int(face_of_row[r]) for r, s in zip(i_idx[q], i_sim[q]) if r >= 0 and s >= args.threshold - 1e-5}
        want = exact_hits[q]
        # the exact top 8 is what matching sees; the index must return those
        found += len(got & want)
        wanted += len(want)
        best = int(face_of_row[i_idx[q, 0]]) if i_idx[q, 0] >= 0 and i_sim[q, 0] >= args.threshold - 1e-5 else -1
        differ += best != exact_best[q]
        other_person += (labels[best] if best >= 0 else -1) != (labels[exact_best[q]] if exact_best[q] >= 0 else -1)
    print(f"index over {index.rows:>9} faces ({index.index.nlist if index.index is not None else 0} cells, "
          f"{index.params.probe} probed): recall at >= {args.threshold}: {found}/{wanted} = "
          f"{found / max(1, wanted):.4f}; nearest match differs for {differ} of {queries.size} new faces "
          f"({other_person} of another identity or none); "
          f"built in {built:.0f} s, {queries.size} searches in {searched:.2f} s", flush=True)


if __name__ == "__main__":
    main()
