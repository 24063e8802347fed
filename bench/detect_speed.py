"""Detection throughput: the pipeline (--db) next to the raw detector on the same images.

    python bench/detect_speed.py [--data ../shared/data/faces-dev] [--database-url URL]
                                 [--limit N] [--max-sides 640,1024,1280,1600,0]

1. raw: images decoded into memory first, then only resize + detector (no DB, no file I/O);
2. pipeline: the same images through --ingest and --db into a fresh database (SQLite in a
   temporary folder unless --database-url names an empty PostgreSQL database);
3. optionally, single-person recall and speed for several DETECT_MAX_SIDE values (0 = native).
Prints images/s, faces/s, the pipeline/raw ratio and peak memory.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.config import load_settings  # noqa: E402
from app.db import schema  # noqa: E402
from app.db.engine import make_engine, session_factory  # noqa: E402
from app.inference.registry import make_detector  # noqa: E402
from app.pipeline.analyze import detect_in_image  # noqa: E402
from app.pipeline.decode import load_rgb  # noqa: E402
from app.services.detect import analyze_options, detect_pending  # noqa: E402
from app.services.ingest import IMAGE_EXTENSIONS, ingest_folder  # noqa: E402


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def image_files(data: Path, limit: int | None) -> list[Path]:
    files = sorted(p for p in data.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
    return files[:limit] if limit else files


def raw_speed(files: list[Path], settings, max_side: int) -> tuple[float, int, int, list[int]]:
    opts = analyze_options(settings)
    opts = type(opts)(**{**opts.__dict__, "max_side": max_side or 10**9})
    detector = make_detector(settings.detector, settings.model_threads)
    detector.load()
    images = [load_rgb(p, opts.max_pixels) for p in files]
    detect_in_image(images[0], detector, opts)  # warm-up
    t0 = time.perf_counter()
    counts = [len(detect_in_image(img, detector, opts)) for img in images]
    return time.perf_counter() - t0, len(images), sum(counts), counts


def pipeline_speed(files: list[Path], data: Path, settings, url: str | None) -> tuple[float, int, int]:
    with tempfile.TemporaryDirectory() as tmp:
        link_root = Path(tmp) / "photos"
        for p in files:  # symlinks: the pipeline reads the real files
            target = link_root / p.relative_to(data)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(p)
        db_url = url or f"sqlite:///{tmp}/bench.db"
        schema.upgrade(db_url)
        engine = make_engine(db_url)
        sessions = session_factory(engine)
        ingest_folder(sessions, link_root)
        run_settings = type(settings)(**{**settings.__dict__, "database_url": db_url,
                                         "thumbnail_path": Path(tmp) / "thumbs"})
        detector = make_detector(settings.detector, settings.model_threads)
        detector.load()
        t0 = time.perf_counter()
        report = detect_pending(sessions, detector, run_settings)
        seconds = time.perf_counter() - t0
        engine.dispose()
        return seconds, report.images, report.faces


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "faces-dev")
    ap.add_argument("--database-url", help="an EMPTY database for the pipeline run (default: temporary SQLite)")
    ap.add_argument("--limit", type=int, help="only the first N images")
    ap.add_argument("--max-sides", default="", help="comma list of DETECT_MAX_SIDE values to sweep (0 = native)")
    args = ap.parse_args()
    import logging

    logging.basicConfig(level=logging.WARNING)
    settings = load_settings(env_file=None)
    files = image_files(args.data, args.limit)
    print(f"{len(files)} images from {args.data}; detector {settings.detector}, "
          f"DETECT_MAX_SIDE {settings.detect_max_side}, {os.cpu_count()} CPUs")

    raw_s, n, faces, _ = raw_speed(files, settings, settings.detect_max_side)
    pipe_s, pn, pfaces = pipeline_speed(files, args.data, settings, args.database_url)
    print(f"{'':<28}{'images/s':>10}{'faces/s':>10}{'seconds':>10}")
    print(f"{'raw detector (in memory)':<28}{n / raw_s:>10.1f}{faces / raw_s:>10.1f}{raw_s:>10.1f}")
    print(f"{'pipeline (--db)':<28}{pn / pipe_s:>10.1f}{pfaces / pipe_s:>10.1f}{pipe_s:>10.1f}")
    print(f"pipeline / raw throughput: {(pn / pipe_s) / (n / raw_s):.2f}; peak RSS {peak_rss_mb():.0f} MB")

    if args.max_sides:
        singles = [i for i, p in enumerate(files) if p.parent.name != "group"]
        print(f"\n{'DETECT_MAX_SIDE':<16}{'single-person with a face':>28}{'faces':>8}{'ms/image':>10}")
        for side in (int(s) for s in args.max_sides.split(",")):
            secs, n, faces, counts = raw_speed(files, settings, side)
            hit = sum(1 for i in singles if counts[i] > 0)
            label = str(side) if side else "native"
            print(f"{label:<16}{hit:>20}/{len(singles):<7}{faces:>8}{1000 * secs / n:>10.1f}")


if __name__ == "__main__":
    main()
