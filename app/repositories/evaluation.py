"""Read-only queries for the evaluation command."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.models import Faces, MediaFile


@dataclass(frozen=True)
class ScoredFace:
    file_path: str
    bounding_box: str
    person_id: int | None
    embedding: bytes | None
    usable: bool
    embedding2: bytes | None = None
    media_file_id: int = 0


def all_faces(session: Session) -> list[ScoredFace]:
    rows = session.execute(
        select(MediaFile.FilePath, Faces.BoundingBox, Faces.PersonId, Faces.Embedding, Faces.IsUsable,
               Faces.Embedding2, Faces.MediaFileId)
        .join(MediaFile, MediaFile.Id == Faces.MediaFileId)
        .order_by(Faces.Id)
    ).all()
    return [ScoredFace(*r) for r in rows]
