"""Names of the model backends, and the name each embedder stores in Faces.EmbeddingModel
(vectors of two models are never compared). A leaf: imports nothing of ours."""
from __future__ import annotations

DETECTORS = ("retinaface-mobilenet", "retinaface-resnet50")

# setting -> the name stored in Faces.EmbeddingModel
MODEL_NAMES = {
    "facenet-casia": "facenet-casia-20180408",
    "facenet-vggface2": "facenet-vggface2-20180402",
}
EMBEDDERS = tuple(MODEL_NAMES)


def model_name(setting: str) -> str:
    return MODEL_NAMES[setting]
