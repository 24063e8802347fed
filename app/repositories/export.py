"""SQL the export reads (never writes): the faces of the exported persons with what their
photos say about themselves. Callers own the (read-only) transaction."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.models import Faces, MediaFile, MediaMeta, Persons
from app.repositories.ids import chunks
from app.types import Box


@dataclass(frozen=True)
class ExportFace:
    face_id: int
    person_id: int | None
    media_file_id: int
    file_path: str
    file_name: str
    bounding_box: str | None
    confidence: float | None
    quality: float | None
    assigned_by: str | None
    is_usable: bool
    taken_at: str | None
    device_id: str | None
    latitude: float | None
    longitude: float | None
    altitude: float | None
    width: int | None
    height: int | None
    camera_make: str | None
    camera_model: str | None
    media_type: str | None = None  # "video" for a video's face
    frame_number: int | None = None
    frame_time_ms: int | None = None

    @property
    def box(self) -> Box | None:
        return Box.parse(self.bounding_box)


_COLUMNS = (Faces.Id, Faces.PersonId, Faces.MediaFileId, MediaFile.FilePath, MediaFile.FileName, Faces.BoundingBox,
            Faces.Confidence, Faces.Quality, Faces.AssignedBy, Faces.IsUsable, MediaMeta.TakenAt, MediaMeta.DeviceId,
            MediaMeta.Latitude, MediaMeta.Longitude, MediaMeta.Altitude, MediaMeta.Width, MediaMeta.Height,
            MediaMeta.CameraMake, MediaMeta.CameraModel, MediaMeta.MediaType, Faces.FrameNumber, Faces.FrameTimeMs)


def _query():
    return (select(*_COLUMNS).join(MediaFile, MediaFile.Id == Faces.MediaFileId)
            .outerjoin(MediaMeta, MediaMeta.MediaFileId == Faces.MediaFileId))


def faces_of_persons(session: Session, person_ids: Sequence[int]) -> Iterator[ExportFace]:
    """Every face of these persons, by person then face id."""
    for chunk in chunks(person_ids):
        for row in session.execute(_query().where(Faces.PersonId.in_(chunk))
                                   .order_by(Faces.PersonId, Faces.Id)).yield_per(2000):
            yield ExportFace(*row)


def faces_without_person(session: Session) -> Iterator[ExportFace]:
    for row in session.execute(_query().where(Faces.PersonId.is_(None)).order_by(Faces.Id)).yield_per(2000):
        yield ExportFace(*row)


def cover_faces(session: Session, person_ids: Sequence[int]) -> dict[int, int | None]:
    out: dict[int, int | None] = {}
    for chunk in chunks(person_ids):
        out.update(session.execute(select(Persons.Id, Persons.CoverFaceId).where(Persons.Id.in_(chunk))).all())
    return out
