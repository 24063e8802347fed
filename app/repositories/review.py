"""SQL for the review page's reads (app/services/review.py). Callers own the session."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from app.db.models import STATUS_DONE, Faces, MediaFile, MediaItems, Persons
from app.repositories.faces import vector_columns


def thumbnail_path(session: Session, face_id: int) -> str | None:
    return session.scalar(select(Faces.ThumbnailPath).where(Faces.Id == face_id))


def _decoded(media_id):
    """The media file's detection is done: the worker decoded it as an image or a video."""
    return (select(MediaItems.Id)
            .where(MediaItems.MediaFileId == media_id, MediaItems.IsFacesExtracted.is_(True),
                   MediaItems.Status == STATUS_DONE)
            .exists())


def _recorded_hash(media_id):
    """The content hash detection recorded for the media file (NULL: none recorded)."""
    return (select(func.max(MediaItems.ContentHash)).where(MediaItems.MediaFileId == media_id)
            .scalar_subquery())


def decoded_media_path(session: Session, media_id: int) -> tuple[str, str | None] | None:
    """(path, recorded content hash) of a media file the worker has decoded (None for one
    pending or failed)."""
    row = session.execute(select(MediaFile.FilePath, _recorded_hash(MediaFile.Id))
                          .where(MediaFile.Id == media_id, _decoded(MediaFile.Id))).first()
    return (row[0], row[1]) if row else None


def face_source(session: Session, face_id: int) -> tuple[str, str | None, int | None] | None:
    """(its media file's path, its recorded content hash, the frame's time in ms for a
    video's face) of a face whose media file the worker has decoded."""
    row = session.execute(select(MediaFile.FilePath, _recorded_hash(MediaFile.Id), Faces.FrameTimeMs)
                          .join(MediaFile, MediaFile.Id == Faces.MediaFileId)
                          .where(Faces.Id == face_id, _decoded(MediaFile.Id))).first()
    return (row[0], row[1], row[2]) if row else None


def names_like(session: Session, text: str, limit: int) -> list[tuple[int, str]]:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    name = func.lower(Persons.Name)
    rows = session.execute(
        select(Persons.Id, Persons.Name)
        .where(Persons.Name.is_not(None), Persons.IsHidden.is_(False),
               name.like(f"%{escaped}%", escape="\\"))
        .order_by(case((name.like(f"{escaped}%", escape="\\"), 0), else_=1), Persons.Name, Persons.Id)
        .limit(limit)
    ).all()
    return [(int(r[0]), r[1]) for r in rows]


def _unassigned():
    return Faces.PersonId.is_(None)


def count_unassigned(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(Faces).where(_unassigned())) or 0)


@dataclass(frozen=True)
class UnassignedRow:
    face_id: int
    media_file_id: int
    file_path: str
    thumbnail: str | None
    usable: bool
    vector: np.ndarray | None  # deciding vector, when the face has one


def unassigned_page(session: Session, limit: int, offset: int, model: str, second: bool) -> list[UnassignedRow]:
    """Faces with no person, usable ones first, then by id."""
    column, model_column = vector_columns(second)
    rows = session.execute(
        select(Faces.Id, Faces.MediaFileId, MediaFile.FilePath, Faces.ThumbnailPath, Faces.IsUsable, column,
               model_column)
        .join(MediaFile, MediaFile.Id == Faces.MediaFileId)
        .where(_unassigned())
        .order_by(Faces.IsUsable.desc(), Faces.Id)
        .limit(limit).offset(offset)
    ).all()
    return [UnassignedRow(int(r[0]), int(r[1]), r[2], r[3], bool(r[4]),
                          np.frombuffer(r[5], np.float32) if r[5] is not None and r[6] == model else None)
            for r in rows]


def person_vectors(session: Session, model: str, second: bool) -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
    """The deciding vectors of every visible person's faces and their person ids; the
    names of named persons."""
    column, model_column = vector_columns(second)
    rows = session.execute(
        select(Faces.PersonId, column)
        .join(Persons, Persons.Id == Faces.PersonId)
        .where(Persons.IsHidden.is_(False), column.is_not(None), model_column == model)
        .order_by(Faces.PersonId)
    ).all()
    names = dict(session.execute(select(Persons.Id, Persons.Name).where(Persons.Name.is_not(None))).all())
    person_ids = np.fromiter((r[0] for r in rows), np.int64, len(rows))
    vectors = np.vstack([np.frombuffer(r[1], np.float32) for r in rows]) if rows else np.zeros((0, 0), np.float32)
    return person_ids, vectors, names
