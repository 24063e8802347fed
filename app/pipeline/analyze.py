"""One image in, its faces out: resize, detect, map back, measure, thumbnail.

The steps are separate functions so the detection stage can run the model on one thread
and the pixel work (resize, blur, thumbnails) on another.

No database here; the detection service stores what this returns.
"""
from __future__ import annotations

from dataclasses import dataclass
import numpy as np

from app.inference.detector import Detector
from app.pipeline import face_score, resize
from app.pipeline.faces import square_crop
from app.types import DetectedFace
from app.pipeline.quality import Gates, is_usable, laplacian_variance, luma
from app.pipeline.thumbnail import thumbnail_jpeg

BLUR_CROP_PX = 112  # blur is measured on the face resized to this, so it is size-independent


@dataclass(frozen=True)
class AnalyzeOptions:
    max_pixels: int
    max_side: int
    detect_min_score: float
    gates: Gates
    thumbnail_size: int
    thumbnail_margin: float


@dataclass(frozen=True)
class FoundFace:
    face: DetectedFace
    blur: float
    usable: bool
    thumbnail: bytes
    quality: float | None = None  # app/pipeline/face_score.py


def face_pixels(image: np.ndarray, face: DetectedFace) -> np.ndarray:
    """The face box (no margin), resized to BLUR_CROP_PX square: what blur and exposure measure."""
    from PIL import Image

    crop = square_crop(image, face.box, margin=0.0)
    return np.asarray(Image.fromarray(crop).resize((BLUR_CROP_PX, BLUR_CROP_PX), Image.Resampling.BILINEAR,
                                                   reducing_gap=3.0))


def detection_input(image: np.ndarray, opts: AnalyzeOptions) -> tuple[np.ndarray, resize.Scale]:
    """The image as the detector sees it (longest side at most `max_side`) and its scale:
    plain pixel work, done off the model's thread by the detection stage."""
    return resize.fit(image, opts.max_side)


def detect_prepared(small: np.ndarray, scale: resize.Scale, detector: Detector,
                    opts: AnalyzeOptions) -> list[DetectedFace]:
    """The model on an image from `detection_input`: faces in original pixels, largest first."""
    return detect_prepared_many([small], [scale], detector, opts)[0]


def detect_prepared_many(smalls: list[np.ndarray], scales: list[resize.Scale], detector: Detector,
                         opts: AnalyzeOptions) -> list[list[DetectedFace]]:
    """As `detect_prepared`, for several images in one call of the model (images of one
    size go through it as one batch)."""
    out = []
    for faces, scale in zip(detector.detect(smalls, opts.detect_min_score), scales):
        mapped = [resize.to_original(f, scale) for f in faces]
        mapped = [f for f in mapped if f.box.w >= 1 and f.box.h >= 1]
        out.append(sorted(mapped, key=lambda f: f.box.w * f.box.h, reverse=True))
    return out


def detect_in_image(image: np.ndarray, detector: Detector, opts: AnalyzeOptions) -> list[DetectedFace]:
    """Faces in original pixels, largest first."""
    small, scale = detection_input(image, opts)
    return detect_prepared(small, scale, detector, opts)


def describe_faces(image: np.ndarray, faces: list[DetectedFace], opts: AnalyzeOptions,
                   original_size: tuple[int, int] | None = None) -> list[FoundFace]:
    """Blur, usability, thumbnail and score of faces found in `image` (in its pixels);
    boxes go back in the original's pixels when `image` was decoded at reduced scale."""
    h, w = image.shape[:2]
    ow, oh = original_size or (w, h)
    to_full = resize.Scale(w / ow, h / oh, ow, oh)
    found = []
    for face in faces:
        pixels = luma(face_pixels(image, face))  # what blur and exposure measure
        blur = laplacian_variance(pixels)
        full = resize.to_original(face, to_full) if (ow, oh) != (w, h) else face
        found.append(
            FoundFace(
                face=full,
                blur=blur,
                usable=is_usable(full, blur, opts.gates),
                thumbnail=thumbnail_jpeg(image, face.box, opts.thumbnail_size, opts.thumbnail_margin),
                quality=face_score.score(full, blur, pixels),
            )
        )
    return found


def analyze_image(image: np.ndarray, detector: Detector, opts: AnalyzeOptions,
                  original_size: tuple[int, int] | None = None) -> list[FoundFace]:
    """Faces with boxes in the original image's pixels. `original_size` (width, height) is
    given when `image` was decoded at reduced scale; thumbnails and blur come from `image`."""
    return describe_faces(image, detect_in_image(image, detector, opts), opts, original_size)
