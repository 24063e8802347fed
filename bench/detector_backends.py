"""Detector backends side by side: RetinaFace MobileNet (default) vs ResNet50 (retina-face).

    TF_USE_LEGACY_KERAS=1 python bench/detector_backends.py [--sizes 640,1024] [--runs 5] [--random-resnet]

The ResNet50 backend needs `pip install -e '.[resnet50]'` and its weights, which download
on first use. Without them, `--random-resnet` builds the same network with random weights:
its forward pass costs the same, so the speed is real (the detections are not, and the
package's pure-Python post-processing, which is slow on random outputs, is not timed).
Prints milliseconds per image of the network's forward pass at each size. retina-face needs
TF_USE_LEGACY_KERAS=1 (tf-keras) with TensorFlow 2.16+.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.inference.retinaface_onnx import MEAN_BGR, MobileNetRetinaFace  # noqa: E402


def best_ms(fn, runs: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * min(times)


def mobilenet_forward(size: tuple[int, int]):
    det = MobileNetRetinaFace()
    det.load()
    h, w = size
    x = np.random.default_rng(0).integers(0, 255, (1, h, w, 3)).astype(np.float32)[..., ::-1] - MEAN_BGR
    x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    return lambda: det._session.run(None, {det._input: x})


def resnet_forward(size: tuple[int, int], random_weights: bool):
    import tensorflow as tf
    from retinaface.model import retinaface_model

    if random_weights:
        retinaface_model.load_weights = lambda model: model
    model = tf.function(retinaface_model.build_model(),
                        input_signature=(tf.TensorSpec(shape=[None, None, None, 3], dtype=np.float32),))
    h, w = size
    x = np.random.default_rng(0).normal(size=(1, h, w, 3)).astype(np.float32)
    return lambda: model(x)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="640,1024", help="longest sides; images are 3:2 landscape")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--random-resnet", action="store_true")
    args = ap.parse_args()
    print(f"{'longest side':<14}{'mobilenet ms':>14}{'resnet50 ms':>14}")
    for side in (int(s) for s in args.sizes.split(",")):
        size = (side * 2 // 3, side)
        mob = best_ms(mobilenet_forward(size), args.runs)
        try:
            res = f"{best_ms(resnet_forward(size, args.random_resnet), args.runs):>14.0f}"
        except Exception as exc:  # no TensorFlow / retina-face / weights
            res = f"{'n/a':>14}  ({type(exc).__name__}: {str(exc)[:60]})"
        print(f"{side:<14}{mob:>14.0f}{res}")


if __name__ == "__main__":
    main()
