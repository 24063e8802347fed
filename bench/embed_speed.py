"""Embedding throughput: the --recognize embedding stage next to the raw model.

    python bench/embed_speed.py [--data ../shared/data/faces-dev] [--limit N]

Detection runs first (not timed) into a temporary SQLite database. Then:
1. raw: the same faces' crops prepared in memory, only the model (batches of EMBED_BATCH_SIZE);
2. stage: embed_pending() through the database (reads photos, crops, model, writes vectors).
Prints faces/s of both, the ratio, and peak memory.
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
from app.inference.registry import make_detector  # noqa: E402
from app.inference.registry import make_embedder  # noqa: E402
from app.pipeline.crop import face_crop, standardise  # noqa: E402
from app.pipeline.decode import load_rgb  # noqa: E402
from app.pipeline.faces import Box  # noqa: E402
from app.repositories.evaluation import all_faces  # noqa: E402
from app.services.detect import detect_pending  # noqa: E402
from app.services.embed import embed_pending  # noqa: E402
from app.services.ingest import register_files  # noqa: E402
from bench.detect_speed import image_files, peak_rss_mb  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "faces-dev")
    ap.add_argument("--limit", type=int, default=600)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    settings = load_settings(env_file=None)
    files = image_files(args.data, args.limit)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        schema.upgrade(url)
        engine = make_engine(url)
        sessions = session_factory(engine)
        run = replace(settings, database_url=url, thumbnail_path=Path(tmp) / "thumbs")
        register_files(sessions, files)
        detect_pending(sessions, make_detector(settings.detector, settings.model_threads), run)
        with sessions() as s:
            faces = [f for f in all_faces(s) if f.usable]
        embedder = make_embedder(settings.embedder, settings.model_threads, settings.embed_batch_size)
        embedder.load()

        crops = []
        for f in faces:
            image = load_rgb(Path(f.file_path), settings.max_image_pixels)
            crops.append(face_crop(image, Box.from_json(f.bounding_box), settings.embed_crop_margin, square=False))
        batch = standardise(np.stack(crops))
        embedder.embed(batch[:8])  # warm-up
        t0 = time.perf_counter()
        embedder.embed(batch)
        raw = time.perf_counter() - t0

        t0 = time.perf_counter()
        report = embed_pending(sessions, embedder, run)
        stage = time.perf_counter() - t0
        engine.dispose()
    n = len(faces)
    print(f"{n} usable faces from {len(files)} images; embedder {embedder.name}, batch {settings.embed_batch_size}")
    print(f"{'':<30}{'faces/s':>10}{'ms/face':>10}{'seconds':>10}")
    print(f"{'raw model (crops in memory)':<30}{n / raw:>10.1f}{1000 * raw / n:>10.1f}{raw:>10.1f}")
    print(f"{'embedding stage (database)':<30}{report.faces / stage:>10.1f}{1000 * stage / report.faces:>10.1f}{stage:>10.1f}")
    print(f"stage / raw throughput: {(report.faces / stage) / (n / raw):.2f}; peak RSS {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
