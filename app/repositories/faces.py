"""SQL for the Faces table as the detection stage uses it. Callers own the transaction."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from sqlalchemy import bindparam, case, delete, insert, select, text, update
from sqlalchemy.orm import Session

from app.db.models import ASSIGNED_RECHECK, USER_DECIDED, Faces
from app.pipeline.reconcile import StoredFace
from app.repositories.ids import chunks
from app.types import Box

FACES = Faces.__table__  # Core table: executemany UPDATEs keyed by bind parameters


def vector_columns(second: bool):
    """The deciding vector's column and its model-name column: Embedding2 when a second
    model decides, else the contract's FaceNet Embedding."""
    return (Faces.Embedding2, Faces.Embedding2Model) if second else (Faces.Embedding, Faces.EmbeddingModel)


@dataclass(frozen=True)
class NewFace:
    media_file_id: int
    bounding_box: str
    confidence: float
    landmarks: str
    blur: float
    is_usable: bool
    thumbnail_path: str | None
    embedding: bytes | None = None  # when embedded from the image decoded for detection
    embedding_model: str | None = None
    embedding2: bytes | None = None
    embedding2_model: str | None = None
    quality: float | None = None
    frame_number: int | None = None  # a video's face: its frame, time and track
    frame_time_ms: int | None = None
    track_number: int | None = None


def set_by_user(assigned_by: str | None, person_id: int | None) -> bool:
    """A user (or another application: a PersonId with no AssignedBy) decided this face;
    a refreshed one waiting for its re-check ('recheck') still counts as the user's."""
    return assigned_by in USER_DECIDED or (assigned_by is None and person_id is not None)


def faces_of_media(session: Session, media_file_ids: Sequence[int]) -> dict[int, list[StoredFace]]:
    """media file id -> its stored faces, as re-detection reconciles them."""
    out: dict[int, list[StoredFace]] = {}
    if not media_file_ids:
        return out
    rows = session.execute(
        select(Faces.MediaFileId, Faces.Id, Faces.BoundingBox, Faces.ThumbnailPath,
               Faces.AssignedBy, Faces.PersonId, Faces.FrameNumber)
        .where(Faces.MediaFileId.in_(media_file_ids))
        .order_by(Faces.Id)
    ).all()
    for r in rows:
        out.setdefault(r[0], []).append(StoredFace(r[1], Box.parse(r[2]), r[3], set_by_user(r[4], r[5]), r[5], r[6]))
    return out


def thumbnails_of_media_range(session: Session, first: int, last: int) -> set[str]:
    """ThumbnailPath of every face of media files first..last (the thumbnail sweep)."""
    rows = session.execute(
        select(Faces.ThumbnailPath).where(Faces.MediaFileId.between(first, last), Faces.ThumbnailPath.is_not(None))
    )
    return {r[0] for r in rows}


def delete_faces(session: Session, face_ids: Sequence[int]) -> None:
    for chunk in chunks(face_ids):
        session.execute(delete(Faces).where(Faces.Id.in_(chunk)))


def insert_faces(session: Session, faces: Sequence[NewFace]) -> None:
    """Many rows in one executemany (no RETURNING: with it, SQLite inserts row by row)."""
    if not faces:
        return
    session.execute(
        insert(Faces),
        [
            {
                "MediaFileId": f.media_file_id,
                "BoundingBox": f.bounding_box,
                "Confidence": f.confidence,
                "Landmarks": f.landmarks,
                "Blur": f.blur,
                "Quality": f.quality,
                "IsUsable": f.is_usable,
                "ThumbnailPath": f.thumbnail_path,
                "Embedding": f.embedding,
                "EmbeddingModel": f.embedding_model,
                "Embedding2": f.embedding2,
                "Embedding2Model": f.embedding2_model,
                "FrameNumber": f.frame_number,
                "FrameTimeMs": f.frame_time_ms,
                "TrackNumber": f.track_number,
            }
            for f in faces
        ],
    )


def refresh_faces(session: Session, faces: Sequence[tuple[int, NewFace]]) -> None:
    """(face id, its new detection): a user's face on a file whose content changed takes the
    new detection's box, scores, thumbnail and vectors (none: open for the embedding stage
    again, as the old vectors came from the old pixels); PersonId and its rejections stay.
    A face with a person is marked 'recheck': the decision was about pixels that are gone,
    so recognition compares the new vector with the person's other faces
    (app/services/recheck.py). A user's face left without a person keeps AssignedBy 'user':
    leaving a face out never puts two people in one person."""
    if not faces:
        return
    session.execute(
        update(FACES).where(FACES.c.Id == bindparam("fid")).values(
            BoundingBox=bindparam("box"), Confidence=bindparam("conf"), Landmarks=bindparam("marks"),
            Blur=bindparam("blur"), Quality=bindparam("quality"), IsUsable=bindparam("usable"),
            ThumbnailPath=bindparam("thumb"), Embedding=bindparam("e1"), EmbeddingModel=bindparam("m1"),
            Embedding2=bindparam("e2"), Embedding2Model=bindparam("m2"), EmbedAttempts=0, EmbedError=None,
            EmbedLockedBy=None, EmbedLockedUntil=None, FrameNumber=bindparam("frame"),
            FrameTimeMs=bindparam("ms"), TrackNumber=bindparam("track"),
            AssignedBy=case((FACES.c.PersonId.is_not(None), ASSIGNED_RECHECK), else_=FACES.c.AssignedBy),
        ),
        [{"fid": face_id, "box": f.bounding_box, "conf": f.confidence, "marks": f.landmarks, "blur": f.blur,
          "quality": f.quality, "usable": f.is_usable, "thumb": f.thumbnail_path, "e1": f.embedding,
          "m1": f.embedding_model, "e2": f.embedding2, "m2": f.embedding2_model, "frame": f.frame_number,
          "ms": f.frame_time_ms, "track": f.track_number} for face_id, f in faces],
    )


# --- quality scores ------------------------------------------------------------------

@dataclass(frozen=True)
class Unscored:
    face_id: int
    bounding_box: str | None
    landmarks: str | None
    confidence: float | None
    blur: float | None
    thumbnail_path: str | None


def unscored_faces(session: Session, after_id: int, limit: int) -> list[Unscored]:
    """Faces without a quality score (stored before scores existed), in id order."""
    rows = session.execute(
        select(Faces.Id, Faces.BoundingBox, Faces.Landmarks, Faces.Confidence, Faces.Blur, Faces.ThumbnailPath)
        .where(Faces.Quality.is_(None), Faces.Id > after_id).order_by(Faces.Id).limit(limit)
    ).all()
    return [Unscored(*r) for r in rows]


def set_quality(session: Session, scores: Sequence[tuple[int, float]]) -> None:
    if not scores:
        return
    if session.get_bind().dialect.name == "postgresql":  # one statement, not one per face
        session.execute(text(
            'UPDATE "Faces" AS f SET "Quality" = v.q '
            'FROM unnest(CAST(:faces AS integer[]), CAST(:scores AS double precision[])) AS v(f, q) '
            'WHERE f."Id" = v.f'
        ), {"faces": [f for f, _ in scores], "scores": [float(q) for _, q in scores]})
        return
    session.execute(update(FACES).where(FACES.c.Id == bindparam("fid")).values(Quality=bindparam("q")),
                    [{"fid": f, "q": q} for f, q in scores])
