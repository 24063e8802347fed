"""Read-only queries for the evaluation command."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.models import Faces, MediaFile, MediaItems


@dataclass(frozen=True)
class ScoredFace:
    file_path: str
    bounding_box: str
    person_id: int | None
    embedding: bytes | None
    usable: bool


def all_faces(session: Session) -> list[ScoredFace]:
    rows = session.execute(
        select(MediaFile.FilePath, Faces.BoundingBox, Faces.PersonId, Faces.Embedding, Faces.IsUsable)
        .join(MediaFile, MediaFile.Id == Faces.MediaFileId)
        .order_by(Faces.Id)
    ).all()
    return [ScoredFace(*r) for r in rows]


def media_paths(session: Session) -> list[tuple[str, bool, str | None]]:
    """(file path, done, last error) of every registered item."""
    rows = session.execute(
        select(MediaFile.FilePath, MediaItems.IsFacesExtracted, MediaItems.LastError)
        .join(MediaItems, MediaItems.MediaFileId == MediaFile.Id)
    ).all()
    return [(r[0], bool(r[1]), r[2]) for r in rows]
