"""Shared value types of the stages: a face box and a detected face. Imports nothing of
ours, so detectors, pipeline stages, repositories and services all use the same ones."""
from __future__ import annotations

import json
from dataclasses import dataclass


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

    @classmethod
    def parse(cls, text: str | None) -> "Box | None":
        """A stored BoundingBox, or None when empty or not ours (another application wrote it)."""
        try:
            return cls.from_json(text) if text else None
        except (ValueError, KeyError, TypeError):
            return None

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
