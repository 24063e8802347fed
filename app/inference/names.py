"""Names of the model backends, and the name each embedder stores beside its vectors
(Faces.EmbeddingModel, Embedding2Model: vectors of two models are never compared). A leaf:
imports nothing of ours."""
from __future__ import annotations

DETECTORS = ("retinaface-mobilenet", "retinaface-resnet50")

# setting -> the name stored beside its vectors
MODEL_NAMES = {
    "facenet-casia": "facenet-casia-20180408",
    "facenet-vggface2": "facenet-vggface2-20180402",
    "sface": "sface-2021dec-int8bq",
}
EMBEDDERS = tuple(MODEL_NAMES)


def model_name(setting: str) -> str:
    return MODEL_NAMES[setting]


# The FaceNet models: theirs is the contract's vector (Faces.Embedding); any other model's
# goes in Faces.Embedding2.
FACENETS = ("facenet-casia", "facenet-vggface2")


def facenet_setting(embedder: str, facenet: str) -> str:
    """The FaceNet model that fills Faces.Embedding: the deciding one when it is FaceNet."""
    return embedder if embedder in FACENETS else facenet
