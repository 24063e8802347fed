"""How good a photo of its person a face is: a score in [0, 1] from five measured parts.

Pure: a detected face, its sharpness and its pixels in, the parts and their weighted sum
out. Each part maps one measurement to 0..1 with two anchors (0 at or below the first,
1 at or above the second, straight or logarithmic in between); the README's "Face
quality score" section lists them with the dev-set table that backs them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from app.pipeline import quality
from app.types import DetectedFace

# part -> weight; the weights sum to 1, so the total stays in [0, 1]
WEIGHTS = {"sharpness": 0.30, "pose": 0.25, "size": 0.20, "exposure": 0.15, "detector": 0.10}
# Variance of the Laplacian on the face resized to 112 px (app/pipeline/analyze.py): the
# MIN_BLUR gate's 15 scores 0; 400 and above (a sharp studio portrait) 1; log scale between.
SHARP_LOW, SHARP_HIGH = 15.0, 400.0
# Shorter box side in original pixels, log scale: 40 px scores 0, 250 px (a portrait) 1.
SIZE_LOW, SIZE_HIGH = 40.0, 250.0
# Mean luma of the face: full marks within [MID_LOW, MID_HIGH], 0 at DARK or BRIGHT;
# each 1 % of clipped pixels (luma <= 5 or >= 250) takes 2 % off.
DARK, MID_LOW, MID_HIGH, BRIGHT = 25.0, 80.0, 180.0, 235.0
# Pose from the 5 landmarks: the nose's offset from the eye midpoint along the eye line,
# over the eye distance (0 frontal; about 0.5 in profile), and the eye line's tilt.
YAW_ZERO = 0.45  # offset ratio that scores 0
ROLL_ZERO = 45.0  # degrees of tilt that score 0
ROLL_SHARE = 0.25  # the pose part is 3/4 turn, 1/4 tilt (alignment undoes tilt, not turn)
# Detector score: the detection floor (DETECT_MIN_SCORE's default) 0, certain 1.
DETECT_LOW = 0.7


@dataclass(frozen=True)
class Parts:
    sharpness: float
    size: float
    exposure: float
    pose: float
    detector: float

    @property
    def total(self) -> float:
        return round(sum(WEIGHTS[k] * getattr(self, k) for k in WEIGHTS), 4)


def _clip(v: float) -> float:
    return float(min(1.0, max(0.0, v)))


def _log_ramp(value: float, low: float, high: float) -> float:
    if value <= low:
        return 0.0
    return _clip(math.log(value / low) / math.log(high / low))


def sharpness(blur: float | None) -> float:
    return _log_ramp(blur or 0.0, SHARP_LOW, SHARP_HIGH)


def size(short_side: float) -> float:
    return _log_ramp(short_side, SIZE_LOW, SIZE_HIGH)


def exposure(rgb: np.ndarray | None) -> float:
    """0..1 from the face pixels (HxWx3 uint8, or their quality.luma); 0.5 (unknown)
    without pixels."""
    if rgb is None or rgb.size == 0:
        return 0.5
    luma = quality.luma(rgb)
    mean = float(luma.mean())
    if mean < MID_LOW:
        level = (mean - DARK) / (MID_LOW - DARK)
    elif mean > MID_HIGH:
        level = (BRIGHT - mean) / (BRIGHT - MID_HIGH)
    else:
        level = 1.0
    clipped = float(((luma <= 5) | (luma >= 250)).mean())
    return round(_clip(level) * _clip(1.0 - 2.0 * clipped), 4)


def pose(landmarks) -> float:
    """0..1: 1 for a level, frontal face; 0 for a profile. 0.5 without usable landmarks."""
    try:
        (rx, ry), (lx, ly), (nx, ny) = landmarks[0], landmarks[1], landmarks[2]
    except (TypeError, ValueError, IndexError):
        return 0.5
    dx, dy = lx - rx, ly - ry
    eyes = math.hypot(dx, dy)
    if eyes < 1e-6:
        return 0.0  # both eyes on one point: a profile
    mx, my = (lx + rx) / 2, (ly + ry) / 2
    offset = abs((nx - mx) * dx + (ny - my) * dy) / (eyes * eyes)  # along the eye line
    tilt = abs(math.degrees(math.atan2(dy, dx)))
    tilt = min(tilt, 360 - tilt)
    turn_part = _clip(1.0 - offset / YAW_ZERO)
    tilt_part = _clip(1.0 - tilt / ROLL_ZERO)
    return round((1 - ROLL_SHARE) * turn_part + ROLL_SHARE * tilt_part, 4)


def detector(score: float | None) -> float:
    return _clip(((score or 0.0) - DETECT_LOW) / (1.0 - DETECT_LOW))


def parts(face: DetectedFace, blur: float | None, pixels: np.ndarray | None) -> Parts:
    return Parts(round(sharpness(blur), 4), round(size(face.box.short_side), 4), exposure(pixels),
                 pose(face.landmarks), round(detector(face.score), 4))


def score(face: DetectedFace, blur: float | None, pixels: np.ndarray | None) -> float:
    return parts(face, blur, pixels).total
