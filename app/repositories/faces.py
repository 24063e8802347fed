"""SQL for the Faces table. Callers own the transaction."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from sqlalchemy import and_, delete, insert, or_, select, update
from sqlalchemy.orm import Session

from app.db.models import ASSIGNED_CLUSTERED, ASSIGNED_MATCHED, ASSIGNED_USER, Faces


@dataclass(frozen=True)
class NewFace:
    media_file_id: int
    bounding_box: str
    confidence: float
    landmarks: str
    blur: float
    is_usable: bool


@dataclass(frozen=True)
class KeptFace:
    face_id: int
    bounding_box: str
    thumbnail_path: str | None


def _set_by_user():
    # AssignedBy NULL with a PersonId: another application (a user) set it.
    return or_(
        Faces.AssignedBy == ASSIGNED_USER,
        and_(Faces.AssignedBy.is_(None), Faces.PersonId.is_not(None)),
    )


def _automatic():
    # Written without NOT: with NULLs, NOT(user) would be NULL, not true.
    return or_(
        Faces.AssignedBy.in_((ASSIGNED_MATCHED, ASSIGNED_CLUSTERED)),
        and_(Faces.AssignedBy.is_(None), Faces.PersonId.is_(None)),
    )


def user_faces_of_media(session: Session, media_file_id: int) -> list[KeptFace]:
    """Faces of this media file a user assigned: re-detection must keep them."""
    rows = session.execute(
        select(Faces.Id, Faces.BoundingBox, Faces.ThumbnailPath).where(
            Faces.MediaFileId == media_file_id, _set_by_user()
        )
    ).all()
    return [KeptFace(r.Id, r.BoundingBox, r.ThumbnailPath) for r in rows]


def delete_automatic_faces(session: Session, media_file_id: int) -> int:
    """Remove the faces of a media file that no user touched (before re-inserting them)."""
    result = session.execute(
        delete(Faces).where(Faces.MediaFileId == media_file_id, _automatic())
    )
    return result.rowcount or 0


def insert_faces(session: Session, faces: Sequence[NewFace]) -> list[int]:
    ids = []
    for f in faces:
        ids.append(
            session.execute(
                insert(Faces)
                .values(
                    MediaFileId=f.media_file_id,
                    BoundingBox=f.bounding_box,
                    Confidence=f.confidence,
                    Landmarks=f.landmarks,
                    Blur=f.blur,
                    IsUsable=f.is_usable,
                )
                .returning(Faces.Id)
            ).scalar_one()
        )
    return ids


def set_thumbnail(session: Session, face_id: int, path: str) -> None:
    session.execute(update(Faces).where(Faces.Id == face_id).values(ThumbnailPath=path))
