"""SQL for the Faces table as the detection stage uses it. Callers own the transaction."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.orm import Session

from app.db.models import ASSIGNED_USER, Faces

FACES = Faces.__table__  # Core table: executemany UPDATEs keyed by bind parameters


@dataclass(frozen=True)
class NewFace:
    media_file_id: int
    bounding_box: str
    confidence: float
    landmarks: str
    blur: float
    is_usable: bool


@dataclass(frozen=True)
class StoredFace:
    face_id: int
    media_file_id: int
    bounding_box: str | None
    thumbnail_path: str | None
    set_by_user: bool


def set_by_user(assigned_by: str | None, person_id: int | None) -> bool:
    """A user (or another application: a PersonId with no AssignedBy) decided this face."""
    return assigned_by == ASSIGNED_USER or (assigned_by is None and person_id is not None)


def faces_of_media(session: Session, media_file_ids: Sequence[int]) -> list[StoredFace]:
    if not media_file_ids:
        return []
    rows = session.execute(
        select(Faces.Id, Faces.MediaFileId, Faces.BoundingBox, Faces.ThumbnailPath,
               Faces.AssignedBy, Faces.PersonId)
        .where(Faces.MediaFileId.in_(media_file_ids))
    ).all()
    return [StoredFace(r[0], r[1], r[2], r[3], set_by_user(r[4], r[5])) for r in rows]


def delete_faces(session: Session, face_ids: Sequence[int]) -> None:
    for start in range(0, len(face_ids), 1000):
        session.execute(delete(Faces).where(Faces.Id.in_(face_ids[start:start + 1000])))


def insert_faces(session: Session, faces: Sequence[NewFace]) -> list[int]:
    """One round trip for many rows; ids come back in the order given."""
    if not faces:
        return []
    rows = session.execute(
        insert(Faces).returning(Faces.Id, sort_by_parameter_order=True),
        [
            {
                "MediaFileId": f.media_file_id,
                "BoundingBox": f.bounding_box,
                "Confidence": f.confidence,
                "Landmarks": f.landmarks,
                "Blur": f.blur,
                "IsUsable": f.is_usable,
            }
            for f in faces
        ],
    ).all()
    return [r[0] for r in rows]


def set_thumbnails(session: Session, paths: Sequence[tuple[int, str]]) -> None:
    if paths:
        session.execute(
            update(FACES).where(FACES.c.Id == bindparam("face_id")).values(ThumbnailPath=bindparam("path")),
            [{"face_id": fid, "path": path} for fid, path in paths],
        )
