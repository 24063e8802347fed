"""FaceNet VGGFace2 (davidsandberg 20180402-114759) through keras-facenet.

keras-facenet downloads its weights on first use into ~/.keras-facenet/ (needs internet
once), so this backend is for users who have them; install with
`pip install -e '.[vggface2]'`. The model was trained with the same fixed
standardisation as the default one, so it takes the same crops.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np

from app.errors import ModelUnavailable
from app.inference.names import model_name

MODEL_NAME = model_name("facenet-vggface2")  # stored in Faces.EmbeddingModel
KEY = "20180402-114759"


def cache_folder() -> Path:
    return Path.home() / ".keras-facenet"


class FaceNetVGGFace2:
    name = MODEL_NAME

    def __init__(self, batch_size: int = 32):
        self._batch = batch_size
        self._model = None
        self._lock = threading.Lock()

    def load(self) -> None:
        with self._lock:
            if self._model is not None:
                return
            # With TensorFlow 2.16+ this package needs the Keras 2 API (tf-keras); Keras 3
            # fails on its model ("A KerasTensor cannot be used as input to a TensorFlow
            # function"). Only set when the user has not chosen.
            os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
            try:
                from keras_facenet import FaceNet
            except ImportError as exc:
                raise ModelUnavailable(
                    f"EMBEDDER=facenet-vggface2 needs keras-facenet: pip install -e '.[vggface2]' ({exc})"
                ) from None
            try:
                self._model = FaceNet(key=KEY, cache_folder=str(cache_folder())).model
            except Exception as exc:
                raise ModelUnavailable(
                    f"could not load the FaceNet VGGFace2 weights: {type(exc).__name__}: {exc}. "
                    f"keras-facenet downloads them on first use (needs internet) into {cache_folder()}"
                ) from None

    def embed(self, crops: np.ndarray) -> np.ndarray:
        self.load()
        if crops.shape[0] == 0:
            return np.zeros((0, 512), np.float32)
        return np.asarray(self._model.predict(crops, batch_size=self._batch, verbose=0), dtype=np.float32)
