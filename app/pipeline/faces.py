"""Face geometry shared by the stages: boxes, landmarks, IoU, crops."""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Box:
    """Axis-aligned box in original image pixels."""

    x: float
    y: float
    w: float
    h: float

    def to_json(self) -> str:
        return json.dumps({"x": round(self.x), "y": round(self.y), "w": round(self.w), "h": round(self.h)})

    @classmethod
    def from_json(cls, text: str) -> "Box":
        d = json.loads(text)
        return cls(float(d["x"]), float(d["y"]), float(d["w"]), float(d["h"]))

    @property
    def short_side(self) -> float:
        return min(self.w, self.h)

    def iou(self, other: "Box") -> float:
        ix = max(0.0, min(self.x + self.w, other.x + other.w) - max(self.x, other.x))
        iy = max(0.0, min(self.y + self.h, other.y + other.h) - max(self.y, other.y))
        inter = ix * iy
        union = self.w * self.h + other.w * other.h - inter
        return inter / union if union > 0 else 0.0


@dataclass(frozen=True)
class DetectedFace:
    box: Box
    score: float
    # 5 points (x, y): right eye, left eye, nose tip, right and left mouth corner
    # (the subject's right/left, as RetinaFace orders them).
    landmarks: tuple[tuple[float, float], ...]

    def landmarks_json(self) -> str:
        return json.dumps([[round(x, 1), round(y, 1)] for x, y in self.landmarks])


def region(image: np.ndarray, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    """Pixels [x0, x1) x [y0, y1) of the image; parts outside it are black."""
    x0, y0, x1, y1 = (int(round(v)) for v in (x0, y0, x1, y1))
    out = np.zeros((max(1, y1 - y0), max(1, x1 - x0), 3), dtype=image.dtype)
    h, w = image.shape[:2]
    sx0, sy0, sx1, sy1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = image[sy0:sy1, sx0:sx1]
    return out


def square_crop(image: np.ndarray, box: Box, margin: float) -> np.ndarray:
    """A square around the box, enlarged by `margin` of its size on each side; the face
    stays centred even at the image border (outside is black)."""
    side = max(box.w, box.h) * (1.0 + 2.0 * margin)
    cx, cy = box.x + box.w / 2.0, box.y + box.h / 2.0
    return region(image, cx - side / 2.0, cy - side / 2.0, cx + side / 2.0, cy + side / 2.0)


def box_crop(image: np.ndarray, box: Box, margin: float) -> np.ndarray:
    """The box enlarged by `margin` of its width/height on each side (not squared)."""
    mx, my = box.w * margin, box.h * margin
    return region(image, box.x - mx, box.y - my, box.x + box.w + mx, box.y + box.h + my)
