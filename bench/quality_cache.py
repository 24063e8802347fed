"""Embeddings of every face of a labelled folder (and optional strangers), cached for the
quality experiments (bench/quality_levers.py).

    python bench/quality_cache.py OUT.npz [--data ../shared/data/faces-dev]
                                  [--strangers ../shared/data/faces-strangers]

Runs the real ingest + detection into a temporary SQLite database, then embeds every
face (usable or not) with FaceNet CASIA (plain and mirrored) and SFace, and records which
face is each labelled photo's main face (the --evaluate rule).
"""
from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.config import load_settings  # noqa: E402
from app.db import schema  # noqa: E402
from app.db.engine import make_engine, session_factory  # noqa: E402
from app.db.models import Faces, MediaFile  # noqa: E402
from app.inference.registry import make_detector, make_embedder  # noqa: E402
from app.pipeline.align import aligned_crop  # noqa: E402
from app.pipeline.crop import face_crop, standardise  # noqa: E402
from app.pipeline.encode import parse_landmarks  # noqa: E402
from app.pipeline.decode import load_rgb  # noqa: E402
from app.repositories.evaluation import ScoredFace  # noqa: E402
from app.services.detect import detect_pending  # noqa: E402
from app.services.evaluate import _image_size, load_samples, main_face  # noqa: E402
from app.services.ingest import register_files  # noqa: E402
from app.types import Box  # noqa: E402
from sqlalchemy import select  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "faces-dev")
    ap.add_argument("--strangers", type=Path)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    settings = load_settings(env_file=None)
    samples = load_samples(args.data)
    identity = {str(s.path): s.identity for s in samples}
    if args.strangers:
        for p in sorted(args.strangers.iterdir()):
            if p.is_file() and p.suffix.lower() in (".jpg", ".jpeg", ".png"):
                identity[str(p.resolve())] = "stranger:" + p.stem
    paths = [Path(p) for p in identity]
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/cache.db"
        schema.upgrade(url)
        sessions = session_factory(make_engine(url))
        run = replace(settings, database_url=url, thumbnail_path=Path(tmp) / "thumbs")
        t = time.perf_counter()
        register_files(sessions, paths)
        detect_pending(sessions, make_detector(settings.detector, settings.model_threads), run)
        print(f"detection: {time.perf_counter() - t:.0f} s", file=sys.stderr)
        with sessions() as s:
            rows = s.execute(select(Faces.Id, MediaFile.FilePath, Faces.BoundingBox, Faces.Landmarks,
                                    Faces.IsUsable, Faces.Blur, Faces.Confidence)
                             .join(MediaFile, MediaFile.Id == Faces.MediaFileId).order_by(Faces.Id)).all()
    facenet = make_embedder("facenet-casia", settings.model_threads, 32)
    sface = make_embedder("sface", settings.model_threads, 32)
    by_path: dict[str, list] = {}
    for r in rows:
        by_path.setdefault(r.FilePath, []).append(r)
    out = {k: [] for k in ("face_id", "path", "identity", "main", "usable", "blur", "score", "short_side",
                           "facenet", "facenet_flip", "sface", "sface_flip")}
    times = {"facenet": 0.0, "sface": 0.0}
    for n, (path, faces) in enumerate(by_path.items()):
        image = load_rgb(Path(path), settings.max_image_pixels)
        w, h = _image_size(Path(path))
        main = main_face([ScoredFace(path, f.BoundingBox, None, None, True) for f in faces], w, h)
        crops = np.stack([face_crop(image, Box.from_json(f.BoundingBox), settings.embed_crop_margin, square=False)
                          for f in faces])
        aligned = np.stack([aligned_crop(image, parse_landmarks(f.Landmarks)) for f in faces])
        t = time.perf_counter()
        fn = facenet.embed(standardise(crops))
        fnf = facenet.embed(standardise(crops[:, :, ::-1]))
        times["facenet"] += time.perf_counter() - t
        t = time.perf_counter()
        sf = sface.embed(aligned)
        sff = sface.embed(np.ascontiguousarray(aligned[:, :, ::-1]))
        times["sface"] += time.perf_counter() - t
        for i, f in enumerate(faces):
            box = Box.from_json(f.BoundingBox)
            out["face_id"].append(f.Id)
            out["path"].append(path)
            out["identity"].append(identity.get(path) or "")
            out["main"].append(main is not None and f.BoundingBox == main.bounding_box)
            out["usable"].append(bool(f.IsUsable))
            out["blur"].append(f.Blur or 0.0)
            out["score"].append(f.Confidence or 0.0)
            out["short_side"].append(box.short_side)
            out["facenet"].append(fn[i])
            out["facenet_flip"].append(fnf[i])
            out["sface"].append(sf[i])
            out["sface_flip"].append(sff[i])
        if n % 500 == 0:
            print(f"{n}/{len(by_path)} photos", file=sys.stderr)
    n_faces = len(out["face_id"])
    print(f"{n_faces} faces; per face (both mirrored too): facenet {times['facenet'] / n_faces * 1000:.1f} ms, "
          f"sface {times['sface'] / n_faces * 1000:.1f} ms", file=sys.stderr)
    np.savez_compressed(args.out, **{k: np.asarray(v) for k, v in out.items()})


if __name__ == "__main__":
    main()
