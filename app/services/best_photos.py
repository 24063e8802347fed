"""The best N photos of a person (app/pipeline/best.py over the stored scores), for the
review page and --export alike."""
from __future__ import annotations

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.inference.names import FACENETS, model_name
from app.pipeline import best
from app.repositories import export as erepo
from app.repositories import persons as prepo
from app.repositories.export import ExportFace
from app.types import Box


def candidates(faces: list[ExportFace], vectors: dict[int, np.ndarray]) -> list[best.Candidate]:
    out = []
    for f in faces:
        box = f.box
        frame = (Box(box.x / f.width, box.y / f.height, box.w / f.width, box.h / f.height)
                 if box and f.width and f.height else None)
        # the same-day rule needs the day the photo was taken: a file's time says when it
        # was copied, which is one day for a whole imported folder
        day = f.taken_at[:10] if f.taken_at else None
        out.append(best.Candidate(f.face_id, f.media_file_id, f.quality or 0.0, day, frame, vectors.get(f.face_id)))
    return out


def vectors_of(session: Session, settings: Settings, person_id: int) -> dict[int, np.ndarray]:
    ids, _media, vectors = prepo.person_vectors(session, person_id, model_name(settings.embedder),
                                                settings.embedder not in FACENETS)
    return {int(i): vectors[k] for k, i in enumerate(ids)}


def choose(session: Session, settings: Settings, person_id: int, faces: list[ExportFace] | None = None,
           n: int | None = None) -> list[best.Candidate]:
    """The chosen faces, best first (`faces`: the person's, when the caller has them)."""
    if faces is None:
        faces = list(erepo.faces_of_persons(session, [person_id]))
    chosen, _skipped = best.choose(candidates(faces, vectors_of(session, settings, person_id)),
                                   n or settings.best_n, settings.best_max_similarity, settings.best_same_day_iou)
    return chosen


def best_of(sessions: sessionmaker[Session], settings: Settings, person_id: int, n: int | None = None
            ) -> list[best.Candidate]:
    with sessions() as session:
        return choose(session, settings, person_id, n=n)
