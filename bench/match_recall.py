"""Does the large-library path change who is matched? Real dev-set faces, matched as the
exact path matches them and as the large-library path does, among many look-alike persons.

    python bench/match_recall.py --database-url postgresql://postgres@127.0.0.1:5432/<db with the dev set>
        [--persons 0,100000] [--queries 0.2] [--padding 10000]

Reads every usable face's two vectors (FaceNet, Faces.Embedding; the deciding model's,
Faces.Embedding2) and its identity (the photo's folder under --data, group photos left
out) from a database the dev set went through (`--ingest` + `--all`, or `--evaluate`). A share of the faces (--queries, drawn
per face) plays the new faces; the rest are known, each identity one person. Then
--persons synthetic persons of 10 faces each are added as known persons: look-alikes,
their centres drawn from Gaussians fitted to the dev set's vectors in each space (the
region of the sphere where faces lie; random directions would test nothing), their faces
around the centres at the dev set's mean same-person similarity. --padding synthetic new
faces join the dev queries so that the search over person centres runs as in a run of
that many new faces (through an inverted-file index once queries x persons is large).

For each dev query, the matched person both ways (app/pipeline/assign.py `match_known`):
- exact: FaceNet at 0.8 over every known face, then confirmed by the deciding vectors
  (the nearest person on average, at the join bound);
- large library: the deciding vectors choose the nearest person first (IVF over person
  centres), then FaceNet at 0.8 against that person's faces only.
Prints how many decisions differ, and the times.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PER_PERSON = 10


def dev_faces(url: str, data: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """FaceNet vectors, deciding vectors, identity labels and photo ids of the usable faces
    in the identity folders under `data` (not its group photos, nor strangers elsewhere)."""
    from sqlalchemy import select

    from app.db.engine import make_engine, session_factory
    from app.db.models import Faces, MediaFile

    engine = make_engine(url)
    with session_factory(engine)() as s:
        rows = s.execute(select(Faces.Embedding, Faces.Embedding2, MediaFile.FilePath, Faces.MediaFileId)
                         .join(MediaFile).where(Faces.IsUsable.is_(True), Faces.Embedding.is_not(None),
                                                Faces.Embedding2.is_not(None)).order_by(Faces.Id)).all()
    engine.dispose()
    root = str(data.resolve())
    rows = [r for r in rows if str(Path(r[2]).parent.parent) == root and Path(r[2]).parent.name != "group"]
    facenet = np.vstack([np.frombuffer(r[0], np.float32) for r in rows])
    decide = np.vstack([np.frombuffer(r[1], np.float32) for r in rows])
    _, labels = np.unique([Path(r[2]).parent.name for r in rows], return_inverse=True)
    return facenet, decide, labels, np.array([r[3] for r in rows], np.int64)


def lookalike_persons(vectors: np.ndarray, labels: np.ndarray, persons: int, per_person: int,
                      seed: int) -> np.ndarray:
    """persons x per_person synthetic faces (person-major): centres from a Gaussian fitted
    to the real vectors (mean and covariance), faces around them at the real mean
    same-person cosine."""
    rng = np.random.default_rng(seed)
    mean = vectors.mean(axis=0)
    _, s, vt = np.linalg.svd((vectors - mean).astype(np.float64), full_matrices=False)
    basis = (np.diag(s) @ vt) / np.sqrt(vectors.shape[0] - 1)
    same = [vectors[labels == i] for i in np.unique(labels)]
    pair = np.mean([(g @ g.T)[np.triu_indices(len(g), 1)].mean() for g in same if len(g) > 1])
    s0 = np.sqrt(pair)  # two faces at cosine s0 to one centre have about s0^2 to each other
    out = np.empty((persons * per_person, vectors.shape[1]), np.float32)
    for start in range(0, persons, 8192):
        n = min(8192, persons - start)
        c = mean + rng.standard_normal((n, s.size)) @ basis
        c = np.repeat(c / np.linalg.norm(c, axis=1, keepdims=True), per_person, axis=0)
        noise = rng.standard_normal(c.shape)
        noise -= (noise * c).sum(1, keepdims=True) * c
        noise /= np.linalg.norm(noise, axis=1, keepdims=True)
        f = s0 * c + np.sqrt(1 - s0 ** 2) * noise
        out[start * per_person:(start + n) * per_person] = f / np.linalg.norm(f, axis=1, keepdims=True)
    return out


def main() -> None:
    from app.config import load_settings
    from app.pipeline.assign import Faces, match_known
    from app.pipeline.linkage import Seeds
    from app.pipeline.match import Known
    from app.services.assign import linkage_params

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url", required=True)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "faces-dev")
    ap.add_argument("--persons", default="0,100000")
    ap.add_argument("--queries", type=float, default=0.2)
    ap.add_argument("--padding", type=int, default=10000)
    ap.add_argument("--threshold", type=float, default=0.8)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    settings = load_settings(env_file=None)
    join = linkage_params(settings).join
    facenet, decide, labels, media = dev_faces(args.database_url, args.data)
    rng = np.random.default_rng(args.seed)
    is_query = rng.random(labels.size) < args.queries
    queries, known = np.flatnonzero(is_query), np.flatnonzero(~is_query)
    print(f"# {time.strftime('%Y-%m-%d')} {os.cpu_count()} cores; dev set: {labels.size} usable faces of "
          f"{labels.max() + 1} identities, {queries.size} as new faces (+{args.padding} synthetic); "
          f"FaceNet at {args.threshold}, {settings.embedder} join bound {join}", flush=True)
    for extra in (int(x) for x in args.persons.split(",") if x != ""):
        n_fake = extra * PER_PERSON
        fake_f = lookalike_persons(facenet, labels, extra + args.padding // PER_PERSON + 1, PER_PERSON, args.seed)
        fake_d = lookalike_persons(decide, labels, extra + args.padding // PER_PERSON + 1, PER_PERSON,
                                   args.seed + 1)
        pad = slice(n_fake, n_fake + args.padding)  # faces of persons not among the known ones
        k_f = np.vstack([facenet[known], fake_f[:n_fake]])
        k_d = np.vstack([decide[known], fake_d[:n_fake]])
        k_person = np.concatenate([labels[known], labels.max() + 1 + np.arange(n_fake) // PER_PERSON])
        k_media = np.concatenate([media[known], -1 - np.arange(n_fake)])
        new = Faces(np.vstack([facenet[queries], fake_f[pad]]), np.vstack([decide[queries], fake_d[pad]]),
                    np.concatenate([media[queries], -10_000_000 - np.arange(args.padding)]),
                    np.full(queries.size + args.padding, -1))
        del fake_f, fake_d
        seeds, persons = Seeds.of(k_d, k_person, k_media)
        bounds = np.full(new.media_ids.size, join)
        rows = np.arange(new.media_ids.size)
        order = np.argsort(k_person, kind="stable")

        def faces_of(wanted: np.ndarray) -> Known:
            at = order[np.isin(k_person[order], wanted)]
            return Known(k_f[at], k_person[at], k_media[at])

        started = time.perf_counter()
        exact = match_known(new, Faces(k_f, k_d, k_media, k_person), seeds, persons, args.threshold, bounds, {},
                            rows)[:queries.size]
        t_exact = time.perf_counter() - started
        started = time.perf_counter()
        large = match_known(new, Faces(k_f, k_d, k_media, k_person), seeds, persons, args.threshold, bounds, {},
                            rows, faces_of=faces_of)[:queries.size]
        t_large = time.perf_counter() - started
        differ = exact != large
        wrong = lambda m: int(((m >= 0) & (m != labels[queries])).sum())  # noqa: E731
        print(f"{persons.size:>7} known persons ({k_person.size} faces): exact matched {int((exact >= 0).sum())} "
              f"({wrong(exact)} wrong) in {t_exact:.1f} s; large-library path matched {int((large >= 0).sum())} "
              f"({wrong(large)} wrong) in {t_large:.1f} s; decisions differ for {int(differ.sum())} of "
              f"{queries.size} new faces ({int((differ & (exact >= 0) & (large >= 0)).sum())} to another person)",
              flush=True)


if __name__ == "__main__":
    main()
