"""Quality scores for faces stored before scores existed (or by another application).

Detection scores every new face from the pixels it already has. A face without a score
is scored here from its stored row (box, landmarks, confidence, blur) and the middle of
its thumbnail (the face without the thumbnail's margin) for the exposure part; without a
readable thumbnail the exposure part counts as unknown (0.5). Safe to re-run; bounded
batches, one short transaction each.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
from PIL import Image
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.pipeline import face_score
from app.repositories import faces as faces_repo
from app.types import Box, DetectedFace

log = logging.getLogger("app.scores")
BATCH = 500


def _thumbnail_middle(path: str | None, margin: float) -> np.ndarray | None:
    if not path:
        return None
    try:
        with Image.open(Path(path)) as img:
            rgb = np.asarray(img.convert("RGB"))
    except (OSError, ValueError, SyntaxError):
        return None
    side = rgb.shape[0]
    cut = int(round(side * margin / (1 + 2 * margin)))
    middle = rgb[cut:side - cut, cut:side - cut]
    return middle if middle.size else None


def parts_of_row(row: faces_repo.Unscored, thumbnail_margin: float) -> face_score.Parts:
    box = Box.parse(row.bounding_box) or Box(0, 0, 0, 0)
    try:
        points = tuple(tuple(p) for p in json.loads(row.landmarks)) if row.landmarks else ()
    except (ValueError, TypeError):
        points = ()
    face = DetectedFace(box, float(row.confidence or 0.0), points)
    return face_score.parts(face, row.blur, _thumbnail_middle(row.thumbnail_path, thumbnail_margin))


def score_row(row: faces_repo.Unscored, thumbnail_margin: float) -> float:
    return parts_of_row(row, thumbnail_margin).total


def fill_missing(sessions: sessionmaker[Session], settings: Settings) -> int:
    """Score every face that has no score; returns how many were scored."""
    done, after = 0, 0
    while True:
        with sessions() as session:
            rows = faces_repo.unscored_faces(session, after, BATCH)
        if not rows:
            break
        scores = [(r.face_id, score_row(r, settings.thumbnail_margin)) for r in rows]
        with sessions.begin() as session:
            faces_repo.set_quality(session, scores)
        done += len(rows)
        after = rows[-1].face_id
    if done:
        log.info("scored %d faces stored without a quality score", done)
    return done
