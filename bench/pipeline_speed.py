"""Pipeline speed around the models: each stage end to end next to its raw models.

    python bench/pipeline_speed.py [--data ../shared/data/faces-dev] [--limit N] [--repeat 2]
                                   [--camera N] [--database-url postgresql://user@host:5432/postgres]

First a warm-up: --db over 4 images, which starts the detection stage's lane processes
(DETECT_PROCESSES; a worker starts them once and keeps them, as it loads its models once).
Then per repetition, in this order (so a burst of load from another process hits every measurement
alike; the best of the repetitions is reported, every run is listed):
1. raw detector: the images decoded as detection decodes them and shrunk to DETECT_MAX_SIDE
   first, in memory; then only the detector (its own pre- and post-processing included);
2. --db: ingest into a fresh database, then detect_pending() (the detection stage, timed);
3. embedding stage: embed_pending() on that database (what --recognize does before assigning);
4. raw embedders: the same usable faces' crops in memory, FaceNet then SFace alone, in batches
   of EMBED_BATCH_SIZE;
5. --all: a fresh database, detect_and_recognize() (detection embedding on the way, then
   recognition: the embedding stage and the assignment).
Ratios: --db throughput over the raw detector's, and --all time over the sum of the raw models'
times. The database is SQLite in a temporary folder, or with --database-url a new database on
that PostgreSQL server for each run (dropped afterwards). --camera N makes N 12-megapixel JPEGs
(4000x3000, quality 90) from dev photos, as bench/decode_once.py does, and measures on those.
Printed with the date, the machine, and the CPU time other processes used during each run (the
machine has 2 cores; anything above a few percent means the numbers are upper bounds).
"""
from __future__ import annotations

import argparse
import datetime
import logging
import multiprocessing
import os
import platform
import resource
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np
from sqlalchemy import select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.config import load_settings  # noqa: E402
from app.db import schema  # noqa: E402
from app.db.engine import make_engine, session_factory  # noqa: E402
from app.db.models import Faces  # noqa: E402
from app.inference.registry import make_detector, make_encoder  # noqa: E402
from app.pipeline.analyze import detect_prepared, detection_input  # noqa: E402
from app.pipeline.crop import standardise  # noqa: E402
from app.pipeline.decode import load, load_rgb  # noqa: E402
from app.pipeline.encode import parse_landmarks  # noqa: E402
from app.repositories.recognition import faces_to_embed  # noqa: E402
from app.services.detect import analyze_options, detect_pending, lane_detector, lanes_for  # noqa: E402
from app.services.embed import embed_pending  # noqa: E402
from app.services.ingest import register_files  # noqa: E402
from app.services.run import detect_and_recognize  # noqa: E402
from app.types import Box  # noqa: E402
from bench.detect_speed import image_files  # noqa: E402


def cpu_ticks() -> tuple[float, float]:
    """(busy, all) core-seconds of the whole machine since boot, from /proc/stat."""
    try:
        fields = [float(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    except OSError:
        return 0.0, 0.0
    hz = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + fields[4]
    return (sum(fields) - idle) / hz, sum(fields) / hz


def wait_quiet(max_wait: float = 180.0, busy_share: float = 0.1) -> float:
    """Wait (up to max_wait seconds) until the machine has been nearly idle for 3 s, so
    the repetition does not start during another process's burst; the busy share seen last."""
    deadline = time.monotonic() + max_wait
    while True:
        b0, a0 = cpu_ticks()
        time.sleep(3.0)
        b1, a1 = cpu_ticks()
        share = (b1 - b0) / max(a1 - a0, 1e-9)
        if share <= busy_share or time.monotonic() > deadline:
            return share


def own_cpu() -> dict[int, float]:
    """Core-seconds used so far by this process and by each of its children alive now (the
    detection stage's lane processes), by pid."""
    hz = os.sysconf("SC_CLK_TCK")
    out = {0: time.process_time()}
    for child in multiprocessing.active_children():
        try:
            fields = Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()
            out[child.pid] = (float(fields[11]) + float(fields[12])) / hz  # utime, stime
        except (OSError, IndexError, ValueError):
            pass
    return out


def lane_peaks() -> str:
    """The peak memory of each lane process alive now, for the summary line."""
    peaks = []
    for child in multiprocessing.active_children():
        try:
            status = Path(f"/proc/{child.pid}/status").read_text()
        except OSError:
            continue
        peaks += [int(line.split()[1]) / 1024 for line in status.splitlines() if line.startswith("VmHWM:")]
    return f"; lane processes {', '.join(f'{p:.0f}' for p in peaks)} MB" if peaks else ""


class Run:
    """Wall time of a block, and the core-seconds other processes (not this one or its
    lane processes) used meanwhile."""

    def __enter__(self) -> "Run":
        self.busy0, _ = cpu_ticks()
        self.own0 = own_cpu()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.t0
        busy, _ = cpu_ticks()
        own = sum(v - self.own0.get(pid, 0.0) for pid, v in own_cpu().items())
        self.others = max(0.0, (busy - self.busy0) - own)


@contextmanager
def fresh_database(tmp: Path, server: str | None, name: str):
    """A new, migrated database: SQLite under tmp, or a new database on the server."""
    if not server:
        url = f"sqlite:///{tmp / (name + '.db')}"
        schema.upgrade(url)
        yield url
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    db = f"bench_pipeline_{os.getpid()}_{name}"
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{db}"'))
        c.execute(text(f'CREATE DATABASE "{db}"'))
    url = make_url(server).set(database=db).render_as_string(hide_password=False)
    try:
        schema.upgrade(url)
        yield url
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
        admin.dispose()


def camera_images(data: Path, out: Path, count: int) -> list[Path]:
    """`count` 4000x3000 JPEGs q90 from dev photos: whole group photos scaled to the canvas,
    and grids of 250 px LFW photos upscaled to tiles of 1000, 750, 500 and 250 px (faces from
    about 100 to 400 px on their shorter side, many too small for the reduced decode)."""
    from PIL import Image

    from bench.decode_once import pack

    groups = sorted((data / "group").glob("*.jpg"))
    lfw = [p for d in sorted(data.iterdir()) if d.is_dir() and d.name != "group" for p in sorted(d.glob("*.jpg"))[:2]]
    paths = []
    for i in range(count):
        if i % 3 == 0:
            tiles = [(Image.open(groups[(i // 3) % len(groups)]).convert("RGB"), 3000, True)]
        else:
            pick = [lfw[(i * 33 + k) % len(lfw)] for k in range(33)]
            sizes = [1000] * 4 + [750] * 5 + [500] * 8 + [250] * 16
            tiles = [(Image.open(p).convert("RGB"), s, True) for p, s in zip(pick, sizes)]
        canvas, _ = pack((4000, 3000), tiles)
        path = out / f"camera-{i:03d}.jpg"
        canvas.save(path, quality=90)
        paths.append(path)
    return paths


def raw_detector(files: list[Path], settings, detector, lanes: int = 1) -> float:
    """Seconds of the detector alone over the images (decoded and shrunk beforehand), one
    image per call: on this thread, or as the detection stage runs it, in `lanes` threads
    side by side, each call on the stage's lane detector (`lane_detector`)."""
    opts = analyze_options(settings)
    ready = [detection_input(load(p, opts.max_pixels, opts.max_side).rgb, opts) for p in files]
    if lanes > 1:
        detector = lane_detector(detector, settings)
        detector.load()
    detect_prepared(*ready[0], detector, opts)  # warm-up
    with ThreadPoolExecutor(lanes) as pool, Run() as r:
        list(pool.map(lambda p: detect_prepared(*p, detector, opts), ready))
    return r.seconds


def raw_embedders(url: str, settings, encoder) -> tuple[int, float, float]:
    """(faces, FaceNet seconds, SFace seconds) on the usable faces stored in the database,
    cropped as the embedding stage crops them."""
    engine = make_engine(url)
    with session_factory(engine)() as s:
        ids = list(s.scalars(select(Faces.Id).where(Faces.IsUsable.is_(True))))
        faces = faces_to_embed(s, ids)
    engine.dispose()
    boxes, aligned, image, path = [], [], None, None
    for f in faces:
        if f.file_path != path:
            path, image = f.file_path, load_rgb(Path(f.file_path), settings.max_image_pixels)
        points = parse_landmarks(f.landmarks) if encoder.second else None
        crop = encoder.prepare(image, Box.from_json(f.bounding_box), points)
        boxes.append(crop.box_crop)
        aligned.append(crop.aligned)
    image = None
    size = settings.embed_batch_size
    chunks = [slice(i, i + size) for i in range(0, len(faces), size)]
    box_batches = [np.stack(boxes[c]) for c in chunks]
    encoder.facenet.embed(standardise(box_batches[0][:4]))  # warm-up
    with Run() as r1:
        for b in box_batches:
            encoder.facenet.embed(standardise(b))
    second = 0.0
    if encoder.second is not None:
        aligned_batches = [np.ascontiguousarray(np.stack(aligned[c])) for c in chunks]
        encoder.second.embed(aligned_batches[0][:4])
        with Run() as r2:
            for b in aligned_batches:
                encoder.second.embed(b)
        second = r2.seconds
    return len(faces), r1.seconds, second


def warm_up(files, settings, tmp: Path, server, detector) -> float:
    """Seconds of a first `--db` over a few images: it starts the lane processes
    (DETECT_PROCESSES), which a worker does once and keeps, as it loads its models once;
    the raw detector is timed loaded and warmed up too."""
    with fresh_database(tmp, server, "warm") as url:
        engine = make_engine(url)
        sessions = session_factory(engine)
        register_files(sessions, files)
        with Run() as r:
            detect_pending(sessions, detector, replace(settings, database_url=url, thumbnail_path=tmp / "thumbs-warm"))
        engine.dispose()
    return r.seconds


def one_repetition(files, settings, tmp: Path, server, rep: int, detector, encoder, detect_only: bool,
                   quiet_wait: float) -> dict:
    out: dict = {"busy before": wait_quiet(quiet_wait)}
    with Run() as r:
        out["raw detector"] = raw_detector(files, settings, detector)
    out["others raw detector"] = r.others
    with Run() as r:
        out["raw detector, lanes"] = raw_detector(files, settings, detector, lanes_for(settings))
    out["others raw detector, lanes"] = r.others
    thumbs = tmp / f"thumbs-{rep}"
    with fresh_database(tmp, server, f"db{rep}") as url:
        engine = make_engine(url)
        sessions = session_factory(engine)
        register_files(sessions, files)
        run = replace(settings, database_url=url, thumbnail_path=thumbs / "db")
        with Run() as r:
            report = detect_pending(sessions, detector, run)
        out["--db"], out["others --db"], out["images"], out["faces"] = r.seconds, r.others, report.images, report.faces
        out["db steps"] = report.timings
        if detect_only:
            return out
        with Run() as r:
            embedded = embed_pending(sessions, encoder, run)
        out["embedding stage"], out["others embedding stage"], out["embedded"] = r.seconds, r.others, embedded.faces
        engine.dispose()
        n, facenet, sface = raw_embedders(url, settings, encoder)
        out["raw FaceNet"], out["raw SFace"], out["usable"] = facenet, sface, n
    with fresh_database(tmp, server, f"all{rep}") as url:
        engine = make_engine(url)
        sessions = session_factory(engine)
        register_files(sessions, files)
        run = replace(settings, database_url=url, thumbnail_path=thumbs / "all")
        with Run() as r:
            both = detect_and_recognize(sessions, detector, encoder, run)
        out["--all"], out["others --all"] = r.seconds, r.others
        out["all embedded at detection"] = both.detected.embedded
        out["all embedded after"] = both.recognized.embed.faces if both.recognized else 0
        out["all steps"] = both.detected.timings
        engine.dispose()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "faces-dev")
    ap.add_argument("--limit", type=int, help="only the first N images")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--camera", type=int, default=0, help="measure on N 12-megapixel JPEGs made from dev photos")
    ap.add_argument("--database-url", help="a PostgreSQL server URL: each run gets a new database on it")
    ap.add_argument("--detect-only", action="store_true", help="only the raw detector and --db")
    ap.add_argument("--quiet-wait", type=float, default=180.0,
                    help="before each repetition, wait up to this many seconds for a nearly idle machine")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    settings = load_settings(env_file=None)
    detector = make_detector(settings.detector, settings.model_threads)
    detector.load()
    encoder = make_encoder(settings.embedder, settings.facenet, settings.model_threads, settings.embed_batch_size,
                           settings.embed_crop_margin, settings.embed_flip)
    encoder.load()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if args.camera:
            (tmp / "camera").mkdir()
            files = camera_images(args.data, tmp / "camera", args.camera)
            what = f"{len(files)} camera JPEGs 4000x3000 made from {args.data}"
        else:
            files = image_files(args.data, args.limit)
            what = f"{len(files)} images from {args.data}"
        load1 = os.getloadavg()
        warm = warm_up(files[:4], settings, tmp, args.database_url, detector)
        runs = [one_repetition(files, settings, tmp, args.database_url, rep, detector, encoder, args.detect_only,
                               args.quiet_wait)
                for rep in range(args.repeat)]
    mem = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    lanes_mem = lane_peaks()
    print(f"{datetime.datetime.now():%Y-%m-%d %H:%M}; {platform.node()}: {os.cpu_count()} CPUs "
          f"({platform.processor() or platform.machine()}), {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GB, "
          f"load average before {load1[0]:.2f}, after {os.getloadavg()[0]:.2f}")
    print(f"{what}; database {'PostgreSQL' if args.database_url else 'SQLite'}; detector {settings.detector} "
          f"(DETECT_MAX_SIDE {settings.detect_max_side}), embedders {encoder.name}, MODEL_THREADS "
          f"{settings.model_threads}, DETECT_PROCESSES {str(settings.detect_processes).lower()}, "
          f"DETECT_BATCH_SIZE {settings.detect_batch_size}; best of {args.repeat}")
    print(f"warm-up: --db on 4 images (starts the lane processes, kept for the runs) {warm:.1f} s")
    keys = [k for k in ("raw detector", "raw detector, lanes", "--db", "embedding stage", "raw FaceNet", "raw SFace", "--all") if k in runs[0]]
    best = {k: min(r[k] for r in runs) for k in keys}
    r0 = runs[0]
    images, usable = r0["images"], r0.get("usable", 0)
    print(f"{images} images, {r0['faces']} faces" + (f", {usable} usable (embedded)" if usable else ""))
    print(f"\n{'':<34}{'seconds':>9}{'per second':>12}   every run (s) [others' CPU, core-s]")

    def row(label, key, count, unit):
        every = ", ".join(f"{r[key]:.1f}" + (f" [{r['others ' + key]:.1f}]" if 'others ' + key in r else "")
                          for r in runs)
        print(f"{label:<34}{best[key]:>9.1f}{count / best[key]:>8.1f} {unit:<4}  {every}")

    row("raw detector (in memory)", "raw detector", images, "img")
    row(f"raw detector, {lanes_for(settings)} lanes (as --db)", "raw detector, lanes", images, "img")
    row("--db (detection stage)", "--db", images, "img")
    print(f"\n--db / raw detector throughput: {best['raw detector'] / best['--db']:.2f} (target >= 0.8); "
          "each run: " + ", ".join(f"{r['raw detector'] / r['--db']:.2f}" for r in runs))
    print(f"--db / raw detector run as --db runs it ({lanes_for(settings)} lanes side by side, "
          f"MODEL_THREADS or 1 thread each): {best['raw detector, lanes'] / best['--db']:.2f}; each run: "
          + ", ".join(f"{r['raw detector, lanes'] / r['--db']:.2f}" for r in runs))
    steps = ", ".join(f"{k} {v:.1f}" for k, v in r0["db steps"].items())
    print(f"--db steps (s, first run, summed over the lanes): {steps}")
    if args.detect_only:
        print(f"peak RSS {mem:.0f} MB{lanes_mem}")
        return
    row("raw FaceNet (crops in memory)", "raw FaceNet", usable, "face")
    if best["raw SFace"]:
        row("raw SFace (crops in memory)", "raw SFace", usable, "face")
    row("embedding stage (after --db)", "embedding stage", usable, "face")
    row("--all (detect, embed, assign)", "--all", images, "img")
    raw_sum = best["raw detector"] + best["raw FaceNet"] + best["raw SFace"]
    print(f"\nembedding stage / raw embedders time: {best['embedding stage'] / (best['raw FaceNet'] + best['raw SFace']):.2f}")
    print(f"--all / (raw detector + raw FaceNet + raw SFace) time: {best['--all']:.1f} / {raw_sum:.1f} = "
          f"{best['--all'] / raw_sum:.2f} (target <= 1.25)")
    print(f"--all: {r0['all embedded at detection']} faces embedded at detection, "
          f"{r0['all embedded after']} by the embedding stage after it")
    steps = ", ".join(f"{k} {v:.1f}" for k, v in r0["all steps"].items())
    print(f"--all detection steps (s, first run): {steps}")
    print(f"peak RSS {mem:.0f} MB{lanes_mem}")


if __name__ == "__main__":
    main()
