"""Embedding throughput: the --recognize embedding stage next to the raw model.

    python bench/embed_speed.py [--data ../shared/data/faces-dev] [--limit N]

Detection runs first (not timed) into a temporary SQLite database. Then:
1. raw: the same faces' crops prepared in memory, only the models (batches of EMBED_BATCH_SIZE);
2. stage: embed_pending() through the database (reads photos, crops, models, writes vectors).
Both models (FaceNet and the deciding one, SFace by default) in both measurements.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.config import load_settings  # noqa: E402
from app.db import schema  # noqa: E402
from app.db.engine import make_engine, session_factory  # noqa: E402
from app.inference.registry import make_detector  # noqa: E402
from app.inference.registry import make_encoder  # noqa: E402
from app.services.detect import detect_pending  # noqa: E402
from app.services.embed import embed_pending  # noqa: E402
from app.services.ingest import register_files  # noqa: E402
from bench.detect_speed import image_files, peak_rss_mb  # noqa: E402
from bench.pipeline_speed import raw_embedders  # noqa: E402


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
        encoder = make_encoder(settings.embedder, settings.facenet, settings.model_threads,
                               settings.embed_batch_size, settings.embed_crop_margin, settings.embed_flip)
        encoder.load()
        n, facenet, second = raw_embedders(url, settings, encoder)
        raw = facenet + second

        t0 = time.perf_counter()
        report = embed_pending(sessions, encoder, run)
        stage = time.perf_counter() - t0
        engine.dispose()
    print(f"{n} usable faces from {len(files)} images; {encoder.name}, batch {settings.embed_batch_size} "
          f"(raw: FaceNet {1000 * facenet / n:.1f} ms/face, second model {1000 * second / n:.1f} ms/face)")
    print(f"{'':<30}{'faces/s':>10}{'ms/face':>10}{'seconds':>10}")
    print(f"{'raw models (crops in memory)':<30}{n / raw:>10.1f}{1000 * raw / n:>10.1f}{raw:>10.1f}")
    print(f"{'embedding stage (database)':<30}{report.faces / stage:>10.1f}{1000 * stage / report.faces:>10.1f}{stage:>10.1f}")
    print(f"stage / raw throughput: {(report.faces / stage) / (n / raw):.2f}; peak RSS {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
