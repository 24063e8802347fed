"""The best N photos of a person (seed 004): best score first, skipping near-duplicates.

Pure: candidates in, the chosen ones out, in the order chosen. A candidate is one face of
the person, with its photo, score, day, framing and embedding. Greedy: take the best
remaining face unless
- its photo is chosen already (two faces of one person in a photo: the better one),
- its embedding is closer than `max_similarity` (cosine) to a chosen face's (the same
  moment shot twice, a burst), or
- it was taken the same day as a chosen face with near-identical framing: the face boxes,
  as shares of their photos' width and height, overlap by `same_day_iou` or more.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.types import Box


@dataclass(frozen=True)
class Candidate:
    face_id: int
    media_file_id: int
    score: float
    day: str | None  # YYYY-MM-DD the photo was taken (EXIF, else file time); None: unknown
    frame: Box | None  # the face box as shares of the photo (0..1)
    vector: np.ndarray | None  # L2-normalised embedding


@dataclass(frozen=True)
class Skipped:
    face_id: int
    reason: str


def choose(candidates: list[Candidate], n: int, max_similarity: float = 0.95, same_day_iou: float = 0.8
           ) -> tuple[list[Candidate], list[Skipped]]:
    order = sorted(candidates, key=lambda c: (-c.score, c.face_id))
    chosen: list[Candidate] = []
    skipped: list[Skipped] = []
    photos: set[int] = set()
    for c in order:
        if len(chosen) >= n:
            break
        reason = _too_like(c, chosen, photos, max_similarity, same_day_iou)
        if reason:
            skipped.append(Skipped(c.face_id, reason))
            continue
        chosen.append(c)
        photos.add(c.media_file_id)
    return chosen, skipped


def _too_like(c: Candidate, chosen: list[Candidate], photos: set[int], max_similarity: float,
              same_day_iou: float) -> str | None:
    if c.media_file_id in photos:
        return "photo chosen already"
    for other in chosen:
        if c.vector is not None and other.vector is not None:
            similarity = float(np.dot(c.vector, other.vector))
            if similarity > max_similarity:
                return f"embedding {similarity:.3f} to face {other.face_id}"
        if (c.day is not None and c.day == other.day and c.frame is not None and other.frame is not None
                and c.frame.iou(other.frame) >= same_day_iou):
            return f"same day and framing as face {other.face_id}"
    return None
