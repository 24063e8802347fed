"""Decode once: embed from the image decoded for detection instead of decoding the photo again.

    python bench/decode_once.py [--data ../shared/data/faces-dev] [--repeat 5] [--threads 1,0]

Builds camera-size JPEGs (12 MP 4000x3000 and 24 MP 6000x4000, quality 90) from real dev photos
in a temporary folder: whole photos scaled to the canvas, a grid of 250 px LFW photos upscaled,
and a mosaic of the largest dev photos shrunk (never enlarged), so its faces keep real detail at
full size. Per image (median of --repeat runs, per MODEL_THREADS value) it times: the full decode
the embedding stage does today (load_rgb), the reduced decode detection does (load, at_least =
DETECT_MAX_SIDE, JPEG draft mode), detection (analyze_image) on the reduced image, the crops, and
the embedding model. Quality: per usable face, cosine between the embedding of the crop cut from
the full decode and of the crop cut from the reduced decode (box scaled to its pixels).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.config import load_settings  # noqa: E402
from app.inference.registry import make_detector  # noqa: E402
from app.inference.registry import make_embedder  # noqa: E402
from app.pipeline.analyze import analyze_image  # noqa: E402
from app.pipeline.crop import face_crop  # noqa: E402
from app.pipeline.decode import load, load_rgb  # noqa: E402
from app.types import Box  # noqa: E402
from app.services.detect import analyze_options  # noqa: E402
from app.pipeline.crop import l2_normalise, standardise  # noqa: E402

SIZES = {"12MP": (4000, 3000), "24MP": (6000, 4000)}
HIRES = ["Angelina_Jolie/16.jpg", "Angelina_Jolie/21.jpg", "Barack_Obama/03.jpg", "Joseph_Biden/06.jpg",
         "Angelina_Jolie/17.jpg", "Barack_Obama/04.jpg", "Alex_Lacamoire/03.jpg", "Angelina_Jolie/18.jpg"]


def pack(size, tiles):
    """Shelf-pack (image, wanted height, may_enlarge) tiles onto a grey canvas; returns the
    canvas and each placed tile's (x, y, w, h, full px per source px)."""
    canvas, placed, x, y, row = Image.new("RGB", size, (128, 128, 128)), [], 0, 0, 0
    for img, height, enlarge in tiles:
        s = min(height / img.height, size[0] / img.width, size[1] / img.height)
        s = s if enlarge else min(s, 1.0)
        w, h = round(img.width * s), round(img.height * s)
        if x + w > size[0]:
            x, y, row = 0, y + row, 0
        if y + h > size[1]:
            continue
        canvas.paste(img.resize((w, h), Image.Resampling.LANCZOS), (x, y))
        placed.append((x, y, w, h, s))
        x, row = x + w, max(row, h)
    return canvas, placed


def make_images(data: Path, out: Path):
    rgb = lambda p: Image.open(data / p).convert("RGB")  # noqa: E731
    lfw = [rgb(p.relative_to(data)) for d in sorted(data.iterdir()) if d.is_dir()
           for p in sorted(d.glob("*.jpg"))[:1] if Image.open(p).size == (250, 250)]
    for label, (W, H) in SIZES.items():
        k = W / 4000
        sets = {"portrait": [(rgb("Angelina_Jolie/18.jpg"), H, True)],
                "couple": [(rgb("group/deepface_couple.jpg"), H, True)],
                "obama-biden": [(rgb("group/fr_knn_test_obama_and_biden.jpg"), H, True)],
                "lfw-grid": [(im, round(t * k), True) for t, n in ((1000, 4), (750, 5), (500, 8), (250, 16))
                             for im in lfw[:n]],
                "hires-mosaic": [(rgb(p), round(t * k), False) for t in (1500, 1000, 500) for p in HIRES]}
        for name, tiles in sets.items():
            canvas, placed = pack((W, H), tiles)
            path = out / f"{label}-{name}.jpg"
            canvas.save(path, quality=90)
            yield label, name, path, placed


def embed_crops(embedder, crops: np.ndarray, flip: bool) -> np.ndarray:
    """FaceNet vectors of 160x160 uint8 crops, as the embedding stage makes them (no flip here)."""
    assert not flip
    return l2_normalise(embedder.embed(standardise(np.ascontiguousarray(crops))))


def timed(fn, repeat):
    times, result = [], fn()  # warm-up
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(1000 * (time.perf_counter() - t0))
    return statistics.median(times), result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "faces-dev")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", default="1,0", help="MODEL_THREADS values to time (0 = onnxruntime default)")
    args = ap.parse_args()
    settings = load_settings(environ={}, env_file=None)
    opts, margin, mp = analyze_options(settings), settings.embed_crop_margin, settings.max_image_pixels
    threads = [int(t) for t in args.threads.split(",")]
    models = {t: (make_detector("retinaface-mobilenet", t), make_embedder("facenet-casia", t)) for t in threads}
    print("Test images are real dev photos scaled onto camera-size canvases and saved as JPEG q90 (decode cost")
    print("depends on pixel count and JPEG data, not content). 'lost' = reduced px per source px < 1, i.e. the")
    print("reduced decode really dropped detail of that face (upscaled faces lose nothing until then).\n")
    print(f"{'image':<22}{'thr':>4}{'faces':>6}{'full dec':>9}{'red dec':>8}{'reduced':>11}{'detect':>8}"
          f"{'crop':>6}{'emb/face':>9}{'embed':>7}  [ms; crop from full]")
    quality, summary = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for label, name, path, placed in make_images(args.data, Path(tmp)):
            W, H = SIZES[label]
            for t, (detector, embedder) in models.items():
                full_ms, full = timed(lambda: load_rgb(path, mp), args.repeat)
                red_ms, red = timed(lambda: load(path, mp, at_least=settings.detect_max_side), args.repeat)
                orig = (red.width, red.height)
                det_ms, found = timed(lambda: analyze_image(red.rgb, detector, opts, orig), args.repeat)
                boxes = [f.face.box for f in found if f.usable]
                crop_ms, crops = timed(lambda: [face_crop(full, b, margin, square=False) for b in boxes], args.repeat)
                emb_ms, vec_full = (0.0, None)
                if boxes:
                    emb_ms, vec_full = timed(lambda: embed_crops(embedder, np.stack(crops), False), args.repeat)
                rh, rw = red.rgb.shape[:2]
                per_face = emb_ms / max(1, len(boxes))
                print(f"{label + '-' + name:<22}{t:>4}{len(boxes):>6}{full_ms:>9.0f}{red_ms:>8.0f}"
                      f"{f'{rw}x{rh}':>11}{det_ms:>8.0f}{crop_ms:>6.1f}{per_face:>9.1f}{emb_ms:>7.0f}")
                work = red_ms + det_ms + full_ms + crop_ms + emb_ms
                summary.append((label + "-" + name, t, full_ms, 100 * full_ms / work, len(boxes)))
            if not boxes:
                continue
            sx, sy = rw / W, rh / H
            small = [Box(b.x * sx, b.y * sy, b.w * sx, b.h * sy) for b in boxes]
            red_crops = [face_crop(red.rgb, b, margin, square=False) for b in small]
            vec_red = embed_crops(embedder, np.stack(red_crops), False)
            vec_flip = embed_crops(embedder, np.stack(crops)[:, :, ::-1], False)  # yardstick: mirrored full crop
            for b, s, vf, vr, vm in zip(boxes, small, vec_full, vec_red, vec_flip):
                cx, cy = b.x + b.w / 2, b.y + b.h / 2
                up = next((u for x, y, w, h, u in placed if x <= cx < x + w and y <= cy < y + h), 1.0)
                quality.append((label + "-" + name, s.short_side, up * sx, float(vf @ vr), float(vf @ vm)))

    print("\nWhat decoding once saves (work = reduced decode + detect + full decode + crops + embed today):")
    for name, t, ms, pct, n in summary:
        print(f"  {name:<20} threads {t}, {n:>2} faces: second full decode costs {ms:4.0f} ms, "
              f"i.e. {pct:4.1f} % of the detect+embed work")

    print("\nEmbedding agreement, crop from reduced decode vs full decode (cosine; match threshold is 0.8):")
    print(f"{'image':<22}{'faces':>6}{'face px (reduced)':>19}{'lost':>6}{'cos min':>9}{'cos median':>11}")
    for name in dict.fromkeys(q[0] for q in quality):
        rows = [q for q in quality if q[0] == name]
        px, cos = [r[1] for r in rows], [r[3] for r in rows]
        print(f"{name:<22}{len(rows):>6}{f'{min(px):.0f}-{max(px):.0f}':>19}{sum(r[2] < 1 for r in rows):>6}"
              f"{min(cos):>9.4f}{statistics.median(cos):>11.4f}")
    print("\nBy face size; 'flip median' = cosine between the full crop and its mirror image, a yardstick for a")
    print("change that does not alter identity (EMBED_FLIP averages the two).")
    print(f"{'face short side, reduced px':<30}{'faces':>6}{'lost':>6}{'cos min':>9}{'cos median':>11}"
          f"{'min (lost only)':>17}{'flip median':>13}")
    for lo, hi in ((0, 40), (40, 60), (60, 100), (100, 160), (160, 10**6)):
        rows = [q for q in quality if lo <= q[1] < hi]
        lost = [q[3] for q in rows if q[2] < 1]
        if rows:
            cos = [q[3] for q in rows]
            print(f"{f'{lo}-{hi}' if hi < 10**6 else f'>= {lo}':<30}{len(rows):>6}{len(lost):>6}{min(cos):>9.4f}"
                  f"{statistics.median(cos):>11.4f}{min(lost) if lost else float('nan'):>17.4f}"
                  f"{statistics.median(q[4] for q in rows):>13.4f}")


if __name__ == "__main__":
    main()
