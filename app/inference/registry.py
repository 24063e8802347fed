"""Backend registry: a setting's name -> a model object. Apart from the interfaces
(detector.py, embedder.py) so that backends, which import the interfaces' types, never
import their own factory. Backends are imported only when chosen."""
from __future__ import annotations

from app.inference.detector import Detector
from app.inference.embedder import Embedder
from app.inference.names import DETECTORS, EMBEDDERS, FACENETS


def make_detector(name: str, threads: int = 0) -> Detector:
    if name == "retinaface-mobilenet":
        from app.inference.retinaface_onnx import MobileNetRetinaFace

        return MobileNetRetinaFace(threads=threads)
    if name == "retinaface-resnet50":
        from app.inference.retinaface_serengil import SerengilRetinaFace

        return SerengilRetinaFace()
    raise ValueError(f"unknown detector {name!r}; choose one of {', '.join(DETECTORS)}")


def make_embedder(name: str, threads: int = 0, batch_size: int = 32) -> Embedder:
    if name == "facenet-casia":
        from app.inference.facenet_onnx import FaceNetCasia

        return FaceNetCasia(threads=threads, batch_size=batch_size)
    if name == "facenet-vggface2":
        from app.inference.facenet_keras import FaceNetVGGFace2

        return FaceNetVGGFace2(batch_size=batch_size)
    if name == "sface":
        from app.inference.sface import SFace

        return SFace(threads=threads, batch_size=batch_size)
    raise ValueError(f"unknown embedder {name!r}; choose one of {', '.join(EMBEDDERS)}")


def make_encoder(embedder: str, facenet: str, threads: int = 0, batch_size: int = 32,
                 margin: float = 0.1, flip: bool = False):
    """The models a run embeds with: FaceNet for Faces.Embedding (the contract), plus the
    deciding model when EMBEDDER names another one (SFace)."""
    from app.pipeline.encode import FaceEncoder

    if embedder in FACENETS:
        return FaceEncoder(make_embedder(embedder, threads, batch_size), None, margin, flip)
    return FaceEncoder(make_embedder(facenet, threads, batch_size), make_embedder(embedder, threads, batch_size),
                       margin, flip)
