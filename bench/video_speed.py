"""Video throughput: a camera-size clip made from dev photos, through the detection stage.

    python bench/video_speed.py [--seconds 60] [--size 1920x1080] [--fps 30] [--interval 1.0]

The clip (H.264, made with PyAV from dev photos: scenes of 5 s showing one to three people
at a size a filmed face has, drifting a few pixels per frame, with sensor-like noise so it
compresses and decodes like filmed video) is written to a temporary
folder. Then, in this order:
1. decode only: every frame decoded, none converted (the floor any sampling pays);
2. sampling: VideoReader.sample at VIDEO_FRAME_INTERVAL_SECONDS (decode + RGB of the samples);
3. raw models: the detector on each sampled frame as detection shrinks it, then FaceNet and
   SFace on the crops of its usable faces, in memory;
4. the detection stage: the clip registered in a fresh SQLite database and detect_pending()
   with the embedders (what --all does with a video): sampling, detection, embedding,
   tracks, thumbnails of the kept faces, and storing them.
Printed: frames per second decoded and sampled, the realtime factor (video seconds per
second of processing: above 1 is faster than real time), the stage over the sum of its parts,
faces found and kept, and the peak resident memory, with the date and the machine.
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
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.config import load_settings  # noqa: E402
from app.db import schema  # noqa: E402
from app.db.engine import make_engine, session_factory  # noqa: E402
from app.inference.registry import make_detector, make_encoder  # noqa: E402
from app.pipeline.analyze import describe_faces, detect_prepared, detection_input  # noqa: E402
from app.pipeline.video import VideoReader  # noqa: E402
from app.services.detect import analyze_options, detect_pending  # noqa: E402
from app.services.ingest import register_files  # noqa: E402
from tests.video_clips import Scene, Shot, write_clip  # noqa: E402


def scenes(data: Path, seconds: float, size: tuple[int, int]) -> list[Scene]:
    """Scenes of 5 s: 1, 2 or 3 people side by side, photos scaled to 60 % of the height."""
    w, h = size
    people = sorted(p for p in data.iterdir() if p.is_dir() and p.name != "group" and any(p.glob("*.jpg")))
    out, k = [], 0
    height = int(h * 0.6)
    while sum(s.seconds for s in out) < seconds:
        count = 1 + len(out) % 3
        shots = []
        for j in range(count):
            photo = sorted(people[k % len(people)].glob("*.jpg"))[0]
            k += 1
            x = int((j + 0.5) * w / count - height / 2)
            shots.append(Shot(photo, max(0, x), int(h * 0.2), height))
        out.append(Scene(min(5.0, seconds - sum(s.seconds for s in out)), shots))
    return out


def make_clip(clip: Path, data: Path, seconds: float, size: tuple[int, int], fps: int, grain: float) -> int:
    return write_clip(clip, scenes(data, seconds, size), size=size, fps=fps, grain=grain)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "faces-dev")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--size", default="1920x1080")
    ap.add_argument("--fps", type=int, default=30)
    ap.add_argument("--interval", type=float, default=None, help="default: VIDEO_FRAME_INTERVAL_SECONDS")
    ap.add_argument("--grain", type=float, default=7.0, help="sensor-like noise per frame (standard deviation)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    size = tuple(int(v) for v in args.size.lower().split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        settings = load_settings({}, env_file=None)
        if args.interval:
            settings = replace(settings, video_frame_interval_seconds=args.interval)
        clip = tmp / "clip.mp4"
        started = time.perf_counter()
        # made in a child process: the encoder's memory must not count as the stage's
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            frames = pool.apply(make_clip, (clip, args.data, args.seconds, size, args.fps, args.grain))
        made = time.perf_counter() - started
        print(f"# video_speed  {datetime.date.today()}  {platform.machine()}, {os.cpu_count()} cores, "
              f"Python {platform.python_version()}")
        print(f"clip: {size[0]}x{size[1]} H.264, {frames} frames at {args.fps} fps = {frames / args.fps:.1f} s, "
              f"{clip.stat().st_size / 1e6:.1f} MB (made in {made:.1f} s); sampling every "
              f"{settings.video_frame_interval_seconds:g} s")
        duration = frames / args.fps

        # 1. decode only
        started = time.perf_counter()
        with VideoReader(clip, settings.max_image_pixels) as video:
            decoded = sum(1 for _ in video._frames())
        t_decode = time.perf_counter() - started

        detector = make_detector(settings.detector, settings.model_threads)
        encoder = make_encoder(settings.embedder, settings.facenet, settings.model_threads,
                               settings.embed_batch_size, settings.embed_crop_margin, settings.embed_flip)
        detector.load()
        encoder.load()
        # 4. the detection stage (first, so the peak memory printed after it is its own)
        url = f"sqlite:///{tmp / 'faces.db'}"
        schema.upgrade(url)
        engine = make_engine(url)
        sessions = session_factory(engine)
        register_files(sessions, [clip])
        started = time.perf_counter()
        report = detect_pending(sessions, detector, replace(settings, database_url=url,
                                                              thumbnail_path=tmp / "thumbs"), encoder=encoder)
        t_stage = time.perf_counter() - started
        engine.dispose()
        assert report.failed == 0, report.failures

        stage_rss = peak_rss_mb()

        # 2. sampling (decode + RGB of the sampled frames), kept for the raw models
        started = time.perf_counter()
        with VideoReader(clip, settings.max_image_pixels) as video:
            samples = [f.rgb for f in video.sample(settings.video_frame_interval_seconds, settings.video_max_frames)]
        t_sample = time.perf_counter() - started

        # 3. raw models on the sampled frames
        opts = analyze_options(settings)
        prepared = [detection_input(rgb, opts) for rgb in samples]
        started = time.perf_counter()
        found = [detect_prepared(small, scale, detector, opts) for small, scale in prepared]
        t_detect = time.perf_counter() - started
        crops = []
        for rgb, faces in zip(samples, found):
            for f in describe_faces(rgb, faces, opts):
                if f.usable:
                    crops.append(encoder.prepare(rgb, f.face.box, list(f.face.landmarks)))
        started = time.perf_counter()
        for i in range(0, len(crops), settings.embed_batch_size):
            encoder.encode(crops[i:i + settings.embed_batch_size])
        t_embed = time.perf_counter() - started
        del samples, prepared

        n = len(found)
        parts = t_sample + t_detect + t_embed
        rows = [
            ("decode only (every frame)", t_decode, f"{decoded / t_decode:7.1f} frames/s", duration / t_decode),
            ("sampling (decode + RGB)", t_sample, f"{n / t_sample:7.1f} samples/s", duration / t_sample),
            ("raw detector on the samples", t_detect, f"{n / t_detect:7.1f} samples/s", duration / t_detect),
            (f"raw embedders ({len(crops)} faces)", t_embed, f"{len(crops) / t_embed:7.1f} faces/s",
             duration / t_embed),
            ("detection stage (--all's first half)", t_stage, f"{n / t_stage:7.1f} samples/s", duration / t_stage),
        ]
        print(f"{'step':<40}{'seconds':>9}  {'throughput':<20}{'realtime x':>11}")
        for name, secs, rate, rt in rows:
            print(f"{name:<40}{secs:9.2f}  {rate:<20}{rt:11.1f}")
        print(f"stage / (sampling + raw models) = {t_stage / parts:.2f}; {sum(len(f) for f in found)} faces in "
              f"{n} samples, {report.faces} kept (tracks' best)")
        print(f"peak RSS: {stage_rss:.0f} MB after the stage (models loaded), {peak_rss_mb():.0f} MB after the raw "
              "steps (which hold every sampled frame)")


if __name__ == "__main__":
    main()
