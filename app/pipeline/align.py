"""Face alignment for ArcFace-family embedders: a similarity transform (rotation, uniform
scale, translation) that takes the detector's 5 landmarks onto the fixed 112x112
template those models were trained on, then a warp of the image.

Landmarks come in RetinaFace order: the subject's right eye (left in the image), left
eye, nose tip, right and left mouth corner, the same order as the template.
"""
from __future__ import annotations

import numpy as np

SIZE = 112
# The 112x112 ArcFace reference points (insightface's published template).
TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
)


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """2x3 matrix of the least-squares similarity transform taking src points to dst
    (Umeyama's closed form, no reflection)."""
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    s, d = src - mu_s, dst - mu_d
    cov = d.T @ s / len(src)
    u, sing, vt = np.linalg.svd(cov)
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1] = -1
    rot = u @ np.diag(sign) @ vt
    var = (s ** 2).sum() / len(src)
    scale = float((sing * sign).sum() / var) if var > 0 else 1.0
    m = np.zeros((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - scale * rot @ mu_s
    return m


def aligned_crop(image: np.ndarray, landmarks, size: int = SIZE) -> np.ndarray:
    """uint8 RGB image (h, w, 3) and 5 (x, y) landmarks -> uint8 RGB (size, size, 3)."""
    import cv2

    points = np.asarray(landmarks, np.float64).reshape(5, 2)
    if not np.all(np.isfinite(points)):
        raise ValueError("landmarks are not finite numbers")
    m = similarity(points, TEMPLATE * (size / SIZE))
    return cv2.warpAffine(np.ascontiguousarray(image), m, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)
