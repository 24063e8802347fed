"""The face quality score: each part moves the way its README row says, and the total
stays in [0, 1]."""
from __future__ import annotations

import numpy as np
import pytest

from app.pipeline import face_score
from app.pipeline.quality import laplacian_variance
from app.types import Box, DetectedFace

FRONTAL = ((40.0, 50.0), (80.0, 50.0), (60.0, 70.0), (45.0, 90.0), (75.0, 90.0))


def face(short=200.0, score=0.999, landmarks=FRONTAL) -> DetectedFace:
    return DetectedFace(Box(0, 0, short, short * 1.2), score, landmarks)


def textured(level=128, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.normal(0, 30, (112, 112, 1))
    return np.clip(level + noise, 0, 255).astype(np.uint8).repeat(3, axis=2)


def test_weights_sum_to_one_and_total_is_bounded():
    assert sum(face_score.WEIGHTS.values()) == pytest.approx(1.0)
    best = face_score.score(face(), 10_000.0, textured())
    worst = face_score.score(face(short=5, score=0.0, landmarks=((0, 0), (0, 0), (50, 0))), 0.0,
                             np.zeros((112, 112, 3), np.uint8))
    assert 0.95 <= best <= 1.0
    assert worst == pytest.approx(0.0)


def test_sharper_faces_score_higher():
    sharp = textured()
    blurred = np.asarray(sharp, np.float64)
    for _ in range(6):  # box blur
        blurred = (blurred + np.roll(blurred, 1, 0) + np.roll(blurred, 1, 1) + np.roll(blurred, -1, 0)
                   + np.roll(blurred, -1, 1)) / 5
    blurred = blurred.astype(np.uint8)
    assert face_score.sharpness(laplacian_variance(sharp)) > face_score.sharpness(laplacian_variance(blurred))
    assert face_score.sharpness(face_score.SHARP_LOW) == 0.0
    assert face_score.sharpness(face_score.SHARP_HIGH) == 1.0


def test_larger_faces_score_higher_up_to_the_anchor():
    sizes = [20, 40, 80, 160, 250, 1000]
    parts = [face_score.size(s) for s in sizes]
    assert parts == sorted(parts)
    assert parts[0] == parts[1] == 0.0 and parts[-2] == parts[-1] == 1.0


@pytest.mark.parametrize("level,expected", [(128, 1.0), (10, 0.0), (250, 0.0)])
def test_exposure_rewards_mid_tones(level, expected):
    assert face_score.exposure(np.full((20, 20, 3), level, np.uint8)) == pytest.approx(expected)


def test_exposure_is_cut_by_clipped_pixels():
    half = np.full((20, 20, 3), 128, np.uint8)
    half[:4] = 255  # 20 % blown out
    assert face_score.exposure(half) == pytest.approx(0.6, abs=0.01)
    assert face_score.exposure(None) == 0.5


def test_turned_and_tilted_faces_score_lower():
    frontal = face_score.pose(FRONTAL)
    turned = face_score.pose(((40.0, 50.0), (80.0, 50.0), (75.0, 70.0), (45.0, 90.0), (75.0, 90.0)))
    profile = face_score.pose(((40.0, 50.0), (50.0, 50.0), (30.0, 70.0), (45.0, 90.0), (75.0, 90.0)))
    tilted = face_score.pose(((40.0, 50.0), (80.0, 80.0), (55.0, 75.0), (45.0, 90.0), (75.0, 90.0)))
    assert frontal == 1.0
    assert profile < turned < frontal
    assert tilted < frontal
    assert profile <= 0.25
    assert face_score.pose(()) == 0.5


def test_detector_part():
    assert face_score.detector(0.7) == 0.0
    assert face_score.detector(1.0) == 1.0
    assert face_score.detector(0.85) == pytest.approx(0.5)
